//! Unpacking a plain or gzip tar stream into a new root filesystem, as root: modes, ownership,
//! times, xattrs, symlinks, hard links, device nodes and fifos are kept. An entry whose path or
//! hard-link target has a `..` component is refused, and so is one that would be written through
//! a symlink to outside the root (the `tar` crate checks every parent against the root).
//!
//! The digest is the sha256 of the uncompressed stream: the OCI `diff_id` of the layer.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nix::sys::stat::SFlag;
use sha2::{Digest, Sha256};
use tar::{Archive, Entry, EntryType};

use super::copy::{HashingReader, Tree, hex, make_node};
use super::error::{ImageError, Result};

/// Unpacks `reader` (plain or gzip tar, detected by its magic bytes) into `dst`, which must exist
/// and be empty.
pub fn unpack(reader: impl Read, dst: &Path) -> Result<Tree> {
    let mut buffered = BufReader::new(reader);
    let head = buffered
        .fill_buf()
        .map_err(ImageError::io("cannot read archive"))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut hashing = HashingReader {
        inner: stream,
        hasher: Sha256::new(),
    };
    let size = unpack_entries(&mut hashing, dst)?;
    // The end-of-archive blocks and any padding belong to the digest too.
    io::copy(&mut hashing, &mut io::sink()).map_err(ImageError::io("cannot read archive"))?;
    Ok(Tree {
        digest: format!("sha256:{}", hex(&hashing.hasher.finalize())),
        size,
    })
}

fn unpack_entries(reader: &mut impl Read, dst: &Path) -> Result<u64> {
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
            safe_relative(&target, "hard link target")?;
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
    Ok(size)
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
        Err(e) => Err(ImageError::Io {
            context: format!("cannot unpack {name:?}"),
            source: e,
        }),
    }
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
