//! Store tests on fixture directories and tarballs in temporary directories.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use super::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn overrides(changes: &[&str]) -> ImageConfigOverrides {
    ImageConfigOverrides::from_changes(changes).unwrap()
}

/// A small root filesystem: a directory tree with modes, a set-uid file, a symlink, a hard
/// link, a fifo, and (as root) a device node and a file owned by 1000:1000.
fn fixture(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::create_dir_all(dir.join("tmp")).unwrap();
    fs::create_dir_all(dir.join("dev")).unwrap();
    fs::write(dir.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(dir.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(dir.join("bin/tool"), dir.join("bin/tool2")).unwrap();
    symlink("tool", dir.join("bin/sh")).unwrap();
    fs::write(dir.join("etc/os-release"), b"ID=fixture\n").unwrap();
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    nix::unistd::mkfifo(
        &dir.join("tmp/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    if is_root() {
        nix::sys::stat::mknod(
            &dir.join("dev/null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        fs::write(dir.join("etc/owned"), b"x").unwrap();
        std::os::unix::fs::chown(dir.join("etc/owned"), Some(1000), Some(1000)).unwrap();
    }
}

fn check_fixture(rootfs: &Path) {
    let tool = fs::metadata(rootfs.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    let tool2 = fs::metadata(rootfs.join("bin/tool2")).unwrap();
    assert_eq!(tool.ino(), tool2.ino(), "hard link kept");
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert!(
        fs::symlink_metadata(rootfs.join("tmp/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    if is_root() {
        let null = fs::symlink_metadata(rootfs.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        let owned = fs::metadata(rootfs.join("etc/owned")).unwrap();
        assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    }
}

fn tmp_is_empty(root: &Path) -> bool {
    fs::read_dir(root.join("tmp"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn import_dir_keeps_the_tree_and_config() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fixture(&src);
    let store = ImageStore::open(t.path().join("images"));
    let image = store
        .import_dir(
            &src,
            Some("podrun.local/fixture:1"),
            &overrides(&[r#"CMD ["/bin/sh"]"#, "ENV A=1", "WORKDIR /etc"]),
        )
        .unwrap();
    assert_eq!(image.id.len(), 64);
    assert_eq!(image.names, ["podrun.local/fixture:1"]);
    let diff_id = image.config.rootfs().diff_ids()[0].clone();
    assert_eq!(
        image.layers,
        [t.path()
            .join("images/layers")
            .join(diff_id.strip_prefix("sha256:").unwrap())]
    );
    check_fixture(&image.layers[0]);
    let config = image.config.config().as_ref().unwrap();
    assert_eq!(config.cmd().as_deref(), Some(&["/bin/sh".to_string()][..]));
    assert_eq!(config.working_dir().as_deref(), Some("/etc"));
    assert!(image.size > 0);
    // The ID is the sha256 of the stored config.
    let bytes = fs::read(t.path().join("images").join(&image.id).join("config.json")).unwrap();
    assert_eq!(
        image.id,
        super::copy::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    assert!(tmp_is_empty(store.root()));
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, image.id);
}

fn tar_of(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A tar with what `tar::Builder::append_dir_all` does not write: a hard link, a device node, a
/// fifo and a leading `/`.
fn special_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if let Some(link) = link {
            h.set_link_name(link).unwrap();
        }
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("/etc/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "/etc/hosts",
        tar::EntryType::Regular,
        0o644,
        b"127.0.0.1 localhost\n",
        None,
    );
    add(
        "etc/hosts.link",
        tar::EntryType::Link,
        0o644,
        b"",
        Some("etc/hosts"),
    );
    add("dev/null", tar::EntryType::Char, 0o666, b"", None);
    add("run/fifo", tar::EntryType::Fifo, 0o600, b"", None);
    b.into_inner().unwrap()
}

#[test]
fn import_tar_plain_and_gzip() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fixture(&src);
    let tar = tar_of(&src);
    fs::write(t.path().join("plain.tar"), &tar).unwrap();
    fs::write(t.path().join("packed.tar.gz"), gzip(&tar)).unwrap();
    let store = ImageStore::open(t.path().join("images"));
    let plain = store
        .import_tar(&t.path().join("plain.tar"), Some("plain"), &overrides(&[]))
        .unwrap();
    let packed = store
        .import_tar(
            &t.path().join("packed.tar.gz"),
            Some("packed"),
            &overrides(&[]),
        )
        .unwrap();
    for image in [&plain, &packed] {
        let tool = fs::metadata(image.layers[0].join("bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(
            fs::read_link(image.layers[0].join("bin/sh")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(
            fs::metadata(image.layers[0].join("tmp")).unwrap().mode() & 0o7777,
            0o1777
        );
    }
    // diff_id is the digest of the uncompressed stream, whatever the compression.
    let diff = |i: &Image| i.config.rootfs().diff_ids().clone();
    assert_eq!(diff(&plain), diff(&packed));
    assert_eq!(
        diff(&plain)[0],
        format!(
            "sha256:{}",
            super::copy::hex(&<sha2::Sha256 as sha2::Digest>::digest(&tar))
        )
    );

    let special = store
        .import_reader(
            &special_tar()[..],
            "special",
            Some("special"),
            &overrides(&[]),
        )
        .unwrap();
    let r = &special.layers[0];
    assert_eq!(
        fs::read(r.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    assert_eq!(
        fs::metadata(r.join("etc/hosts")).unwrap().ino(),
        fs::metadata(r.join("etc/hosts.link")).unwrap().ino()
    );
    assert!(
        fs::symlink_metadata(r.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    if is_root() {
        let null = fs::symlink_metadata(r.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        assert_eq!(null.mode() & 0o777, 0o666);
    }
    assert_eq!(fs::metadata(r).unwrap().mode() & 0o777, 0o755);
}

/// A tar whose entry names are written raw (the `tar` crate refuses `..` in `set_path`).
fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"evil"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn entries_escaping_the_root_are_refused_and_nothing_is_created() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let store = ImageStore::open(t.path().join("images"));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            raw_tar(&[
                ("ok", tar::EntryType::Regular, ""),
                ("../evil", tar::EntryType::Regular, ""),
            ]),
        ),
        (
            "nested dotdot",
            raw_tar(&[("a/../../evil", tar::EntryType::Regular, "")]),
        ),
        (
            "hard link",
            raw_tar(&[("h", tar::EntryType::Link, "../../etc/passwd")]),
        ),
        (
            "absolute hard link",
            raw_tar(&[("h", tar::EntryType::Link, "/etc/passwd")]),
        ),
        (
            "through a symlink",
            raw_tar(&[
                ("link", tar::EntryType::Symlink, outside.to_str().unwrap()),
                ("link/evil", tar::EntryType::Regular, ""),
            ]),
        ),
    ];
    for (what, tar) in cases {
        let err = store
            .import_reader(&tar[..], what, Some("evil"), &overrides(&[]))
            .unwrap_err();
        assert!(
            matches!(err, ImageError::UnsafeEntry { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("unsafe"), "{what}: {err}");
    }
    assert!(!t.path().join("evil").exists());
    assert!(!outside.join("evil").exists());
    assert!(store.list().unwrap().is_empty());
    assert!(tmp_is_empty(store.root()));
}

#[test]
fn reimport_moves_the_tag_and_the_old_image_stays_untagged() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("v"), b"1").unwrap();
    let store = ImageStore::open(t.path().join("images"));
    let first = store
        .import_dir(&src, Some("podrun.local/app:1"), &overrides(&[]))
        .unwrap();
    fs::write(src.join("v"), b"2").unwrap();
    let second = store
        .import_dir(&src, Some("podrun.local/app:1"), &overrides(&[]))
        .unwrap();
    assert_ne!(first.id, second.id);
    assert_ne!(
        first.config.rootfs().diff_ids(),
        second.config.rootfs().diff_ids()
    );
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, second.id, "newest first");
    assert_eq!(listed[0].names, ["podrun.local/app:1"]);
    assert!(listed[1].names.is_empty());
    assert_eq!(store.resolve("podrun.local/app:1").unwrap().id, second.id);
    assert_eq!(store.resolve(&first.id[..12]).unwrap().id, first.id);
    assert_eq!(fs::read(first.layers[0].join("v")).unwrap(), b"1");
}

#[test]
fn resolve_by_full_name_short_name_and_id_prefix() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let store = ImageStore::open(t.path().join("images"));
    let debug = store
        .import_dir(&src, Some("podrun.local/debug:1"), &overrides(&[]))
        .unwrap();
    let python = store
        .import_dir(&src, Some("python:3.11"), &overrides(&[]))
        .unwrap();
    assert_eq!(python.names, ["docker.io/library/python:3.11"]);
    let id = |r: &str| store.resolve(r).map(|i| i.id);
    assert_eq!(id("podrun.local/debug:1").unwrap(), debug.id);
    assert_eq!(id("debug:1").unwrap(), debug.id);
    assert_eq!(id("python:3.11").unwrap(), python.id);
    assert_eq!(id("docker.io/library/python:3.11").unwrap(), python.id);
    assert_eq!(id("library/python:3.11").unwrap(), python.id);
    assert_eq!(id(&debug.id).unwrap(), debug.id);
    assert_eq!(id(&debug.id[..12]).unwrap(), debug.id);
    assert_eq!(id(&format!("sha256:{}", &debug.id[..8])).unwrap(), debug.id);
    assert_eq!(
        id(&format!("podrun.local/debug@sha256:{}", debug.id)).unwrap(),
        debug.id
    );

    let missing = store.resolve("foo").unwrap_err().to_string();
    assert_eq!(
        missing,
        format!(
            "image \"foo:latest\" not found in the podrun image store ({}); import it with: \
             podrun image import DIR foo:latest",
            store.root().display()
        )
    );
    assert!(matches!(
        store.resolve("debug:2"),
        Err(ImageError::NotFound { .. })
    ));
    assert!(matches!(
        store.resolve("docker.io/debug:1"),
        Err(ImageError::NotFound { .. })
    ));
    assert!(matches!(
        store.resolve("Bad Name"),
        Err(ImageError::InvalidReference { .. })
    ));
    // Two images whose short names clash.
    store
        .import_dir(&src, Some("other.example/debug:1"), &overrides(&[]))
        .unwrap();
    assert!(matches!(
        store.resolve("debug:1"),
        Err(ImageError::Ambiguous { .. })
    ));
    assert_eq!(id("podrun.local/debug:1").unwrap(), debug.id);
}

#[test]
fn ambiguous_id_prefix() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let store = ImageStore::open(t.path().join("images"));
    let ids: Vec<String> = (0..20)
        .map(|i| {
            store
                .import_dir(&src, Some(&format!("x{i}")), &overrides(&[]))
                .unwrap()
                .id
        })
        .collect();
    // Among 20 IDs two share a first hex digit.
    let shared = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|p| ids.iter().filter(|id| id.starts_with(p.as_str())).count() > 1)
        .unwrap();
    assert!(matches!(
        store.resolve(&shared),
        Err(ImageError::Ambiguous { .. })
    ));
}

#[test]
fn concurrent_imports_keep_every_name() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fixture(&src);
    let root = t.path().join("images");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (src, root) = (src.clone(), root.clone());
            std::thread::spawn(move || {
                let store = ImageStore::open(root);
                for j in 0..3 {
                    store
                        .import_dir(
                            &src,
                            Some(&format!("podrun.local/c{i}:{j}")),
                            &overrides(&[]),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = ImageStore::open(&root);
    let images = store.list().unwrap();
    assert_eq!(images.len(), 24);
    for i in 0..8 {
        for j in 0..3 {
            store.resolve(&format!("podrun.local/c{i}:{j}")).unwrap();
        }
    }
    assert!(tmp_is_empty(&root));
}

#[test]
fn remove_untags_then_deletes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let store = ImageStore::open(t.path().join("images"));
    let image = store
        .import_dir(&src, Some("a:1"), &overrides(&[]))
        .unwrap();
    store.tag("a:1", "b:1").unwrap();
    assert_eq!(
        store.resolve("b:1").unwrap().names,
        ["docker.io/library/a:1", "docker.io/library/b:1"]
    );
    assert!(matches!(
        store.remove(&image.id[..12], false),
        Err(ImageError::MultipleNames { .. })
    ));
    let removed = store.remove("a:1", false).unwrap();
    assert_eq!(removed.untagged, ["docker.io/library/a:1"]);
    assert_eq!(removed.deleted, None);
    assert!(image.layers[0].exists());
    let removed = store.remove("b:1", false).unwrap();
    assert_eq!(removed.deleted.as_deref(), Some(image.id.as_str()));
    assert!(!image.layers[0].exists());
    assert!(store.list().unwrap().is_empty());
    assert!(tmp_is_empty(store.root()));
    assert!(matches!(
        store.remove("b:1", false),
        Err(ImageError::NotFound { .. })
    ));

    let image = store
        .import_dir(&src, Some("c:1"), &overrides(&[]))
        .unwrap();
    store.tag("c:1", "d:1").unwrap();
    let removed = store.remove(&image.id, true).unwrap();
    assert_eq!(removed.untagged.len(), 2);
    assert!(removed.deleted.is_some());
}

#[test]
fn bad_input_creates_nothing() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("images");
    let store = ImageStore::open(&root);
    let err = store
        .import_dir(&t.path().join("missing"), Some("x"), &overrides(&[]))
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    let err = store
        .import_dir(t.path(), Some("Not Valid"), &overrides(&[]))
        .unwrap_err();
    assert!(err.to_string().contains("\"Not Valid\""), "{err}");
    let err = store
        .import_dir(
            t.path(),
            Some(&format!("x@sha256:{}", "a".repeat(64))),
            &overrides(&[]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("digest"), "{err}");
    let file = t.path().join("file");
    fs::write(
        &file,
        b"not a tar at all, just some text that is long enough",
    )
    .unwrap();
    assert!(store.import_tar(&file, Some("x"), &overrides(&[])).is_err());
    assert!(store.import_dir(&file, Some("x"), &overrides(&[])).is_err());
    assert!(store.list().unwrap().is_empty());
    assert!(tmp_is_empty(&root));
}

#[test]
fn image_problems_name_every_container() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let store = ImageStore::open(t.path().join("images"));
    store
        .import_dir(&src, Some("podrun.local/debug:1"), &overrides(&[]))
        .unwrap();
    let plan = |images: &[&str]| {
        let containers: Vec<_> = images
            .iter()
            .enumerate()
            .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image, "command": ["sh"]}))
            .collect();
        let manifest = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": containers}
        });
        match crate::spec::load_str(&manifest.to_string(), "test.yaml")
            .unwrap()
            .remove(0)
        {
            crate::spec::Object::Pod(plan) => plan,
            other => panic!("{other:?}"),
        }
    };
    assert!(image_problems(&store, &plan(&["podrun.local/debug:1", "debug:1"])).is_empty());
    let resolved = resolve_images(&store, &plan(&["debug:1"])).unwrap();
    assert_eq!(resolved[0].names, ["podrun.local/debug:1"]);
    let problems: Vec<String> = image_problems(&store, &plan(&["bar", "debug:1", "foo"]))
        .iter()
        .map(ToString::to_string)
        .collect();
    let missing = |i: usize, name: &str| {
        format!(
            "spec.containers[{i}].image: image \"{name}:latest\" not found in the podrun image \
             store ({}); import it with: podrun image import DIR {name}:latest",
            store.root().display()
        )
    };
    assert_eq!(problems, [missing(0, "bar"), missing(2, "foo")]);
}

#[test]
fn stale_leftovers_in_tmp_are_swept() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let root = t.path().join("images");
    let store = ImageStore::open(&root);
    let old = root.join("tmp/import-crashed");
    let fresh = root.join("tmp/import-running");
    fs::create_dir_all(old.join("rootfs")).unwrap();
    fs::create_dir_all(&fresh).unwrap();
    let day_ago = nix::sys::time::TimeSpec::new(
        (chrono::Utc::now() - chrono::Duration::hours(25)).timestamp(),
        0,
    );
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &old,
        &day_ago,
        &day_ago,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    store.import_dir(&src, Some("x"), &overrides(&[])).unwrap();
    assert!(!old.exists());
    assert!(fresh.exists(), "a running import is left alone");
}

#[test]
fn a_dead_processs_work_directory_is_swept_and_a_live_ones_kept() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let root = t.path().join("images");
    let store = ImageStore::open(&root);
    // A pid above the kernel's maximum is never alive.
    let dead = root.join("tmp/layer-4194305-0123");
    let live = root.join(format!("tmp/layer-{}-0123", std::process::id()));
    fs::create_dir_all(dead.join("fs")).unwrap();
    fs::create_dir_all(&live).unwrap();
    store.import_dir(&src, Some("x"), &overrides(&[])).unwrap();
    assert!(!dead.exists());
    assert!(live.exists());
}

#[test]
fn images_share_layers_and_removal_frees_only_unused_ones() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "same").unwrap();
    let store = ImageStore::open(t.path().join("images"));
    let a = store
        .import_dir(&src, Some("a"), &overrides(&["ENV A=1"]))
        .unwrap();
    let b = store
        .import_dir(&src, Some("b"), &overrides(&["ENV B=1"]))
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.layers, b.layers, "one layer, shared");
    let layers = t.path().join("images/layers");
    assert_eq!(fs::read_dir(&layers).unwrap().count(), 1);
    store.remove("a", false).unwrap();
    assert!(b.layers[0].join("f").exists(), "b still has it");
    store.remove("b", false).unwrap();
    assert_eq!(fs::read_dir(&layers).unwrap().count(), 0);
    assert!(!t.path().join("images").join(&b.id).exists());
}

#[test]
fn prune_removes_what_it_is_told_and_the_layers_only_they_had() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let store = ImageStore::open(t.path().join("images"));
    let old = store
        .import_dir(&src, Some("x"), &overrides(&["ENV V=1"]))
        .unwrap();
    fs::write(src.join("new"), "2").unwrap();
    let new = store
        .import_dir(&src, Some("x"), &overrides(&["ENV V=2"]))
        .unwrap();
    let dangling = store
        .list()
        .unwrap()
        .into_iter()
        .find(|i| i.id == old.id)
        .unwrap();
    assert!(dangling.names.is_empty());
    let pruned = store.prune(&|i| i.names.is_empty()).unwrap();
    assert_eq!(pruned, std::slice::from_ref(&old.id));
    assert!(!old.layers[0].exists());
    assert!(new.layers[0].exists());
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn an_image_stored_whole_by_an_older_podrun_still_resolves() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("images");
    let id = "ab".repeat(32);
    fs::create_dir_all(root.join(&id).join("rootfs/etc")).unwrap();
    fs::write(
        root.join(&id).join("rootfs/etc/passwd"),
        "root:x:0:0::/:/bin/sh\n",
    )
    .unwrap();
    let config = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#;
    fs::write(root.join(&id).join("config.json"), config).unwrap();
    let index = format!(
        r#"{{"names":{{"podrun.local/old:1":"{id}"}},"images":{{"{id}":{{"created":"2026-01-01T00:00:00Z","size":1}}}}}}"#
    );
    fs::write(root.join("images.json"), index).unwrap();
    let store = ImageStore::open(&root);
    let image = store.resolve("podrun.local/old:1").unwrap();
    assert_eq!(image.layers, [root.join(&id).join("rootfs")]);
    assert!(image.find(Path::new("/etc/passwd")).is_some());
    store.remove("podrun.local/old:1", false).unwrap();
    assert!(!root.join(&id).exists());
}
