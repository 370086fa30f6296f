//! The kubectl-shaped command line: one file per verb.

mod apply;
mod config_objects;
mod delete;
mod describe;
mod describe_workload;
mod doctor;
mod exec;
mod get;
mod get_watch;
mod image;
mod inspect;
mod jobs;
mod logs;
mod output;
pub mod pod_object;
mod pull_progress;
mod rollout;
mod serve;
mod table;
mod terminal;
mod top;
mod wait;
pub mod workload_object;
pub mod workloads;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config};
use crate::state::{PodKey, PodRecord};

#[derive(Debug, Parser)]
#[command(
    name = "podrun",
    version,
    about = "Run Kubernetes pods on one Linux machine with real namespaces, veth and cgroups"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// True for the hidden per-pod supervisor mode (it keeps its own signal dispositions).
    pub fn is_supervisor(&self) -> bool {
        matches!(
            self.command,
            Command::Supervise { .. } | Command::Controller { .. }
        )
    }

    /// True for the long-running processes that write to sockets whose peer may go at any
    /// time (`podrun serve`): they keep Rust's ignored SIGPIPE, so a vectored write (writev
    /// has no MSG_NOSIGNAL) to a client that left is an EPIPE, not the server's death.
    pub fn keeps_sigpipe_ignored(&self) -> bool {
        self.is_supervisor() || matches!(self.command, Command::Serve(..))
    }

    /// True for verbs whose process may become a supervisor (`apply` forks them): their log
    /// lines end up in a file, so no terminal colours.
    pub fn may_fork_supervisors(&self) -> bool {
        matches!(
            self.command,
            Command::Apply { .. } | Command::Controller { .. }
        )
    }
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// State root (records, logs, IPAM).
    #[arg(
        long,
        global = true,
        env = "PODRUN_ROOT",
        default_value = config::DEFAULT_ROOT
    )]
    pub root: PathBuf,
    /// Node bridge the pods are attached to.
    #[arg(long, global = true, env = "PODRUN_BRIDGE", default_value = crate::net::DEFAULT_BRIDGE)]
    pub bridge: String,
    /// Node pod CIDR; the bridge gets its first address as the pods' gateway.
    #[arg(
        long,
        global = true,
        env = "PODRUN_POD_CIDR",
        default_value = crate::net::DEFAULT_CIDR
    )]
    pub pod_cidr: ipnet::Ipv4Net,
    /// Directory where pod network namespaces are pinned (`ip netns` reads /run/netns).
    #[arg(
        long,
        global = true,
        env = "PODRUN_NETNS_DIR",
        default_value = config::DEFAULT_NETNS_DIR
    )]
    pub netns_dir: PathBuf,
    /// Root of the cgroup filesystem (v2, or the v1 controller mounts of a hybrid host).
    #[arg(
        long,
        global = true,
        env = "PODRUN_CGROUP_ROOT",
        default_value = crate::cgroup::DEFAULT_ROOT
    )]
    pub cgroup_root: PathBuf,
    /// Parent cgroup of the pod cgroups (pods are `<parent>/pod<uid>`).
    #[arg(
        long,
        global = true,
        env = "PODRUN_CGROUP_PARENT",
        default_value = crate::cgroup::DEFAULT_PARENT
    )]
    pub cgroup_parent: String,
    /// Image store: imported root filesystems and their configs (persistent).
    #[arg(
        long,
        global = true,
        env = "PODRUN_IMAGE_ROOT",
        default_value = crate::image::DEFAULT_IMAGE_ROOT
    )]
    pub image_root: PathBuf,
    /// Where images are pulled from: mirrors tried before a registry, registries allowed over
    /// plain HTTP, extra CAs (containers-registries.conf v2 format).
    #[arg(
        long,
        global = true,
        env = "PODRUN_REGISTRIES_CONF",
        default_value = crate::image::DEFAULT_REGISTRIES_CONF
    )]
    pub registries_conf: PathBuf,
    /// Namespace of the pods addressed by name (default "default"); with a manifest
    /// (apply, delete -f) it also places the objects that name none.
    #[arg(short = 'n', long, global = true, env = "PODRUN_NAMESPACE")]
    pub namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the pods of a Pod or Deployment manifest (YAML or JSON, multi-document).
    Apply {
        /// Manifest file ("-" for stdin).
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: Option<PathBuf>,
        #[arg(value_name = "FILE", conflicts_with = "file")]
        positional: Option<PathBuf>,
    },
    /// List pods (`get pods [NAME...] [-o wide|json|yaml|name]`).
    Get(get::GetArgs),
    /// Show a pod's containers, states, IP, sandbox and events (or a Deployment's,
    /// ReplicaSet's, Job's spec and status).
    Describe {
        /// `pod` (optional, or `deployment`, `replicaset`, `job`) then the name.
        #[arg(required = true, num_args = 1..=2, value_name = "[pod] NAME")]
        what: Vec<String>,
    },
    /// Print a container's log.
    Logs(logs::LogsArgs),
    /// Run a command in a container's namespaces.
    Exec(exec::ExecArgs),
    /// Wait for objects to reach a condition (`--for=condition=Ready`, `--for=delete`,
    /// `--for=jsonpath=...`), as kubectl wait.
    Wait(wait::WaitArgs),
    /// Delete pods (graceful stop, then every kernel object and the state).
    Delete(delete::DeleteArgs),
    /// Everything podrun created for a pod, as JSON: PIDs, namespaces, veth, IP, paths.
    Inspect {
        #[arg(required = true, num_args = 1..=2, value_name = "[pod] NAME")]
        what: Vec<String>,
    },
    /// Set a Deployment's (or ReplicaSet's) number of replicas.
    Scale(rollout::ScaleArgs),
    /// Follow, list, undo or restart a Deployment's rollouts.
    Rollout(rollout::RolloutArgs),
    /// CPU, memory, throttling and OOM kills of pods and containers, from their cgroups.
    Top(top::TopArgs),
    /// Check the node, and find (--fix: remove) podrun objects no pod record accounts for.
    Doctor(doctor::DoctorArgs),
    /// Manage images: import, load, ls, rm, inspect, tag.
    Image(image::ImageArgs),
    /// List images (`image ls`).
    Images(image::ListArgs),
    /// Pull an image (`image pull`).
    Pull(image::PullArgs),
    /// Load the images of an OCI or docker save archive (`image load`).
    Load(image::LoadArgs),
    /// Serve the Kubernetes API (HTTPS, a token in the kubeconfig it writes) for kubectl.
    Serve(serve::ServeArgs),
    /// Internal: the per-pod supervisor started by `apply`.
    #[command(name = "__supervise", hide = true)]
    Supervise { key: String },
    /// Internal: the controller of the Deployments, ReplicaSets and Jobs (started by the verbs).
    #[command(name = "__controller", hide = true)]
    Controller {
        /// The worker a restarted keeper watches; `worker`: the worker's own name in `ps`.
        #[arg(long)]
        adopt: Option<i32>,
        #[arg(hide = true)]
        role: Option<String>,
    },
    /// Internal: a container's init stage (reads `<bundle>/config.json`, execs the process).
    #[command(name = "__init", hide = true)]
    Init { bundle: PathBuf },
}

/// A user-facing failure of a command; the message is printed as `error: ...`. The layers'
/// errors (spec, state, net, image) arrive wrapped as the pod library wraps them.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Pod(#[from] crate::pod::PodError),
    #[error("{0}")]
    Msg(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// `?` on a layer's error in a verb: the same wrapping as in the pod library.
macro_rules! through_pod_error {
    ($($error:ty),*) => {$(
        impl From<$error> for CliError {
            fn from(e: $error) -> Self {
                CliError::Pod(e.into())
            }
        }
    )*};
}
through_pod_error!(
    crate::spec::SpecError,
    crate::state::StateError,
    crate::net::NetError,
    crate::image::ImageError
);

pub type Result<T> = std::result::Result<T, CliError>;

pub fn msg(text: impl Into<String>) -> CliError {
    CliError::Msg(text.into())
}

impl GlobalArgs {
    /// The configuration, its paths made absolute: the supervisor works from `/`, and a state
    /// root is told apart from another by what it names, not by how it was spelled.
    pub fn config(&self) -> Config {
        let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        Config {
            root: absolute(&self.root),
            bridge: self.bridge.clone(),
            pod_cidr: self.pod_cidr.trunc(),
            netns_dir: absolute(&self.netns_dir),
            cgroup_root: absolute(&self.cgroup_root),
            cgroup_parent: self.cgroup_parent.clone(),
            image_root: absolute(&self.image_root),
            node_name: config::hostname(),
            registries_conf: absolute(&self.registries_conf),
        }
    }
}

/// `pod`, `pods` or `po`: the words kubectl takes for the pod resource.
pub(crate) fn is_pod_kind(word: &str) -> bool {
    matches!(word, "pod" | "pods" | "po")
}

fn pod_kind(word: &str) -> Result<()> {
    if is_pod_kind(word) {
        Ok(())
    } else {
        Err(msg(format!(
            "the server doesn't have a resource type \"{word}\""
        )))
    }
}

/// A pod as the verbs take it: `NAME`, or `pod/NAME` (`pods/`, `po/`), as kubectl does.
fn pod_arg(arg: &str) -> Result<&str> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some((kind, name)) => pod_kind(kind).map(|()| name),
    }
}

/// `deployment NAME` or `deployment/NAME` (any workload kind) -> (kind, NAME).
fn workload_target(what: &[String]) -> Option<(crate::state::WorkloadKind, String)> {
    let (word, name) = match what {
        [one] => one.split_once('/')?,
        [kind, name] => (kind.as_str(), name.as_str()),
        _ => return None,
    };
    crate::pod::workloads::workload_kind(word).map(|k| (k, name.to_owned()))
}

/// `[pod] NAME` or `pod/NAME` -> NAME.
fn pod_name(what: &[String]) -> Result<String> {
    match what {
        [name] => pod_arg(name).map(str::to_owned),
        [kind, name] => pod_kind(kind).map(|()| name.to_owned()),
        _ => Err(msg("expected a pod name")),
    }
}

fn load_pod(cfg: &Config, namespace: &str, name: &str) -> Result<PodRecord> {
    Ok(crate::pod::read::get(cfg, namespace, name)?)
}

/// Run a command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let cfg = cli.global.config();
    // Workloads recorded and no controller (both of its processes killed, or a reboot of the
    // state root's host kept it): any verb brings it back, as the verbs that change them do.
    if !matches!(
        cli.command,
        Command::Supervise { .. } | Command::Controller { .. } | Command::Init { .. }
    ) {
        for line in crate::controller::ensure_running(&cfg) {
            eprintln!("podrun: {line}");
        }
    }
    let explicit_ns = cli.global.namespace.clone();
    let ns = explicit_ns.clone().unwrap_or_else(|| "default".into());
    match cli.command {
        Command::Apply { file, positional } => {
            let file = file
                .or(positional)
                .ok_or_else(|| msg("must specify -f FILE"))?;
            apply::apply(&cfg, &file, explicit_ns.as_deref())
        }
        Command::Get(args) => get::get(&cfg, &ns, &args),
        Command::Describe { what } => match workload_target(&what) {
            _ if let Some(done) = config_objects::describe(&cfg, &ns, &what) => done,
            Some((kind, name)) => describe_workload::describe(&cfg, &ns, kind, &name),
            None => describe::describe(&cfg, &ns, &pod_name(&what)?),
        },
        Command::Logs(args) => logs::logs(&cfg, &ns, &args),
        Command::Exec(args) => exec::exec(&cfg, &ns, &args),
        Command::Wait(args) => wait::wait(&cfg, &ns, &args),
        Command::Delete(args) => delete::delete(&cfg, &ns, explicit_ns.as_deref(), &args),
        Command::Top(args) => top::top(&cfg, &ns, &args),
        Command::Scale(args) => rollout::scale(&cfg, &ns, &args),
        Command::Rollout(args) => rollout::rollout(&cfg, &ns, &args),
        Command::Inspect { what } => inspect::inspect(&cfg, &ns, &pod_name(&what)?),
        Command::Doctor(args) => doctor::doctor(&cfg, &args),
        Command::Image(args) => image::image(&cfg, &args),
        Command::Images(args) => image::list(&cfg, &args),
        Command::Pull(args) => image::pull(&cfg, &args),
        Command::Load(args) => image::load(&cfg, &args),
        Command::Serve(args) => serve::serve(&cfg, &args),
        Command::Supervise { key } => Ok(supervise(&cfg, &key)),
        Command::Controller { adopt, .. } => Ok(crate::controller::run(&cfg, adopt)),
        Command::Init { bundle } => Ok(crate::container::init::main(&bundle)),
    }
}

fn supervise(cfg: &Config, key: &str) -> i32 {
    crate::pod::supervise(cfg, PodKey::parse(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_named_as_kubectl_takes_them() {
        assert_eq!(pod_arg("web").unwrap(), "web");
        for arg in ["pod/web", "pods/web", "po/web"] {
            assert_eq!(pod_arg(arg).unwrap(), "web", "{arg}");
        }
        let err = pod_arg("deployment/web").unwrap_err().to_string();
        assert!(err.contains("resource type \"deployment\""), "{err}");
        let words = |w: &[&str]| pod_name(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(words(&["pod", "web"]).unwrap(), "web");
        assert_eq!(words(&["pod/web"]).unwrap(), "web");
        assert!(words(&["svc", "web"]).is_err());
        assert_eq!(PodKey::parse("web"), PodKey::new("default", "web"));
        assert_eq!(
            PodKey::parse("kube-system/dns"),
            PodKey::new("kube-system", "dns")
        );
        let key = PodKey::new("a", "b");
        assert_eq!(PodKey::parse(&key.to_string()), key);
    }
}
