//! Copying a directory tree into the store as root would: modes (set-id bits too), ownership,
//! modification times, symlinks (not followed), hard links (kept as links), device nodes and
//! fifos. Sockets are skipped, as `docker import` skips them; extended attributes are not copied.
//!
//! While copying, a digest of the tree is computed over a canonical walk (sorted names; type,
//! mode, owner, path, and the content digest, link target or device number of each entry). It
//! stands in the image config's `rootfs.diff_ids` so that the image ID depends on the content.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, mknod, utimensat};
use nix::sys::time::TimeSpec;
use sha2::{Digest, Sha256};

use super::error::{ImageError, Result};

/// What was written: the digest (`sha256:<hex>`) and the bytes of file content (hard links
/// counted once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub digest: String,
    pub size: u64,
}

/// Copies `src` (a directory) to `dst` (which must not exist). A directory whose device and
/// inode are in `skip` (the image store itself) is left out.
pub fn copy_tree(src: &Path, dst: &Path, skip: &[(u64, u64)]) -> Result<Tree> {
    let md = fs::symlink_metadata(src).map_err(ImageError::io(format!(
        "cannot read import source {}",
        src.display()
    )))?;
    if !md.is_dir() {
        return Err(ImageError::BadSource {
            path: src.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let mut walk = Walk {
        hasher: Sha256::new(),
        size: 0,
        links: HashMap::new(),
        skip,
    };
    walk.dir(src, dst, Path::new(""), &md)?;
    Ok(Tree {
        digest: format!("sha256:{}", hex(&walk.hasher.finalize())),
        size: walk.size,
    })
}

struct Walk<'a> {
    hasher: Sha256,
    size: u64,
    /// (dev, ino) of multiply-linked files already copied -> their copy and relative path.
    links: HashMap<(u64, u64), (PathBuf, PathBuf)>,
    skip: &'a [(u64, u64)],
}

impl Walk<'_> {
    fn record(&mut self, kind: char, md: &fs::Metadata, rel: &Path, detail: &str) {
        let line = format!(
            "{kind} {:o} {}:{} {}\0{detail}\n",
            md.mode() & 0o7777,
            md.uid(),
            md.gid(),
            rel.display()
        );
        self.hasher.update(line.as_bytes());
    }

    fn dir(&mut self, src: &Path, dst: &Path, rel: &Path, md: &fs::Metadata) -> Result<()> {
        fs::create_dir(dst).map_err(ImageError::io(format!("cannot create {}", dst.display())))?;
        self.record('d', md, rel, "");
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(ImageError::io(format!("cannot read {}", src.display())))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(ImageError::io(format!("cannot read {}", src.display())))?;
        names.sort();
        for name in names {
            self.entry(&src.join(&name), &dst.join(&name), &rel.join(&name))?;
        }
        // Last, so that a read-only mode and the modification time stick.
        set_owner_mode_times(dst, md)
    }

    fn entry(&mut self, src: &Path, dst: &Path, rel: &Path) -> Result<()> {
        let md = fs::symlink_metadata(src)
            .map_err(ImageError::io(format!("cannot read {}", src.display())))?;
        let ft = md.file_type();
        if ft.is_dir() {
            if self.skip.contains(&(md.dev(), md.ino())) {
                return Ok(());
            }
            self.dir(src, dst, rel, &md)
        } else if ft.is_file() {
            self.file(src, dst, rel, &md)
        } else if ft.is_symlink() {
            let target = fs::read_link(src).map_err(ImageError::io(format!(
                "cannot read link {}",
                src.display()
            )))?;
            std::os::unix::fs::symlink(&target, dst)
                .map_err(ImageError::io(format!("cannot create {}", dst.display())))?;
            std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
                .map_err(ImageError::io(format!("cannot chown {}", dst.display())))?;
            set_times(dst, &md)?;
            self.record('l', &md, rel, &target.display().to_string());
            Ok(())
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let (kind, letter) = if ft.is_char_device() {
                (SFlag::S_IFCHR, 'c')
            } else if ft.is_block_device() {
                (SFlag::S_IFBLK, 'b')
            } else {
                (SFlag::S_IFIFO, 'p')
            };
            make_node(dst, kind, md.mode(), md.rdev())?;
            set_owner_mode_times(dst, &md)?;
            self.record(letter, &md, rel, &md.rdev().to_string());
            Ok(())
        } else {
            // A socket: meaningless in an image.
            Ok(())
        }
    }

    fn file(&mut self, src: &Path, dst: &Path, rel: &Path, md: &fs::Metadata) -> Result<()> {
        let key = (md.dev(), md.ino());
        if md.nlink() > 1
            && let Some((first, first_rel)) = self.links.get(&key)
        {
            fs::hard_link(first, dst)
                .map_err(ImageError::io(format!("cannot link {}", dst.display())))?;
            let detail = format!("={}", first_rel.display());
            self.record('h', md, rel, &detail);
            return Ok(());
        }
        let mut input =
            File::open(src).map_err(ImageError::io(format!("cannot read {}", src.display())))?;
        let output = File::create(dst)
            .map_err(ImageError::io(format!("cannot create {}", dst.display())))?;
        let mut writer = HashingWriter {
            inner: output,
            hasher: Sha256::new(),
        };
        let copied = io::copy(&mut input, &mut writer)
            .map_err(ImageError::io(format!("cannot copy {}", src.display())))?;
        self.size += copied;
        let HashingWriter { inner, hasher } = writer;
        drop(inner);
        let content = hex(&hasher.finalize());
        set_owner_mode_times(dst, md)?;
        if md.nlink() > 1 {
            self.links
                .insert(key, (dst.to_path_buf(), rel.to_path_buf()));
        }
        self.record('f', md, rel, &format!("{copied} {content}"));
        Ok(())
    }
}

/// Creates a device node or fifo with `mode`'s permission bits.
pub fn make_node(dst: &Path, kind: SFlag, mode: u32, rdev: u64) -> Result<()> {
    mknod(dst, kind, Mode::from_bits_truncate(mode & 0o7777), rdev).map_err(|e| ImageError::Io {
        context: format!("cannot create device node {}", dst.display()),
        source: io::Error::from(e),
    })
}

/// Owner first (chown clears set-id bits), then mode, then times; never follows a symlink.
fn set_owner_mode_times(dst: &Path, md: &fs::Metadata) -> Result<()> {
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
        .map_err(ImageError::io(format!("cannot chown {}", dst.display())))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(ImageError::io(format!("cannot chmod {}", dst.display())))?;
    set_times(dst, md)
}

fn set_times(dst: &Path, md: &fs::Metadata) -> Result<()> {
    let atime = TimeSpec::new(md.atime(), md.atime_nsec());
    let mtime = TimeSpec::new(md.mtime(), md.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        dst,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| ImageError::Io {
        context: format!("cannot set times of {}", dst.display()),
        source: io::Error::from(e),
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes what passes through.
pub struct HashingWriter<W> {
    pub inner: W,
    pub hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what passes through.
pub struct HashingReader<R> {
    pub inner: R,
    pub hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
