//! Reading a file of an image's merged root filesystem without mounting it: the topmost layer
//! that has the file wins, as in overlayfs, and a whiteout (a 0/0 character device) or an
//! opaque directory (`trusted.overlay.opaque=y`) of an upper layer hides what is below it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Where `rel` (a path inside the root filesystem; a leading `/` is ignored) is in `layers`
/// (bottom first), or None when no layer has it or a whiteout hides it. Symbolic links on the
/// way are not followed (the callers read `/etc/passwd` and the like).
pub fn find_in_layers(layers: &[PathBuf], rel: &Path) -> Option<PathBuf> {
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    for layer in layers.iter().rev() {
        let mut dir = layer.clone();
        let mut hidden_below = false;
        for (i, part) in parts.iter().enumerate() {
            let path = dir.join(part);
            let Ok(md) = path.symlink_metadata() else {
                break;
            };
            if is_whiteout(&md) {
                return None;
            }
            if i + 1 == parts.len() {
                return Some(path);
            }
            if !md.is_dir() {
                break;
            }
            if is_opaque(&path) {
                hidden_below = true;
            }
            dir = path;
        }
        if hidden_below {
            return None;
        }
    }
    None
}

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn upper_layers_win_and_whiteouts_hide() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        fs::create_dir_all(low.join("etc/d")).unwrap();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::write(low.join("etc/passwd"), "low").unwrap();
        fs::write(low.join("etc/group"), "low").unwrap();
        fs::write(low.join("etc/d/f"), "low").unwrap();
        fs::write(up.join("etc/passwd"), "up").unwrap();
        nix::sys::stat::mknod(
            &up.join("etc/group"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let layers = vec![low.clone(), up.clone()];
        assert_eq!(
            find_in_layers(&layers, Path::new("/etc/passwd")),
            Some(up.join("etc/passwd"))
        );
        assert_eq!(find_in_layers(&layers, Path::new("etc/group")), None);
        assert_eq!(
            find_in_layers(&layers, Path::new("etc/d/f")),
            Some(low.join("etc/d/f"))
        );
        fs::create_dir_all(up.join("etc/d")).unwrap();
        xattr::set(up.join("etc/d"), "trusted.overlay.opaque", b"y").unwrap();
        assert_eq!(find_in_layers(&layers, Path::new("etc/d/f")), None);
        assert_eq!(find_in_layers(&layers, Path::new("etc/none")), None);
    }
}
