//! `podrun __init <bundle>`: the container's init stage (runc's `init`), a fresh single-threaded
//! process the supervisor forked into the container's cgroup and, unless shared, as PID 1 of a
//! new PID namespace (when shared, into the pause's). It may start before the pause has made
//! the pod's namespaces. It reads `<bundle>/config.json` and:
//!
//! 1. unshares a mount namespace and makes every mount in it a slave (`rootfsPropagation:
//!    rslave`), so nothing it mounts ever propagates to the host;
//! 2. mounts the overlay (image lower layer, per-container upper) at the root path, with the
//!    mount API, so layer paths need no escaping;
//! 3. mounts /proc (of its PID namespace), /dev (tmpfs + device nodes, devpts, the pod's
//!    /dev/shm), the pod's /etc files and the volumes, masks and read-only-binds the kernel
//!    paths containerd hides;
//! 4. receives the pod's UTS, IPC and network namespaces as descriptors (SCM_RIGHTS on the
//!    namespace socket, [`super::channel`]) and joins them, then mounts what belongs to them:
//!    /dev/mqueue (IPC) and /sys (network), read-only, with its cgroup mounts and masks;
//! 5. `pivot_root`s into the root, detaches the old one, remounts the root read-only when asked;
//! 6. drops capabilities (bounding first), sets groups/gid/uid, sets no_new_privs;
//! 7. waits at its start gate (a byte on its channel, [`super::channel`]) until the supervisor
//!    has wired the pod network, then execs the container's process. The gate closing
//!    without that byte (the supervisor died or gave up) ends the init instead.
//!
//! Any failure is written to the channel ([`super::channel::InitFailure`]) before exiting, so
//! the supervisor can fail the start with the reason; a successful exec closes the channel
//! (CLOEXEC) and the supervisor reads EOF. Pod-level tmpfs mounts arrive as descriptors named in
//! the environment, numbered by [`super::channel::InitFds`].

use std::collections::HashMap;
use std::fs;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use oci_spec::runtime::{Mount, Process, Spec};

use crate::cgroup;

use super::oci::{ANNOTATION_LOWER, ANNOTATION_UPPER, ANNOTATION_WORK, POD_VOLUME_OPTION};

/// Why the init stage could not start the container; its text goes to the supervisor on the
/// channel ([`super::channel::InitFailure`]), and from there into the container's status.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A step failed: what it did (naming the path, mount or id), and the system's answer.
    #[error("{what}: {cause}")]
    Step { what: String, cause: String },
    /// The channel closed, or said what the init did not wait for.
    #[error(transparent)]
    Channel(#[from] super::channel::ChannelError),
    /// The bundle or the process asks for what cannot be done (the message names it).
    #[error("{0}")]
    Refused(String),
}

impl From<String> for InitError {
    fn from(message: String) -> Self {
        Self::Refused(message)
    }
}

impl From<&str> for InitError {
    fn from(message: &str) -> Self {
        Self::Refused(message.to_owned())
    }
}

type Result<T> = std::result::Result<T, InitError>;

fn ctx<T, E: std::fmt::Display>(
    r: std::result::Result<T, E>,
    what: impl FnOnce() -> String,
) -> Result<T> {
    r.map_err(|e| InitError::Step {
        what: what(),
        cause: e.to_string(),
    })
}

/// Entry point of `podrun __init`. Only returns on failure (the exit status).
pub fn main(bundle: &Path) -> i32 {
    let inherited = super::channel::InheritedFds::from_env();
    let err = match run(bundle, &inherited.volumes, inherited.channel.as_ref()) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    match inherited.channel {
        Some(fd) => {
            let _ = super::channel::InitFailure(err.to_string()).send(fd);
        }
        None => eprintln!("podrun init: {err}"),
    }
    1
}

fn run(
    bundle: &Path,
    fds: &HashMap<String, OwnedFd>,
    channel: Option<&OwnedFd>,
) -> Result<std::convert::Infallible> {
    let config = crate::state::bundle_config(bundle);
    let spec = ctx(Spec::load(&config), || format!("read {}", config.display()))?;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or("config.json has no root")?;
    // The process is already in its cgroup (placed before exec): that becomes the root of its
    // cgroup namespace, so /proc/self/cgroup and /sys/fs/cgroup show the container's own.
    let mut flags = CloneFlags::CLONE_NEWNS;
    if wants_namespace(&spec, "cgroup") {
        flags |= CloneFlags::CLONE_NEWCGROUP;
    }
    ctx(unshare(flags), || {
        "unshare mount and cgroup namespaces".into()
    })?;
    ctx(
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        ),
        || "make / rslave".into(),
    )?;
    mount_rootfs(&spec, &root)?;
    // What does not depend on the pod's namespaces first (the pause may still be making
    // them), then, once joined, what does.
    for late in [false, true] {
        if late && let Some(channel) = channel {
            join_pod_namespaces(channel)?;
        }
        for m in spec.mounts().iter().flatten() {
            if needs_pod_namespaces(&m.destination().to_string_lossy()) == late {
                mount_one(&root, m, fds, bundle)?;
            }
        }
        if !late {
            make_devices(&spec, &root)?;
        }
        if let Some(linux) = spec.linux() {
            for p in linux.masked_paths().iter().flatten() {
                if needs_pod_namespaces(p) == late {
                    mask_path(&root, p)?;
                }
            }
            for p in linux.readonly_paths().iter().flatten() {
                if needs_pod_namespaces(p) == late {
                    readonly_path(&root, p)?;
                }
            }
        }
    }
    pivot_into(&root)?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        ctx(
            mount(None::<&str>, "/", None::<&str>, flags, None::<&str>),
            || "remount / read-only".into(),
        )?;
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or("config.json has no process")?;
    enter_cwd(process)?;
    let program = find_program(process)?;
    let env = environment(process);
    apply_credentials(process)?;
    let args = process.args().clone().unwrap_or_default();
    if let Some(channel) = channel {
        Ok::<(), InitError>(super::channel::wait_at_gate(channel)?)?;
    }
    // Nothing but 0-2 goes into the container (the channel closes with the exec: that is the
    // supervisor's sign that it worked), as runc's close_range before its exec.
    crate::sys::close_inherited_fds();
    let err = Command::new(&program)
        .arg0(&args[0])
        .args(&args[1..])
        .env_clear()
        .envs(env)
        .exec();
    Err(format!(
        "unable to start container process: exec: \"{}\": {err}",
        args[0]
    )
    .into())
}

/// Container paths whose mounts belong to the pod's namespaces: /sys shows the network
/// namespace of whoever mounts it (sysfs), /dev/mqueue the IPC namespace.
fn needs_pod_namespaces(path: &str) -> bool {
    ["/sys", "/dev/mqueue"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Receive the pod's namespaces (UTS, IPC, network: one message, their descriptors as
/// SCM_RIGHTS) and join them. The channel closing first (the pause never came up, the
/// supervisor gave up) ends the init.
fn join_pod_namespaces(channel: &OwnedFd) -> Result<()> {
    let received = super::channel::receive_namespaces(channel)?;
    for fd in &received {
        ctx(nix::sched::setns(fd, CloneFlags::empty()), || {
            "join the pod's namespaces".into()
        })?;
    }
    Ok(())
}

fn annotation<'a>(spec: &'a Spec, key: &str) -> Result<&'a str> {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
        .ok_or_else(|| format!("config.json lacks annotation {key}").into())
}

fn mount_rootfs(spec: &Spec, root: &Path) -> Result<()> {
    let lower = annotation(spec, ANNOTATION_LOWER)?;
    let upper = annotation(spec, ANNOTATION_UPPER)?;
    let work = annotation(spec, ANNOTATION_WORK)?;
    let lowers = super::overlay::decode_lowers(lower);
    ctx(
        super::overlay::mount_overlay(&lowers, Path::new(upper), Path::new(work), root),
        || {
            format!(
                "mount overlay (lower {lower}, upper {upper}) at {}",
                root.display()
            )
        },
    )
}

fn wants_namespace(spec: &Spec, kind: &str) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .into_iter()
        .flatten()
        .any(|n| n.typ().to_string() == kind && n.path().is_none())
}

/// `/sys/fs/cgroup` as runc mounts it: cgroup2 on a unified host; on v1, a tmpfs with one
/// mount per hierarchy (named as on the host, with the host's symlinks such as `cpu`). Mounted
/// from inside the new cgroup namespace, each shows the container's own cgroup as its root.
fn mount_cgroup(target: &Path, flags: MsFlags) -> Result<()> {
    let ro = flags.contains(MsFlags::MS_RDONLY);
    let base =
        (flags & !MsFlags::MS_RDONLY) | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mkdir_p(target)?;
    let host = Path::new(cgroup::DEFAULT_ROOT);
    if host.join("cgroup.controllers").exists() {
        let f = if ro { base | MsFlags::MS_RDONLY } else { base };
        return ctx(
            mount(Some("cgroup2"), target, Some("cgroup2"), f, None::<&str>),
            || format!("mount cgroup2 at {}", target.display()),
        );
    }
    ctx(
        mount(Some("tmpfs"), target, Some("tmpfs"), base, Some("mode=755")),
        || format!("mount tmpfs at {}", target.display()),
    )?;
    // Read once: every read renders the whole mount table again (~0.2 ms on a v1 host).
    let mounts =
        cgroup::parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
    for e in fs::read_dir(host).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(to) = fs::read_link(&path) {
                let _ = std::os::unix::fs::symlink(to, target.join(&name));
            }
            continue;
        }
        // A v1 hierarchy's options name its controllers (or `name=systemd`); `unified` is v2.
        let Some((fstype, options)) = cgroup::cgroup_hierarchy_at(&mounts, &path) else {
            continue;
        };
        let dest = target.join(&name);
        mkdir_p(&dest)?;
        let f = if ro { base | MsFlags::MS_RDONLY } else { base };
        ctx(
            mount(
                Some("cgroup"),
                &dest,
                Some(fstype.as_str()),
                f,
                Some(options.as_str()),
            ),
            || format!("mount cgroup {name} at {}", dest.display()),
        )?;
    }
    if ro {
        remount_ro(target, base)?;
    }
    Ok(())
}

/// A path for the classic overlay options: `\`, `:` and `,` escaped with a backslash.
/// `root` + `path`, resolving symlinks of the image inside `root` (never above it), like
/// runc's securejoin: a hostile image cannot point a mount target at the host.
pub fn secure_join(root: &Path, path: &str) -> PathBuf {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        let mut candidate = PathBuf::new();
        candidate.extend(parts.iter());
        candidate.push(&part);
        match read_link_under(root, &candidate) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    parts.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(p) => pending.push(p.to_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => parts.push(part),
        }
    }
    let mut out = root.to_owned();
    out.extend(parts.iter());
    out
}

/// `readlink` of `rel` inside `root`, walked from an open descriptor of `root` (kept for the
/// next call with the same root): the long path to the container's root is not walked again
/// for every component of every mount target (~60 targets of a few components each).
fn read_link_under(root: &Path, rel: &Path) -> std::io::Result<PathBuf> {
    use std::cell::RefCell;
    thread_local! {
        static ROOT: RefCell<Option<(PathBuf, OwnedFd)>> = const { RefCell::new(None) };
    }
    ROOT.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.as_ref().is_none_or(|(path, _)| path != root) {
            let flags = nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC;
            let fd = nix::fcntl::open(root, flags, Mode::empty())?;
            *cached = Some((root.to_owned(), fd));
        }
        let (_, fd) = cached.as_ref().expect("set above");
        Ok(nix::fcntl::readlinkat(fd, rel)?.into())
    })
}

fn mkdir_p(path: &Path) -> Result<()> {
    ctx(fs::create_dir_all(path), || {
        format!("mkdir {}", path.display())
    })
}

/// Create `target` as a file (for a file bind mount) if it does not exist.
fn touch(target: &Path) -> Result<()> {
    if let Some(parent) = target.parent() {
        mkdir_p(parent)?;
    }
    if target.exists() {
        return Ok(());
    }
    ctx(
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(target),
        || format!("create {}", target.display()),
    )
    .map(drop)
}

/// Split OCI mount options into flags and filesystem data.
fn mount_flags(options: &[String]) -> (MsFlags, Vec<String>) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "rbind" | "bind" | "rprivate" | "private" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            o if o.starts_with("x-") => {}
            o => data.push(o.to_owned()),
        }
    }
    (flags, data)
}

/// A recursive bind mount of `source` at `target`; `what` names it in the error.
fn rbind(source: &Path, target: &Path, what: impl FnOnce() -> String) -> Result<()> {
    ctx(
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
        what,
    )
}

fn remount_ro(target: &Path, flags: MsFlags) -> Result<()> {
    let flags = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    ctx(
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>),
        || format!("remount {} read-only", target.display()),
    )
}

fn mount_one(root: &Path, m: &Mount, fds: &HashMap<String, OwnedFd>, bundle: &Path) -> Result<()> {
    let dest = m.destination().to_string_lossy().into_owned();
    let target = secure_join(root, &dest);
    let options = m.options().clone().unwrap_or_default();
    let (flags, data) = mount_flags(&options);
    let typ = m.typ().as_deref().unwrap_or("");
    if let Some(name) = options
        .iter()
        .find_map(|o| o.strip_prefix(POD_VOLUME_OPTION))
    {
        let fd = fds
            .get(name)
            .ok_or_else(|| format!("pod volume {name} was not passed to the init"))?;
        mkdir_p(&target)?;
        match crate::sys::clone_mount(fd.as_fd()) {
            Ok(clone) => ctx(crate::sys::move_mount(clone.as_fd(), &target), || {
                format!("mount pod volume {name} at {dest}")
            })?,
            // Older kernels cannot clone a detached mount: use the pod's directory for
            // it instead (the supervisor made it and said so in a Warning event).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let dir = crate::state::PodPaths::of_bundle(bundle)
                    .ok_or_else(|| format!("bundle {} is not a pod's", bundle.display()))?
                    .tmpfs_fallback(name);
                rbind(&dir, &target, || {
                    format!("bind {} for pod volume {name}", dir.display())
                })?;
            }
            Err(e) => return Err(format!("clone pod volume {name}: {e}").into()),
        }
        if flags.contains(MsFlags::MS_RDONLY) {
            remount_ro(&target, flags & !MsFlags::MS_RDONLY)?;
        }
        return Ok(());
    }
    if typ == "cgroup" {
        return mount_cgroup(&target, flags);
    }
    let source = m.source().clone().unwrap_or_default();
    if typ == "bind" {
        if source.is_dir() {
            mkdir_p(&target)?;
        } else {
            touch(&target)?;
        }
        rbind(&source, &target, || {
            format!("bind {} at {dest}", source.display())
        })?;
        ctx(
            mount(
                None::<&str>,
                &target,
                None::<&str>,
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                None::<&str>,
            ),
            || format!("make {dest} rprivate"),
        )?;
        if flags.contains(MsFlags::MS_RDONLY) {
            remount_ro(&target, flags & !MsFlags::MS_RDONLY)?;
        }
        return Ok(());
    }
    mkdir_p(&target)?;
    let data = data.join(",");
    // Read-only per mount, never per superblock: a pod's containers share one sysfs (per
    // network namespace) and one mqueue (per IPC namespace) superblock, and whichever
    // container mounted it first would otherwise make it read-only for all, a privileged
    // one's rw /sys included (depending on which init got there first).
    ctx(
        mount(
            Some(source.as_os_str()),
            &target,
            Some(typ),
            flags & !MsFlags::MS_RDONLY,
            Some(data.as_str()).filter(|d| !d.is_empty()),
        ),
        || format!("mount {typ} at {dest}"),
    )?;
    if flags.contains(MsFlags::MS_RDONLY) {
        remount_ro(&target, flags & !MsFlags::MS_RDONLY)?;
    }
    if dest == "/dev/pts" {
        let ptmx = secure_join(root, "/dev/ptmx");
        let _ = fs::remove_file(&ptmx);
        ctx(std::os::unix::fs::symlink("pts/ptmx", &ptmx), || {
            "symlink /dev/ptmx".into()
        })?;
    }
    Ok(())
}

/// Device nodes (runc makes them with mknod outside user namespaces) and /dev's symlinks.
fn make_devices(spec: &Spec, root: &Path) -> Result<()> {
    let devices = spec.linux().as_ref().and_then(|l| l.devices().clone());
    for d in devices.iter().flatten() {
        let target = secure_join(root, &d.path().to_string_lossy());
        if let Some(parent) = target.parent() {
            mkdir_p(parent)?;
        }
        let _ = fs::remove_file(&target);
        let mode = d.file_mode().unwrap_or(0o666);
        let dev = makedev(d.major() as u64, d.minor() as u64);
        let kind = match d.typ() {
            oci_spec::runtime::LinuxDeviceType::B => SFlag::S_IFBLK,
            _ => SFlag::S_IFCHR,
        };
        ctx(
            mknod(&target, kind, Mode::from_bits_truncate(mode), dev),
            || format!("mknod {}", d.path().display()),
        )?;
        if let (Some(uid), Some(gid)) = (d.uid(), d.gid())
            && (uid, gid) != (0, 0)
        {
            ctx(
                std::os::unix::fs::chown(&target, Some(uid), Some(gid)),
                || format!("chown {}", d.path().display()),
            )?;
        }
        // mknod applies the umask; the node must have exactly the configured mode.
        ctx(
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)),
            || format!("chmod {}", d.path().display()),
        )?;
    }
    for (link, to) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/core", "/proc/kcore"),
    ] {
        let path = secure_join(root, link);
        if fs::symlink_metadata(&path).is_err() {
            ctx(std::os::unix::fs::symlink(to, &path), || {
                format!("symlink {link}")
            })?;
        }
    }
    Ok(())
}

fn mask_path(root: &Path, path: &str) -> Result<()> {
    let target = secure_join(root, path);
    let Ok(meta) = fs::metadata(&target) else {
        return Ok(());
    };
    let r = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        let null = secure_join(root, "/dev/null");
        mount(
            Some(&null),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    ctx(r, || format!("mask {path}"))
}

fn readonly_path(root: &Path, path: &str) -> Result<()> {
    let target = secure_join(root, path);
    if fs::symlink_metadata(&target).is_err() {
        return Ok(());
    }
    rbind(&target, &target, || format!("bind {path}"))?;
    remount_ro(
        &target,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )
    .or_else(|_| remount_ro(&target, MsFlags::empty()))
}

/// runc's `pivot_root(".", ".")`: the old root ends up stacked under the new one and is
/// detached at once, so no host path stays reachable.
fn pivot_into(root: &Path) -> Result<()> {
    ctx(std::env::set_current_dir(root), || {
        format!("chdir {}", root.display())
    })?;
    ctx(nix::unistd::pivot_root(".", "."), || "pivot_root".into())?;
    ctx(umount2(".", MntFlags::MNT_DETACH), || {
        "detach old root".into()
    })?;
    ctx(std::env::set_current_dir("/"), || "chdir /".into())
}

fn enter_cwd(process: &Process) -> Result<()> {
    let cwd = process.cwd();
    if !cwd.is_dir() {
        // runc creates a missing working directory (as the kubelet's workingDir expects).
        ctx(fs::create_dir_all(cwd), || {
            format!("working directory {}", cwd.display())
        })?;
    }
    ctx(std::env::set_current_dir(cwd), || {
        format!("chdir to cwd (\"{}\") set in config.json", cwd.display())
    })
}

fn env_value<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(name)?.strip_prefix('='))
}

/// The environment to exec with; `HOME` from the user's passwd entry when not set (runc).
pub fn environment(process: &Process) -> Vec<(String, String)> {
    let env = process.env().clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if env_value(&env, "HOME").is_none() {
        let passwd = super::image::read_db(Path::new("/etc/passwd"));
        let home = super::image::by_id(&passwd, process.user().uid())
            .and_then(|(_, f)| f.get(3).cloned())
            .unwrap_or_else(|| "/".into());
        out.push(("HOME".into(), home));
    }
    out
}

/// `argv[0]` as exec would find it (in the container's PATH), or runc's error.
pub fn find_program(process: &Process) -> Result<PathBuf> {
    let args = process.args().clone().unwrap_or_default();
    let argv0 = args.first().ok_or("no command specified")?;
    lookup_path(argv0, &process.env().clone().unwrap_or_default())
}

pub fn lookup_path(argv0: &str, env: &[String]) -> Result<PathBuf> {
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if argv0.contains('/') {
        let p = PathBuf::from(argv0);
        return match fs::metadata(&p) {
            Ok(_) if executable(&p) => Ok(p),
            Ok(_) => Err(format!(
                "unable to start container process: exec: \"{argv0}\": permission denied"
            )
            .into()),
            Err(e) => Err(format!(
                "unable to start container process: exec: \"{argv0}\": stat {argv0}: {}",
                lower_io(&e)
            )
            .into()),
        };
    }
    let path = env_value(env, "PATH").unwrap_or(super::DEFAULT_PATH);
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(argv0))
        .find(|p| executable(p))
        .ok_or_else(|| {
            format!(
                "unable to start container process: exec: \"{argv0}\": executable file not found in $PATH"
            )
            .into()
        })
}

/// Go's wording of an errno ("no such file or directory").
fn lower_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

fn cap_set(names: Option<&oci_spec::runtime::Capabilities>) -> caps::CapsHashSet {
    names
        .into_iter()
        .flatten()
        // oci-spec prints `NET_RAW`; the caps crate wants `CAP_NET_RAW`.
        .filter_map(|c| super::caps::parse(&c.to_string()))
        .collect()
}

/// Capabilities (bounding set first, while still fully privileged), groups, gid, uid (keeping
/// the permitted set across setuid), the remaining capability sets, no_new_privs: youki's
/// order. After this the process can only exec.
pub fn apply_credentials(process: &Process) -> Result<()> {
    use caps::CapSet;
    let caps = process.capabilities().clone().unwrap_or_default();
    let bounding = cap_set(caps.bounding().as_ref());
    let current = ctx(caps::read(None, CapSet::Bounding), || {
        "read bounding set".into()
    })?;
    for c in current.difference(&bounding) {
        ctx(caps::drop(None, CapSet::Bounding, *c), || {
            format!("drop {c} from bounding set")
        })?;
    }
    let user = process.user();
    let (uid, gid) = (user.uid(), user.gid());
    let groups: Vec<nix::unistd::Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    ctx(nix::unistd::setgroups(&groups), || "setgroups".into())?;
    let g = nix::unistd::Gid::from_raw(gid);
    ctx(nix::unistd::setresgid(g, g, g), || format!("setgid {gid}"))?;
    ctx(nix::sys::prctl::set_keepcaps(true), || {
        "keep capabilities".into()
    })?;
    let u = nix::unistd::Uid::from_raw(uid);
    ctx(nix::unistd::setresuid(u, u, u), || format!("setuid {uid}"))?;
    ctx(nix::sys::prctl::set_keepcaps(false), || {
        "reset keepcaps".into()
    })?;
    let empty = caps::CapsHashSet::new();
    // Only what this process holds can be kept (a privileged container on a host whose root
    // lacks some capabilities gets all of those it has, as Docker does).
    let held = ctx(caps::read(None, CapSet::Permitted), || {
        "read permitted set".into()
    })?;
    let effective: caps::CapsHashSet = cap_set(caps.effective().as_ref())
        .intersection(&held)
        .copied()
        .collect();
    let permitted: caps::CapsHashSet = cap_set(caps.permitted().as_ref())
        .intersection(&held)
        .copied()
        .collect();
    let inheritable = cap_set(caps.inheritable().as_ref());
    ctx(caps::set(None, CapSet::Inheritable, &empty), || {
        "clear inheritable".into()
    })?;
    let _ = caps::clear(None, CapSet::Ambient);
    // Effective first (it must stay within permitted), then permitted, then the rest.
    let within: caps::CapsHashSet = effective.intersection(&permitted).copied().collect();
    ctx(caps::set(None, CapSet::Effective, &within), || {
        "set effective caps".into()
    })?;
    ctx(caps::set(None, CapSet::Permitted, &permitted), || {
        "set permitted caps".into()
    })?;
    ctx(caps::set(None, CapSet::Inheritable, &inheritable), || {
        "set inheritable caps".into()
    })?;
    let ambient = cap_set(caps.ambient().as_ref());
    for c in &ambient {
        let _ = caps::raise(None, CapSet::Ambient, *c);
    }
    if process.no_new_privileges() == Some(true) {
        ctx(nix::sys::prctl::set_no_new_privs(), || {
            "set no_new_privs".into()
        })?;
    }
    Ok(())
}

/// Resolve `name` in the current root's PATH for `podrun exec`.
pub fn exec_program(argv0: &str, env: &[String]) -> Result<PathBuf> {
    lookup_path(argv0, env)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_sys_and_mqueue_wait_for_the_pod_namespaces() {
        for path in [
            "/sys",
            "/sys/fs/cgroup",
            "/sys/firmware",
            "/dev/mqueue",
            "/dev/mqueue/q",
        ] {
            assert!(super::needs_pod_namespaces(path), "{path}");
        }
        for path in [
            "/system",
            "/proc/sys",
            "/dev",
            "/dev/mqueues",
            "/etc/hosts",
            "/",
        ] {
            assert!(!super::needs_pod_namespaces(path), "{path}");
        }
    }

    use super::*;

    #[test]
    fn secure_join_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc/hosts")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("etc/up")).unwrap();
        assert_eq!(secure_join(root, "/etc/hosts"), root.join("etc/passwd"));
        assert_eq!(secure_join(root, "/etc/up/x"), root.join("x"));
        assert_eq!(secure_join(root, "/../../tmp"), root.join("tmp"));
    }

    #[test]
    fn path_lookup_errors_like_runc() {
        let env = vec!["PATH=/nonexistent-dir".to_string()];
        assert_eq!(
            lookup_path("sleepx", &env).unwrap_err().to_string(),
            "unable to start container process: exec: \"sleepx\": executable file not found in $PATH"
        );
        assert_eq!(
            lookup_path("/nonexistent/binary", &env)
                .unwrap_err()
                .to_string(),
            "unable to start container process: exec: \"/nonexistent/binary\": stat /nonexistent/binary: no such file or directory"
        );
    }
}
