//! `podrun inspect NAME`: every object podrun made for the pod, as JSON, with what the kernel
//! says about each one now (so a user can check it with ip, nft, ps, ls -l /proc/PID/ns).

use serde_json::{Value, json};

use super::{Result, load_pod};
use crate::config::Config;
use crate::pod::pod_status_word;
use crate::procfs;
use crate::state::PodRecord;

pub fn inspect(cfg: &Config, namespace: &str, name: &str) -> Result<i32> {
    let r = load_pod(cfg, namespace, name)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&document(cfg, &r)).expect("json")
    );
    Ok(0)
}

fn ns_of(pid: i32) -> Value {
    json!({
        "net": procfs::ns_inode(pid, "net"),
        "uts": procfs::ns_inode(pid, "uts"),
        "ipc": procfs::ns_inode(pid, "ipc"),
        "pid": procfs::ns_inode(pid, "pid"),
        "mnt": procfs::ns_inode(pid, "mnt"),
    })
}

fn document(cfg: &Config, r: &PodRecord) -> Value {
    let key = r.key();
    let store = cfg.store();
    let sandbox = r.sandbox.as_ref().map(|sb| {
        let pause = sb.pause.map(|p| {
            json!({"pid": p.pid, "alive": p.is_alive(), "namespaces": if p.is_alive() { ns_of(p.pid) } else { Value::Null }})
        });
        let kernel_veth = crate::net::inspect_host_veth(&sb.host_veth).ok().flatten();
        json!({
            "id": sb.id,
            "attempt": sb.attempt,
            "ready": sb.ready,
            "pause": pause,
            "namespaces": sb.namespaces,
            "netnsPath": sb.netns_path,
            "netnsPinned": sb.netns_path.exists(),
            "network": sb.network,
            "hostVeth": sb.host_veth,
            "hostVethKernel": kernel_veth,
            "ipamOwner": sb.id,
            "ipamFile": sb.ip.map(|ip| r.network_config.ipam_dir.join(ip.to_string())),
        })
    });
    let containers: Vec<Value> = r
        .containers
        .iter()
        .map(|c| {
            let alive = c.process.filter(|p| p.is_alive());
            json!({
                "name": c.name,
                "id": c.id,
                "image": c.image,
                "pid": c.process.map(|p| p.pid),
                "alive": alive.is_some(),
                "namespaces": alive.map(|p| ns_of(p.pid)),
                "restartCount": c.restart_count,
                "oomScoreAdj": alive.and_then(|p| std::fs::read_to_string(format!("/proc/{}/oom_score_adj", p.pid)).ok()).map(|v| v.trim().to_owned()),
                "state": c.state,
                "process": c.resolved,
                "logPath": store.paths(&key).container_log(&c.name, c.restart_count),
                "bundle": c.bundle,
                "ociConfig": c.bundle.as_deref().map(crate::state::bundle_config),
                "imageRootfs": c.image_config.as_ref().map(|i| json!({"reference": i.reference, "layers": i.layers})),
                // The merged view exists only inside the container's mount namespace.
                "rootfs": c.rootfs,
                "volumeMounts": r.plan.containers.iter().find(|p| p.name == c.name).map(|p| &p.volume_mounts),
            })
        })
        .collect();
    let cgroups = crate::pod::pod_cgroup(r).map(|pod| match pod {
        Err(e) => json!({"error": e.to_string()}),
        Ok(pod) => json!({
            "mode": pod.mode(),
            "parent": r.cgroup.as_ref().map(|c| &c.parent),
            "pod": pod.pod_dirs(),
            "all": pod.paths(),
            "qosClass": super::pod_object::qos(r).to_string(),
        }),
    });
    json!({
        "name": r.plan.name,
        "namespace": r.plan.namespace,
        "uid": r.plan.uid,
        "status": pod_status_word(r),
        "phase": r.phase,
        "supervisor": r.supervisor.map(|s| json!({"pid": s.pid, "alive": s.is_alive(), "log": store.paths(&key).supervisor_log()})),
        "sandbox": sandbox,
        "node": {
            "bridge": r.network_config.bridge,
            "podCIDR": r.network_config.cidr,
            "gateway": r.network_config.gateway(),
            "ipamDir": r.network_config.ipam_dir,
            "masquerade": crate::net::masquerade_present(&r.network_config).ok(),
            "nftTable": "inet podrun",
        },
        "hostPorts": crate::net::hostport::of_plan(&r.plan),
        "hostPortRules": crate::net::hostport::present(&r.plan.uid).ok().map(|rules| {
            rules
                .into_iter()
                .map(|(chain, handle, comment)| {
                    json!({"table": "inet podrun", "chain": chain, "handle": handle, "comment": comment})
                })
                .collect::<Vec<_>>()
        }),
        "cgroups": cgroups,
        "volumes": r.volumes,
        "shareProcessNamespace": r.plan.share_process_namespace,
        "podFiles": {
            "hosts": store.paths(&key).etc_hosts(),
            "hostname": store.paths(&key).etc_hostname(),
            "resolvConf": store.paths(&key).resolv_conf(),
        },
        "containers": containers,
        "state": {
            "dir": store.pod_dir(&key),
            "record": store.paths(&key).record(),
        },
    })
}
