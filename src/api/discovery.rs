//! Discovery: `/version`, `/api`, `/apis` and the group versions' resource lists, in the legacy
//! format. A kubectl that asks for aggregated discovery (`as=APIGroupDiscoveryList`) gets the
//! legacy documents with `Content-Type: application/json`, and client-go then falls back to
//! reading `/api/v1` and each `/apis/<group>/<version>` (its `discovery` package checks the
//! response's media type before decoding it as aggregated).

use serde_json::{Value, json};

/// One resource served, and what discovery says of it.
pub struct Resource {
    pub group: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

pub const RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
    },
    Resource {
        group: "",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
    },
    Resource {
        group: "",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
    },
    Resource {
        group: "",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
    },
    Resource {
        group: "",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
    },
    Resource {
        group: "",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
    },
    Resource {
        group: "apps",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
    },
    Resource {
        group: "apps",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
    },
    Resource {
        group: "batch",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
    },
];

pub const GROUPS: &[&str] = &["apps", "batch"];

/// The resource `plural` of `group`, if served.
pub fn resource(group: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// `apiVersion` of a group's objects (`v1`, `apps/v1`).
pub fn api_version(group: &str) -> String {
    if group.is_empty() {
        "v1".into()
    } else {
        format!("{group}/v1")
    }
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": crate::objects::KUBE_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH),
    })
}

pub fn api_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    })
}

fn group(name: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/{version}"), "version": version});
    json!({"name": name, "versions": [gv], "preferredVersion": gv})
}

/// The groups `/apis` lists and their one version: the `v1` groups of [`GROUPS`], then
/// metrics.k8s.io/v1beta1 (`super::metrics`; kubectl top looks for it here first).
fn groups() -> impl Iterator<Item = (&'static str, &'static str)> {
    GROUPS
        .iter()
        .map(|g| (*g, "v1"))
        .chain([(super::metrics::GROUP, super::metrics::VERSION)])
}

pub fn api_group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().map(|(g, v)| group(g, v)).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`, if served.
pub fn api_group(name: &str) -> Option<Value> {
    groups().find(|(g, _)| *g == name).map(|(g, v)| {
        let mut g = group(g, v);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

/// `/api/v1` (group "") or `/apis/<group>/v1`, if served.
pub fn resource_list(group: &str) -> Option<Value> {
    if !group.is_empty() && !GROUPS.contains(&group) {
        return None;
    }
    let mut resources = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        let stored = matches!(r.plural, "configmaps" | "secrets");
        let writable = stored
            || r.plural == "pods"
            || crate::pod::workloads::workload_kind(r.plural).is_some();
        let verbs: &[&str] = if writable {
            &["create", "delete", "get", "list", "patch", "watch"]
        } else {
            &["get", "list", "watch"]
        };
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        // `kubectl get all`: the workloads and their pods, as kube-apiserver's category.
        if writable && !stored {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
    }
    if group.is_empty() {
        // The pods' subresources (kubectl drain looks for pods/eviction here).
        for (name, kind, verbs, gv) in [
            (
                "pods/eviction",
                "Eviction",
                &["create"][..],
                Some(("policy", "v1")),
            ),
            ("pods/exec", "PodExecOptions", &["create", "get"][..], None),
            ("pods/log", "Pod", &["get"][..], None),
            (
                "pods/portforward",
                "PodPortForwardOptions",
                &["create", "get"][..],
                None,
            ),
        ] {
            let mut entry = json!({"name": name, "singularName": "", "namespaced": true,
                "kind": kind, "verbs": verbs});
            if let Some((g, v)) = gv {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            resources.push(entry);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(group),
        "resources": resources,
    }))
}
