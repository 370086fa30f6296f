//! The example image recipes end to end: `rootfs/build.sh` builds, chroot-checks and imports
//! both images into a temporary image root, and a second run skips them. Slow-ish and needs
//! root, busybox, curl, iproute2 and python3 on the host, so it is ignored by default:
//! `cargo test --test rootfs_recipes -- --ignored`.

use std::path::Path;
use std::process::Command;

const PODRUN: &str = env!("CARGO_BIN_EXE_podrun");

fn build(image_root: &Path, args: &[&str]) -> String {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs/build.sh"))
        .args(args)
        .env("PODRUN", PODRUN)
        .env("PODRUN_IMAGE_ROOT", image_root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "build.sh {args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
#[ignore = "builds the example images (root, host packages); run with --ignored"]
fn recipes_build_check_import_and_skip_when_unchanged() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let first = build(&root, &[]);
    assert!(first.contains("imported podrun.local/debug:1"), "{first}");
    assert!(
        first.contains("imported podrun.local/python:3.11-slim"),
        "{first}"
    );
    assert!(first.contains("http.server ok"), "{first}");
    let second = build(&root, &["debug", "podrun.local/python:3.11-slim"]);
    assert!(
        second.contains("podrun.local/debug:1: up to date"),
        "{second}"
    );
    assert!(
        second.contains("podrun.local/python:3.11-slim: up to date"),
        "{second}"
    );
    let listed = Command::new(PODRUN)
        .args(["--image-root", root.to_str().unwrap(), "images", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 2);
    let forced = build(&root, &["--force", "debug"]);
    assert!(forced.contains("imported podrun.local/debug:1"), "{forced}");
    let listed = Command::new(PODRUN)
        .args(["--image-root", root.to_str().unwrap(), "images", "-q"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        2,
        "the replaced image is removed"
    );
}
