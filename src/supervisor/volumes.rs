//! The pod's volumes and /etc files from the supervisor's side: created once per pod (emptyDir
//! directories and configMap/secret files under the pod's state directory, recorded first;
//! tmpfs volumes as detached mounts this process holds), and resolved per container mount.

use std::os::fd::AsFd;
use std::path::PathBuf;

use super::Supervisor;
use super::lifecycle::StartError;
use crate::container::oci::{MountSource, SHM_SIZE, SHM_VOLUME, VolumeMount};
use crate::container::{ContainerError, podfiles, volumes};
use crate::spec::VolumeSource;
use crate::state::VolumeRecord;
use crate::sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID};

impl Supervisor {
    fn volume_dir(&self, name: &str) -> PathBuf {
        self.store.paths(&self.record.key()).volume(name)
    }

    /// Make every volume of the pod, and the pod's /dev/shm.
    pub(super) fn prepare_volumes(&mut self) -> Result<(), StartError> {
        let err = |name: &str, message: String| StartError::Volume {
            name: name.to_owned(),
            message,
        };
        let shm_size = SHM_SIZE.to_string();
        let shm = crate::sys::fs_mount(
            "tmpfs",
            &[("mode", "1777"), ("size", &shm_size)],
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        )
        .map_err(|e| err(SHM_VOLUME, format!("create tmpfs: {e}")))?;
        let clone_works = !matches!(
            crate::sys::clone_mount(shm.as_fd()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL)
        );
        self.pod_volumes.push((SHM_VOLUME.to_owned(), shm));
        // Only root may walk into the pod's volumes on the node (Secret files live there);
        // containers get each volume by a bind mount of its own directory.
        let volumes_dir = self.store.paths(&self.record.key()).volumes_dir();
        {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&volumes_dir);
        }
        if !clone_works {
            self.tmpfs_fallback()
                .map_err(|e| err(SHM_VOLUME, format!("create fallback directories: {e}")))?;
        }
        for v in self.record.plan.volumes.clone() {
            match &v.source {
                VolumeSource::EmptyDir {
                    memory: true,
                    size_limit,
                } => {
                    self.record.volumes.push(VolumeRecord {
                        name: v.name.clone(),
                        kind: "emptyDir (Memory)".into(),
                        path: None,
                    });
                    let size = size_limit.map(|s| s.to_string());
                    let mut options = vec![("mode", "1777")];
                    if let Some(size) = &size {
                        options.push(("size", size));
                    }
                    let fd = crate::sys::fs_mount(
                        "tmpfs",
                        &options,
                        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                    )
                    .map_err(|e| err(&v.name, format!("create tmpfs: {e}")))?;
                    self.pod_volumes.push((v.name.clone(), fd));
                }
                VolumeSource::EmptyDir { memory: false, .. } => {
                    let dir = self.volume_dir(&v.name);
                    self.record.volumes.push(VolumeRecord {
                        name: v.name.clone(),
                        kind: "emptyDir".into(),
                        path: Some(dir.clone()),
                    });
                    self.save();
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::create_dir_all(&dir)
                        .and_then(|_| {
                            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                        })
                        .map_err(|e| err(&v.name, format!("create {}: {e}", dir.display())))?;
                }
                VolumeSource::HostPath { path, kind } => {
                    self.record.volumes.push(VolumeRecord {
                        name: v.name.clone(),
                        kind: "hostPath".into(),
                        path: Some(path.into()),
                    });
                    volumes::check_host_path(path, kind, true).map_err(|e| err(&v.name, e))?;
                }
                VolumeSource::Files { kind, files, .. } => {
                    let dir = self.volume_dir(&v.name);
                    let mut k = kind.clone();
                    k[..1].make_ascii_lowercase();
                    self.record.volumes.push(VolumeRecord {
                        name: v.name.clone(),
                        kind: k,
                        path: Some(dir.clone()),
                    });
                    self.save();
                    volumes::write_files(&dir, files)
                        .map_err(|e| err(&v.name, format!("write {}: {e}", dir.display())))?;
                }
            }
        }
        // No save here: what is on disk (emptyDir and file volumes) was recorded before it
        // was made; the rest (detached tmpfs mounts, hostPath checks) leaves nothing to clean
        // up, and the record is saved once the containers are started.
        Ok(())
    }

    /// On kernels that cannot clone a detached mount (older kernels), each container
    /// bind-mounts a directory of the pod instead of its own clone of the pod's tmpfs: make
    /// them (for /dev/shm and every `medium: Memory` emptyDir) and say so once.
    fn tmpfs_fallback(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let pod = self.store.paths(&self.record.key());
        let names: Vec<String> = std::iter::once(SHM_VOLUME.to_owned())
            .chain(
                self.record
                    .plan
                    .volumes
                    .iter()
                    .filter(|v| matches!(v.source, VolumeSource::EmptyDir { memory: true, .. }))
                    .map(|v| v.name.clone()),
            )
            .collect();
        for name in &names {
            let dir = pod.tmpfs_fallback(name);
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?;
        }
        if !self
            .record
            .events
            .iter()
            .any(|e| e.reason == "TmpfsFallback")
        {
            self.record.event(
                "Warning",
                "TmpfsFallback",
                format!(
                    "this kernel cannot clone detached mounts (newer kernels can): /dev/shm and medium: Memory emptyDir volumes are directories under {} (shared by the pod's containers; sizeLimit not enforced)",
                    pod.tmpfs_fallback_dir().display()
                ),
            );
        }
        Ok(())
    }

    /// The mounts of container `i`'s `volumeMounts`, in order.
    pub(super) fn volume_mounts(&self, i: usize) -> Result<Vec<VolumeMount>, ContainerError> {
        let c = &self.record.plan.containers[i];
        let fail = |message: String| ContainerError::Setup {
            container: c.name.clone(),
            message,
        };
        let mut out = Vec::new();
        for m in &c.volume_mounts {
            let v = self
                .record
                .plan
                .volumes
                .iter()
                .find(|v| v.name == m.name)
                .ok_or_else(|| fail(format!("volume {} not found", m.name)))?;
            let bind = |base: PathBuf| -> Result<MountSource, ContainerError> {
                volumes::sub_path(&base, m.sub_path.as_deref())
                    .map(MountSource::Bind)
                    .map_err(|e| fail(format!("volume {}: {e}", m.name)))
            };
            let (source, forced_ro) = match &v.source {
                VolumeSource::EmptyDir { memory: true, .. } => {
                    if m.sub_path.is_some() {
                        return Err(fail(format!(
                            "volume {}: subPath of a medium: Memory emptyDir is not supported by podrun yet",
                            m.name
                        )));
                    }
                    (MountSource::PodTmpfs(v.name.clone()), false)
                }
                VolumeSource::EmptyDir { memory: false, .. } => {
                    (bind(self.volume_dir(&v.name))?, false)
                }
                VolumeSource::HostPath { path, .. } => (bind(path.into())?, false),
                // configMap and secret volumes are always mounted read-only.
                VolumeSource::Files { .. } => (bind(self.volume_dir(&v.name))?, true),
            };
            out.push(VolumeMount {
                destination: m.mount_path.clone(),
                source,
                read_only: m.read_only || forced_ro,
            });
        }
        Ok(out)
    }

    /// Pod-level tmpfs mounts for a container's init (name, fd).
    pub(super) fn pod_volume_fds(&self) -> Vec<(String, std::os::fd::BorrowedFd<'_>)> {
        self.pod_volumes
            .iter()
            .map(|(n, fd)| (n.clone(), fd.as_fd()))
            .collect()
    }

    /// (Re)write the pod's /etc/hosts, /etc/hostname and /etc/resolv.conf, at every sandbox
    /// creation (hosts names the sandbox's IP). True when the node's resolvers stand in for
    /// the cluster DNS podrun does not have (the kubelet's MissingClusterDNS).
    pub(super) fn write_pod_files(&self) -> Result<bool, std::io::Error> {
        let pod = self.store.paths(&self.record.key());
        std::fs::create_dir_all(pod.etc_dir())?;
        let plan = &self.record.plan;
        let ip = self.record.sandbox_ip().map(|ip| ip.to_string());
        let hosts = podfiles::hosts(ip.as_deref(), &plan.hostname, &plan.host_aliases);
        write_in_place(&pod.etc_hosts(), &hosts)?;
        write_in_place(&pod.etc_hostname(), &podfiles::hostname(&plan.hostname))?;
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (resolv, fallback) = podfiles::resolv_conf(&plan.dns, &host);
        write_in_place(&pod.resolv_conf(), &resolv)?;
        Ok(fallback)
    }
}

/// Replace the file's content in place (same inode, not tmp + rename), so a bind mount of it in
/// a running container sees the new text.
fn write_in_place(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
