//! `podrun image ...` and `podrun images` driven as a user would, each test on its own image
//! root in a temporary directory (never the default store). Needs no root.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const PODRUN: &str = env!("CARGO_BIN_EXE_podrun");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("images")
    }

    fn podrun_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut child = Command::new(PODRUN)
            .arg("--image-root")
            .arg(self.root())
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .args(args)
            .env_remove("PODRUN_IMAGE_ROOT")
            .env_remove("PODRUN_ROOT")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(bytes) = stdin {
            child.stdin.take().unwrap().write_all(bytes).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn podrun(&self, args: &[&str]) -> Run {
        self.podrun_with_stdin(args, None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let run = self.podrun(args);
        assert_eq!(run.code, 0, "podrun {args:?}: {}", run.stderr);
        run.stdout
    }

    fn fails(&self, args: &[&str]) -> String {
        let run = self.podrun(args);
        assert_ne!(run.code, 0, "podrun {args:?} should fail: {}", run.stdout);
        run.stderr
    }

    fn image_count(&self) -> usize {
        self.ok(&["images", "-q"]).lines().count()
    }

    /// Image directories on disk (64-hex names).
    fn image_dirs(&self) -> usize {
        fs::read_dir(self.root())
            .map(|d| d.flatten().filter(|e| e.file_name().len() == 64).count())
            .unwrap_or(0)
    }
}

fn rootfs(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
    fs::write(dir.join("etc/os-release"), b"ID=test\n").unwrap();
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn import_list_inspect_tag_rm() {
    let s = Store::new();
    let src = s.dir.path().join("src");
    rootfs(&src);
    let id = s.ok(&[
        "image",
        "import",
        src.to_str().unwrap(),
        "podrun.local/test:1",
        "--change",
        r#"CMD ["/bin/hello"]"#,
        "--change",
        "ENV GREETING=hi",
        "-c",
        "WORKDIR /etc",
        "--change",
        "USER 1000",
    ]);
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    let inspected = json(&s.ok(&["image", "inspect", &id]));
    let layer = inspected[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        layer.starts_with(&format!("{}/layers/", s.root().display())),
        "{layer}"
    );
    assert!(Path::new(&layer).join("bin/hello").exists());

    let table = s.ok(&["images"]);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert!(lines[1].starts_with("podrun.local/test"), "{table}");
    assert!(lines[1].contains(&id[..12]), "{table}");
    assert!(lines[1].contains(" ago"), "{table}");
    assert!(lines[1].ends_with(" B"), "{table}");
    assert_eq!(s.ok(&["image", "ls"]), table);
    assert_eq!(s.ok(&["image", "ls", "-q"]).trim(), &id[..12]);
    assert_eq!(
        s.ok(&["images", "-q", "--no-trunc"]).trim(),
        format!("sha256:{id}")
    );

    let listed = json(&s.ok(&["images", "-o", "json"]));
    assert_eq!(listed[0]["Id"], id.as_str());
    assert_eq!(listed[0]["Names"][0], "podrun.local/test:1");

    for reference in ["podrun.local/test:1", "test:1", &id[..12], &id] {
        let doc = json(&s.ok(&["image", "inspect", reference]));
        let config = &doc[0]["Config"];
        assert_eq!(config["Cmd"][0], "/bin/hello", "{reference}");
        assert_eq!(config["Env"][0], "GREETING=hi");
        assert_eq!(config["WorkingDir"], "/etc");
        assert_eq!(config["User"], "1000");
        assert_eq!(doc[0]["Id"], id.as_str());
        assert_eq!(doc[0]["GraphDriver"]["Name"], "overlay");
    }

    // Re-importing the name moves it; the old image stays as <none>.
    let id2 = s.ok(&[
        "image",
        "import",
        src.to_str().unwrap(),
        "podrun.local/test:1",
    ]);
    let id2 = id2.trim();
    assert_ne!(id2, id);
    let table = s.ok(&["images"]);
    assert!(table.contains("<none>"), "{table}");
    assert_eq!(s.image_count(), 2);
    let doc = json(&s.ok(&["image", "inspect", "test:1"]));
    assert_eq!(doc[0]["Id"], id2);

    s.ok(&["image", "tag", "test:1", "podrun.local/other:2"]);
    assert!(s.ok(&["images"]).contains("podrun.local/other"));
    // By ID with two names needs --force.
    let err = s.fails(&["image", "rm", &id2[..12]]);
    assert!(err.contains("several repositories"), "{err}");
    let out = s.ok(&["image", "rm", "podrun.local/other:2"]);
    assert_eq!(out.trim(), "Untagged: podrun.local/other:2");
    let out = s.ok(&["image", "rm", "test:1", &id[..12]]);
    assert!(out.contains(&format!("Deleted: {id2}")), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(s.image_count(), 0);
    assert_eq!(s.image_dirs(), 0);
}

#[test]
fn import_tarballs_from_files_and_stdin() {
    let s = Store::new();
    let src = s.dir.path().join("src");
    rootfs(&src);
    let tar = s.dir.path().join("rootfs.tar");
    let tgz = s.dir.path().join("rootfs.tar.gz");
    let status = Command::new("tar")
        .args([
            "-C",
            src.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("tar")
        .args([
            "-C",
            src.to_str().unwrap(),
            "-czf",
            tgz.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    s.ok(&["image", "import", tar.to_str().unwrap(), "plain:1"]);
    s.ok(&["image", "import", tgz.to_str().unwrap(), "gzip:1"]);
    let run = s.podrun_with_stdin(
        &[
            "image",
            "import",
            "-",
            "stdin:1",
            "-c",
            r#"ENTRYPOINT ["/bin/hello"]"#,
        ],
        Some(&fs::read(&tgz).unwrap()),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for name in ["plain:1", "gzip:1", "stdin:1"] {
        let doc = json(&s.ok(&["image", "inspect", name]));
        let rootfs =
            Path::new(doc[0]["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap()).to_owned();
        assert_eq!(
            fs::read(rootfs.join("bin/hello")).unwrap(),
            b"#!/bin/sh\necho hello\n"
        );
    }
    let doc = json(&s.ok(&["image", "inspect", "stdin:1"]));
    assert_eq!(doc[0]["Config"]["Entrypoint"][0], "/bin/hello");
    // The same uncompressed stream gives the same layer digest.
    let layer =
        |name: &str| json(&s.ok(&["image", "inspect", name]))[0]["RootFS"]["Layers"][0].clone();
    assert_eq!(layer("gzip:1"), layer("stdin:1"));
    assert_eq!(s.image_count(), 3);
    // A filter argument lists one image.
    assert_eq!(s.ok(&["images", "-q", "gzip:1"]).lines().count(), 1);
}

#[test]
fn bad_input_is_a_clear_error_and_creates_nothing() {
    let s = Store::new();
    let src = s.dir.path().join("src");
    rootfs(&src);

    let err = s.fails(&["image", "inspect", "foo"]);
    assert!(
        err.contains(&format!(
            "image \"foo:latest\" not found in the podrun image store ({}); import it with: podrun image import DIR foo:latest",
            s.root().display()
        )),
        "{err}"
    );
    let err = s.fails(&["image", "rm", "foo:2"]);
    assert!(err.contains("\"foo:2\" not found"), "{err}");

    let err = s.fails(&["image", "import", src.to_str().unwrap(), "Not/Valid"]);
    assert!(
        err.contains("invalid reference format: \"Not/Valid\""),
        "{err}"
    );
    assert!(!s.root().exists(), "nothing created for an invalid name");

    let missing = s.dir.path().join("missing");
    let err = s.fails(&["image", "import", missing.to_str().unwrap(), "x:1"]);
    assert!(err.contains("missing"), "{err}");

    let err = s.fails(&[
        "image",
        "import",
        src.to_str().unwrap(),
        "x:1",
        "--change",
        "RUN make",
    ]);
    assert!(err.contains("invalid --change \"RUN make\""), "{err}");

    let junk = s.dir.path().join("junk.tar");
    fs::write(&junk, vec![b'x'; 2048]).unwrap();
    s.fails(&["image", "import", junk.to_str().unwrap(), "x:1"]);

    // A tarball with an entry that climbs out of the root.
    let evil = s.dir.path().join("evil.tar");
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(4);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"evil"[..]).unwrap();
    fs::write(&evil, builder.into_inner().unwrap()).unwrap();
    let err = s.fails(&["image", "import", evil.to_str().unwrap(), "x:1"]);
    assert!(err.contains("\"../escape\" is unsafe"), "{err}");
    assert!(!s.dir.path().join("escape").exists());
    assert!(!s.root().join("escape").exists());

    assert_eq!(s.image_count(), 0);
    assert_eq!(s.image_dirs(), 0);
    let leftovers: Vec<_> = fs::read_dir(s.root().join("tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let err = s.fails(&["images", "-o", "yaml"]);
    assert!(err.contains("yaml"), "{err}");
}
