//! Archive import tests on OCI layouts, OCI archives and docker save archives built here in
//! temporary directories, imported into a store of their own.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::*;

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A plain layer tar of `files` (path, content), owned by this process's user so that it
/// unpacks without root.
fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(content.len() as u64);
        tar.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn config(arch: &str, plain_layers: &[&[u8]]) -> Vec<u8> {
    let ids: Vec<String> = plain_layers
        .iter()
        .map(|l| format!("sha256:{}", sha(l)))
        .collect();
    serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux", "created": "2026-01-02T03:04:05Z",
        "config": {"Cmd": ["sh"], "Env": [format!("ARCH={arch}")]},
        "rootfs": {"type": "layers", "diff_ids": ids},
    }))
    .unwrap()
}

/// An OCI layout being written at `dir`.
struct Layout<'a> {
    dir: &'a Path,
    manifests: Vec<Value>,
}

impl<'a> Layout<'a> {
    fn new(dir: &'a Path) -> Layout<'a> {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join(OCI_LAYOUT), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
        Layout {
            dir,
            manifests: Vec::new(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> Value {
        let hex = sha(bytes);
        fs::write(self.dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        json!({"digest": format!("sha256:{hex}"), "size": bytes.len()})
    }

    /// A manifest of `plain` layers (gzip-compressed), its descriptor.
    fn image(&self, arch: &str, plain: &[&[u8]]) -> Value {
        let mut config = self.blob(&config(arch, plain));
        config["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
        let layers: Vec<Value> = plain
            .iter()
            .map(|l| {
                let mut d = self.blob(&gzip(l));
                d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
                d
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": layers,
        });
        let mut d = self.blob(&serde_json::to_vec(&manifest).unwrap());
        d["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        d
    }

    /// An index of `manifests`, its descriptor.
    fn index(&self, manifests: Vec<Value>) -> Value {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let mut d = self.blob(&serde_json::to_vec(&index).unwrap());
        d["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
        d
    }

    /// `descriptor` in index.json, named `name` (no annotation when None).
    fn add(&mut self, mut descriptor: Value, name: Option<&str>) -> &mut Self {
        descriptor.as_object_mut().unwrap().remove("platform");
        if let Some(name) = name {
            descriptor["annotations"] = json!({REF_NAME: name});
        }
        self.manifests.push(descriptor);
        self.write()
    }

    fn write(&mut self) -> &mut Self {
        let index = json!({"schemaVersion": 2, "manifests": self.manifests});
        fs::write(
            self.dir.join(OCI_INDEX),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        self
    }
}

/// A tar of directory `dir`'s contents.
fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all(".", dir).unwrap();
    tar.into_inner().unwrap()
}

/// A tar of `files` (path, bytes) and `symlinks` (path, target).
fn tar_files(files: &[(&str, &[u8])], symlinks: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        tar.append_data(&mut h, path, *bytes).unwrap();
    }
    for (path, target) in symlinks {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, path, target).unwrap();
    }
    tar.into_inner().unwrap()
}

struct Fixture {
    t: tempfile::TempDir,
    store: ImageStore,
}

impl Fixture {
    fn new() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path().join("images"));
        Fixture { t, store }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.t.path().join(rel)
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = self.path(rel);
        fs::write(&p, bytes).unwrap();
        p
    }

    fn import(&self, path: &Path, reference: Option<&str>) -> Result<Vec<Image>> {
        let archive = ImageArchive::open(&self.store, path)?.expect("an archive");
        Ok(only_images(archive.import(
            &self.store,
            reference,
            &mut |_| {},
        )?))
    }

    /// Layers and image directories in the store.
    fn stored(&self) -> (usize, usize) {
        let count = |p: std::path::PathBuf| fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
        let images = fs::read_dir(self.store.root())
            .map(|d| d.flatten().filter(|e| e.file_name().len() == 64).count())
            .unwrap_or(0);
        let tmp = count(self.store.root().join("tmp"));
        assert_eq!(tmp, 0, "work directories left in tmp/");
        (count(self.store.root().join("layers")), images)
    }
}

fn only_images(loaded: Vec<Loaded>) -> Vec<Image> {
    loaded.into_iter().map(|l| l.image).collect()
}

fn file_in(image: &Image, rel: &str) -> String {
    fs::read_to_string(image.find(Path::new(rel)).expect(rel)).unwrap()
}

#[test]
fn an_oci_archive_imports_its_named_image_and_a_second_import_unpacks_nothing() {
    let f = Fixture::new();
    let base = layer(&[("etc/base", "base")]);
    let top = layer(&[("etc/top", "top")]);
    let dir = f.path("layout");
    let mut layout = Layout::new(&dir);
    let image = layout.image("amd64", &[&base, &top]);
    layout.add(image, Some("registry.example:5000/team/app:v1"));
    let tar = f.write("app.tar", &tar_dir(&dir));

    let archive = ImageArchive::open(&f.store, &tar).unwrap().unwrap();
    assert_eq!(archive.kind(), ArchiveKind::OciArchive);
    let mut events = Vec::new();
    let images = only_images(
        archive
            .import(&f.store, None, &mut |e| events.push(e))
            .unwrap(),
    );
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].names, ["registry.example:5000/team/app:v1"]);
    assert_eq!(file_in(&images[0], "etc/top"), "top");
    assert_eq!(file_in(&images[0], "etc/base"), "base");
    assert_eq!(images[0].created.to_rfc3339(), "2026-01-02T03:04:05+00:00");
    assert!(
        events
            .iter()
            .all(|e| matches!(e, LoadEvent::Layer { present: false, .. }))
    );
    assert_eq!(f.stored(), (2, 1));

    // The layout directory itself, again: the same image, nothing unpacked.
    let archive = ImageArchive::open(&f.store, &dir).unwrap().unwrap();
    assert_eq!(archive.kind(), ArchiveKind::OciLayout);
    let mut events = Vec::new();
    let again = only_images(
        archive
            .import(&f.store, None, &mut |e| events.push(e))
            .unwrap(),
    );
    assert_eq!(again[0].id, images[0].id);
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, LoadEvent::Layer { present: true, .. }))
    );
    assert_eq!(f.stored(), (2, 1));
}

#[test]
fn an_index_gives_the_hosts_image_and_a_bare_tag_needs_a_name() {
    let f = Fixture::new();
    let host = oci_spec::image::Arch::default().to_string();
    let dir = f.path("layout");
    let mut layout = Layout::new(&dir);
    let mine = layout.image(&host, &[&layer(&[("arch", "mine")])]);
    let other = layout.image("s390x", &[&layer(&[("arch", "s390x")])]);
    let index = layout.index(vec![other, mine]);
    layout.add(index, Some("v1"));

    let images = f.import(&dir, None).unwrap();
    assert!(images[0].names.is_empty(), "a bare tag names nothing");
    assert_eq!(file_in(&images[0], "arch"), "mine");
    let named = f.import(&dir, Some("podrun.local/multi:v1")).unwrap();
    assert_eq!(named[0].id, images[0].id);
    assert_eq!(named[0].names, ["podrun.local/multi:v1"]);
    assert_eq!(f.stored(), (1, 1), "only the host's layer");

    // An index with no image for this host says so.
    let dir = f.path("foreign");
    let mut layout = Layout::new(&dir);
    let other = layout.image("s390x", &[&layer(&[("arch", "s390x")])]);
    let index = layout.index(vec![other]);
    layout.add(index, None);
    let e = f.import(&dir, None).unwrap_err().to_string();
    assert!(e.contains(&format!("has no image for linux/{host}")), "{e}");
}

#[test]
fn a_reference_chooses_among_several_images() {
    let f = Fixture::new();
    let host = oci_spec::image::Arch::default().to_string();
    let dir = f.path("layout");
    let mut layout = Layout::new(&dir);
    let one = layout.image(&host, &[&layer(&[("who", "one")])]);
    let two = layout.image(&host, &[&layer(&[("who", "two")])]);
    layout.add(one.clone(), Some("example.com/one:1"));
    layout.add(one, Some("example.com/one:latest"));
    layout.add(two, Some("busybox:2"));

    let chosen = f.import(&dir, Some("busybox:2")).unwrap();
    assert_eq!(chosen.len(), 1);
    assert_eq!(chosen[0].names, ["docker.io/library/busybox:2"]);
    assert_eq!(file_in(&chosen[0], "who"), "two");
    let e = f.import(&dir, Some("nope:1")).unwrap_err().to_string();
    assert!(
        e.contains("no image in it is named \"nope:1\"") && e.contains("example.com/one:1"),
        "{e}"
    );
    let all = f.import(&dir, None).unwrap();
    assert_eq!(all.len(), 2, "one image per manifest");
    assert_eq!(
        all[0].names,
        ["example.com/one:1", "example.com/one:latest"]
    );
}

#[test]
fn a_changed_blob_is_refused_by_digest_and_leaves_nothing() {
    let f = Fixture::new();
    let dir = f.path("layout");
    let mut layout = Layout::new(&dir);
    let good = layer(&[("good", "good")]);
    let bad = layer(&[("bad", "original")]);
    let image = layout.image("amd64", &[&good, &bad]);
    layout.add(image, Some("example.com/tampered:1"));
    let digest = format!("sha256:{}", sha(&gzip(&bad)));
    let blob = dir.join("blobs/sha256").join(&digest[7..]);
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let e = f.import(&dir, None).unwrap_err().to_string();
    assert!(e.contains(&format!("layer {digest}")), "{e}");
    assert_eq!(f.stored(), (0, 0), "not even the good layer");
    assert!(f.store.list().unwrap().is_empty());
}

#[test]
fn a_bad_layout_is_refused_naming_the_field_and_value() {
    let f = Fixture::new();
    let dir = f.path("layout");
    let mut layout = Layout::new(&dir);
    let e = f.import(&dir, None).unwrap_err().to_string();
    assert!(e.contains("no index.json"), "{e}");

    let mut image = layout.image("amd64", &[&layer(&[("f", "f")])]);
    image["mediaType"] = "application/vnd.example.thing".into();
    layout.add(image.clone(), Some("example.com/x:1"));
    let e = f.import(&dir, None).unwrap_err().to_string();
    assert!(
        e.contains("index.json: manifests[0].mediaType \"application/vnd.example.thing\""),
        "{e}"
    );

    layout.manifests.clear();
    image["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    let digest = image["digest"].as_str().unwrap().to_owned();
    layout.add(image.clone(), Some("Bad Name:1"));
    let e = f.import(&dir, None).unwrap_err().to_string();
    assert!(
        e.contains(
            "manifests[0].annotations[\"org.opencontainers.image.ref.name\"] \"Bad Name:1\""
        ),
        "{e}"
    );

    layout.manifests.clear();
    layout.add(image, Some("example.com/x:1"));
    fs::remove_file(dir.join("blobs/sha256").join(&digest[7..])).unwrap();
    let e = f.import(&dir, None).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "blob {digest} is missing (blobs/sha256/{})",
            &digest[7..]
        )),
        "{e}"
    );
    assert_eq!(f.stored(), (0, 0));
}

/// A docker save archive: each image's config as `<id>.json`, layers as `<n>/layer.tar`, a
/// layer two images share written once and linked, as docker does.
fn docker_archive(images: &[(&[&str], &[&[u8]])]) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let mut manifest = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (tags, layers) in images {
        let config = config("amd64", layers);
        let config_name = format!("{}.json", sha(&config));
        files.push((config_name.clone(), config));
        let mut paths = Vec::new();
        for l in *layers {
            let id = sha(l);
            let path = format!("{id}/layer.tar");
            if seen.contains(&id) {
                let link = format!("{}/layer.tar", sha(&[l, &b"again"[..]].concat()));
                links.push((link.clone(), format!("../{id}/layer.tar")));
                paths.push(link);
            } else {
                seen.push(id);
                files.push((path.clone(), l.to_vec()));
                paths.push(path);
            }
        }
        manifest.push(json!({"Config": config_name, "RepoTags": tags, "Layers": paths}));
    }
    files.push((
        DOCKER_MANIFEST.into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), &b[..])).collect();
    let links: Vec<(&str, &str)> = links
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    tar_files(&files, &links)
}

#[test]
fn a_docker_save_archive_imports_with_its_repo_tags_compressed_or_not() {
    let f = Fixture::new();
    let base = layer(&[("base", "shared")]);
    let one = layer(&[("who", "one")]);
    let two = layer(&[("who", "two")]);
    let tar = docker_archive(&[
        (&["busybox:1", "example.com/one:1"], &[&base, &one]),
        (&["two:latest"], &[&base, &two]),
    ]);
    let plain = f.write("save.tar", &tar);
    let archive = ImageArchive::open(&f.store, &plain).unwrap().unwrap();
    assert_eq!(archive.kind(), ArchiveKind::DockerArchive);
    let images = only_images(archive.import(&f.store, None, &mut |_| {}).unwrap());
    assert_eq!(
        images[0].names,
        ["docker.io/library/busybox:1", "example.com/one:1"]
    );
    assert_eq!(images[1].names, ["docker.io/library/two:latest"]);
    assert_eq!(file_in(&images[1], "who"), "two");
    assert_eq!(file_in(&images[1], "base"), "shared");
    assert_eq!(
        images[0].digest(),
        format!("sha256:{}", sha(&config("amd64", &[&base, &one]))),
        "the image ID is docker's"
    );
    assert_eq!(f.stored(), (3, 2));

    // gzip'd, from a pipe, one image chosen.
    let g = Fixture::new();
    let archive = ImageArchive::read(&g.store, &gzip(&tar)[..], "-").unwrap();
    let chosen = archive.import(&g.store, Some("two"), &mut |_| {}).unwrap();
    assert_eq!(chosen.len(), 1);
    assert_eq!(chosen[0].image.names, ["docker.io/library/two:latest"]);
    assert_eq!(chosen[0].names, [Reference::parse("two:latest").unwrap()]);
    drop(archive);
    assert_eq!(g.stored(), (2, 1), "the spooled copy goes with the archive");
}

#[test]
fn a_docker_layer_that_is_not_its_diff_id_is_refused() {
    let f = Fixture::new();
    let good = layer(&[("f", "good")]);
    let mut tar = docker_archive(&[(&["bad:1"], &[&good])]);
    // Change the layer's content in place (same length).
    let at = tar.windows(4).position(|w| w == b"good").unwrap();
    tar[at..at + 4].copy_from_slice(b"evil");
    let path = f.write("bad.tar", &tar);
    let e = f.import(&path, None).unwrap_err().to_string();
    assert!(
        e.contains(&format!("the image config says sha256:{}", sha(&good))),
        "{e}"
    );
    assert_eq!(f.stored(), (0, 0));
}

#[test]
fn neither_a_root_filesystem_nor_a_plain_directory_is_an_archive() {
    let f = Fixture::new();
    let rootfs = f.write("rootfs.tar", &layer(&[("etc/os-release", "ID=x")]));
    assert!(ImageArchive::open(&f.store, &rootfs).unwrap().is_none());
    let gz = f.write("rootfs.tar.gz", &gzip(&layer(&[("bin/sh", "")])));
    assert!(ImageArchive::open(&f.store, &gz).unwrap().is_none());
    let dir = f.path("dir");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("manifest.json"), "[]").unwrap();
    assert!(ImageArchive::open(&f.store, &dir).unwrap().is_none());
    let e = ImageArchive::read(&f.store, &layer(&[("a", "b")])[..], "-")
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("image archive -: neither oci-layout"), "{e}");
    assert_eq!(f.stored(), (0, 0));
}

#[test]
fn archive_paths_stay_inside() {
    assert_eq!(clean("./a//b/").as_deref(), Some("a/b"));
    assert_eq!(clean("a/../b").as_deref(), Some("b"));
    assert_eq!(clean("../b"), None);
    assert_eq!(clean("/etc/passwd"), None);
    assert!(blob_path("sha256:../../etc").is_err());
    assert!(blob_path("sha512:00").is_err());
    assert_eq!(
        named_digest(&format!("{}.json", "a".repeat(64))),
        Some(format!("sha256:{}", "a".repeat(64)))
    );
    assert_eq!(named_digest("abc/layer.tar"), None);
}
