//! Every file of one pod's state, named in one place ([`PodPaths`]). The pod's own files sit at
//! the top of its directory and each container's in `containers/<name>/`, so no container name
//! (a DNS label: `hostname`, `volumes`, `etc` ...) can land on a file of the pod:
//!
//! ```text
//! <pod dir>/pod.json                     the PodRecord (tmp + rename; only its supervisor writes it)
//! <pod dir>/deletion.json                delete's request (grace period), read on SIGTERM
//! <pod dir>/update.json                  apply's update request (new plan), read on SIGUSR1
//! <pod dir>/supervisor.log               the supervisor's own log
//! <pod dir>/pause.log                    the pause's stdout+stderr
//! <pod dir>/etc/{hosts,hostname,resolv.conf}   the kubelet-managed /etc files, bind-mounted
//! <pod dir>/volumes/<volume>/            emptyDir, configMap and secret volumes (mode 0700)
//! <pod dir>/volumes/.tmpfs/<volume>/     memory volumes on kernels without detached-mount clones
//! <pod dir>/containers/<c>/config.json   the container's OCI bundle
//! <pod dir>/containers/<c>/{upper,work,merged}/   its overlay (container::oci::RootfsLayout)
//! <pod dir>/containers/<c>/<restart>.log its stdout+stderr per run (the current and previous)
//! ```

use std::path::{Path, PathBuf};

/// The paths of one pod's state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPaths {
    dir: PathBuf,
}

impl PodPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The pod whose container bundle is `bundle` (`<pod dir>/containers/<c>`).
    pub fn of_bundle(bundle: &Path) -> Option<Self> {
        let containers = bundle.parent()?;
        if containers.file_name()? != CONTAINERS {
            return None;
        }
        Some(Self::new(containers.parent()?))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn record(&self) -> PathBuf {
        self.dir.join("pod.json")
    }

    pub fn deletion_request(&self) -> PathBuf {
        self.dir.join("deletion.json")
    }

    pub fn update_request(&self) -> PathBuf {
        self.dir.join("update.json")
    }

    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }

    pub fn pause_log(&self) -> PathBuf {
        self.dir.join("pause.log")
    }

    /// The directory of the pod's /etc files.
    pub fn etc_dir(&self) -> PathBuf {
        self.dir.join("etc")
    }

    pub fn etc_hosts(&self) -> PathBuf {
        self.etc_dir().join("hosts")
    }

    pub fn etc_hostname(&self) -> PathBuf {
        self.etc_dir().join("hostname")
    }

    pub fn resolv_conf(&self) -> PathBuf {
        self.etc_dir().join("resolv.conf")
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.dir.join("volumes")
    }

    pub fn volume(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name)
    }

    /// Where memory volumes live as directories when detached mounts cannot be cloned (a
    /// volume name is a DNS label: never `.tmpfs`).
    pub fn tmpfs_fallback_dir(&self) -> PathBuf {
        self.volumes_dir().join(".tmpfs")
    }

    pub fn tmpfs_fallback(&self, volume: &str) -> PathBuf {
        self.tmpfs_fallback_dir().join(volume)
    }

    /// Container `name`'s bundle directory (config.json, overlay, logs).
    pub fn bundle(&self, container: &str) -> PathBuf {
        self.dir.join(CONTAINERS).join(container)
    }

    /// The host file behind container `name`'s `terminationMessagePath` (emptied at each run).
    pub fn termination_log(&self, container: &str) -> PathBuf {
        self.bundle(container).join("termination-log")
    }

    /// Log of run `restart` of a container (the kubelet's `<restart>.log`).
    pub fn container_log(&self, container: &str, restart: u32) -> PathBuf {
        self.bundle(container).join(format!("{restart}.log"))
    }
}

/// The config.json of an OCI bundle.
pub fn bundle_config(bundle: &Path) -> PathBuf {
    bundle.join("config.json")
}

const CONTAINERS: &str = "containers";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_container_name_lands_on_a_file_of_the_pod() {
        let pod = PodPaths::new("/run/podrun/pods/default_p");
        let own = [
            pod.record(),
            pod.deletion_request(),
            pod.update_request(),
            pod.supervisor_log(),
            pod.pause_log(),
            pod.etc_dir(),
            pod.volumes_dir(),
        ];
        for name in [
            "hostname",
            "volumes",
            "etc",
            "pause",
            "containers",
            "resolv-conf",
        ] {
            let bundle = pod.bundle(name);
            assert!(
                own.iter()
                    .all(|f| !bundle.starts_with(f) && !f.starts_with(&bundle))
            );
            assert_eq!(PodPaths::of_bundle(&bundle), Some(pod.clone()));
        }
        assert_eq!(PodPaths::of_bundle(Path::new("/x/c")), None);
    }
}
