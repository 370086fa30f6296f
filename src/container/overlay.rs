//! A container's root filesystem as an overlay: the image's layers as lower directories (read
//! only, shared by every container of the image), the container's own upper and work
//! directories.
//!
//! The layers travel from the supervisor to the init in the bundle's config.json annotation
//! `io.podrun.rootfs.lowerdir`, in overlayfs's own `lowerdir=` syntax (topmost first, `:`
//! between layers, `\` escaping `:`, `,` and `\`), so one layer is just its path.
//!
//! Mounting: on Linux 6.8+ each layer is its own `lowerdir+` option of the new mount API, with
//! no limit on how many. Older kernels take one `lowerdir=` string; the new mount API caps a
//! string option at 256 bytes, so there the overlay is mounted with mount(2), whose options
//! may fill a page (4 KiB), and when the paths would not fit even there they are given relative
//! to the layers' common directory (the init changes into it for the mount, as containerd's
//! overlay snapshotter does).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

/// The longest option string mount(2) takes (a page, with its terminating NUL).
const MOUNT_DATA_MAX: usize = 4095;

/// The annotation value for `lowers` (bottom first).
pub fn encode_lowers(lowers: &[PathBuf]) -> String {
    lowers
        .iter()
        .rev()
        .map(|p| escape(&p.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(":")
}

/// The layers (bottom first) of an annotation value.
pub fn decode_lowers(value: &str) -> Vec<PathBuf> {
    let mut layers = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ':' => layers.push(PathBuf::from(std::mem::take(&mut current))),
            c => current.push(c),
        }
    }
    layers.push(PathBuf::from(current));
    layers.reverse();
    layers
}

/// `\`, `:` and `,` escaped as overlayfs's option parser wants them.
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Mount the overlay of `lowers` (bottom first), `upper` and `work` at `target`.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> std::io::Result<()> {
    let lowers_top_first: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut options: Vec<(&str, &str)> = lowers_top_first
        .iter()
        .map(|l| ("lowerdir+", l.as_str()))
        .collect();
    let (upper_s, work_s) = (upper.to_string_lossy(), work.to_string_lossy());
    options.push(("upperdir", &upper_s));
    options.push(("workdir", &work_s));
    match crate::sys::fs_mount("overlay", &options, 0) {
        Ok(fd) => return crate::sys::move_mount(fd.as_fd(), target),
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(e),
        Err(_) => {} // no `lowerdir+` before Linux 6.8
    }
    let data = |lowers: &str| {
        format!(
            "lowerdir={lowers},upperdir={},workdir={}",
            escape(&upper_s),
            escape(&work_s)
        )
    };
    let absolute = data(&encode_lowers(lowers));
    if absolute.len() <= MOUNT_DATA_MAX {
        return legacy_mount(target, &absolute);
    }
    let Some(parent) = common_parent(lowers) else {
        return Err(too_long(lowers.len()));
    };
    let relative: Vec<PathBuf> = lowers
        .iter()
        .map(|l| PathBuf::from(l.file_name().unwrap_or_default()))
        .collect();
    let short = data(&encode_lowers(&relative));
    if short.len() > MOUNT_DATA_MAX {
        return Err(too_long(lowers.len()));
    }
    let back = std::fs::File::open(".")?;
    nix::unistd::chdir(parent)?;
    let mounted = legacy_mount(target, &short);
    nix::unistd::fchdir(back.as_fd())?;
    mounted
}

fn legacy_mount(target: &Path, data: &str) -> std::io::Result<()> {
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data),
    )
    .map_err(std::io::Error::from)
}

/// The directory every layer is directly in, when there is one.
fn common_parent(lowers: &[PathBuf]) -> Option<&Path> {
    let first = lowers.first()?.parent()?;
    lowers
        .iter()
        .all(|l| l.parent() == Some(first))
        .then_some(first)
}

fn too_long(layers: usize) -> std::io::Error {
    std::io::Error::other(format!(
        "the overlay options for {layers} layers exceed mount(2)'s 4 KiB on this kernel (Linux 6.8+ takes any number)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_round_trip_in_overlay_syntax() {
        let one = vec![PathBuf::from("/img")];
        assert_eq!(encode_lowers(&one), "/img");
        assert_eq!(decode_lowers("/img"), one);
        let many = vec![
            PathBuf::from("/l/base"),
            PathBuf::from("/l/a:b"),
            PathBuf::from(r"/l/c,d\e"),
        ];
        let encoded = encode_lowers(&many);
        assert_eq!(encoded, r"/l/c\,d\\e:/l/a\:b:/l/base");
        assert_eq!(decode_lowers(&encoded), many);
    }

    #[test]
    fn escapes_what_overlayfs_parses() {
        assert_eq!(escape("/a/b"), "/a/b");
        assert_eq!(escape(r"/x:y,z\w"), r"/x\:y\,z\\w");
    }

    #[test]
    fn the_common_parent_is_the_layers_directory() {
        let l = |s: &str| PathBuf::from(s);
        assert_eq!(
            common_parent(&[l("/s/layers/a"), l("/s/layers/b")]),
            Some(Path::new("/s/layers"))
        );
        assert_eq!(common_parent(&[l("/s/layers/a"), l("/s/x/rootfs")]), None);
    }
}
