//! `cargo bench --bench image_pull` (root; needs docker-registry and skopeo from
//! scripts/install-deps.sh): pulling a multi-layer image from a registry on the node's
//! loopback, podrun against the usual two-step way, interleaved round by round (each going
//! first every other round) so that a drifting machine speed weighs on both alike.
//!
//! - podrun: `podrun pull` into an empty image store, until it returns (every layer fetched,
//!   verified and unpacked into its own directory, the image committed);
//! - skopeo + tar: `skopeo copy docker://... oci:DIR` (blobs fetched and verified), then each
//!   layer unpacked in order with `tar -xf` into one directory (what `umoci unpack` does,
//!   without its whiteout handling, so the reference side is if anything cheaper).
//!
//! The image: five layers, ~70 MiB unpacked: the test rootfs (busybox), 3000 small text
//! files, four 8 MiB incompressible files, a tree of 800 small files, and a layer deleting some
//! of them (whiteouts). `PODRUN_BENCH_ROUNDS` sets the rounds (default 9).

#[path = "support/stats.rs"]
mod stats;

#[path = "../tests/common/mod.rs"]
mod common;

use stats::{median, ms};
use std::path::Path;
use std::time::{Duration, Instant};

use common::Node;
use common::registry::{Entry, Layer, Registry, TestImage, debug_rootfs, oci_layout, tar_of};

/// Pseudo-random bytes (xorshift), incompressible as real binaries nearly are.
fn noise(len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // printable, so the layer helpers (text entries) can carry it: ~6.5 bits a byte
            (b'!' + (x % 94) as u8) as char
        })
        .collect()
}

fn layers(node: &Node) -> Vec<Layer> {
    let base = tar_of(Some(&debug_rootfs(node)), &[]);
    let texts: Vec<(String, String)> = (0..3000)
        .map(|i| {
            (
                format!("usr/share/doc/pkg{}/file{i}.txt", i % 60),
                format!("line {i} of a text file that compresses well\n").repeat(150),
            )
        })
        .collect();
    let mut text_entries = vec![
        Entry::Dir("usr"),
        Entry::Dir("usr/share"),
        Entry::Dir("usr/share/doc"),
    ];
    let dirs: Vec<String> = (0..60).map(|d| format!("usr/share/doc/pkg{d}")).collect();
    text_entries.extend(dirs.iter().map(|d| Entry::Dir(d)));
    text_entries.extend(texts.iter().map(|(p, c)| Entry::File(p, c)));
    let blobs: Vec<(String, String)> = (0..4)
        .map(|i| (format!("opt/blob{i}.bin"), noise(8 << 20, 7 + i)))
        .collect();
    let mut blob_entries = vec![Entry::Dir("opt")];
    blob_entries.extend(blobs.iter().map(|(p, c)| Entry::File(p, c)));
    let small: Vec<(String, String)> = (0..800)
        .map(|i| {
            (
                format!("lib/py/mod{}/m{i}.py", i % 40),
                format!("x = {i}\n").repeat(40),
            )
        })
        .collect();
    let small_dirs: Vec<String> = (0..40).map(|d| format!("lib/py/mod{d}")).collect();
    let mut small_entries = vec![Entry::Dir("lib"), Entry::Dir("lib/py")];
    small_entries.extend(small_dirs.iter().map(|d| Entry::Dir(d)));
    small_entries.extend(small.iter().map(|(p, c)| Entry::File(p, c)));
    let gone: Vec<String> = (0..100)
        .map(|i| format!("lib/py/mod{}/.wh.m{i}.py", i % 40))
        .collect();
    let gone_entries: Vec<Entry> = gone.iter().map(|p| Entry::File(p, "")).collect();
    [
        base,
        tar_of(None, &text_entries),
        tar_of(None, &blob_entries),
        tar_of(None, &small_entries),
        tar_of(None, &gone_entries),
    ]
    .iter()
    .map(|plain| Layer::gzip(plain))
    .collect()
}

fn podrun_pull(node: &Node, conf: &Path, store: &Path) -> Duration {
    let t = Instant::now();
    node.podrun_env(
        &["pull", "-q", "bench:1"],
        &[
            ("PODRUN_IMAGE_ROOT", store.to_str().unwrap()),
            ("PODRUN_REGISTRIES_CONF", conf.to_str().unwrap()),
        ],
    )
    .ok();
    t.elapsed()
}

fn skopeo_and_tar(node: &Node, registry: &Registry, dir: &Path) -> Duration {
    let t = Instant::now();
    let layout = dir.join("layout");
    common::Run::from(
        node.command("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}/library/bench:1", registry.host()))
            .arg(format!("oci:{}:1", layout.display()))
            .output()
            .unwrap(),
    )
    .ok();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let status = std::process::Command::new("tar")
            .arg("-xf")
            .arg(blob(layer["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(status.success());
    }
    t.elapsed()
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("image_pull bench: needs root");
        return;
    }
    let rounds: usize = std::env::var("PODRUN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let node = Node::new();
    let Some(mut registry) = Registry::start(&node) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layers = layers(&node);
    let size: usize = layers.iter().map(|l| l.blob.len()).sum();
    oci_layout(
        &work.path().join("src"),
        "1",
        &[TestImage {
            arch: "amd64",
            layers: &layers,
            cmd: &["sh"],
        }],
    );
    registry.push(&node, &work.path().join("src"), "1", "library/bench");
    let conf = registry.docker_io_mirror_conf(work.path());
    println!(
        "image: {} layers, {:.1} MiB compressed; {rounds} rounds, interleaved",
        layers.len(),
        size as f64 / (1 << 20) as f64
    );
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let a = tempfile::tempdir_in(work.path()).unwrap();
        let b = tempfile::tempdir_in(work.path()).unwrap();
        let (p, s) = if round % 2 == 0 {
            let p = podrun_pull(&node, &conf, a.path());
            (p, skopeo_and_tar(&node, &registry, b.path()))
        } else {
            let s = skopeo_and_tar(&node, &registry, b.path());
            (podrun_pull(&node, &conf, a.path()), s)
        };
        println!(
            "round {round}: podrun {:.0} ms, skopeo+tar {:.0} ms",
            ms(p),
            ms(s)
        );
        ratios.push(p.as_secs_f64() / s.as_secs_f64());
        ours.push(p);
        theirs.push(s);
    }
    let range = |v: &[Duration]| {
        let min = v.iter().min().unwrap();
        let max = v.iter().max().unwrap();
        format!("{:.0}-{:.0}", ms(*min), ms(*max))
    };
    ratios.sort_by(f64::total_cmp);
    println!(
        "podrun pull      median {:.0} ms ({} ms)",
        ms(median(ours.clone())),
        range(&ours)
    );
    println!(
        "skopeo copy+tar  median {:.0} ms ({} ms)",
        ms(median(theirs.clone())),
        range(&theirs)
    );
    println!(
        "ratio podrun/skopeo+tar per round: median {:.2} (min {:.2}, max {:.2})",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
    registry.stop();
}
