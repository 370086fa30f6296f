//! Issue 19, the book's manifest: `pods/cs-deployment.yaml` (the chapter's Deployment as
//! printed, naming `nicolaka/netshoot` and `python:3.9-slim`) runs on a machine without internet.
//! `scripts/offline-registry.sh`, run in the test node's network and mount namespaces, starts
//! Debian's docker-registry on the node's loopback (its own config, storage and pidfile in a
//! state dir of this test), builds the rootfs recipes' images, pushes them under the book's names
//! as labelled stand-ins and writes a registries.conf (this test's own) whose docker.io entry
//! has the registry as its mirror. The pulled images then run the manifest verbatim: three pods
//! whose curl-client fetches another pod's `Python web-server`, and whose images say they are
//! stand-ins. The node's network namespace has only its loopback: had the mirror been skipped,
//! the pull would have failed there, not reached docker.io.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Node, Run};
use serde_json::Value;

/// The registry's port, on the node's own loopback.
const PORT: u16 = 5099;

/// The registry the script started from `state`, stopped when dropped (a failed test too):
/// `offline-registry.sh stop`, then its pid killed if it still runs.
struct OfflineRegistry<'a> {
    node: &'a Node,
    state: PathBuf,
}

impl OfflineRegistry<'_> {
    fn script(&self, args: &[&str]) -> Run {
        let out = self
            .node
            .command(
                common::repo_file("scripts/offline-registry.sh")
                    .to_str()
                    .unwrap(),
            )
            .args(args)
            .arg("--state-dir")
            .arg(&self.state)
            .output()
            .expect("run scripts/offline-registry.sh");
        let run = Run::from(out);
        eprintln!(
            "$ offline-registry.sh {}\n{}{}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run
    }

    /// The running registry's pid, from its pidfile (only if that process is docker-registry).
    fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.state.join("registry.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        common::cmdline(pid)
            .starts_with("docker-registry serve ")
            .then_some(pid)
    }
}

impl Drop for OfflineRegistry<'_> {
    fn drop(&mut self) {
        let pid = self.pid();
        let _ = self.script(&["stop"]);
        if let Some(pid) = pid.filter(|&p| common::cmdline(p).starts_with("docker-registry")) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// The pods of the node as (name, pod IP, every container running), from `get pods -o json`.
fn pods(list: &Value) -> Vec<(String, String, bool)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let running = p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()));
            (
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                p["status"]["podIP"].as_str().unwrap_or("").to_owned(),
                running,
            )
        })
        .collect()
}

#[test]
fn the_books_deployment_runs_verbatim_from_the_offline_registry() {
    require_root!();
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("skipped: docker-registry or skopeo is not installed (scripts/install-deps.sh)");
        return;
    }
    let node = Node::new();
    let work = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let conf = work.path().join("etc/registries.conf");
    let conf_s = conf.to_str().unwrap().to_owned();
    let port = PORT.to_string();
    let host = format!("127.0.0.1:{PORT}");
    let registry = OfflineRegistry {
        node: &node,
        state: work.path().join("state"),
    };
    let start = ["--port", &port, "--registries-conf", &conf_s];

    let run = registry.script(&start).ok();
    for said in [
        format!("started docker-registry on {host}"),
        format!("pushed {host}/library/python:3.9-slim (sha256:"),
        format!("pushed {host}/nicolaka/netshoot:latest (sha256:"),
        format!("wrote {conf_s}: docker.io pulls from the mirror {host} first"),
    ] {
        assert!(run.stdout.contains(&said), "{said:?} in {run:?}");
    }
    let pid = registry.pid().expect("the pidfile names the registry");
    let config = std::fs::read_to_string(registry.state.join("config.yml")).unwrap();
    assert!(config.contains(&format!("addr: {host}")), "{config}");

    // Again: the same registry, the layouts kept, pushed again, the file unchanged.
    let written = std::fs::read_to_string(&conf).unwrap();
    let run = registry.script(&start).ok();
    assert!(
        run.stdout.contains(&format!(
            "reusing the registry running on {host} (pid {pid},"
        )),
        "{run:?}"
    );
    assert_eq!(run.stdout.matches("stand-in layout up to date").count(), 2);
    assert_eq!(run.stdout.matches(&format!("pushed {host}/")).count(), 2);
    assert!(run.stdout.contains("unchanged"), "{run:?}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), written);

    // A registries.conf with a docker.io entry of its own is left alone (what to add printed),
    // unless --force, which replaces that entry and keeps the others.
    let other = work.path().join("other.conf");
    let other_s = other.to_str().unwrap();
    let theirs = "[[registry]]\nlocation = \"quay.io\"\n\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"mirror.example\"\n";
    std::fs::write(&other, theirs).unwrap();
    let refused = registry.script(&["--port", &port, "--registries-conf", other_s]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("already has an entry for docker.io")
            && refused
                .stderr
                .contains(&format!("location = \"{host}\"\ninsecure = true")),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_to_string(&other).unwrap(), theirs);
    registry
        .script(&["--port", &port, "--registries-conf", other_s, "--force"])
        .ok();
    let forced = std::fs::read_to_string(&other).unwrap();
    assert!(
        forced.starts_with("[[registry]]\nlocation = \"quay.io\"\n")
            && !forced.contains("mirror.example")
            && forced.contains(&format!(
                "prefix = \"docker.io\"\nlocation = \"docker.io\"\n\n[[registry.mirror]]\nlocation = \"{host}\"\ninsecure = true\n"
            )),
        "{forced}"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("other.conf.bak")).unwrap(),
        theirs
    );

    // Every podrun command of the test uses this store and this registries.conf.
    let env = [
        ("PODRUN_IMAGE_ROOT", images.path().to_str().unwrap()),
        ("PODRUN_REGISTRIES_CONF", conf_s.as_str()),
    ];
    let podrun = |args: &[&str]| node.podrun_env(args, &env);
    // The chapter's manifest, verbatim: apply pulls both images through the mirror (the
    // untagged netshoot by Always, python:3.9-slim by IfNotPresent).
    let manifest = common::repo_file("pods/cs-deployment.yaml");
    let manifest = manifest.to_str().unwrap();
    let out = podrun(&["apply", "-f", manifest]).ok().stdout;
    assert!(
        out.contains("deployment.apps/cs-deployment created"),
        "{out}"
    );
    // The images say what they are.
    for (reference, stands_for) in [
        ("python:3.9-slim", "python:3.9-slim"),
        ("nicolaka/netshoot", "nicolaka/netshoot"),
    ] {
        let info: Value =
            serde_json::from_str(&podrun(&["image", "inspect", reference]).ok().stdout).unwrap();
        let labels = &info[0]["Config"]["Labels"];
        assert_eq!(labels["io.podrun.stand-in"], stands_for, "{info}");
        let description = labels["org.opencontainers.image.description"]
            .as_str()
            .unwrap();
        assert!(
            description.starts_with(&format!(
                "podrun offline stand-in for {stands_for}, NOT the real image"
            )),
            "{description}"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let pods = loop {
        let list: Value =
            serde_json::from_str(&podrun(&["get", "pods", "-o", "json"]).ok().stdout).unwrap();
        let pods = pods(&list);
        if pods.len() == 3
            && pods
                .iter()
                .all(|(_, ip, running)| *running && !ip.is_empty())
        {
            break pods;
        }
        assert!(Instant::now() < deadline, "not 3 pods Running: {list}");
        std::thread::sleep(Duration::from_millis(200));
    };

    // Each web server answers the curl-client of another pod, over the bridge.
    for (i, (name, ip, _)) in pods.iter().enumerate() {
        let (client, _, _) = &pods[(i + 1) % pods.len()];
        let url = format!("http://{ip}/");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = podrun(&[
                "exec",
                client,
                "-c",
                "curl-client",
                "--",
                "curl",
                "-s",
                "--max-time",
                "2",
                &url,
            ]);
            if r.code == 0 && r.stdout == "Python web-server\n" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "curl from {client} to {name} at {ip}: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // What runs are the stand-ins, and they say so.
    let (first, _, _) = &pods[0];
    for (container, stands_for) in [
        ("web-server", "python:3.9-slim"),
        ("curl-client", "nicolaka/netshoot"),
    ] {
        let r = podrun(&[
            "exec",
            first,
            "-c",
            container,
            "--",
            "cat",
            "/etc/os-release",
        ])
        .ok();
        assert!(
            r.stdout.contains(&format!(
                "PRETTY_NAME=\"podrun offline stand-in for {stands_for}, not the real image"
            )),
            "{container}: {}",
            r.stdout
        );
    }

    // The recipes' chroot checks leave nothing behind in the images.
    let r = podrun(&["exec", first, "-c", "web-server", "--", "ls", "-A", "/tmp"]).ok();
    assert_eq!(r.stdout, "", "left in the image's /tmp");

    podrun(&["delete", "-f", manifest, "--now"]).ok();
    let run = registry.script(&["stop"]).ok();
    assert!(
        run.stdout
            .contains(&format!("stopped the registry (pid {pid}) on {host}")),
        "{run:?}"
    );
    drop(registry);
    node.assert_clean();
}

/// `pods/cs-deployment-local.yaml` is the book's manifest with only the two image names changed.
#[test]
fn the_local_manifest_is_the_books_with_local_images() {
    let text = |rel: &str| -> String {
        std::fs::read_to_string(common::repo_file(rel))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let book = text("pods/cs-deployment.yaml");
    assert!(
        book.contains("image: nicolaka/netshoot\n") && book.contains("image: python:3.9-slim\n")
    );
    let local = text("pods/cs-deployment-local.yaml")
        .replace(
            "image: podrun.local/debug:1\n",
            "image: nicolaka/netshoot\n",
        )
        .replace(
            "image: podrun.local/python:3.11-slim\n",
            "image: python:3.9-slim\n",
        );
    assert_eq!(local, book);
}
