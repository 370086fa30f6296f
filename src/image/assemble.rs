//! What a registry pull ([`super::pull`]) and an archive import ([`super::archive`]) share in
//! putting an image together from a manifest, a config and layer blobs: the layer media types
//! podrun unpacks, the config's diff IDs and creation time, the host's entry of an index, a
//! layer unpacked into a work directory of the store with its blob digest and diff ID checked,
//! and the commit of the image once its layers are all there (hard links across layers made
//! first, as the layers may have been unpacked in any order).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_client::manifest::ImageIndexEntry;
use sha2::{Digest, Sha256};

use super::copy::{HashingReader, Tree, hex};
use super::error::{ImageError, Result};
use super::store::{NewLayer, Origin, TempDir, Unpacked};
use super::unpack::{LinkBelow, link_from_lowers, unpack_layer};
use super::{Image, ImageStore};

/// Layer media types podrun unpacks (OCI and Docker names).
pub(super) const LAYER_TYPES: [&str; 8] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Refuses a layer whose media type podrun does not unpack, naming it.
pub(super) fn check_layer_type(digest: &str, media_type: &str) -> Result<()> {
    if LAYER_TYPES.contains(&media_type) {
        return Ok(());
    }
    Err(ImageError::Content(format!(
        "layer {digest} has media type {media_type}, which podrun does not unpack"
    )))
}

/// The image config's `rootfs.diff_ids`, bottom first.
pub(super) fn diff_ids(config: &str) -> Result<Vec<String>> {
    let value: serde_json::Value = serde_json::from_str(config)
        .map_err(|e| ImageError::Content(format!("the image config is not valid JSON: {e}")))?;
    value["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .map(|d| d.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .ok_or_else(|| ImageError::Content("the image config has no rootfs.diff_ids".into()))
}

/// The manifest's layer count against the config's diff IDs.
pub(super) fn check_layer_count(layers: usize, diff_ids: &[String]) -> Result<()> {
    if layers == diff_ids.len() {
        return Ok(());
    }
    Err(ImageError::Content(format!(
        "the manifest has {layers} layers but its image config lists {} diff IDs",
        diff_ids.len()
    )))
}

/// The image config's `created`, when it has a valid one.
pub(super) fn created(config: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let value: serde_json::Value = serde_json::from_str(config).ok()?;
    chrono::DateTime::parse_from_rfc3339(value["created"].as_str()?)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The entry of an index or manifest list for this host, as containerd's default platform
/// matcher picks it: the OS and architecture must match; for arm64 an entry without a variant
/// or with `v8` is taken first, then any other arm64 variant.
pub(super) fn platform(entries: &[ImageIndexEntry]) -> Option<String> {
    use oci_spec::image::{Arch, Os};
    let host = Arch::default();
    let matching: Vec<&ImageIndexEntry> = entries
        .iter()
        .filter(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == Os::Linux && p.architecture == host)
        })
        .collect();
    let preferred = matching.iter().find(|e| {
        let variant = e.platform.as_ref().and_then(|p| p.variant.as_deref());
        host != Arch::ARM64 || matches!(variant, None | Some("v8"))
    });
    preferred.or(matching.first()).map(|e| e.digest.clone())
}

/// A layer being unpacked: an empty directory `dir` in a work directory of the store's `tmp/`
/// (removed with this unless the layer is committed).
pub(super) struct LayerWork {
    work: TempDir,
    pub(super) dir: PathBuf,
}

impl LayerWork {
    pub(super) fn new(store: &ImageStore) -> Result<LayerWork> {
        let work = store.work_dir("layer")?;
        let dir = work.path.join("fs");
        std::fs::create_dir(&dir)
            .map_err(ImageError::io(format!("cannot create {}", dir.display())))?;
        Ok(LayerWork { work, dir })
    }

    /// The layer as unpacked into `dir` (the tree and its hard links to the layers below), once
    /// its content is checked against `diff_id` from the image config.
    pub(super) fn finish(
        self,
        (tree, links_below): (Tree, Vec<LinkBelow>),
        diff_id: &str,
    ) -> Result<NewLayer> {
        if tree.digest != diff_id {
            return Err(ImageError::Content(format!(
                "its content has digest {}, the image config says {diff_id}",
                tree.digest
            )));
        }
        Ok(NewLayer {
            diff_id: diff_id.to_owned(),
            unpacked: Some(Unpacked {
                _work: self.work,
                dir: self.dir,
                size: tree.size,
                links_below,
            }),
        })
    }
}

/// What a layer blob must be: its digest (`sha256:<hex>`) and, when known, its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BlobCheck {
    pub(super) digest: String,
    pub(super) size: Option<u64>,
}

/// Unpacks layer blob `reader` (plain, gzip or zstd tar) into `dir` (existing, empty) as
/// [`unpack_layer`] does, the blob's bytes checked against `blob`: all of them are read, so
/// trailing bytes count too.
pub(super) fn unpack_blob(
    reader: impl Read,
    dir: &Path,
    blob: &BlobCheck,
) -> Result<(Tree, Vec<LinkBelow>)> {
    let mut counted = Counted {
        inner: HashingReader {
            inner: reader,
            hasher: Sha256::new(),
        },
        bytes: 0,
    };
    let unpacked = unpack_layer(&mut counted, dir)?;
    io::copy(&mut counted, &mut io::sink()).map_err(ImageError::io("cannot read layer"))?;
    let digest = format!("sha256:{}", hex(&counted.inner.hasher.finalize()));
    if digest != blob.digest {
        return Err(ImageError::Content(format!(
            "its bytes have digest {digest}, the manifest says {}",
            blob.digest
        )));
    }
    if let Some(size) = blob.size
        && size != counted.bytes
    {
        return Err(ImageError::Content(format!(
            "it has {} bytes, the manifest says {size}",
            counted.bytes
        )));
    }
    Ok(unpacked)
}

/// A reader that counts what passes through.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Adds the image of `config` whose layers are `diff_ids` (bottom first): each taken from
/// `unpacked` when it is there, else one the store has. The hard links of the unpacked ones to
/// the layers below are made first.
pub(super) fn commit_image(
    store: &ImageStore,
    origin: Origin,
    config: &[u8],
    diff_ids: &[String],
    unpacked: &mut BTreeMap<String, NewLayer>,
) -> Result<Image> {
    let layers: Vec<NewLayer> = diff_ids
        .iter()
        .map(|d| {
            unpacked.remove(d).unwrap_or_else(|| NewLayer {
                diff_id: d.clone(),
                unpacked: None,
            })
        })
        .collect();
    link_across_layers(store, &layers)?;
    store.commit(origin, config, layers)
}

/// The hard links of each new layer to files of the layers below it, now that all are
/// unpacked (they may have been unpacked in any order).
fn link_across_layers(store: &ImageStore, layers: &[NewLayer]) -> Result<()> {
    let mut below: Vec<PathBuf> = Vec::new();
    for layer in layers {
        let dir = match &layer.unpacked {
            Some(u) => {
                link_from_lowers(&u.dir, &below, &u.links_below)?;
                u.dir.clone()
            }
            None => store
                .layer(&layer.diff_id)
                .ok_or_else(|| ImageError::LayerGone {
                    digest: layer.diff_id.clone(),
                })?,
        };
        below.push(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: Option<&str>, digest: &str) -> ImageIndexEntry {
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": {"architecture": arch, "os": "linux", "variant": variant},
        }))
        .unwrap()
    }

    #[test]
    fn the_hosts_platform_is_picked_from_an_index() {
        let entries = [
            entry("arm64", Some("v8"), "sha256:arm"),
            entry("amd64", None, "sha256:amd"),
        ];
        let want = match oci_spec::image::Arch::default() {
            oci_spec::image::Arch::Amd64 => Some("sha256:amd".to_owned()),
            oci_spec::image::Arch::ARM64 => Some("sha256:arm".to_owned()),
            _ => None,
        };
        assert_eq!(platform(&entries), want);
        assert_eq!(platform(&[entry("s390x", None, "sha256:s")]), None);
    }

    #[test]
    fn diff_ids_and_created_come_from_the_config() {
        let config = r#"{"created": "2026-01-02T03:04:05Z", "rootfs": {"type": "layers", "diff_ids": ["sha256:a", "sha256:b"]}}"#;
        assert_eq!(diff_ids(config).unwrap(), ["sha256:a", "sha256:b"]);
        assert_eq!(
            created(config).unwrap().to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
        assert_eq!(
            diff_ids("{}").unwrap_err().to_string(),
            "the image config has no rootfs.diff_ids"
        );
        assert!(check_layer_count(2, &diff_ids(config).unwrap()).is_ok());
        assert_eq!(
            check_layer_count(1, &diff_ids(config).unwrap())
                .unwrap_err()
                .to_string(),
            "the manifest has 1 layers but its image config lists 2 diff IDs"
        );
    }

    #[test]
    fn a_blob_is_checked_by_digest_and_size() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_mtime(0);
        tar.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        let plain = tar.into_inner().unwrap();
        let digest = format!("sha256:{}", hex(&Sha256::digest(&plain)));
        let t = tempfile::tempdir().unwrap();
        let dir = |n: &str| {
            let d = t.path().join(n);
            std::fs::create_dir(&d).unwrap();
            d
        };
        let good = BlobCheck {
            digest: digest.clone(),
            size: Some(plain.len() as u64),
        };
        let (tree, _) = unpack_blob(&plain[..], &dir("a"), &good).unwrap();
        assert_eq!(tree.digest, digest, "a plain layer's diff ID is its digest");
        let wrong = BlobCheck {
            digest: "sha256:00".into(),
            size: None,
        };
        let e = unpack_blob(&plain[..], &dir("b"), &wrong).unwrap_err();
        assert!(e.to_string().contains(&digest), "{e}");
        let short = BlobCheck {
            digest,
            size: Some(1),
        };
        let e = unpack_blob(&plain[..], &dir("c"), &short).unwrap_err();
        assert!(e.to_string().contains("the manifest says 1"), "{e}");
    }
}
