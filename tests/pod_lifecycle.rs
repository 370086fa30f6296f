//! Issue 4 (partial): restart policy with back-off, sandbox death, a killed supervisor.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

/// A pod that idles (one container sleeping an hour).
const IDLE_POD: &str = "{apiVersion: v1, kind: Pod, metadata: {name: idle}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '3600']}]}}";

/// `doctor` fails and lists a `kind` line holding every one of `needles`.
#[track_caller]
fn assert_doctor_lists(node: &Node, kind: &str, needles: &[&str]) {
    let report = node.podrun(&["doctor"]);
    assert_eq!(report.code, 1, "{}", report.stdout);
    assert!(
        report
            .stdout
            .lines()
            .any(|l| l.starts_with(kind) && needles.iter().all(|n| l.contains(n))),
        "doctor does not list a {kind} with {needles:?}:\n{}",
        report.stdout
    );
}

fn pod_json(node: &Node, name: &str) -> Value {
    node.pod_json(name)
}

/// Pod `crash`: one container that prints `run` and exits 1, with a 100 ms back-off base.
fn apply_crashing_pod(node: &Node) {
    let f = node.root.path().join("crash.yaml");
    std::fs::write(&f, "{apiVersion: v1, kind: Pod, metadata: {name: crash}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sh, -c, 'echo run; exit 1']}]}}").unwrap();
    node.podrun_env(
        &["apply", "-f", f.to_str().unwrap()],
        &[("PODRUN_BACKOFF_BASE_MS", "100")],
    )
    .ok();
}

#[test]
fn crashing_container_restarts_with_back_off() {
    require_root!();
    let node = Node::new();
    apply_crashing_pod(&node);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut restarts, mut saw_backoff) = (0, false);
    while Instant::now() < deadline && restarts < 3 {
        let pod = pod_json(&node, "crash");
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap();
        saw_backoff |= node
            .podrun(&["get", "pods"])
            .ok()
            .stdout
            .contains("CrashLoopBackOff");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(restarts >= 3, "restarts {restarts}");
    assert!(saw_backoff, "never showed CrashLoopBackOff");
    let prev = node.podrun(&["logs", "crash", "--previous"]).ok().stdout;
    assert_eq!(prev.trim(), "run");
    let describe = node.podrun(&["describe", "pod", "crash"]).ok().stdout;
    assert!(
        describe.contains("BackOff")
            && describe.contains("Back-off restarting failed container c in pod crash"),
        "{describe}"
    );
    node.podrun(&["delete", "crash", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn never_policy_ends_failed_and_keeps_logs() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("once.yaml", "{apiVersion: v1, kind: Pod, metadata: {name: once}, spec: {restartPolicy: Never, containers: [{name: c, image: podrun.local/debug:1, command: [sh, -c, 'echo bye; exit 3']}]}}").ok();
    let r = node.eventually(
        &format!(
            "PODRUN_ROOT={} {} get pod once -o json | grep -q '\"phase\": \"Failed\"'",
            node.root.path().display(),
            common::PODRUN
        ),
        Duration::from_secs(10),
    );
    assert_eq!(r.code, 0, "pod never became Failed");
    assert_eq!(node.podrun(&["logs", "once"]).ok().stdout.trim(), "bye");
    assert!(node.veths().is_empty(), "a finished pod keeps no sandbox");
    node.podrun(&["delete", "once"]).ok();
    node.assert_clean();
}

#[test]
fn pause_death_recreates_the_sandbox() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let before = node.inspect("sidecar");
    let pause = before["sandbox"]["pause"]["pid"].as_i64().unwrap() as i32;
    let old_pids: Vec<i64> = before["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pid"].as_i64().unwrap())
        .collect();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pause),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = before.clone();
    while Instant::now() < deadline {
        after = node.inspect("sidecar");
        if after["sandbox"]["attempt"] == 1
            && after["containers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["alive"] == true)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(after["sandbox"]["attempt"], 1, "{after}");
    for pid in old_pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "old container {pid} survived"
        );
    }
    let new_net = &after["sandbox"]["pause"]["namespaces"]["net"];
    assert_ne!(new_net, &before["sandbox"]["pause"]["namespaces"]["net"]);
    for c in after["containers"].as_array().unwrap() {
        assert_eq!(&c["namespaces"]["net"], new_net);
        assert_eq!(c["restartCount"], 1);
    }
    let veths = node.veths();
    assert_eq!(veths.len(), 1, "{veths:?}");
    let ip = node.pod_ip("sidecar");
    let r = node.eventually(
        &format!("curl -s --max-time 1 http://{ip}/again"),
        Duration::from_secs(10),
    );
    assert!(r.stdout.contains("/again"), "{}", r.stdout);
    // /etc/hosts is rewritten at every container start: the new sandbox's IP is in it.
    let hosts = node
        .exec("sidecar", "curl-client", &["cat", "/etc/hosts"])
        .ok()
        .stdout;
    assert!(hosts.contains(&format!("\n{ip}\tsidecar\n")), "{hosts}");
    let describe = node.podrun(&["describe", "pod", "sidecar"]).ok().stdout;
    let changed = describe
        .find("SandboxChanged")
        .expect("SandboxChanged event");
    assert!(
        describe[changed..].contains("Killing") && describe[changed..].contains("Started"),
        "{describe}"
    );
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

/// A sandbox that cannot be re-made (here the pause binary is gone when the pause dies) is
/// reported as the kubelet reports it, leaves nothing on the node while the pod waits, and is
/// made again by a later attempt once the cause is gone.
#[test]
fn failed_sandbox_recreation_leaves_nothing_and_is_retried() {
    require_root!();
    let node = Node::new();
    let pause = node.root.path().join("podrun-pause");
    let pause_off = node.root.path().join("podrun-pause.off");
    std::fs::copy(
        std::path::Path::new(common::PODRUN).with_file_name("podrun-pause"),
        &pause,
    )
    .unwrap();
    let manifest = common::repo_file("pods/sidecar.yaml");
    node.podrun_env(
        &["apply", "-f", manifest.to_str().unwrap()],
        &[
            ("PODRUN_PAUSE", pause.to_str().unwrap()),
            ("PODRUN_BACKOFF_BASE_MS", "3000"),
        ],
    )
    .ok();
    let before = node.inspect("sidecar");
    let supervisor = node.supervisor_pid("sidecar");
    std::fs::rename(&pause, &pause_off).unwrap();
    let pid = before["sandbox"]["pause"]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut describe = String::new();
    while Instant::now() < deadline && !describe.contains("FailedCreatePodSandBox") {
        std::thread::sleep(Duration::from_millis(50));
        describe = node.podrun(&["describe", "pod", "sidecar"]).ok().stdout;
    }
    assert!(
        describe.contains("Failed to create pod sandbox"),
        "{describe}"
    );
    // Nothing of the failed attempt (nor of the dead sandbox) is left while the pod waits.
    assert!(node.veths().is_empty(), "{:?}", node.veths());
    assert_eq!(node.sh("ls /run/netns").ok().stdout.trim(), "");
    assert!(node.ipam_files().is_empty(), "{:?}", node.ipam_files());
    assert_eq!(node.processes(), vec![supervisor]);
    let pod = node.pod_json("sidecar");
    for c in pod["status"]["containerStatuses"].as_array().unwrap() {
        assert_eq!(c["state"]["waiting"]["reason"], "ContainerCreating", "{c}");
        assert!(c["lastState"]["terminated"].is_object(), "{c}");
        assert_eq!(c["restartCount"], 0, "{c}");
    }
    // As the kubelet's getPhase: containers waiting after they ran count as stopped, and
    // with restartPolicy Always the pod stays Running while they wait to start again.
    assert_eq!(pod["status"]["phase"], "Running");
    let get = node.podrun(&["get", "pods"]).ok().stdout;
    assert!(get.contains("ContainerCreating"), "{get}");
    // A pod waiting for its sandbox is neither a leftover nor a pod that lost its network.
    let doctor = node.podrun(&["doctor"]);
    assert_eq!(doctor.code, 0, "{}{}", doctor.stdout, doctor.stderr);
    // The cause gone, a later attempt makes the sandbox and starts the containers again.
    std::fs::rename(&pause_off, &pause).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = node.inspect("sidecar");
    while Instant::now() < deadline && after["sandbox"]["ready"] != true {
        std::thread::sleep(Duration::from_millis(100));
        after = node.inspect("sidecar");
    }
    assert_eq!(after["sandbox"]["ready"], true, "{after}");
    let ip = node.pod_ip("sidecar");
    let r = node.eventually(
        &format!("curl -s --max-time 1 http://{ip}/back"),
        Duration::from_secs(10),
    );
    assert!(r.stdout.contains("/back"), "{}", r.stdout);
    let pod = node.pod_json("sidecar");
    for c in pod["status"]["containerStatuses"].as_array().unwrap() {
        assert_eq!(c["restartCount"], 1, "{c}");
        assert!(c["state"]["running"].is_object(), "{c}");
        assert!(c["lastState"]["terminated"].is_object(), "{c}");
    }
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn killed_supervisor_shows_unknown_and_delete_still_cleans_up() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let sup = node.supervisor_pid("sidecar");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let get = node.podrun(&["get", "pods"]).ok().stdout;
    assert!(get.contains("Unknown"), "{get}");
    node.podrun(&["delete", "sidecar"]).ok();
    node.assert_clean();
}

/// A container that ignores SIGTERM: delete waits the pod's terminationGracePeriodSeconds, then
/// SIGKILLs it; `--grace-period=1` shortens the wait. (Bounds are loose: this checks the
/// behaviour, not the speed.)
#[test]
fn delete_waits_the_grace_period_for_a_container_ignoring_sigterm() {
    require_root!();
    let node = Node::new();
    let manifest = |name: &str| {
        format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{terminationGracePeriodSeconds: 3, containers: [{{name: c, image: podrun.local/debug:1, command: [sh, -c, 'trap \"echo got TERM\" TERM; while true; do sleep 0.1; done']}}]}}}}"
        )
    };
    let timed_delete = |name: &str, extra: &[&str]| {
        node.apply_manifest("stubborn.yaml", &manifest(name)).ok();
        let pid =
            pod_json(&node, name)["status"]["containerStatuses"][0]["state"]["running"].is_object();
        assert!(pid, "{name} not running");
        let mut args = vec!["delete", name];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let run = node.podrun(&args).ok();
        // It has a handler: the signal arrives, and delete has nothing to explain.
        assert!(!run.stderr.contains("SIGTERM"), "{}", run.stderr);
        t.elapsed()
    };
    let full = timed_delete("stubborn", &[]);
    assert!(
        full >= Duration::from_millis(2900) && full < Duration::from_secs(8),
        "default grace: delete took {full:?}, expected about 3 s"
    );
    let short = timed_delete("stubborn2", &["--grace-period=1"]);
    assert!(
        short >= Duration::from_millis(900) && short < Duration::from_millis(2900),
        "--grace-period=1: delete took {short:?}, expected about 1 s"
    );
    node.assert_clean();
}

/// A container whose first process has no SIGTERM handler is PID 1 of its PID namespace: the
/// kernel drops the signal, and delete waits the whole grace period, as in Kubernetes. Delete
/// says so (on stderr, naming the container), so that the wait is not a mystery.
#[test]
fn delete_explains_a_sigterm_the_kernel_drops() {
    require_root!();
    let node = Node::new();
    node.apply_manifest(
        "deaf.yaml",
        "{apiVersion: v1, kind: Pod, metadata: {name: deaf}, spec: {terminationGracePeriodSeconds: 2, containers: [{name: sleeper, image: podrun.local/debug:1, command: [sleep, '1000']}]}}",
    )
    .ok();
    let t = Instant::now();
    let run = node.podrun(&["delete", "deaf"]).ok();
    let took = t.elapsed();
    assert!(
        run.stderr.contains("container \"sleeper\" of pod \"deaf\" is PID 1 of its PID namespace with no SIGTERM handler")
            && run.stderr.contains("grace period ends (2s)"),
        "{}",
        run.stderr
    );
    assert!(took >= Duration::from_millis(1900), "delete took {took:?}");
    assert!(
        run.stdout.contains("pod \"deaf\" deleted"),
        "{}",
        run.stdout
    );
    node.assert_clean();
}

/// A supervisor killed in the middle of an apply (here while its containers' init stages, a
/// stand-in that never reports, run): apply fails and says how the supervisor ended, and what
/// it had made (pause, netns pin, veth, address, cgroups, the inits) is removed from its record.
#[test]
fn apply_removes_what_a_supervisor_killed_midway_had_made() {
    require_root!();
    let node = Node::new();
    let init = node.root.path().join("stuck-init");
    let started = node.root.path().join("init-started");
    std::fs::write(
        &init,
        // /proc is still the node's: its `self` is this shell there, field 4 the supervisor.
        format!(
            "#!/bin/sh\nread -r stat < /proc/self/stat\necho \"$stat\" > {}.tmp\nmv {0}.tmp {0}\nexec sleep 60\n",
            started.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let manifest = common::repo_file("pods/sidecar.yaml");
    let apply = node
        .podrun_command(&["apply", "-f", manifest.to_str().unwrap()])
        .env("PODRUN_INIT", &init)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(started.exists(), "the stand-in init never ran");
    // The supervisor waits for the init's report once the sandbox is wired: there is a pod to
    // leak when it dies.
    let wired = node.eventually("test -e /run/netns/sidecar", Duration::from_secs(10));
    assert_eq!(wired.code, 0, "the sandbox was never pinned");
    assert_eq!(node.veths().len(), 1, "{:?}", node.veths());
    assert_eq!(node.ipam_files().len(), 1, "{:?}", node.ipam_files());
    assert!(node.processes().len() >= 3, "pause and two inits");
    let stat = std::fs::read_to_string(&started).unwrap();
    let supervisor: i32 = stat.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(
        common::cmdline(supervisor).contains("__supervise default/sidecar"),
        "{stat}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = apply.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "supervisor was killed by SIGKILL before the pod started; what it had made was removed"
        ),
        "{stderr}"
    );
    node.assert_clean();
}

/// Issue 4: after a reboot-like loss of the state root (supervisor gone, records gone, kernel
/// objects still there), `doctor` lists the leftovers, `doctor --fix` removes them, and the
/// next `apply` into the empty root sweeps them by itself.
#[test]
fn lost_state_root_leftovers_are_found_and_removed() {
    require_root!();
    let node = Node::new();
    let lose_state = |node: &Node| {
        let supervisor = node.supervisor_pid("sidecar");
        node.sh(&format!("kill -9 {supervisor}")).ok();
        std::fs::remove_dir_all(node.root.path().join("pods")).unwrap();
        std::fs::remove_dir_all(node.root.path().join("networks")).unwrap();
    };

    node.apply("pods/sidecar.yaml").ok();
    lose_state(&node);
    let report = node.podrun(&["doctor"]);
    assert_eq!(
        report.code, 1,
        "doctor must fail with leftovers: {}",
        report.stdout
    );
    for kind in ["cgroup", "veth", "netns", "network"] {
        assert!(
            report.stdout.lines().any(|l| l.starts_with(kind)),
            "doctor does not list a {kind}:\n{}",
            report.stdout
        );
    }
    let fixed = node.podrun(&["doctor", "--fix"]);
    assert_eq!(fixed.code, 0, "{}{}", fixed.stdout, fixed.stderr);
    assert!(fixed.stdout.contains("removed"), "{}", fixed.stdout);
    node.assert_clean();
    assert_eq!(node.podrun(&["doctor"]).code, 0);

    // Again, but this time the next apply (into the now empty root) cleans up by itself.
    node.apply("pods/sidecar.yaml").ok();
    lose_state(&node);
    let again = node.apply("pods/sidecar.yaml").ok();
    assert!(
        again.stderr.contains("removed leftover cgroup"),
        "apply did not sweep: {}",
        again.stderr
    );
    let pod = pod_json(&node, "sidecar");
    assert_eq!(pod["status"]["phase"], "Running");
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

/// The supervisor `apply` forks is named like the command it stands for (`ps` shows
/// `podrun --root ROOT __supervise NAMESPACE/NAME`), whether or not the host lets it rename
/// itself through PR_SET_MM; reads its environment after the rename (the back-off base); and
/// `doctor` finds it by that name once its record is gone, and `--fix` ends it.
#[test]
fn supervisor_is_named_for_ps_and_found_by_doctor() {
    require_root!();
    let node = Node::new();
    // The node's network made first: an apply that makes it (over rtnetlink, a tokio
    // runtime) execs its supervisors instead (see `pod::exec_supervisors`).
    node.apply_manifest(
        "resident.yaml",
        &IDLE_POD.replace("name: idle", "name: resident"),
    )
    .ok();
    apply_crashing_pod(&node);
    let supervisor = node.supervisor_pid("crash");
    let title = common::cmdline(supervisor);
    let expected = format!(
        "--root {} __supervise default/crash",
        node.root.path().display()
    );
    assert!(title.contains(&expected), "supervisor shows as {title:?}");
    assert!(title.starts_with(common::PODRUN), "{title:?}");
    // Forked from apply, not exec'd: no PODRUN_READY_FD handed over in its environment (the
    // exec'd fallback has one; see exec_started_supervisor_runs_the_pod).
    let environ = std::fs::read(format!("/proc/{supervisor}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("PODRUN_READY_FD="),
        "the supervisor was exec'd, not forked"
    );
    // A 100 ms back-off base: restarts come quickly only if the renamed supervisor still reads
    // its environment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let restarts = || {
        pod_json(&node, "crash")["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0)
    };
    while restarts() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        restarts() >= 2,
        "no quick restarts: the back-off base was not read"
    );

    node.podrun(&["delete", "crash", "resident", "--now"]).ok();

    // A quiet pod (a restarting one would re-create its directory): its record goes away.
    node.apply_manifest("idle.yaml", IDLE_POD).ok();
    let supervisor = node.supervisor_pid("idle");
    let pods = node.root.path().join("pods");
    let aside = node.root.path().join("pods.aside");
    std::fs::rename(&pods, &aside).unwrap();
    let listed = format!("supervisor pid {supervisor} of pod default/idle");
    assert_doctor_lists(&node, "process", &[&listed]);
    node.podrun(&["doctor", "--fix"]).ok();
    let stat = std::fs::read_to_string(format!("/proc/{supervisor}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "supervisor still runs: {stat}"
    );
    std::fs::remove_dir_all(&aside).unwrap();
    node.assert_clean();
}

/// `PODRUN_SUPERVISOR=exec` takes the fallback path (a fresh `podrun __supervise`, as when
/// the CLI has threads or cannot rename a fork): the pod runs, its supervisor's argv is exact,
/// and delete removes everything.
#[test]
fn exec_started_supervisor_runs_the_pod() {
    require_root!();
    let node = Node::new();
    node.podrun_env(
        &[
            "apply",
            "-f",
            common::repo_file("pods/sidecar.yaml").to_str().unwrap(),
        ],
        &[("PODRUN_SUPERVISOR", "exec")],
    )
    .ok();
    assert_eq!(pod_json(&node, "sidecar")["status"]["phase"], "Running");
    let supervisor = node.supervisor_pid("sidecar");
    let environ = std::fs::read(format!("/proc/{supervisor}/environ")).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains("PODRUN_READY_FD="));
    let argv = std::fs::read(format!("/proc/{supervisor}/cmdline")).unwrap();
    let argv: Vec<&[u8]> = argv.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
    let root = node.root.path().to_str().unwrap().as_bytes();
    assert_eq!(
        argv[1..],
        [&b"--root"[..], root, b"__supervise", b"default/sidecar"],
        "{argv:?}"
    );
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

/// `-n` with a manifest places a pod that names no namespace (kubectl's rule), `delete -n -f`
/// finds it there, and a manifest naming another namespace is refused before anything is made.
#[test]
fn namespace_flag_places_manifest_pods() {
    require_root!();
    let node = Node::new();
    let f = node.root.path().join("ns.yaml");
    std::fs::write(&f, "{apiVersion: v1, kind: Pod, metadata: {name: nsd}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '3600']}]}}").unwrap();
    let file = f.to_str().unwrap();
    node.podrun(&["apply", "-n", "team-a", "-f", file]).ok();
    let listed = node.podrun(&["get", "pods", "-n", "team-a"]).ok().stdout;
    assert!(listed.contains("nsd"), "{listed}");
    let default = node.podrun(&["get", "pods"]).ok().stdout;
    assert!(!default.contains("nsd"), "{default}");
    assert!(node.root.path().join("pods/team-a_nsd/pod.json").exists());
    // The same manifest into another namespace is another pod, with its own pin.
    node.podrun(&["apply", "-n", "team-b", "-f", file]).ok();
    let pins = node.sh("ls /run/netns").ok().stdout;
    assert_eq!(
        pins.split_whitespace().collect::<Vec<_>>(),
        ["team-a.nsd", "team-b.nsd"]
    );
    node.podrun(&["delete", "-n", "team-b", "nsd", "--now"])
        .ok();
    std::fs::write(
        &f,
        std::fs::read_to_string(&f)
            .unwrap()
            .replace("{name: nsd}", "{name: nsd, namespace: team-a}"),
    )
    .unwrap();
    let refused = node.podrun(&["apply", "-n", "team-b", "-f", file]);
    assert!(
        refused
            .stderr
            .contains("does not match the namespace \"team-b\""),
        "{}",
        refused.stderr
    );
    node.podrun(&["delete", "-n", "team-a", "-f", file, "--now"])
        .ok();
    node.assert_clean();
}

/// A running pod whose host veth disappeared (deleted by hand here) has no network: `doctor`
/// names the pod and the veth and fails; `delete` still removes everything.
#[test]
fn doctor_reports_a_pod_whose_veth_is_gone() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let healthy = node.podrun(&["doctor"]);
    assert_eq!(healthy.code, 0);
    // Whether this host lets podrun lower oom_score_adj is a check of its own (warn, not fail).
    let oom = healthy
        .stdout
        .lines()
        .find(|l| l.starts_with("oom_score_adj"));
    let status = oom.and_then(|l| l.split_whitespace().nth(1));
    assert!(matches!(status, Some("ok" | "warn")), "{}", healthy.stdout);
    let veth = node.host_veth("sidecar");
    node.sh(&format!("ip link del {veth}")).ok();
    assert_doctor_lists(&node, "pod", &[&veth, "is gone"]);
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

/// The first apply into an empty state root sweeps what a lost state left behind, but the pods
/// of another state root whose supervisors run on the same node (same cgroup parent and netns
/// dir) are not leftovers: they keep their veth, cgroup, pin and the node network. The second
/// root cannot use the first root's bridge (the addresses are allocated per root).
#[test]
fn a_second_state_root_leaves_the_first_roots_pods_alone() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let veth = node.host_veth("sidecar");
    let other = tempfile::tempdir().unwrap();
    let other_root = other.path().join("state");
    let manifest = other.path().join("other.yaml");
    let text = std::fs::read_to_string(common::repo_file("pods/sidecar.yaml")).unwrap();
    std::fs::write(
        &manifest,
        text.replace("  name: sidecar\n", "  name: other\n"),
    )
    .unwrap();
    // Refused with `why`, leaving no veth, pin, bridge, state or allocated address of its own.
    let refused = |env: &[(&str, &str)], why: &str| {
        let run = node.podrun_env(&["apply", "-f", manifest.to_str().unwrap()], env);
        assert_ne!(run.code, 0);
        assert!(run.stderr.contains(why), "{}", run.stderr);
        assert_eq!(node.veths(), vec![veth.clone()]);
        assert_eq!(node.sh("ls /run/netns").ok().stdout.trim(), "sidecar");
        assert!(!node.links().contains(&"podrun1".to_owned()));
        // The first root's bridge and masquerade rule stay.
        assert!(node.links().contains(&"podrun0".to_owned()));
        let nft = node.sh("nft list table inet podrun").ok().stdout;
        assert!(
            nft.contains("podrun network podrun0 10.244.0.0/24"),
            "{nft}"
        );
        let pods = std::fs::read_dir(other_root.join("pods")).map_or(0, |d| d.count());
        assert_eq!(pods, 0, "the refused pod's state stayed");
        let allocated: Vec<_> = ["podrun0", "podrun1"]
            .iter()
            .flat_map(|b| std::fs::read_dir(other_root.join("networks").join(b)).into_iter())
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
            .collect();
        assert!(allocated.is_empty(), "{allocated:?}");
    };
    let root = other_root.to_str().unwrap();
    // The first root's bridge is not the second root's: both IPAMs would hand out the same
    // addresses on it.
    refused(
        &[("PODRUN_ROOT", root)],
        &format!(
            "bridge podrun0 belongs to the pods of state root {}",
            node.root.path().display()
        ),
    );
    // Its own bridge with the same subnet would compete with podrun0's routes: refused too.
    refused(
        &[("PODRUN_ROOT", root), ("PODRUN_BRIDGE", "podrun1")],
        "pod CIDR 10.244.0.0/24 overlaps 10.244.0.1/24 on podrun0",
    );
    let env = [
        ("PODRUN_ROOT", other_root.to_str().unwrap()),
        ("PODRUN_BRIDGE", "podrun1"),
        ("PODRUN_POD_CIDR", "10.245.0.0/24"),
    ];
    // The netns dir is the node's: a pod of the first root's name is refused before anything
    // is made (its namespace could not be pinned).
    let sidecar = common::repo_file("pods/sidecar.yaml");
    let same_name = node.podrun_env(&["apply", "-f", sidecar.to_str().unwrap()], &env);
    assert_ne!(same_name.code, 0);
    assert!(
        same_name
            .stderr
            .contains("network namespace /run/netns/sidecar already exists"),
        "{}",
        same_name.stderr
    );
    assert!(!node.links().contains(&"podrun1".to_owned()));
    assert!(
        !other_root.join("pods").exists()
            || std::fs::read_dir(other_root.join("pods")).unwrap().count() == 0
    );
    let applied = node.podrun_env(&["apply", "-f", manifest.to_str().unwrap()], &env);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(
        !applied.stderr.contains("removed leftover"),
        "the empty root's apply swept another root's pod:\n{}",
        applied.stderr
    );
    // The first root's pod kept its network and its processes.
    assert!(node.links().contains(&veth), "{:?}", node.links());
    node.exec("sidecar", "curl-client", &["true"]).ok();
    for doctor in [node.podrun(&["doctor"]), node.podrun_env(&["doctor"], &env)] {
        assert_eq!(doctor.code, 0, "{}", doctor.stdout);
    }
    node.podrun_env(&["delete", "other", "--now"], &env).ok();
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

/// A state root is a directory, not a path: a supervisor whose `--root` is the same path in
/// another mount namespace (another node's tmpfs there) serves another root. `doctor --fix`,
/// or an apply sweeping an empty root, on that path here must leave it and its pod alone.
/// And a supervisor that is this root's and has no record is ended with everything it
/// started, even where no pod cgroup accounts for them (another cgroup parent here).
#[test]
fn doctor_ends_only_its_own_roots_supervisors_and_their_whole_tree() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("idle.yaml", IDLE_POD).ok();
    let supervisor = node.supervisor_pid("idle");
    let started = node.processes();
    assert!(
        started.len() >= 3,
        "supervisor, pause, container: {started:?}"
    );

    // Another node whose mount namespace has an empty tmpfs at this node's root path.
    let other = Node::with_cidr("10.244.9.0/24");
    let root = node.root.path().to_str().unwrap();
    other.sh(&format!("mount -t tmpfs tmpfs {root}")).ok();
    let same_path = [("PODRUN_ROOT", root)];
    let report = other.podrun_env(&["doctor"], &same_path);
    assert!(
        !report.stdout.contains(&format!("pid {supervisor}")),
        "another mount namespace's supervisor listed as a leftover:\n{}",
        report.stdout
    );
    other.podrun_env(&["doctor", "--fix"], &same_path);
    assert!(
        common::cmdline(supervisor).contains("__supervise"),
        "doctor --fix in another mount namespace ended the supervisor"
    );
    assert_eq!(pod_json(&node, "idle")["status"]["phase"], "Running");
    other.assert_clean();

    // This root's record gone; its pod cgroup not under the cgroup parent doctor looks at.
    let pods = node.root.path().join("pods");
    let aside = node.root.path().join("pods.aside");
    std::fs::rename(&pods, &aside).unwrap();
    let elsewhere = [("PODRUN_CGROUP_PARENT", "podrun-test-unused")];
    let fixed = node.podrun_env(&["doctor", "--fix"], &elsewhere);
    assert!(
        fixed.stdout.lines().any(|l| l.starts_with("process")
            && l.contains(&format!("supervisor pid {supervisor} "))
            && l.ends_with("removed")),
        "{}{}",
        fixed.stdout,
        fixed.stderr
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = || {
        started
            .iter()
            .filter(|p| !common::cmdline(**p).is_empty())
            .count()
    };
    while alive() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<String> = started
        .iter()
        .map(|p| common::cmdline(*p))
        .filter(|c| !c.is_empty())
        .collect();
    assert!(left.is_empty(), "the supervisor's pod still runs: {left:?}");
    std::fs::rename(&aside, &pods).unwrap();
    node.podrun(&["delete", "idle", "--now"]).ok();
    node.assert_clean();
}

/// Two state roots making the same bridge at the same moment: one owns it, the other is
/// refused (the bridge appears under its name only with its owner's alias on it, and the
/// loser's temporary bridge is gone); never both pods on one bridge with two IPAMs. Both
/// roots start empty, so each apply also sweeps the node for leftovers meanwhile: the other
/// root's pod (its cgroup, made after the sweep's scan) is not one.
#[test]
fn two_roots_racing_for_one_bridge_never_share_it() {
    require_root!();
    let node = Node::new();
    let dir = tempfile::tempdir().unwrap();
    // Pods named apart: both roots pin their netns in the node's /run/netns.
    let manifests: Vec<_> = ["racer-a", "racer-b"]
        .iter()
        .map(|name| {
            let f = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&f, format!("{{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{containers: [{{name: c, image: podrun.local/debug:1, command: [sh, -c, 'trap \"exit 0\" TERM; sleep 3600 & wait']}}]}}}}")).unwrap();
            f
        })
        .collect();
    let roots = [dir.path().join("a"), dir.path().join("b")];
    // The same subnet: two IPAMs on one bridge would hand out the same addresses.
    let env = |i: usize| [("PODRUN_ROOT", roots[i].to_str().unwrap().to_owned())];
    for round in 0..12 {
        let children: Vec<_> = (0..2)
            .map(|i| {
                let mut c = node.podrun_command(&["apply", "-f", manifests[i].to_str().unwrap()]);
                c.envs(env(i))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        let outputs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let won: Vec<usize> = (0..2).filter(|&i| outputs[i].status.success()).collect();
        let stderr: Vec<_> = outputs
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect();
        // Nothing was left to sweep: neither apply may take the other's pod for a leftover.
        assert!(
            !stderr.iter().any(|e| e.contains("removed leftover")),
            "round {round}: {stderr:?}"
        );
        assert_eq!(won.len(), 1, "round {round}: {stderr:?}");
        let (winner, loser) = (won[0], 1 - won[0]);
        // Refused as the owner's bridge, or (when the owner's address was already up as it
        // looked for a free subnet) as a subnet in use.
        assert!(
            stderr[loser].contains("bridge podrun0 belongs to the pods of state root")
                || stderr[loser].contains("pod CIDR 10.244.0.0/24 overlaps 10.244.0.1/24"),
            "round {round}: {}",
            stderr[loser]
        );
        let link = node.sh("ip -j link show podrun0").ok().stdout;
        let link: Value = serde_json::from_str(&link).unwrap();
        let alias = link[0]["ifalias"].as_str().unwrap_or_default();
        let owner = format!("podrun state root {} (id ", roots[winner].display());
        assert!(alias.starts_with(&owner), "round {round}: {alias}");
        let links = node.links();
        assert!(
            !links.iter().any(|l| l.starts_with("prn")),
            "round {round}: temporary bridge left: {links:?}"
        );
        let name = ["racer-a", "racer-b"][winner];
        let mut c = node.podrun_command(&["delete", name, "--now"]);
        c.envs(env(winner));
        assert!(c.output().unwrap().status.success());
        // Empty roots again: each next apply first sweeps what a lost state would have left,
        // while the other root's pod is being made (it must find and spare it).
        for root in &roots {
            let _ = std::fs::remove_dir_all(root.join("pods"));
        }
    }
    node.assert_clean();
}

/// The name podrun gives a root's bridge while it makes it (`prn` and FNV-1a of the state
/// root's path, a NUL, its id, a NUL and the bridge name), as `net::bridge::temporary_name`.
fn temporary_bridge_name(root: &std::path::Path, id: &str, bridge: &str) -> String {
    let key = format!("{}\0{id}\0{bridge}", root.display());
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("prn{:012x}", hash & 0xffff_ffff_ffff)
}

/// A bridge left half-made (podrun stopped between creating it under its temporary name and
/// renaming it): `doctor` lists it, `--fix` removes it, and the next apply that makes the
/// bridge removes it first by itself.
#[test]
fn a_half_made_bridge_is_found_and_removed() {
    require_root!();
    let node = Node::new();
    std::fs::write(node.root.path().join("id"), "0123456789ab\n").unwrap();
    let name = temporary_bridge_name(node.root.path(), "0123456789ab", "podrun0");
    let make = || node.sh(&format!("ip link add {name} type bridge")).ok();
    make();
    assert_doctor_lists(&node, "network", &[&format!("bridge {name}: podrun0")]);
    node.podrun(&["doctor", "--fix"]).ok();
    assert!(!node.links().contains(&name), "{:?}", node.links());
    make();
    node.apply_manifest("idle.yaml", IDLE_POD).ok();
    assert!(!node.links().contains(&name), "{:?}", node.links());
    assert!(node.links().contains(&"podrun0".to_owned()));
    node.podrun(&["delete", "idle", "--now"]).ok();
    node.assert_clean();
}

/// A pod whose host veth name is taken (here by a dummy link; in life another state root's
/// pod of the same name) fails to start, and its rollback leaves that link alone: only what
/// the pod made goes.
#[test]
fn a_failed_apply_leaves_a_link_it_did_not_make() {
    require_root!();
    let node = Node::new();
    let taken = podrun::net::host_veth_name("default/idle");
    node.sh(&format!("ip link add {taken} type veth peer name {taken}p"))
        .ok();
    let failed = node.apply_manifest("idle.yaml", IDLE_POD);
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains(&format!("create veth {taken}"))
            && failed.stderr.contains("File exists"),
        "{}",
        failed.stderr
    );
    assert!(node.links().contains(&taken), "{:?}", node.links());
    node.sh(&format!("ip link del {taken}")).ok();
    node.assert_clean();
}

/// Two state roots at the same path in different mount namespaces that share the node's
/// network (two containers on the host network, each with `/run/podrun`) are two roots: the
/// bridge's alias carries the root's id, and the second root's pod is refused on it (else both
/// IPAMs would hand out the same addresses on one bridge).
#[test]
fn a_root_at_the_same_path_in_another_mount_namespace_is_another_root() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let veth = node.host_veth("sidecar");
    let root = node.root.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("other.yaml");
    std::fs::write(&manifest, IDLE_POD).unwrap();
    // A copy of the node's mount namespace with an empty tmpfs at the same root path.
    let script = format!(
        "mount -t tmpfs tmpfs {root} && PODRUN_ROOT={root} PODRUN_CGROUP_PARENT={parent} \
         PODRUN_IMAGE_ROOT={images} {podrun} apply -f {manifest}",
        parent = node.cgroup_parent,
        images = common::image_root().display(),
        podrun = common::PODRUN,
        manifest = manifest.display(),
    );
    let refused = node.sh(&format!(
        "unshare -m --propagation private sh -c '{script}'"
    ));
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains(&format!(
            "bridge podrun0 belongs to the pods of state root {root} (id "
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(node.veths(), vec![veth]);
    node.exec("sidecar", "curl-client", &["true"]).ok();
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

/// Relative paths in the configuration (`PODRUN_ROOT=state` from the state root's parent) are
/// made absolute: the supervisor, which runs from `/`, is told the root's full path, and the
/// pod is found and removed from any other working directory.
#[test]
fn a_relative_state_root_is_made_absolute() {
    require_root!();
    let node = Node::new();
    let root = node.root.path();
    let manifest = root.join("idle.yaml");
    std::fs::write(&manifest, IDLE_POD).unwrap();
    let name = root.file_name().unwrap().to_str().unwrap();
    // The manifest path is relative too: read from the working directory.
    let relative_manifest = format!("{name}/idle.yaml");
    let mut apply =
        node.podrun_command_in(root.parent().unwrap(), &["apply", "-f", &relative_manifest]);
    apply.env("PODRUN_ROOT", name);
    let out = apply.output().expect("run podrun");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let supervisor = node.supervisor_pid("idle");
    let title = common::cmdline(supervisor);
    assert!(
        title.contains(&format!("--root {} __supervise", root.display())),
        "supervisor shows as {title:?}"
    );
    // The record's paths are the root's full ones: the netns pin, the container's log and
    // its overlay directories (the init mounts with them, from `/`).
    let info = node.inspect("idle");
    let log = info["containers"][0]["logPath"]
        .as_str()
        .unwrap_or_default();
    assert!(log.starts_with(&root.display().to_string()), "{info}");
    let bundle =
        std::fs::read_to_string(root.join("pods/default_idle/containers/c/config.json")).unwrap();
    assert!(
        bundle.contains(&format!(
            "{}/pods/default_idle/containers/c/upper",
            root.display()
        )),
        "{bundle}"
    );
    node.podrun(&["delete", "idle", "--now"]).ok();
    node.assert_clean();
}

/// A pod's delete unpins only a netns pin that holds its own network namespace: when the pin
/// at its path has come to hold another namespace (another state root's pod of that name made
/// it after this one's pin went, or `ip netns add`), that pin stays.
#[test]
fn delete_leaves_a_pin_that_holds_another_namespace() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("idle.yaml", IDLE_POD).ok();
    node.sh("umount /run/netns/idle && rm /run/netns/idle && ip netns add idle")
        .ok();
    let foreign = node.sh("stat -L -c %i /run/netns/idle").ok().stdout;
    node.podrun(&["delete", "idle", "--now"]).ok();
    let left = node.sh("stat -L -c %i /run/netns/idle && ip netns exec idle true");
    // Removed whatever the outcome (the node's own /run/netns goes with it anyway).
    let _ = node.sh("ip netns del idle");
    assert_eq!(
        left.code, 0,
        "the other namespace's pin was removed: {}",
        left.stderr
    );
    assert_eq!(left.stdout.lines().next(), foreign.lines().next());
    node.assert_clean();
}
