//! Unpacking a plain or gzip tar stream into a new root filesystem, as root: modes, ownership,
//! times, xattrs, symlinks, hard links, device nodes and fifos are kept. An entry whose path or
//! hard-link target has a `..` component is refused, and so is one that would be written through
//! a symlink to outside the root (the `tar` crate checks every parent against the root).
//!
//! The digest is the sha256 of the uncompressed stream: the OCI `diff_id` of the layer.
//!
//! An image layer ([`unpack_layer`]) is unpacked into a directory of its own, to be an overlay
//! lower directory: its OCI whiteouts become overlayfs's (the OCI image spec's layer
//! "Whiteouts" section; overlayfs's `Documentation/filesystems/overlayfs.rst`): `.wh.NAME`
//! becomes a character device 0/0 named NAME, and `.wh..wh..opq` in a directory makes the
//! directory opaque (`trusted.overlay.opaque=y`), hiding what lower layers have in it.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nix::sys::stat::SFlag;
use sha2::{Digest, Sha256};
use tar::{Archive, Entry, EntryType};

use super::copy::{HashingReader, Tree, hex, make_node};
use super::error::{ImageError, Result};

/// What to do with OCI whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whiteouts {
    /// A root filesystem: they are files like any other (`podrun image import`).
    Keep,
    /// A layer: turned into overlayfs's form.
    Overlay,
}

/// A hard link of a layer to a file of a layer below it (`path` -> `target`, both relative to
/// the root): made by [`link_from_lowers`] once the layers below are unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkBelow {
    pub path: PathBuf,
    pub target: PathBuf,
}

/// The OCI name of an opaque-directory marker.
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The OCI prefix of a whiteout.
const WHITEOUT_PREFIX: &str = ".wh.";
/// zstd's frame magic (a layer of media type `...tar+zstd`).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Unpacks `reader` (plain, gzip or zstd tar, detected by its magic bytes) into `dst`, which must exist
/// and be empty.
pub fn unpack(reader: impl Read, dst: &Path) -> Result<Tree> {
    unpack_with(reader, dst, Whiteouts::Keep).map(|(tree, _)| tree)
}

/// Unpacks image layer `reader` (plain, gzip or zstd tar) into `dst` (existing, empty) as an
/// overlay lower directory: its whiteouts in overlayfs's form. The tree's digest is the diff
/// ID (the sha256 of the uncompressed tar). Hard links to files of the layers below are left
/// for [`link_from_lowers`].
pub fn unpack_layer(reader: impl Read, dst: &Path) -> Result<(Tree, Vec<LinkBelow>)> {
    unpack_with(reader, dst, Whiteouts::Overlay)
}

/// Makes the hard links of layer `dir` to files of `lowers` (bottom first, each complete), as
/// a layer applied onto its parent has them: linked to the lower file (same filesystem: the
/// layers are read-only, so they may share it), or copied when that is not possible.
pub fn link_from_lowers(dir: &Path, lowers: &[PathBuf], links: &[LinkBelow]) -> Result<()> {
    for link in links {
        let shown = link.path.display();
        let source = super::layers::find_in_layers(lowers, &link.target).ok_or_else(|| {
            ImageError::UnsafeEntry {
                entry: shown.to_string(),
                reason: format!(
                    "hard link target {} is in neither this layer nor one below it",
                    link.target.display()
                ),
            }
        })?;
        let dst = dir.join(&link.path);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(ImageError::io(format!(
                "cannot create {}",
                parent.display()
            )))?;
        }
        remove_any(&dst, &shown.to_string())?;
        if fs::hard_link(&source, &dst).is_err() {
            fs::copy(&source, &dst).map_err(ImageError::io(format!(
                "cannot copy {} to {}",
                source.display(),
                dst.display()
            )))?;
            let md = fs::symlink_metadata(&source)
                .map_err(ImageError::io(format!("cannot stat {}", source.display())))?;
            std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()))
                .map_err(ImageError::io(format!("cannot chown {}", dst.display())))?;
        }
    }
    Ok(())
}

fn unpack_with(
    reader: impl Read,
    dst: &Path,
    whiteouts: Whiteouts,
) -> Result<(Tree, Vec<LinkBelow>)> {
    let mut buffered = BufReader::new(reader);
    let head = buffered
        .fill_buf()
        .map_err(ImageError::io("cannot read archive"))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(ImageError::io("cannot start zstd decompression"))?,
        )
    } else {
        Box::new(buffered)
    };
    let mut hashing = HashingReader {
        inner: stream,
        hasher: Sha256::new(),
    };
    let (size, below) = unpack_entries(&mut hashing, dst, whiteouts)?;
    // The end-of-archive blocks and any padding belong to the digest too.
    io::copy(&mut hashing, &mut io::sink()).map_err(ImageError::io("cannot read archive"))?;
    let tree = Tree {
        digest: format!("sha256:{}", hex(&hashing.hasher.finalize())),
        size,
    };
    Ok((tree, below))
}

fn unpack_entries(
    reader: &mut impl Read,
    dst: &Path,
    whiteouts: Whiteouts,
) -> Result<(u64, Vec<LinkBelow>)> {
    let root = dst
        .canonicalize()
        .map_err(ImageError::io(format!("cannot open {}", dst.display())))?;
    let mut archive = Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let mut size = 0;
    let mut directories = Vec::new();
    let mut below = Vec::new();
    let entries = archive
        .entries()
        .map_err(ImageError::io("cannot read archive"))?;
    for entry in entries {
        let mut entry = entry.map_err(ImageError::io("cannot read archive"))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_relative(&name, "path")?;
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if target.starts_with('/') {
                return Err(ImageError::UnsafeEntry {
                    entry: name,
                    reason: format!("hard link target {target:?} is absolute"),
                });
            }
            let target = safe_relative(&target, "hard link target")?;
            if whiteouts == Whiteouts::Overlay && root.join(&target).symlink_metadata().is_err() {
                below.push(LinkBelow { path: rel, target });
                continue;
            }
        }
        if whiteouts == Whiteouts::Overlay && whiteout(&root, &rel, &name)? {
            continue;
        }
        match kind {
            EntryType::Directory => directories.push(entry),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                special(&mut entry, &root, &rel, &name)?;
            }
            _ => {
                if kind.is_file() {
                    size += entry.header().size().unwrap_or(0);
                }
                unpack_in(&mut entry, &root, &name)?;
            }
        }
    }
    // Deepest first, so that a directory's own mode and time are set after its children exist.
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut dir in directories {
        let name = String::from_utf8_lossy(&dir.path_bytes()).into_owned();
        unpack_in(&mut dir, &root, &name)?;
    }
    Ok((size, below))
}

fn unpack_in<R: Read>(entry: &mut Entry<'_, R>, root: &Path, name: &str) -> Result<()> {
    match entry.unpack_in(root) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ImageError::UnsafeEntry {
            entry: name.to_owned(),
            reason: "it would be written outside the root".into(),
        }),
        Err(e) if e.to_string().contains("outside of") => Err(ImageError::UnsafeEntry {
            entry: name.to_owned(),
            reason: format!("it would be written outside the root ({e})"),
        }),
        Err(e) => {
            // The tar crate says where; its cause says why.
            let why = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            Err(ImageError::Io {
                context: format!("cannot unpack {name:?}{why}"),
                source: e,
            })
        }
    }
}

/// What an OCI whiteout entry says.
enum WhiteoutEntry<'a> {
    /// `.wh..wh..opq`: its directory hides what lower layers have in it.
    Opaque,
    /// `.wh.NAME`: NAME is gone.
    Hides(&'a str),
}

/// Entry `rel` as a whiteout (None: an ordinary entry); a whiteout naming no file is refused.
fn whiteout_entry<'a>(rel: &'a Path, name: &str) -> Result<Option<WhiteoutEntry<'a>>> {
    let Some(file) = rel.file_name().and_then(|f| f.to_str()) else {
        return Ok(None);
    };
    if file == OPAQUE_MARKER {
        return Ok(Some(WhiteoutEntry::Opaque));
    }
    let Some(hidden) = file.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(None);
    };
    if hidden.is_empty() || hidden == "." || hidden == ".." {
        return Err(ImageError::UnsafeEntry {
            entry: name.to_owned(),
            reason: "a whiteout that names no file".into(),
        });
    }
    Ok(Some(WhiteoutEntry::Hides(hidden)))
}

/// The directory a whiteout entry `rel` is in, under `root` (refused outside it); None when it
/// does not exist and `create` is false.
fn whiteout_dir(root: &Path, rel: &Path, name: &str, create: bool) -> Result<Option<PathBuf>> {
    let parent = root.join(rel.parent().unwrap_or(Path::new("")));
    if create {
        fs::create_dir_all(&parent).map_err(whiteout_error(name))?;
    }
    let Ok(dir) = parent.canonicalize() else {
        return Ok(None);
    };
    if !dir.starts_with(root) {
        return Err(ImageError::UnsafeEntry {
            entry: name.to_owned(),
            reason: "it would be written outside the root".into(),
        });
    }
    Ok(Some(dir))
}

fn whiteout_error(name: &str) -> impl Fn(io::Error) -> ImageError + '_ {
    move |e| ImageError::Io {
        context: format!("cannot apply whiteout {name:?}"),
        source: e,
    }
}

/// Remove `path`, a file or a whole tree; a missing one is fine.
fn remove_any(path: &Path, name: &str) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path).map_err(whiteout_error(name)),
        Ok(_) => fs::remove_file(path).map_err(whiteout_error(name)),
        Err(_) => Ok(()),
    }
}

/// If entry `rel` is an OCI whiteout, put its overlayfs form in place: a 0/0 character device
/// for `.wh.NAME`, the opaque xattr on the directory of `.wh..wh..opq`. False for other entries.
fn whiteout(root: &Path, rel: &Path, name: &str) -> Result<bool> {
    let Some(entry) = whiteout_entry(rel, name)? else {
        return Ok(false);
    };
    let dir = whiteout_dir(root, rel, name, true)?.expect("created");
    match entry {
        WhiteoutEntry::Opaque => {
            xattr::set(&dir, "trusted.overlay.opaque", b"y").map_err(whiteout_error(name))?
        }
        WhiteoutEntry::Hides(hidden) => {
            let dst = dir.join(hidden);
            remove_any(&dst, name)?;
            make_node(&dst, SFlag::S_IFCHR, 0, nix::sys::stat::makedev(0, 0))?;
        }
    }
    Ok(true)
}

/// The entry's path below the root: leading `/` and `.` dropped, `..` refused.
fn safe_relative(name: &str, what: &str) -> Result<PathBuf> {
    let mut rel = PathBuf::new();
    for part in Path::new(name).components() {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::ParentDir => {
                return Err(ImageError::UnsafeEntry {
                    entry: name.to_owned(),
                    reason: format!("{what} has a \"..\" component"),
                });
            }
            _ => {}
        }
    }
    Ok(rel)
}

/// A device node or fifo (the `tar` crate would write an empty regular file).
fn special<R: Read>(entry: &mut Entry<'_, R>, root: &Path, rel: &Path, name: &str) -> Result<()> {
    let header = entry.header();
    let bad = |e: io::Error| ImageError::Io {
        context: format!("cannot unpack {name:?}"),
        source: e,
    };
    let kind = match header.entry_type() {
        EntryType::Char => SFlag::S_IFCHR,
        EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    let (major, minor) = if kind == SFlag::S_IFIFO {
        (0, 0)
    } else {
        (
            header.device_major().map_err(bad)?.unwrap_or(0),
            header.device_minor().map_err(bad)?.unwrap_or(0),
        )
    };
    let mode = header.mode().map_err(bad)?;
    let (uid, gid) = (
        header.uid().map_err(bad)? as u32,
        header.gid().map_err(bad)? as u32,
    );
    let mtime = header.mtime().unwrap_or(0) as i64;
    let dst = root.join(rel);
    let parent = dst.parent().unwrap_or(root);
    fs::create_dir_all(parent).map_err(bad)?;
    let canon = parent.canonicalize().map_err(bad)?;
    if !canon.starts_with(root) {
        return Err(ImageError::UnsafeEntry {
            entry: name.to_owned(),
            reason: "it would be written outside the root".into(),
        });
    }
    let dst = canon.join(dst.file_name().unwrap_or_default());
    if fs::symlink_metadata(&dst).is_ok() {
        fs::remove_file(&dst).map_err(bad)?;
    }
    make_node(
        &dst,
        kind,
        mode,
        nix::sys::stat::makedev(major.into(), minor.into()),
    )?;
    std::os::unix::fs::lchown(&dst, Some(uid), Some(gid)).map_err(bad)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode & 0o7777)).map_err(bad)?;
    let t = nix::sys::time::TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &dst,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| bad(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// A tar of `entries`: (path, Some(content)) files, (path, None) directories. Names are
    /// written as given (the builder would refuse a `..`).
    fn tar_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            let name = &mut h.as_gnu_mut().unwrap().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            let data = content.unwrap_or("");
            h.set_entry_type(if content.is_some() {
                EntryType::Regular
            } else {
                EntryType::Directory
            });
            h.set_size(data.len() as u64);
            h.set_mode(if content.is_some() { 0o644 } else { 0o755 });
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append(&h, data.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Two layers as an overlay sees them: the upper one's whiteout hides a lower file, its
    /// opaque directory hides the lower directory's content. Checked through a real overlay
    /// mount, in a mount namespace of its own (`unshare -m`).
    #[test]
    fn whiteouts_take_overlayfs_form_and_hide_lower_layers() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (mknod, trusted xattrs, mount)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in [&lower, &upper] {
            fs::create_dir(d).unwrap();
        }
        let base = tar_of(&[
            ("etc/", None),
            ("etc/gone", Some("old")),
            ("etc/kept", Some("kept")),
            ("cache/", None),
            ("cache/stale", Some("stale")),
        ]);
        unpack_layer(&base[..], &lower).unwrap();
        let change = tar_of(&[
            ("etc/.wh.gone", Some("")),
            ("cache/", None),
            ("cache/.wh..wh..opq", Some("")),
            ("cache/fresh", Some("fresh")),
        ]);
        let (tree, _) = unpack_layer(&change[..], &upper).unwrap();
        assert!(tree.digest.starts_with("sha256:"));
        let gone = fs::symlink_metadata(upper.join("etc/gone")).unwrap();
        assert!(gone.file_type().is_char_device());
        assert_eq!(std::os::unix::fs::MetadataExt::rdev(&gone), 0);
        assert!(fs::symlink_metadata(upper.join("etc/.wh.gone")).is_err());
        assert_eq!(
            xattr::get(upper.join("cache"), "trusted.overlay.opaque").unwrap(),
            Some(b"y".to_vec())
        );
        assert!(fs::symlink_metadata(upper.join("cache/.wh..wh..opq")).is_err());
        // A root filesystem import keeps them as plain files.
        let plain = t.path().join("plain");
        fs::create_dir(&plain).unwrap();
        unpack(&change[..], &plain).unwrap();
        assert!(plain.join("etc/.wh.gone").is_file());

        let merged = t.path().join("merged");
        fs::create_dir(&merged).unwrap();
        let script = format!(
            "mount -t overlay overlay -o ro,lowerdir={}:{} {} && cd {} && find . | sort",
            upper.display(),
            lower.display(),
            merged.display(),
            merged.display()
        );
        let out = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{listing}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            listing.lines().collect::<Vec<_>>(),
            [".", "./cache", "./cache/fresh", "./etc", "./etc/kept"]
        );
    }

    #[test]
    fn a_whiteout_cannot_reach_outside_the_layer() {
        let t = tempfile::tempdir().unwrap();
        let evil = tar_of(&[("../.wh.x", Some(""))]);
        assert!(unpack_layer(&evil[..], t.path()).is_err());
        let empty = tar_of(&[("etc/.wh.", Some(""))]);
        assert!(unpack_layer(&empty[..], t.path()).is_err());
    }

    #[test]
    fn a_zstd_layer_unpacks_and_its_digest_is_of_the_plain_tar() {
        let t = tempfile::tempdir().unwrap();
        let plain = tar_of(&[("etc/", None), ("etc/z", Some("zstd"))]);
        let compressed = zstd::encode_all(&plain[..], 3).unwrap();
        let (tree, _) = unpack_layer(&compressed[..], t.path()).unwrap();
        assert_eq!(fs::read_to_string(t.path().join("etc/z")).unwrap(), "zstd");
        assert_eq!(
            tree.digest,
            format!("sha256:{}", hex(&Sha256::digest(&plain)))
        );
    }

    #[test]
    fn a_hard_link_to_a_lower_layer_is_made_from_it() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in [&lower, &upper] {
            fs::create_dir(d).unwrap();
        }
        unpack_layer(
            &tar_of(&[("bin/", None), ("bin/tool", Some("x"))])[..],
            &lower,
        )
        .unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Link);
        h.set_size(0);
        h.set_mode(0o644);
        b.append_link(&mut h, "usr/bin/alias", "bin/tool").unwrap();
        let (_, links) = unpack_layer(&b.into_inner().unwrap()[..], &upper).unwrap();
        assert_eq!(
            links,
            [LinkBelow {
                path: "usr/bin/alias".into(),
                target: "bin/tool".into()
            }]
        );
        link_from_lowers(&upper, std::slice::from_ref(&lower), &links).unwrap();
        assert_eq!(
            fs::read_to_string(upper.join("usr/bin/alias")).unwrap(),
            "x"
        );
        let missing = [LinkBelow {
            path: "a".into(),
            target: "nowhere".into(),
        }];
        let e = link_from_lowers(&upper, &[lower], &missing).unwrap_err();
        assert!(e.to_string().contains("nowhere"), "{e}");
    }
}
