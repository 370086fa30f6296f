//! The OCI runtime spec (`config.json`) of a container, built from the Pod the way containerd's
//! CRI plugin builds it from the kubelet's request: process (argv, env, cwd, user,
//! capabilities, no_new_privs), root (the overlay mount point, read-only with
//! `readOnlyRootFilesystem`), the default mounts (/proc, /dev, /dev/pts, /dev/shm,
//! /dev/mqueue, /sys), the pod's /etc files and volumes, namespaces pointing at the pause's
//! namespace files, masked and read-only paths, devices.
//!
//! The init stage (`super::init`) takes the process, root, mounts, masks, user, capabilities
//! and the new mount and cgroup namespaces from this file, but it is not a runc that runs the
//! bundle alone: the supervisor has already forked it into its cgroup and PID namespace (a new
//! one, or the pause's), and it joins the pod's UTS, IPC and network namespaces by descriptors
//! received over a socket, not by the `path`s here (it may start before the pause has made
//! them). Those paths say what it joins, for a reader of the bundle. Pod-level tmpfs mounts
//! arrive as descriptors too (below).
//!
//! podrun extensions, all spelled so a plain OCI reader can ignore them: the overlay layers are
//! annotations (`io.podrun.rootfs.*`, containerd passes them to the shim beside the spec), and
//! pod-level tmpfs mounts held by the supervisor (memory emptyDirs, /dev/shm) carry the option
//! `x-podrun.pod-volume=<name>`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::{Value, json};

use crate::spec::{ContainerPlan, PodPlan, ResolvedProcess};

pub const ANNOTATION_LOWER: &str = "io.podrun.rootfs.lowerdir";
pub const ANNOTATION_UPPER: &str = "io.podrun.rootfs.upperdir";
pub const ANNOTATION_WORK: &str = "io.podrun.rootfs.workdir";
/// Mount option naming a pod-level tmpfs the supervisor holds (passed to `__init` as a fd).
pub const POD_VOLUME_OPTION: &str = "x-podrun.pod-volume=";
/// The pod's shared /dev/shm (containerd: a 64 MiB tmpfs per sandbox).
pub const SHM_VOLUME: &str = "shm";
pub const SHM_SIZE: u64 = 64 << 20;

/// containerd's default masked paths (`pkg/oci/spec.go`).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The overlay of one container run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RootfsLayout {
    /// The image's layers, bottom first (read-only lower directories).
    #[serde(
        alias = "lower",
        deserialize_with = "crate::container::image::one_or_many"
    )]
    pub lowers: Vec<PathBuf>,
    /// This container's writes: `<pod dir>/<container>/upper`.
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Mount point of the merged view; only ever mounted inside the container's namespace.
    pub merged: PathBuf,
}

impl RootfsLayout {
    pub fn new(bundle: &Path, layers: &[PathBuf]) -> Self {
        Self {
            lowers: layers.to_vec(),
            upper: bundle.join("upper"),
            work: bundle.join("work"),
            merged: bundle.join("rootfs"),
        }
    }
}

/// Where a volume mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host path (emptyDir directory, hostPath, configMap/secret files), bind-mounted.
    Bind(PathBuf),
    /// A pod-level tmpfs held by the supervisor, by volume name.
    PodTmpfs(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub destination: String,
    pub source: MountSource,
    pub read_only: bool,
}

/// Everything the spec is made of besides the pod and container plans.
pub struct SpecInput<'a> {
    pub pod: &'a PodPlan,
    pub container: &'a ContainerPlan,
    /// argv / env / cwd after the image merge.
    pub process: &'a ResolvedProcess,
    pub image_reference: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub rootfs: &'a RootfsLayout,
    /// The pod's state: its /etc files.
    pub pod_paths: &'a crate::state::PodPaths,
    pub pause_pid: i32,
    /// `<parent>/pod<uid>/<container>`, when the pod has cgroups.
    pub cgroups_path: Option<String>,
    pub oom_score_adj: i32,
    pub volumes: &'a [VolumeMount],
    pub capabilities: &'a BTreeSet<String>,
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": destination, "type": typ, "source": source, "options": options})
}

fn bind(destination: &str, source: &Path, read_only: bool) -> Value {
    let mode = if read_only { "ro" } else { "rw" };
    json!({
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", "rprivate", mode],
    })
}

fn device(path: &str, major: i64, minor: i64) -> Value {
    json!({"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0})
}

/// Every device node of the host's /dev (recursively; not /dev/pts, /dev/shm, /dev/mqueue), as
/// containerd's `WithDevices(HostDevices())` gives a privileged container.
pub fn host_devices() -> Vec<Value> {
    fn walk(dir: &std::path::Path, out: &mut Vec<Value>) {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                let name = e.file_name();
                if !matches!(name.to_str(), Some("pts" | "shm" | "mqueue")) {
                    walk(&path, out);
                }
                continue;
            }
            let typ = if kind.is_char_device() {
                "c"
            } else if kind.is_block_device() {
                "b"
            } else {
                continue;
            };
            let rdev = meta.rdev();
            out.push(json!({
                "path": path, "type": typ,
                "major": nix::sys::stat::major(rdev), "minor": nix::sys::stat::minor(rdev),
                "fileMode": meta.mode() & 0o777, "uid": meta.uid(), "gid": meta.gid(),
            }));
        }
    }
    let mut out = Vec::new();
    walk(std::path::Path::new("/dev"), &mut out);
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    out
}

/// The runtime spec of one container run.
pub fn build(input: &SpecInput) -> Spec {
    let c = input.container;
    let sc = &c.security;
    let ns = |kind: &str| crate::procfs::ns_path(input.pause_pid, kind);
    let pid_ns = if input.pod.share_process_namespace {
        json!({"type": "pid", "path": ns("pid")})
    } else {
        json!({"type": "pid"})
    };
    let shm_option = format!("{POD_VOLUME_OPTION}{SHM_VOLUME}");
    let shm_size = format!("size={}k", SHM_SIZE >> 10);
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            SHM_VOLUME,
            &[
                &shm_option,
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                &shm_size,
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            if sc.privileged {
                &["nosuid", "noexec", "nodev", "rw"][..]
            } else {
                &["nosuid", "noexec", "nodev", "ro"][..]
            },
        ),
        // The container's own cgroup, as the root of a cgroup namespace (containerd/runc).
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            if sc.privileged {
                &["nosuid", "noexec", "nodev", "relatime", "rw"][..]
            } else {
                &["nosuid", "noexec", "nodev", "relatime", "ro"][..]
            },
        ),
    ];
    let own = |dest: &str| c.volume_mounts.iter().any(|m| m.mount_path == dest);
    let ro = sc.read_only_root_filesystem;
    if !own("/etc/hosts") {
        // The kubelet mounts its hosts file read-write, even with a read-only root.
        mounts.push(bind("/etc/hosts", &input.pod_paths.etc_hosts(), false));
    }
    if !own("/etc/hostname") {
        mounts.push(bind("/etc/hostname", &input.pod_paths.etc_hostname(), ro));
    }
    if !own("/etc/resolv.conf") {
        mounts.push(bind("/etc/resolv.conf", &input.pod_paths.resolv_conf(), ro));
    }
    if !own(&c.termination_message_path) {
        // The kubelet's per-run file, written by the container, read after it ends.
        let log = input.pod_paths.termination_log(&c.name);
        mounts.push(bind(&c.termination_message_path, &log, false));
    }
    for v in input.volumes {
        mounts.push(match &v.source {
            MountSource::Bind(path) => bind(&v.destination, path, v.read_only),
            MountSource::PodTmpfs(name) => {
                let option = format!("{POD_VOLUME_OPTION}{name}");
                let mode = if v.read_only { "ro" } else { "rw" };
                mount(
                    &v.destination,
                    "tmpfs",
                    name,
                    &[&option, "nosuid", "nodev", mode],
                )
            }
        });
    }
    let caps: Vec<&String> = input.capabilities.iter().collect();
    let mut annotations = json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": c.name,
        "io.kubernetes.cri.image-name": input.image_reference,
        "io.kubernetes.cri.sandbox-name": input.pod.name,
        "io.kubernetes.cri.sandbox-namespace": input.pod.namespace,
        "io.kubernetes.cri.sandbox-uid": input.pod.uid,
        (ANNOTATION_LOWER): crate::container::overlay::encode_lowers(&input.rootfs.lowers),
        (ANNOTATION_UPPER): input.rootfs.upper,
        (ANNOTATION_WORK): input.rootfs.work,
    });
    if input.pod.share_process_namespace {
        annotations["io.kubernetes.cri.pid-namespace-mode"] = json!("POD");
    }
    let mut linux = json!({
        "namespaces": [
            pid_ns,
            {"type": "ipc", "path": ns("ipc")},
            {"type": "uts", "path": ns("uts")},
            {"type": "mount"},
            {"type": "cgroup"},
            {"type": "network", "path": ns("net")},
        ],
        "devices": [
            device("/dev/null", 1, 3),
            device("/dev/zero", 1, 5),
            device("/dev/full", 1, 7),
            device("/dev/random", 1, 8),
            device("/dev/urandom", 1, 9),
            device("/dev/tty", 5, 0),
        ],
        "rootfsPropagation": "rslave",
    });
    if !sc.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    } else if let Some(devices) = linux["devices"].as_array_mut() {
        // /dev/ptmx is the devpts symlink; /dev/console and the rest come from the host.
        let known: Vec<Value> = devices.iter().map(|d| d["path"].clone()).collect();
        devices.extend(
            host_devices()
                .into_iter()
                .filter(|d| !known.contains(&d["path"]) && d["path"] != "/dev/ptmx"),
        );
    }
    if let Some(path) = &input.cgroups_path {
        linux["cgroupsPath"] = json!(path);
    }
    // What the supervisor writes into the container's cgroup before it starts (the same rules).
    let access = crate::cgroup::DeviceAccess::for_container(sc.privileged);
    linux["resources"] = json!({"devices": access.oci_rules()});
    let env: Vec<String> = input
        .process
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": input.uid, "gid": input.gid, "additionalGids": input.additional_gids},
            "args": input.process.argv,
            "env": env,
            "cwd": input.process.working_dir.as_deref().unwrap_or("/"),
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": sc.allow_privilege_escalation == Some(false),
            "oomScoreAdj": input.oom_score_adj,
        },
        "root": {"path": input.rootfs.merged, "readonly": ro},
        "mounts": mounts,
        "annotations": annotations,
        "linux": linux,
    });
    serde_json::from_value(spec).expect("podrun builds a valid OCI runtime spec")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Object;

    #[test]
    fn host_devices_are_the_nodes_of_dev() {
        let devices = host_devices();
        let null = devices
            .iter()
            .find(|d| d["path"] == "/dev/null")
            .expect("/dev/null");
        assert_eq!(
            (
                null["type"].as_str(),
                null["major"].as_u64(),
                null["minor"].as_u64()
            ),
            (Some("c"), Some(1), Some(3))
        );
        assert!(
            devices
                .iter()
                .all(|d| !d["path"].as_str().unwrap().starts_with("/dev/pts/"))
        );
    }

    fn pod(yaml: &str) -> PodPlan {
        match crate::spec::load_str(yaml, "t").unwrap().remove(0) {
            Object::Pod(p) => p,
            _ => unreachable!(),
        }
    }

    fn spec_for(p: &PodPlan, volumes: &[VolumeMount]) -> Spec {
        let c = &p.containers[0];
        let process = ResolvedProcess {
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec![("PATH".into(), "/bin".into())],
            working_dir: None,
        };
        let rootfs = RootfsLayout::new(Path::new("/run/podrun/pods/default_p/c"), &["/img".into()]);
        let caps = crate::container::caps::effective_set(&c.security);
        build(&SpecInput {
            pod: p,
            container: c,
            process: &process,
            image_reference: "podrun.local/debug:1",
            uid: 1000,
            gid: 1000,
            additional_gids: vec![],
            rootfs: &rootfs,
            pod_paths: &crate::state::PodPaths::new("/run/podrun/pods/default_p"),
            pause_pid: 42,
            cgroups_path: Some("podrun/podX/c".into()),
            oom_score_adj: 1000,
            volumes,
            capabilities: &caps,
        })
    }

    #[test]
    fn namespaces_point_at_the_pause() {
        let p = pod(
            "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: c, image: i}]}}",
        );
        let spec = spec_for(&p, &[]);
        let v = serde_json::to_value(&spec).unwrap();
        let ns = &v["linux"]["namespaces"];
        assert_eq!(ns[0], json!({"type": "pid"}));
        assert_eq!(ns[1]["path"], "/proc/42/ns/ipc");
        assert_eq!(ns[4], json!({"type": "cgroup"}));
        assert_eq!(ns[5], json!({"type": "network", "path": "/proc/42/ns/net"}));
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert_eq!(v["root"]["path"], "/run/podrun/pods/default_p/c/rootfs");
        assert_eq!(v["annotations"][ANNOTATION_LOWER], "/img");
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/dev/shm",
                "/sys",
                "/sys/fs/cgroup",
                "/etc/hosts",
                "/etc/hostname",
                "/etc/resolv.conf",
                "/dev/termination-log"
            ]
        );
        assert_eq!(v["linux"]["maskedPaths"].as_array().unwrap().len(), 11);
    }

    #[test]
    fn security_context_and_shared_pid() {
        let p = pod(
            "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {shareProcessNamespace: true, containers: [{name: c, image: i, securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_RAW]}}}]}}",
        );
        let vols = [VolumeMount {
            destination: "/cache".into(),
            source: MountSource::PodTmpfs("cache".into()),
            read_only: false,
        }];
        let v = serde_json::to_value(spec_for(&p, &vols)).unwrap();
        assert_eq!(v["linux"]["namespaces"][0]["path"], "/proc/42/ns/pid");
        assert_eq!(
            v["process"]["capabilities"]["effective"],
            json!(["CAP_NET_RAW"])
        );
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["root"]["readonly"], true);
        let last = v["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["destination"], "/cache");
        assert_eq!(last["options"][0], "x-podrun.pod-volume=cache");
    }
}
