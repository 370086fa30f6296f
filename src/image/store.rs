//! The image store: one directory per image under the image root, and an index of names.
//!
//! ```text
//! <root>/images.json        {"names": {"podrun.local/debug:1": "<id>"}, "images": {"<id>": {...}}}
//! <root>/lock               flock(2)ed exclusively by every change
//! <root>/<id>/config.json   the OCI image config; <id> is the sha256 of these bytes
//! <root>/<id>/rootfs/       an image stored whole by an older podrun (its only layer)
//! <root>/layers/<diff-id>/  a layer, unpacked once with its whiteouts in overlayfs's form,
//!                           shared by every image that has it (keyed by the sha256 of its
//!                           uncompressed tar, the config's `rootfs.diff_ids`)
//! <root>/pulls/<hash>.lock  flock(2)ed while a name is pulled (concurrent pulls wait, then
//!                           find it present)
//! <root>/tmp/               imports and layers being built, and images and layers being
//!                           deleted (a day-old leftover of a crash is swept by the next change)
//! ```
//!
//! An import or pull unpacks into `tmp/` without the lock (the slow part), then under the lock
//! renames the finished layers and image directory into place and rewrites the index (a new file
//! renamed over the old), so concurrent podrun processes never see a half-made image or lose
//! each other's names. Readers do not lock: they only read the index, which is always whole. A
//! name given to a new image moves to it; the image that had it keeps its ID and lists as
//! `<none>`, as in docker. Removing an image frees every layer no other image has.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{ImageConfigOverrides, image_configuration};
use super::copy::{Tree, copy_tree, hex};
use super::error::{ImageError, Result};
use super::reference::Reference;
use super::unpack::unpack;
use crate::lockfile::LockFile;

/// The default image root: persistent, unlike the state root `/run/podrun` (a tmpfs).
pub const DEFAULT_IMAGE_ROOT: &str = "/var/lib/podrun/images";

const INDEX: &str = "images.json";
const LOCK: &str = "lock";
const TMP: &str = "tmp";
const CONFIG: &str = "config.json";
const ROOTFS: &str = "rootfs";
const LAYERS: &str = "layers";
const PULLS: &str = "pulls";
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// An image in the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// sha256 of the config, 64 hex digits (`sha256:` not included).
    pub id: String,
    /// Normalised names (`podrun.local/debug:1`), sorted; empty for an untagged image.
    pub names: Vec<String>,
    /// The root filesystem's layers, bottom first: an overlay's lower directories, never to
    /// be written.
    pub layers: Vec<PathBuf>,
    /// `repository@sha256:<manifest digest>` for each registry manifest it was pulled by.
    pub repo_digests: Vec<String>,
    pub config: ImageConfiguration,
    pub created: DateTime<Utc>,
    /// Bytes of file content in the rootfs (hard links counted once).
    pub size: u64,
}

impl Image {
    /// The ID as `podman images` shows it: the first 12 hex digits.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// `sha256:<id>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.id)
    }

    /// Where file `rel` of the merged root filesystem is (the topmost layer that has it), as
    /// overlayfs would show it; None when no layer has it or a whiteout hides it.
    pub fn find(&self, rel: &Path) -> Option<PathBuf> {
        super::layers::find_in_layers(&self.layers, rel)
    }
}

/// What `remove` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub untagged: Vec<String>,
    /// The ID of the deleted image, when its last name went (or it was named by ID).
    pub deleted: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    /// Normalised name -> image ID.
    names: BTreeMap<String, String>,
    /// Image ID -> what listing needs without reading the config.
    images: BTreeMap<String, ImageRecord>,
    /// Layer (diff ID hex) -> its record.
    #[serde(default)]
    layers: BTreeMap<String, LayerRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageRecord {
    created: DateTime<Utc>,
    size: u64,
    /// Its layers (diff ID hex, under `layers/`), bottom first; None for an image an older
    /// podrun stored whole in `<id>/rootfs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    repo_digests: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerRecord {
    /// Bytes of file content in it.
    size: u64,
}

/// A layer for [`ImageStore::commit`]: its diff ID (`sha256:<hex>`), and where it was unpacked
/// (None when the store had it already).
pub(super) struct NewLayer {
    pub(super) diff_id: String,
    pub(super) unpacked: Option<Unpacked>,
}

/// A layer unpacked into `dir`, inside a work directory removed when this is dropped.
pub(super) struct Unpacked {
    pub(super) _work: TempDir,
    pub(super) dir: PathBuf,
    /// Bytes of file content.
    pub(super) size: u64,
    /// Its hard links to files of the layers below, not made yet.
    pub(super) links_below: Vec<super::unpack::LinkBelow>,
}

/// What [`ImageStore::commit`] keeps of where the image came from.
#[derive(Default)]
pub(super) struct Origin {
    /// The names to give it.
    pub(super) names: Vec<Reference>,
    /// `repository@sha256:...` of the registry manifest it was pulled by.
    pub(super) repo_digest: Option<String>,
    /// When it was made (its config's `created`); now when unknown.
    pub(super) created: Option<DateTime<Utc>>,
}

impl Index {
    fn names_of(&self, id: &str) -> Vec<String> {
        self.names
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// How a reference matched.
enum Found {
    Name(String),
    Id,
}

#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// The store at `root`. Nothing is created until the first import; a missing root is an
    /// empty store.
    pub fn open(root: impl Into<PathBuf>) -> ImageStore {
        ImageStore { root: root.into() }
    }

    /// A work directory in the store's own temporary directory (swept after a crash), removed
    /// when dropped.
    pub(super) fn work_dir(&self, what: &str) -> Result<TempDir> {
        TempDir::new(&self.root.join(TMP), what)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports a copy of directory `src`; `name` (if any) is tagged to the new image.
    pub fn import_dir(
        &self,
        src: &Path,
        name: Option<&str>,
        overrides: &ImageConfigOverrides,
    ) -> Result<Image> {
        let name = parse_new_name(name)?;
        self.ensure_root()?;
        let skip = [dev_ino(&self.root)?];
        let source = src.display().to_string();
        self.import_with(name, overrides, &source, |rootfs| {
            copy_tree(src, rootfs, &skip)
        })
    }

    /// Imports a plain or gzip tar file.
    pub fn import_tar(
        &self,
        path: &Path,
        name: Option<&str>,
        overrides: &ImageConfigOverrides,
    ) -> Result<Image> {
        let file = File::open(path).map_err(ImageError::io(format!(
            "cannot read import source {}",
            path.display()
        )))?;
        self.import_reader(file, &path.display().to_string(), name, overrides)
    }

    /// Imports a plain or gzip tar stream (`source` names it in the image's history).
    pub fn import_reader(
        &self,
        reader: impl Read,
        source: &str,
        name: Option<&str>,
        overrides: &ImageConfigOverrides,
    ) -> Result<Image> {
        let name = parse_new_name(name)?;
        self.ensure_root()?;
        self.import_with(name, overrides, source, |rootfs| {
            fs::create_dir(rootfs).map_err(ImageError::io(format!(
                "cannot create {}",
                rootfs.display()
            )))?;
            fs::set_permissions(rootfs, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(ImageError::io(format!("cannot chmod {}", rootfs.display())))?;
            unpack(reader, rootfs)
        })
    }

    fn import_with(
        &self,
        name: Option<Reference>,
        overrides: &ImageConfigOverrides,
        source: &str,
        fill: impl FnOnce(&Path) -> Result<Tree>,
    ) -> Result<Image> {
        let created = Utc::now();
        let work = self.work_dir("import")?;
        let dir = work.path.join(ROOTFS);
        let tree = fill(&dir)?;
        let config = image_configuration(
            overrides,
            &tree.digest,
            created,
            &format!("podrun image import {source}"),
        )?;
        let bytes = serde_json::to_vec_pretty(&config).map_err(|e| ImageError::Corrupt {
            context: "cannot encode the image config".into(),
            message: e.to_string(),
        })?;
        let layer = NewLayer {
            diff_id: tree.digest,
            unpacked: Some(Unpacked {
                _work: work,
                dir,
                size: tree.size,
                links_below: Vec::new(),
            }),
        };
        let origin = Origin {
            names: name.into_iter().collect(),
            ..Origin::default()
        };
        self.commit(origin, &bytes, vec![layer])
    }

    /// The directory of layer `diff_id` (`sha256:<hex>`) when the store has it.
    pub(super) fn layer(&self, diff_id: &str) -> Option<PathBuf> {
        let dir = self.layer_dir(diff_id);
        dir.is_dir().then_some(dir)
    }

    fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root
            .join(LAYERS)
            .join(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
    }

    /// Held while `reference` is pulled, so that concurrent pulls of one name make one.
    pub(super) fn pull_lock(&self, reference: &Reference) -> Result<LockFile> {
        let dir = self.root.join(PULLS);
        fs::create_dir_all(&dir)
            .map_err(ImageError::io(format!("cannot create {}", dir.display())))?;
        let name = hex(&Sha256::digest(reference.to_string().as_bytes()));
        let path = dir.join(format!("{}.lock", &name[..32]));
        LockFile::exclusive(&path, 0o644).map_err(|e| ImageError::Io {
            context: format!("cannot {} {}", e.op, e.path.display()),
            source: e.source,
        })
    }

    /// Add the image whose config is `config` (its id is their sha256, as an OCI config digest)
    /// and whose layers are `layers`, bottom first: each unpacked one moves into the store
    /// unless it is there already; one said to be there must still be (else
    /// [`ImageError::LayerGone`]: pull again).
    pub(super) fn commit(
        &self,
        origin: Origin,
        config: &[u8],
        layers: Vec<NewLayer>,
    ) -> Result<Image> {
        let id = hex(&Sha256::digest(config));
        let work = self.work_dir("image")?;
        write_synced(&work.path.join(CONFIG), config)?;
        // Flushes the unpacked layers too (same filesystem): whole after a crash.
        sync_fs(&work.path)?;
        let created = origin.created.unwrap_or_else(Utc::now);

        let lock = self.lock()?;
        self.sweep_tmp();
        let mut index = self.load_index()?;
        let mut trash = Vec::new();
        let mut ids = Vec::new();
        let layers_dir = self.root.join(LAYERS);
        fs::create_dir_all(&layers_dir).map_err(ImageError::io(format!(
            "cannot create {}",
            layers_dir.display()
        )))?;
        for layer in layers {
            let hex = layer
                .diff_id
                .strip_prefix("sha256:")
                .unwrap_or(&layer.diff_id)
                .to_owned();
            let dest = layers_dir.join(&hex);
            let present = index.layers.contains_key(&hex) && dest.is_dir();
            match layer.unpacked {
                _ if present => {}
                Some(unpacked) => {
                    if dest.symlink_metadata().is_ok() {
                        // Moved in by a change that crashed before it was indexed.
                        trash.push(self.to_trash(&dest)?);
                    }
                    fs::rename(&unpacked.dir, &dest).map_err(ImageError::io(format!(
                        "cannot move a layer into {}",
                        dest.display()
                    )))?;
                    index.layers.insert(
                        hex.clone(),
                        LayerRecord {
                            size: unpacked.size,
                        },
                    );
                }
                None => {
                    return Err(ImageError::LayerGone {
                        digest: layer.diff_id,
                    });
                }
            }
            ids.push(hex);
        }
        let size = ids.iter().map(|h| index.layers[h].size).sum();
        let dir = self.root.join(&id);
        if !dir.exists() {
            fs::rename(&work.path, &dir).map_err(ImageError::io(format!(
                "cannot move image into {}",
                dir.display()
            )))?;
            work.keep();
        }
        let mut repo_digests = index
            .images
            .get(&id)
            .map(|r| r.repo_digests.clone())
            .unwrap_or_default();
        if let Some(d) = origin.repo_digest
            && !repo_digests.contains(&d)
        {
            repo_digests.push(d);
        }
        index.images.insert(
            id.clone(),
            ImageRecord {
                created,
                size,
                layers: Some(ids),
                repo_digests,
            },
        );
        for name in &origin.names {
            index.names.insert(name.to_string(), id.clone());
        }
        self.save_index(&index)?;
        let image = self.image(&index, &id);
        drop(lock);
        empty_trash(trash);
        image
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>> {
        let index = self.load_index()?;
        let mut images = index
            .images
            .keys()
            .map(|id| self.image(&index, id))
            .collect::<Result<Vec<_>>>()?;
        images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(images)
    }

    /// The image a reference names: a full or short name (`podrun.local/debug:1`, `debug:1`,
    /// `python:3.11` = `docker.io/library/python:3.11`), `name@sha256:<id>`, or an ID or a
    /// unique prefix of one (`sha256:` optional), as `podman images` and `crictl` accept.
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        let index = self.load_index()?;
        let (id, _) = self.lookup(&index, reference)?;
        self.image(&index, &id)
    }

    /// Gives image `reference` the name `new_name` too (moving it from another image).
    pub fn tag(&self, reference: &str, new_name: &str) -> Result<Image> {
        let name = parse_new_name(Some(new_name))?.expect("a name");
        let _lock = self.lock()?;
        let mut index = self.load_index()?;
        let (id, _) = self.lookup(&index, reference)?;
        index.names.insert(name.to_string(), id.clone());
        self.save_index(&index)?;
        self.image(&index, &id)
    }

    /// Removes a name (`image rm NAME`); the image goes with its last name. By ID, the image
    /// and all its names go, which needs `force` when it has more than one name (as docker).
    pub fn remove(&self, reference: &str, force: bool) -> Result<Removed> {
        let _lock = self.lock()?;
        let mut index = self.load_index()?;
        let (id, found) = self.lookup(&index, reference)?;
        let names = index.names_of(&id);
        let untagged = match found {
            Found::Name(name) => vec![name],
            Found::Id if names.len() > 1 && !force => {
                return Err(ImageError::MultipleNames {
                    id: id[..12].to_owned(),
                    names,
                });
            }
            Found::Id => names.clone(),
        };
        for name in &untagged {
            index.names.remove(name);
        }
        let mut removed = Removed {
            untagged,
            deleted: None,
        };
        let mut trash = Vec::new();
        if index.names_of(&id).is_empty() {
            trash.extend(self.delete_image(&mut index, &id)?);
            removed.deleted = Some(id);
        }
        self.save_index(&index)?;
        drop(_lock);
        empty_trash(trash);
        Ok(removed)
    }

    /// Removes every image that `doomed` picks (`podrun image prune`: dangling ones, or with
    /// `--all` every one no pod uses) and the layers only they had; their IDs.
    pub fn prune(&self, doomed: &dyn Fn(&Image) -> bool) -> Result<Vec<String>> {
        let lock = self.lock()?;
        let mut index = self.load_index()?;
        let ids: Vec<String> = index.images.keys().cloned().collect();
        let mut pruned = Vec::new();
        let mut trash = Vec::new();
        for id in ids {
            if doomed(&self.image(&index, &id)?) {
                index.names.retain(|_, v| *v != id);
                trash.extend(self.delete_image(&mut index, &id)?);
                pruned.push(id);
            }
        }
        if !pruned.is_empty() {
            self.save_index(&index)?;
        }
        drop(lock);
        empty_trash(trash);
        Ok(pruned)
    }

    /// Takes image `id` out of `index` and moves its directory, and every layer no other image
    /// has, to the trash (the caller holds the lock, saves the index, then empties the trash).
    fn delete_image(&self, index: &mut Index, id: &str) -> Result<Vec<PathBuf>> {
        index.images.remove(id);
        let mut trash = vec![self.to_trash(&self.root.join(id))?];
        let used: std::collections::BTreeSet<&String> = index
            .images
            .values()
            .filter_map(|r| r.layers.as_ref())
            .flatten()
            .collect();
        let unused: Vec<String> = index
            .layers
            .keys()
            .filter(|l| !used.contains(l))
            .cloned()
            .collect();
        for layer in unused {
            index.layers.remove(&layer);
            let dir = self.root.join(LAYERS).join(&layer);
            if dir.symlink_metadata().is_ok() {
                trash.push(self.to_trash(&dir)?);
            }
        }
        Ok(trash)
    }

    /// Moves `path` into `tmp/` (a rename: instant, and swept after a crash).
    fn to_trash(&self, path: &Path) -> Result<PathBuf> {
        let trash = TempDir::path_for(&self.root.join(TMP), "remove")?;
        fs::rename(path, &trash)
            .map_err(ImageError::io(format!("cannot remove {}", path.display())))?;
        Ok(trash)
    }

    fn lookup(&self, index: &Index, reference: &str) -> Result<(String, Found)> {
        let parsed = Reference::parse(reference);
        if let Ok(r) = &parsed {
            if let Some(digest) = &r.digest {
                let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
                if index.images.contains_key(hex) {
                    return Ok((hex.to_owned(), Found::Id));
                }
                let pulled_by = format!("{}@{digest}", r.repository());
                let by_manifest = index
                    .images
                    .iter()
                    .find(|(_, rec)| rec.repo_digests.contains(&pulled_by));
                if let Some((id, _)) = by_manifest {
                    return Ok((id.clone(), Found::Id));
                }
            } else if let Some(id) = index.names.get(&r.to_string()) {
                return Ok((id.clone(), Found::Name(r.to_string())));
            }
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        if !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            let ids: Vec<&String> = index
                .images
                .keys()
                .filter(|id| id.starts_with(prefix))
                .collect();
            match ids.as_slice() {
                [id] => return Ok(((*id).clone(), Found::Id)),
                [] => {}
                many => {
                    return Err(ImageError::Ambiguous {
                        reference: reference.to_owned(),
                        matches: many.iter().map(|id| id[..12].to_owned()).collect(),
                    });
                }
            }
        }
        let r = match parsed {
            Ok(r) => r,
            Err(_) if reference.starts_with("sha256:") || prefix.len() == 64 => {
                return Err(self.not_found(reference));
            }
            Err(e) => return Err(e),
        };
        if !r.explicit_domain && r.digest.is_none() {
            let matches: Vec<&String> = index
                .names
                .keys()
                .filter(|n| Reference::parse(n).is_ok_and(|o| r.short_name_matches(&o)))
                .collect();
            match matches.as_slice() {
                [name] => return Ok((index.names[*name].clone(), Found::Name((*name).clone()))),
                [] => {}
                many => {
                    return Err(ImageError::Ambiguous {
                        reference: reference.to_owned(),
                        matches: many.iter().map(|n| n.to_string()).collect(),
                    });
                }
            }
        }
        Err(self.not_found(&r.familiar()))
    }

    fn not_found(&self, reference: &str) -> ImageError {
        ImageError::NotFound {
            reference: reference.to_owned(),
            root: self.root.clone(),
        }
    }

    fn image(&self, index: &Index, id: &str) -> Result<Image> {
        let record = index.images.get(id).ok_or_else(|| ImageError::Corrupt {
            context: format!("{}", self.root.join(INDEX).display()),
            message: format!("image {id} is not in the index"),
        })?;
        let dir = self.root.join(id);
        let config_path = dir.join(CONFIG);
        let bytes = fs::read(&config_path).map_err(ImageError::io(format!(
            "cannot read {}",
            config_path.display()
        )))?;
        let config: ImageConfiguration =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt {
                context: config_path.display().to_string(),
                message: e.to_string(),
            })?;
        let layers = match &record.layers {
            Some(ids) => ids.iter().map(|l| self.root.join(LAYERS).join(l)).collect(),
            None => vec![dir.join(ROOTFS)],
        };
        Ok(Image {
            id: id.to_owned(),
            names: index.names_of(id),
            layers,
            repo_digests: record.repo_digests.clone(),
            config,
            created: record.created,
            size: record.size,
        })
    }

    /// Removes what a crashed import, pull or removal left in `tmp/`: the work directories of
    /// a process that is gone (their names hold its pid), and anything a day old.
    fn sweep_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join(TMP)) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner_gone = name
                .split('-')
                .nth(1)
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
            if owner_gone || stale {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    fn ensure_root(&self) -> Result<()> {
        let tmp = self.root.join(TMP);
        fs::create_dir_all(&tmp).map_err(ImageError::io(format!("cannot create {}", tmp.display())))
    }

    fn lock(&self) -> Result<LockFile> {
        self.ensure_root()?;
        LockFile::exclusive(&self.root.join(LOCK), 0o666).map_err(|e| ImageError::Io {
            context: format!("cannot {} {}", e.op, e.path.display()),
            source: e.source,
        })
    }

    fn load_index(&self) -> Result<Index> {
        let path = self.root.join(INDEX);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt {
                context: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::Io {
                context: format!("cannot read {}", path.display()),
                source: e,
            }),
        }
    }

    /// Write a new index next to the old and rename it over (the caller holds the lock).
    fn save_index(&self, index: &Index) -> Result<()> {
        let path = self.root.join(INDEX);
        let tmp = self.root.join(format!("{INDEX}.tmp"));
        let mut bytes = serde_json::to_vec_pretty(index).expect("index encodes");
        bytes.push(b'\n');
        write_synced(&tmp, &bytes)?;
        fs::rename(&tmp, &path)
            .map_err(ImageError::io(format!("cannot replace {}", path.display())))
    }
}

/// The name an import or tag gives: normalised, and without a digest (a digest is content).
fn parse_new_name(name: Option<&str>) -> Result<Option<Reference>> {
    let Some(name) = name else { return Ok(None) };
    let r = Reference::parse(name)?;
    if r.digest.is_some() {
        return Err(ImageError::InvalidReference {
            reference: name.to_owned(),
            reason: "an image name cannot have a digest; use NAME[:TAG]".into(),
        });
    }
    Ok(Some(r))
}

fn dev_ino(path: &Path) -> Result<(u64, u64)> {
    let md =
        fs::metadata(path).map_err(ImageError::io(format!("cannot stat {}", path.display())))?;
    Ok((md.dev(), md.ino()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file =
        File::create(path).map_err(ImageError::io(format!("cannot write {}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(ImageError::io(format!("cannot write {}", path.display())))
}

/// Flush the filesystem holding `path`, so that a renamed-in image is whole after a crash.
fn sync_fs(path: &Path) -> Result<()> {
    let dir =
        File::open(path).map_err(ImageError::io(format!("cannot open {}", path.display())))?;
    nix::unistd::syncfs(&dir).map_err(|e| ImageError::Io {
        context: format!("cannot sync {}", path.display()),
        source: e.into(),
    })
}

/// Deletes what was moved to the trash (after the lock is released: it may take a while); what
/// fails to go is swept by a later change.
fn empty_trash(trash: Vec<PathBuf>) {
    for path in trash {
        let _ = fs::remove_dir_all(&path);
    }
}

/// A work directory under `<root>/tmp`, removed on drop unless kept.
pub(super) struct TempDir {
    pub(super) path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn path_for(parent: &Path, what: &str) -> Result<PathBuf> {
        fs::create_dir_all(parent).map_err(ImageError::io(format!(
            "cannot create {}",
            parent.display()
        )))?;
        let pid = std::process::id();
        Ok(parent.join(format!("{what}-{pid}-{}", uuid::Uuid::new_v4().simple())))
    }

    pub(super) fn new(parent: &Path, what: &str) -> Result<TempDir> {
        let path = TempDir::path_for(parent, what)?;
        fs::create_dir(&path)
            .map_err(ImageError::io(format!("cannot create {}", path.display())))?;
        Ok(TempDir { path, keep: false })
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
