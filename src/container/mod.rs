//! Starting a container process: fork, join the pause's UTS/IPC/net namespaces with `setns` on
//! namespace file descriptors (never by name), start a process group, exec the command.
//!
//! Until images land, containers run on the host filesystem; the image name is only recorded.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::sandbox::NamespaceFds;
use crate::spec::ResolvedProcess;

/// PATH given to containers that do not set one (the usual image default; runc does the same).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container {container}: open log {path}: {source}")]
    Log {
        container: String,
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("container {container}: exec {argv0:?}: {source}")]
    Exec {
        container: String,
        argv0: String,
        source: io::Error,
    },
    #[error("container {container}: working directory {dir:?}: {source}")]
    WorkingDir {
        container: String,
        dir: String,
        source: io::Error,
    },
    #[error("container {container}: empty command")]
    EmptyCommand { container: String },
}

/// The environment a container starts with: defaults a runtime/kubelet provides, then the
/// container's own `env` (which wins).
pub fn environment(process: &ResolvedProcess, hostname: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOSTNAME".into(), hostname.into()),
        ("HOME".into(), "/root".into()),
    ];
    for (k, v) in &process.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Open (append) the log file of one container run; stdout and stderr both go there.
pub fn open_log(container: &str, path: &Path) -> Result<File, ContainerError> {
    let err = |source| ContainerError::Log {
        container: container.to_owned(),
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)
}

/// Fork, join the sandbox namespaces, exec. Returns once exec succeeded (std reports an exec
/// failure of the child back through a CLOEXEC pipe, so a bad command fails here).
/// Where a container process is placed before it execs.
pub struct Placement {
    /// Open `cgroup.procs` files of the container's cgroup.
    pub cgroup_procs: Vec<std::os::fd::RawFd>,
    /// The kubelet's value for the pod's QoS class.
    pub oom_score_adj: i32,
}

pub fn spawn(
    container: &str,
    process: &ResolvedProcess,
    hostname: &str,
    ns: &NamespaceFds,
    placement: Placement,
    log: File,
) -> Result<Child, ContainerError> {
    let argv0 = process
        .argv
        .first()
        .ok_or_else(|| ContainerError::EmptyCommand {
            container: container.to_owned(),
        })?;
    if let Some(dir) = &process.working_dir
        && !Path::new(dir).is_dir()
    {
        let source = io::Error::new(io::ErrorKind::NotFound, "no such directory");
        return Err(ContainerError::WorkingDir {
            container: container.to_owned(),
            dir: dir.clone(),
            source,
        });
    }
    let log_err = |source| ContainerError::Log {
        container: container.to_owned(),
        path: "stdout".into(),
        source,
    };
    let mut cmd = Command::new(argv0);
    cmd.args(&process.argv[1..])
        .env_clear()
        .envs(environment(process, hostname))
        .current_dir(process.working_dir.as_deref().unwrap_or("/"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(log_err)?)
        .stderr(log);
    let setup = crate::sys::ChildSetup {
        cgroup_procs: placement.cgroup_procs,
        oom_score_adj: Some(placement.oom_score_adj),
        join: ns.raw(),
        new_process_group: true,
        ..Default::default()
    };
    crate::sys::before_exec(&mut cmd, setup);
    cmd.spawn().map_err(|source| ContainerError::Exec {
        container: container.to_owned(),
        argv0: argv0.clone(),
        source,
    })
}
