//! Importing images from archives: an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/...`; the OCI image spec's "Image Layout"), an OCI archive (a tar of one, as
//! `podman save --format oci-archive` and skopeo's `oci-archive:` write it), and a `docker save`
//! archive (`manifest.json` listing each image's `Config`, `RepoTags` and `Layers`, the layers
//! as `<id>/layer.tar` or, as docker 25 writes them, `blobs/sha256/<hex>`), plain or compressed.
//!
//! An index picks this host's platform as a pull does. Every blob is checked against its
//! descriptor (digest and size) and every layer against the config's diff ID; a docker
//! archive's config against the digest its file is named by. Nothing reaches the store before
//! every image chosen from the archive is checked and unpacked, so a bad archive leaves
//! nothing; layers the store has are not unpacked again.
//!
//! Names come from the index's `io.containerd.image.name` or `org.opencontainers.image.ref.name`
//! annotations (a bare tag, as skopeo writes `oci:DIR:TAG`, names nothing) or `RepoTags`,
//! normalised as pulls are (`busybox:1` is `docker.io/library/busybox:1`); a reference given
//! to [`ImageArchive::import`] chooses one image of several or names an unnamed one.
//!
//! A tar is read in place through an index of its entries (offset and size); a compressed one,
//! or one read from a pipe, is first written out plain into the store's `tmp/`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::assemble::{
    BlobCheck, LayerWork, check_layer_count, check_layer_type, commit_image, created, diff_ids,
    platform, unpack_blob,
};
use super::copy::hex;
use super::error::{ImageError, Result};
use super::store::{NewLayer, Origin, TempDir};
use super::unpack::unpack_layer;
use super::{Image, ImageStore, Reference};

/// The file that marks an OCI image layout.
const OCI_LAYOUT: &str = "oci-layout";
const OCI_INDEX: &str = "index.json";
/// The file that marks a `docker save` archive.
const DOCKER_MANIFEST: &str = "manifest.json";
/// The annotation naming an image in an OCI index (often only a tag).
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and docker 25's) annotation with the full name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The largest JSON document (index, manifest, config) read whole.
const MAX_JSON: u64 = 64 << 20;
/// Index levels followed from index.json to a manifest.
const MAX_NESTING: usize = 4;

const OCI_MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const OCI_INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What an archive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A directory with `oci-layout`.
    OciLayout,
    /// A tar with `oci-layout` at its top.
    OciArchive,
    /// A tar with `manifest.json` (and no `oci-layout`) at its top.
    DockerArchive,
}

impl std::fmt::Display for ArchiveKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArchiveKind::OciLayout => "OCI image layout",
            ArchiveKind::OciArchive => "OCI archive",
            ArchiveKind::DockerArchive => "docker save archive",
        })
    }
}

/// What an import tells as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadEvent {
    /// A layer blob (its digest, or a docker archive's diff ID) was unpacked, or skipped as
    /// the store has it.
    Layer { digest: String, present: bool },
}

/// An image an archive import added: the image, and the names this import gave it (it may
/// have others from before).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub image: Image,
    pub names: Vec<Reference>,
}

/// An image archive or layout, opened.
pub struct ImageArchive {
    kind: ArchiveKind,
    files: Files,
    /// How errors name it (its path, or `-`).
    source: String,
}

impl ImageArchive {
    /// `path` as an image archive or layout: a directory with `oci-layout`, or a tar (plain,
    /// gzip or zstd) with `oci-layout` or `manifest.json` at its top. None when it is neither
    /// (a root filesystem to import as one layer). A compressed tar is written out plain into
    /// the store's `tmp/` while this lives.
    pub fn open(store: &ImageStore, path: &Path) -> Result<Option<ImageArchive>> {
        let source = path.display().to_string();
        let md = std::fs::metadata(path).map_err(ImageError::io(format!(
            "cannot read import source {source}"
        )))?;
        if md.is_dir() {
            if !path.join(OCI_LAYOUT).is_file() {
                return Ok(None);
            }
            return Ok(Some(ImageArchive {
                kind: ArchiveKind::OciLayout,
                files: Files::Dir(path.to_owned()),
                source,
            }));
        }
        let open = || File::open(path).map_err(ImageError::io(format!("cannot read {source}")));
        let mut head = BufReader::new(open()?);
        let compressed = is_compressed(
            head.fill_buf()
                .map_err(ImageError::io(format!("cannot read {source}")))?,
        );
        if !compressed {
            let Ok(entries) = TarIndex::build(open()?) else {
                return Ok(None);
            };
            let Some(kind) = entries.kind() else {
                return Ok(None);
            };
            return Ok(Some(ImageArchive {
                kind,
                files: Files::Tar(entries),
                source,
            }));
        }
        if scan_kind(decompress(head)?).is_none() {
            return Ok(None);
        }
        ImageArchive::read(store, open()?, &source).map(Some)
    }

    /// The archive read from `reader` (a tar, plain or compressed, as from a pipe), written
    /// out into the store's `tmp/` while this lives; an error when it is not an image archive.
    pub fn read(store: &ImageStore, reader: impl Read, source: &str) -> Result<ImageArchive> {
        let work = store.work_dir("load")?;
        let path = work.path.join("archive.tar");
        let mut out = File::create(&path)
            .map_err(ImageError::io(format!("cannot write {}", path.display())))?;
        io::copy(&mut decompress(BufReader::new(reader))?, &mut out)
            .map_err(ImageError::io(format!("cannot read {source}")))?;
        let file =
            File::open(&path).map_err(ImageError::io(format!("cannot read {}", path.display())))?;
        let not_an_archive = |message: String| ImageError::Archive {
            archive: source.to_owned(),
            message,
        };
        let mut entries =
            TarIndex::build(file).map_err(|e| not_an_archive(format!("not a tar archive: {e}")))?;
        let kind = entries.kind().ok_or_else(|| {
            not_an_archive(format!(
                "neither {OCI_LAYOUT} (an OCI archive) nor {DOCKER_MANIFEST} (a docker save \
                 archive) is at its top; a root filesystem tar is imported with podrun image import"
            ))
        })?;
        entries._spool = Some(work);
        Ok(ImageArchive {
            kind,
            files: Files::Tar(entries),
            source: source.to_owned(),
        })
    }

    pub fn kind(&self) -> ArchiveKind {
        self.kind
    }

    /// Imports the archive's images for this host into `store` (or, with `reference`, the one
    /// it names, or its only image named so), each named as the archive says. Nothing is added
    /// unless all of them are whole.
    pub fn import(
        &self,
        store: &ImageStore,
        reference: Option<&str>,
        progress: &mut dyn FnMut(LoadEvent),
    ) -> Result<Vec<Loaded>> {
        let wanted = reference.map(parse_wanted).transpose()?;
        let candidates = match self.kind {
            ArchiveKind::DockerArchive => self.docker_candidates()?,
            _ => self.oci_candidates()?,
        };
        let chosen = self.select(candidates, reference, wanted.as_ref())?;
        let plans = chosen
            .into_iter()
            .map(|(names, target)| self.plan(names, target))
            .collect::<Result<Vec<Plan>>>()?;
        let mut result = self.assemble(store, &plans, progress);
        // A layer removed by a concurrent `image rm` between the check and the commit: again.
        if matches!(result, Err(ImageError::LayerGone { .. })) {
            result = self.assemble(store, &plans, progress);
        }
        result
    }

    fn bad(&self, message: impl Into<String>) -> ImageError {
        ImageError::Archive {
            archive: self.source.clone(),
            message: message.into(),
        }
    }

    /// The missing layers of every plan unpacked (each once), then each image committed.
    fn assemble(
        &self,
        store: &ImageStore,
        plans: &[Plan],
        progress: &mut dyn FnMut(LoadEvent),
    ) -> Result<Vec<Loaded>> {
        let mut unpacked: BTreeMap<String, NewLayer> = BTreeMap::new();
        for layer in plans.iter().flat_map(|p| &p.layers) {
            let present =
                store.layer(&layer.diff_id).is_some() || unpacked.contains_key(&layer.diff_id);
            if !present {
                let new = self
                    .unpack(store, layer)
                    .map_err(|e| self.bad(format!("layer {}: {e}", layer.shown)))?;
                unpacked.insert(layer.diff_id.clone(), new);
            }
            progress(LoadEvent::Layer {
                digest: layer.shown.clone(),
                present,
            });
        }
        let mut images = Vec::new();
        for plan in plans {
            let origin = Origin {
                names: plan.names.clone(),
                repo_digest: None,
                created: created(&String::from_utf8_lossy(&plan.config)),
            };
            let diff_ids: Vec<String> = plan.layers.iter().map(|l| l.diff_id.clone()).collect();
            let image = commit_image(store, origin, &plan.config, &diff_ids, &mut unpacked)?;
            images.push(Loaded {
                image,
                names: plan.names.clone(),
            });
        }
        Ok(images)
    }

    fn unpack(&self, store: &ImageStore, layer: &PlannedLayer) -> Result<NewLayer> {
        let reader = self
            .files
            .open(&layer.path)?
            .ok_or_else(|| ImageError::Content(format!("{} is not in the archive", layer.path)))?;
        let work = LayerWork::new(store)?;
        let unpacked = match &layer.blob {
            Some(check) => unpack_blob(reader, &work.dir, check)?,
            None => unpack_layer(reader, &work.dir)?,
        };
        work.finish(unpacked, &layer.diff_id)
    }

    /// The images a reference chooses (all without one), with the names to give them.
    fn select(
        &self,
        candidates: Vec<Candidate>,
        reference: Option<&str>,
        wanted: Option<&Reference>,
    ) -> Result<Vec<(Vec<Reference>, Target)>> {
        let (Some(reference), Some(wanted)) = (reference, wanted) else {
            if candidates.is_empty() {
                return Err(self.bad("it holds no image"));
            }
            return Ok(candidates
                .into_iter()
                .map(|c| (c.names, c.target))
                .collect());
        };
        let count = candidates.len();
        let described: Vec<String> = candidates.iter().map(Candidate::describe).collect();
        let mut by_name = Vec::new();
        let mut by_label = Vec::new();
        let mut only = None;
        for c in candidates {
            if c.names.contains(wanted) {
                by_name.push(c);
            } else if c.labels.iter().any(|l| l == reference) {
                by_label.push(c);
            } else if count == 1 {
                only = Some(c);
            }
        }
        match (by_name.len(), by_label.len()) {
            (1, _) => return Ok(vec![(vec![wanted.clone()], by_name.remove(0).target)]),
            (0, 1) => {
                let c = by_label.remove(0);
                return Ok(vec![(c.names, c.target)]);
            }
            (0, 0) => {}
            _ => {
                return Err(self.bad(format!(
                    "{reference:?} names several of its images: {}",
                    described.join(", ")
                )));
            }
        }
        match only {
            Some(c) => Ok(vec![(vec![wanted.clone()], c.target)]),
            None if count == 0 => Err(self.bad("it holds no image")),
            None => Err(self.bad(format!(
                "no image in it is named {reference:?}; it has {}",
                described.join(", ")
            ))),
        }
    }

    /// The images of `index.json` for this host, one per manifest digest.
    fn oci_candidates(&self) -> Result<Vec<Candidate>> {
        let layout = self
            .files
            .read(OCI_LAYOUT)?
            .ok_or_else(|| self.bad(format!("no {OCI_LAYOUT}")))?;
        let layout: serde_json::Value = serde_json::from_slice(&layout)
            .map_err(|e| self.bad(format!("{OCI_LAYOUT} is not valid JSON: {e}")))?;
        if let Some(version) = layout["imageLayoutVersion"].as_str()
            && !version.starts_with("1.")
        {
            return Err(self.bad(format!(
                "{OCI_LAYOUT}: imageLayoutVersion {version:?} is not 1.x"
            )));
        }
        let index = self.files.read(OCI_INDEX)?.ok_or_else(|| {
            self.bad(format!(
                "no {OCI_INDEX} (an OCI image layout has one beside {OCI_LAYOUT})"
            ))
        })?;
        let index: OciImageIndex = serde_json::from_slice(&index)
            .map_err(|e| self.bad(format!("{OCI_INDEX} is not an OCI image index: {e}")))?;
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut other_platforms = Vec::new();
        for (i, entry) in index.manifests.into_iter().enumerate() {
            let field = format!("{OCI_INDEX}: manifests[{i}]");
            if let Some(p) = &entry.platform
                && platform(std::slice::from_ref(&entry)).is_none()
            {
                other_platforms.push(format!("{}/{}", p.os, p.architecture));
                continue;
            }
            let (names, labels) = self.oci_names(&entry, &field)?;
            match candidates.iter_mut().find(|c| match &c.target {
                Target::Oci { entry: e, .. } => e.digest == entry.digest,
                Target::Docker { .. } => false,
            }) {
                Some(c) => {
                    merge(&mut c.names, names);
                    merge(&mut c.labels, labels);
                }
                None => candidates.push(Candidate {
                    names,
                    labels,
                    target: Target::Oci { entry, field },
                }),
            }
        }
        if candidates.is_empty() && !other_platforms.is_empty() {
            return Err(self.bad(format!(
                "{OCI_INDEX} has no image for linux/{} (only {})",
                oci_spec::image::Arch::default(),
                other_platforms.join(", ")
            )));
        }
        Ok(candidates)
    }

    /// The names an index entry's annotations give (a bare tag gives none), and the raw values.
    fn oci_names(
        &self,
        entry: &ImageIndexEntry,
        field: &str,
    ) -> Result<(Vec<Reference>, Vec<String>)> {
        let annotations = entry.annotations.clone().unwrap_or_default();
        let mut names = Vec::new();
        let mut labels = Vec::new();
        for key in [CONTAINERD_NAME, REF_NAME] {
            let Some(value) = annotations.get(key) else {
                continue;
            };
            labels.push(value.clone());
            let full = key == CONTAINERD_NAME || value.contains('/') || value.contains(':');
            if full && names.is_empty() {
                let name = parse_name(value).map_err(|e| {
                    self.bad(format!("{field}.annotations[{key:?}] {value:?}: {e}"))
                })?;
                names.push(name);
            }
        }
        Ok((names, labels))
    }

    /// The images of `manifest.json`.
    fn docker_candidates(&self) -> Result<Vec<Candidate>> {
        let bytes = self
            .files
            .read(DOCKER_MANIFEST)?
            .ok_or_else(|| self.bad(format!("no {DOCKER_MANIFEST}")))?;
        let entries: Vec<DockerManifest> = serde_json::from_slice(&bytes).map_err(|e| {
            self.bad(format!(
                "{DOCKER_MANIFEST} is not a docker save manifest (a list of Config, RepoTags, Layers): {e}"
            ))
        })?;
        let mut candidates = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let field = format!("{DOCKER_MANIFEST}: [{i}]");
            let mut names = Vec::new();
            let tags = entry.repo_tags.clone().unwrap_or_default();
            for (t, tag) in tags.iter().enumerate() {
                let name = parse_name(tag)
                    .map_err(|e| self.bad(format!("{field}.RepoTags[{t}] {tag:?}: {e}")))?;
                merge(&mut names, vec![name]);
            }
            candidates.push(Candidate {
                names,
                labels: tags,
                target: Target::Docker { entry, field },
            });
        }
        Ok(candidates)
    }

    /// What image `target` is made of, every document checked: its config, and its layers
    /// with their blobs and diff IDs.
    fn plan(&self, names: Vec<Reference>, target: Target) -> Result<Plan> {
        match target {
            Target::Oci { entry, field } => {
                let descriptor = Descriptor {
                    media_type: entry.media_type.clone(),
                    digest: entry.digest.clone(),
                    size: entry.size,
                };
                let manifest = self.oci_manifest(&descriptor, &field, 0)?;
                let config = self.blob(&manifest.config)?;
                let ids = diff_ids(&String::from_utf8_lossy(&config))
                    .map_err(|e| self.bad(format!("config {}: {e}", manifest.config.digest)))?;
                check_layer_count(manifest.layers.len(), &ids)
                    .map_err(|e| self.bad(e.to_string()))?;
                let layers = manifest
                    .layers
                    .iter()
                    .zip(ids)
                    .map(|(layer, diff_id)| {
                        check_layer_type(&layer.digest, &layer.media_type)
                            .map_err(|e| self.bad(e.to_string()))?;
                        let path = blob_path(&layer.digest).map_err(|e| self.bad(e))?;
                        if !self.files.exists(&path) {
                            return Err(self.missing(&layer.digest, &path));
                        }
                        Ok(PlannedLayer {
                            diff_id,
                            path,
                            shown: layer.digest.clone(),
                            blob: Some(BlobCheck {
                                digest: layer.digest.clone(),
                                size: u64::try_from(layer.size).ok(),
                            }),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Plan {
                    names,
                    config,
                    layers,
                })
            }
            Target::Docker { entry, field } => self.docker_plan(names, entry, &field),
        }
    }

    fn docker_plan(
        &self,
        names: Vec<Reference>,
        entry: DockerManifest,
        field: &str,
    ) -> Result<Plan> {
        let config_path = clean(&entry.config).ok_or_else(|| {
            self.bad(format!(
                "{field}.Config {:?} is not a path in it",
                entry.config
            ))
        })?;
        let config = self.files.read(&config_path)?.ok_or_else(|| {
            self.bad(format!(
                "{field}.Config {:?} is not in the archive",
                entry.config
            ))
        })?;
        if let Some(named) = named_digest(&config_path) {
            let actual = format!("sha256:{}", hex(&Sha256::digest(&config)));
            if actual != named {
                return Err(self.bad(format!(
                    "config {named}: its bytes have digest {actual}, {field}.Config {:?} says {named}",
                    entry.config
                )));
            }
        }
        let ids = diff_ids(&String::from_utf8_lossy(&config))
            .map_err(|e| self.bad(format!("{field}.Config {:?}: {e}", entry.config)))?;
        check_layer_count(entry.layers.len(), &ids).map_err(|e| self.bad(e.to_string()))?;
        let layers = entry
            .layers
            .iter()
            .zip(ids)
            .enumerate()
            .map(|(i, (layer, diff_id))| {
                let path = clean(layer)
                    .filter(|p| self.files.exists(p))
                    .ok_or_else(|| {
                        self.bad(format!(
                            "{field}.Layers[{i}] {layer:?} is not in the archive"
                        ))
                    })?;
                let blob = named_digest(&path).map(|digest| BlobCheck { digest, size: None });
                let shown = blob
                    .as_ref()
                    .map(|b| b.digest.clone())
                    .unwrap_or_else(|| diff_id.clone());
                Ok(PlannedLayer {
                    diff_id,
                    path,
                    shown,
                    blob,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan {
            names,
            config,
            layers,
        })
    }

    /// The image manifest `descriptor` leads to: itself, or this host's entry of an index.
    fn oci_manifest(
        &self,
        descriptor: &Descriptor,
        field: &str,
        depth: usize,
    ) -> Result<OciImageManifest> {
        let media_type = descriptor.media_type.as_str();
        if OCI_MANIFEST_TYPES.contains(&media_type) {
            let bytes = self.blob(&descriptor.oci())?;
            return serde_json::from_slice(&bytes).map_err(|e| {
                self.bad(format!(
                    "manifest {} is not an image manifest: {e}",
                    descriptor.digest
                ))
            });
        }
        if !OCI_INDEX_TYPES.contains(&media_type) {
            return Err(self.bad(format!(
                "{field}.mediaType {media_type:?} is not an image manifest or index ({})",
                OCI_MANIFEST_TYPES
                    .iter()
                    .chain(&OCI_INDEX_TYPES)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if depth >= MAX_NESTING {
            return Err(self.bad(format!(
                "index {} nests more than {MAX_NESTING} indexes",
                descriptor.digest
            )));
        }
        let bytes = self.blob(&descriptor.oci())?;
        let index: OciImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
            self.bad(format!(
                "index {} is not an image index: {e}",
                descriptor.digest
            ))
        })?;
        let digest = platform(&index.manifests).ok_or_else(|| {
            self.bad(format!(
                "index {} has no image for linux/{}",
                descriptor.digest,
                oci_spec::image::Arch::default()
            ))
        })?;
        let (i, entry) = index
            .manifests
            .iter()
            .enumerate()
            .find(|(_, e)| e.digest == digest)
            .expect("platform picks an entry");
        let inner = Descriptor {
            media_type: entry.media_type.clone(),
            digest: entry.digest.clone(),
            size: entry.size,
        };
        let field = format!("index {}: manifests[{i}]", descriptor.digest);
        self.oci_manifest(&inner, &field, depth + 1)
    }

    /// Blob `descriptor`, read whole and checked against its digest and size.
    fn blob(&self, descriptor: &OciDescriptor) -> Result<Vec<u8>> {
        let path = blob_path(&descriptor.digest).map_err(|e| self.bad(e))?;
        let bytes = self
            .files
            .read(&path)?
            .ok_or_else(|| self.missing(&descriptor.digest, &path))?;
        let actual = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        if actual != descriptor.digest {
            return Err(self.bad(format!(
                "blob {}: its bytes have digest {actual}",
                descriptor.digest
            )));
        }
        if descriptor.size >= 0 && bytes.len() as u64 != descriptor.size as u64 {
            return Err(self.bad(format!(
                "blob {}: it has {} bytes, its descriptor says {}",
                descriptor.digest,
                bytes.len(),
                descriptor.size
            )));
        }
        Ok(bytes)
    }

    fn missing(&self, digest: &str, path: &str) -> ImageError {
        self.bad(format!("blob {digest} is missing ({path})"))
    }
}

/// An image the archive offers: its names, the raw annotations or tags it is known by, and
/// where its manifest is.
struct Candidate {
    names: Vec<Reference>,
    labels: Vec<String>,
    target: Target,
}

impl Candidate {
    fn describe(&self) -> String {
        match (self.names.first(), self.labels.first(), &self.target) {
            (Some(name), _, _) => name.to_string(),
            (None, Some(label), _) => label.clone(),
            (None, None, Target::Oci { entry, .. }) => entry.digest.clone(),
            (None, None, Target::Docker { entry, .. }) => entry.config.clone(),
        }
    }
}

enum Target {
    /// An entry of `index.json` (`field` names it in errors).
    Oci {
        entry: ImageIndexEntry,
        field: String,
    },
    /// An entry of `manifest.json`.
    Docker {
        entry: DockerManifest,
        field: String,
    },
}

/// One image of a `docker save` manifest.json.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// An image checked and ready to unpack.
struct Plan {
    names: Vec<Reference>,
    config: Vec<u8>,
    layers: Vec<PlannedLayer>,
}

struct PlannedLayer {
    diff_id: String,
    /// Its file in the archive.
    path: String,
    /// How messages name it: its blob digest, or a docker archive's diff ID.
    shown: String,
    /// What its bytes must be, when the archive says.
    blob: Option<BlobCheck>,
}

/// A descriptor of a manifest or index.
struct Descriptor {
    media_type: String,
    digest: String,
    size: i64,
}

impl Descriptor {
    fn oci(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            ..Default::default()
        }
    }
}

fn merge<T: PartialEq>(into: &mut Vec<T>, more: Vec<T>) {
    for m in more {
        if !into.contains(&m) {
            into.push(m);
        }
    }
}

/// A name for an image: normalised, without a digest.
fn parse_name(text: &str) -> Result<Reference> {
    let r = Reference::parse(text)?;
    if r.digest.is_some() {
        return Err(ImageError::InvalidReference {
            reference: text.to_owned(),
            reason: "an image name cannot have a digest; use NAME[:TAG]".into(),
        });
    }
    Ok(r)
}

fn parse_wanted(text: &str) -> Result<Reference> {
    parse_name(text)
}

/// `blobs/sha256/<hex>` for `sha256:<hex>`; an error for another algorithm or a malformed one.
fn blob_path(digest: &str) -> std::result::Result<String, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("digest {digest:?}: only sha256 digests are supported"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("digest {digest:?} is not sha256:<64 hex digits>"));
    }
    Ok(format!("blobs/sha256/{hex}"))
}

/// The digest a docker archive's file name gives its content: `<hex>.json` (a config),
/// `blobs/sha256/<hex>`; None for `<id>/layer.tar`.
fn named_digest(path: &str) -> Option<String> {
    let name = path.strip_prefix("blobs/sha256/").unwrap_or(path);
    let hex = name.strip_suffix(".json").unwrap_or(name);
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| format!("sha256:{hex}"))
}

/// `path` inside an archive, normalised (`./a//b` is `a/b`); None when it is absolute or
/// climbs out.
fn clean(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    if path.starts_with('/') {
        return None;
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => parts.push(c.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// The stream decompressed when it is gzip or zstd.
fn decompress<'a>(mut reader: BufReader<impl Read + 'a>) -> Result<Box<dyn Read + 'a>> {
    let head = reader
        .fill_buf()
        .map_err(ImageError::io("cannot read archive"))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(ImageError::io("cannot start zstd decompression"))?,
        )
    } else {
        Box::new(reader)
    })
}

/// The kind of archive a tar stream is, by the files at its top; None when it is neither or
/// not a tar.
fn scan_kind(reader: impl Read) -> Option<ArchiveKind> {
    let mut archive = tar::Archive::new(reader);
    let mut docker = false;
    for entry in archive.entries().ok()? {
        let Ok(entry) = entry else { break };
        match clean(&String::from_utf8_lossy(&entry.path_bytes())).as_deref() {
            Some(OCI_LAYOUT) => return Some(ArchiveKind::OciArchive),
            Some(DOCKER_MANIFEST) => docker = true,
            _ => {}
        }
    }
    docker.then_some(ArchiveKind::DockerArchive)
}

/// Where the files of a layout or archive are.
enum Files {
    Dir(PathBuf),
    Tar(TarIndex),
}

impl Files {
    /// File `path` of the layout or archive, None when it has none.
    fn open(&self, path: &str) -> Result<Option<Box<dyn Read + '_>>> {
        match self {
            Files::Dir(root) => {
                let Some(rel) = clean(path) else {
                    return Ok(None);
                };
                let file = root.join(rel);
                match File::open(&file) {
                    Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(Some(Box::new(f))),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(ImageError::Io {
                        context: format!("cannot read {}", file.display()),
                        source: e,
                    }),
                }
            }
            Files::Tar(index) => Ok(index.entry(path).map(|&(offset, size)| {
                Box::new(Section {
                    file: &index.file,
                    pos: offset,
                    end: offset + size,
                }) as Box<dyn Read>
            })),
        }
    }

    fn exists(&self, path: &str) -> bool {
        match self {
            Files::Dir(root) => clean(path).is_some_and(|rel| root.join(rel).is_file()),
            Files::Tar(index) => index.entry(path).is_some(),
        }
    }

    /// File `path` read whole (a JSON document: at most [`MAX_JSON`] bytes).
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(reader) = self.open(path)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        reader
            .take(MAX_JSON + 1)
            .read_to_end(&mut bytes)
            .map_err(ImageError::io(format!("cannot read {path}")))?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(ImageError::Content(format!(
                "{path} is larger than {MAX_JSON} bytes"
            )));
        }
        Ok(Some(bytes))
    }
}

/// The regular files of a plain tar: path -> (offset of the content, size), symlinks and hard
/// links resolved to what they lead to.
struct TarIndex {
    file: File,
    files: BTreeMap<String, (u64, u64)>,
    links: BTreeMap<String, String>,
    /// The spooled copy this reads, removed with it.
    _spool: Option<TempDir>,
}

impl TarIndex {
    fn build(file: File) -> io::Result<TarIndex> {
        let mut files = BTreeMap::new();
        let mut links = BTreeMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            for entry in archive.entries_with_seek()? {
                let entry = entry?;
                let Some(path) = clean(&String::from_utf8_lossy(&entry.path_bytes())) else {
                    continue;
                };
                let kind = entry.header().entry_type();
                if kind.is_file() || kind == tar::EntryType::Continuous {
                    links.remove(&path);
                    files.insert(path, (entry.raw_file_position(), entry.size()));
                } else if kind.is_symlink() || kind.is_hard_link() {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    // A symlink is relative to its directory, a hard link to the archive's top.
                    let joined = match path.rsplit_once('/') {
                        Some((dir, _)) if kind.is_symlink() => format!("{dir}/{target}"),
                        _ => target,
                    };
                    if let Some(target) = clean(&joined) {
                        files.remove(&path);
                        links.insert(path, target);
                    }
                }
            }
        }
        Ok(TarIndex {
            file,
            files,
            links,
            _spool: None,
        })
    }

    fn entry(&self, path: &str) -> Option<&(u64, u64)> {
        let mut path = clean(path)?;
        for _ in 0..16 {
            if let Some(found) = self.files.get(&path) {
                return Some(found);
            }
            path = self.links.get(&path)?.clone();
        }
        None
    }

    fn kind(&self) -> Option<ArchiveKind> {
        if self.entry(OCI_LAYOUT).is_some() {
            Some(ArchiveKind::OciArchive)
        } else if self.entry(DOCKER_MANIFEST).is_some() {
            Some(ArchiveKind::DockerArchive)
        } else {
            None
        }
    }
}

/// A file of a tar, read in place.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.pos).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a file",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
