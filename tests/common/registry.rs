//! A real registry for the pull tests (Debian's `docker-registry`, in the node's network
//! namespace on its loopback, with its own config and storage), images pushed to it by skopeo
//! from OCI layouts the tests write, and the layers they are made of.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Node;

/// A registry on 127.0.0.1:`port` of a node, ended (by pid) when dropped.
pub struct Registry {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Registry {
    /// A plain-HTTP registry on the node's 127.0.0.1:5000; None (and a note) when
    /// docker-registry is not installed.
    pub fn start(node: &Node) -> Option<Registry> {
        Registry::start_with(node, 5000, "")
    }

    /// A registry on `port` with `extra` appended to its config (auth, ...). Its access
    /// log goes to [`Registry::log`].
    pub fn start_with(node: &Node, port: u16, extra: &str) -> Option<Registry> {
        Registry::start_with_http(node, port, "", extra)
    }

    /// As [`Registry::start_with`], with `http` added to the config's `http:` section (lines
    /// indented by two spaces: `  tls:\n    certificate: ...`).
    pub fn start_with_http(node: &Node, port: u16, http: &str, extra: &str) -> Option<Registry> {
        if std::process::Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: docker-registry is not installed (scripts/install-deps.sh)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{http}{extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut registry = Registry {
            child: None,
            port,
            dir,
            config,
        };
        registry.run(node);
        Some(registry)
    }

    fn run(&mut self, node: &Node) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .unwrap();
        let child = node
            .command("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let probe = format!(
            "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {}), 1)' 2>/dev/null",
            self.port
        );
        let up = node.eventually(&probe, Duration::from_secs(10));
        assert_eq!(up.code, 0, "the registry never listened");
    }

    /// Stop it (its storage stays, for [`Registry::resume`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn resume(&mut self, node: &Node) {
        self.run(node);
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the registry logged (its access log: one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps blob `digest` (`sha256:...`).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// Push OCI layout `layout` (tag `tag`) as `repository:tag`.
    pub fn push(&self, node: &Node, layout: &Path, tag: &str, repository: &str) {
        self.push_with(
            node,
            layout,
            tag,
            repository,
            &["--dest-tls-verify=false".into()],
        );
    }

    /// As [`Registry::push`], with skopeo's destination options `dest` (`--dest-creds=U:P`,
    /// `--dest-cert-dir=DIR`, ...) instead of `--dest-tls-verify=false`.
    pub fn push_with(
        &self,
        node: &Node,
        layout: &Path,
        tag: &str,
        repository: &str,
        dest: &[String],
    ) {
        super::Run::from(
            node.command("skopeo")
                .args(["--insecure-policy", "copy", "-q"])
                .args(dest)
                .args(["--all", "--preserve-digests"])
                .arg(format!("oci:{}:{tag}", layout.display()))
                .arg(format!("docker://{}/{repository}:{tag}", self.host()))
                .output()
                .unwrap(),
        )
        .ok();
    }

    /// A registries.conf (written in `dir`) with this registry as the mirror of docker.io,
    /// whose own location is a closed loopback port: nothing leaves the machine.
    pub fn docker_io_mirror_conf(&self, dir: &Path) -> PathBuf {
        let conf = dir.join("registries.conf");
        std::fs::write(
            &conf,
            format!(
                "[[registry]]\nprefix = \"docker.io\"\nlocation = \"127.0.0.1:1\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
                self.host()
            ),
        )
        .unwrap();
        conf
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One entry of a test layer.
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    /// `path -> target`.
    Symlink(&'a str, &'a str),
    /// `path` hard-linked to `target` (a path in the archive or a layer below).
    HardLink(&'a str, &'a str),
}

/// A plain tar of `dir` (if any) and then `entries`.
pub fn tar_of(dir: Option<&Path>, entries: &[Entry]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    if let Some(dir) = dir {
        tar.append_dir_all(".", dir).unwrap();
    }
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match entry {
            Entry::Dir(path) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, path, &[][..]).unwrap();
            }
            Entry::File(path, content) => {
                h.set_mode(0o644);
                h.set_size(content.len() as u64);
                tar.append_data(&mut h, path, content.as_bytes()).unwrap();
            }
            Entry::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, path, target).unwrap();
            }
            Entry::HardLink(path, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                tar.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    tar.into_inner().unwrap()
}

/// A layer blob: its bytes, media type and diff ID (the digest of the plain tar).
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    pub diff_id: String,
}

impl Layer {
    pub fn gzip(plain: &[u8]) -> Layer {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(plain).unwrap();
        Layer {
            blob: gz.finish().unwrap(),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            diff_id: format!("sha256:{}", sha256(plain)),
        }
    }

    pub fn zstd(plain: &[u8]) -> Layer {
        Layer {
            blob: zstd::encode_all(plain, 3).unwrap(),
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
            diff_id: format!("sha256:{}", sha256(plain)),
        }
    }

    pub fn digest(&self) -> String {
        format!("sha256:{}", sha256(&self.blob))
    }
}

/// One image of a layout: its architecture, layers and command.
pub struct TestImage<'a> {
    pub arch: &'a str,
    pub layers: &'a [Layer],
    pub cmd: &'a [&'a str],
}

/// An OCI image layout at `dir` with `images` under `tag`: one image is a manifest, several
/// an index (one manifest per architecture).
pub fn oci_layout(dir: &Path, tag: &str, images: &[TestImage]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| {
        let hex = sha256(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut manifests = Vec::new();
    for image in images {
        let config = serde_json::json!({
            "architecture": image.arch,
            "os": "linux",
            "created": "2026-01-02T03:04:05Z",
            "config": {"Cmd": image.cmd, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "ARCH=".to_owned() + image.arch]},
            "rootfs": {"type": "layers", "diff_ids": image.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
        });
        let (config_digest, config_size) = blob(&serde_json::to_vec(&config).unwrap());
        let layers: Vec<serde_json::Value> = image
            .layers
            .iter()
            .map(|l| {
                let (digest, size) = blob(&l.blob);
                serde_json::json!({"mediaType": l.media_type, "digest": digest, "size": size})
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": layers,
        });
        let (digest, size) = blob(&serde_json::to_vec(&manifest).unwrap());
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "platform": {"architecture": image.arch, "os": "linux"},
        }));
    }
    let top = if manifests.len() == 1 {
        let mut m = manifests.remove(0);
        m.as_object_mut().unwrap().remove("platform");
        m
    } else {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let (digest, size) = blob(&serde_json::to_vec(&index).unwrap());
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size})
    };
    let mut top = top;
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
}

/// The test debug image's root filesystem (busybox, sh), its only layer's directory.
pub fn debug_rootfs(node: &Node) -> PathBuf {
    let info = node
        .podrun(&["image", "inspect", super::DEBUG_IMAGE])
        .ok()
        .stdout;
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    PathBuf::from(
        v[0]["GraphDriver"]["Data"]["LowerDir"]
            .as_str()
            .expect("image inspect names the layer (an imported image has one)"),
    )
}
