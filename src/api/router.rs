//! From a request's method, path, query and Accept header to a status and a JSON body. Reads
//! only: everything it shows comes from the pod library and the object builders.

use serde_json::{Value, json};

use super::discovery::{self, Resource};
use super::resources;
use super::selectors;
use super::table;
use crate::config::Config;

/// What the router needs of the server.
pub struct Context {
    pub cfg: Config,
    /// `host:port` clients reach the server at (in `/api`'s serverAddressByClientCIDRs).
    pub address: String,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

fn ok(body: Value) -> Reply {
    Reply { status: 200, body }
}

/// A Kubernetes `Status` (the API server's error body).
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Reply {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    Reply { status: code, body }
}

fn not_found_path() -> Reply {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        None,
    )
}

/// The resource's name in messages: `pods`, `deployments.apps`.
fn qualified(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.to_owned()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

/// A list's resourceVersion: the time in milliseconds (podrun keeps no revision counter yet).
fn resource_version() -> String {
    chrono::Utc::now().timestamp_millis().to_string()
}

/// A list request's `labelSelector` and `fieldSelector` ("" when absent).
struct Selectors {
    labels: String,
    fields: String,
}

pub fn route(
    ctx: &Context,
    method: &str,
    path: &str,
    query: &str,
    accept: &str,
    body: &[u8],
) -> Reply {
    if method == "DELETE" {
        return delete(ctx, path, query, body);
    }
    if method != "GET" {
        return status(
            405,
            "MethodNotAllowed",
            &format!("the server does not allow this method on the requested resource ({method})"),
            None,
        );
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let sel = Selectors {
        labels: param("labelSelector"),
        fields: param("fieldSelector"),
    };
    let found = |v: Option<Value>| v.map(ok).unwrap_or_else(not_found_path);
    match segs.as_slice() {
        ["version"] => ok(discovery::version()),
        ["api"] => ok(discovery::api_versions(&ctx.address)),
        ["apis"] => ok(discovery::api_group_list()),
        ["api", "v1"] => found(discovery::resource_list("")),
        ["apis", group] => found(discovery::api_group(group)),
        ["apis", group, "v1"] => found(discovery::resource_list(group)),
        ["api", "v1", rest @ ..] => resource_path(ctx, "", rest, &sel, accept),
        ["apis", group, "v1", rest @ ..] => resource_path(ctx, group, rest, &sel, accept),
        _ => not_found_path(),
    }
}

/// `DELETE /api/v1/namespaces/{ns}/pods/{name}`: the pod stops with its grace period (or
/// DeleteOptions' `gracePeriodSeconds`, in the body or the query) and is removed, as `podrun
/// delete pod` does it, before the answer: the pod as it was when its deletion was asked
/// (`deletionTimestamp` set). kubectl's wait for the deletion then finds it gone.
fn delete(ctx: &Context, path: &str, query: &str, body: &[u8]) -> Reply {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["api", "v1", "namespaces", ns, "pods", name] = segs.as_slice() else {
        return status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource (DELETE)",
            None,
        );
    };
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return status(400, "BadRequest", &format!("DeleteOptions: {e}"), None),
        }
    };
    let from_query = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "gracePeriodSeconds")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    let grace = options["gracePeriodSeconds"].as_i64().or(from_query);
    let key = crate::state::PodKey::new(ns, name);
    let missing = || {
        status(
            404,
            "NotFound",
            &format!("pods \"{name}\" not found"),
            Some(json!({"name": name, "kind": "pods"})),
        )
    };
    if crate::pod::read::get(&ctx.cfg, ns, name).is_err() {
        return missing();
    }
    let stopping = match crate::pod::delete::request_stop(&ctx.cfg, &key, grace) {
        Ok((s, _)) => s,
        Err(_) if crate::pod::read::get(&ctx.cfg, ns, name).is_err() => return missing(),
        Err(e) => return status(500, "InternalError", &e.to_string(), None),
    };
    let object = crate::pod::read::get(&ctx.cfg, ns, name)
        .map(|r| crate::cli::pod_object::pod_object(&r))
        .unwrap_or_else(|_| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}}));
    match crate::pod::delete::finish(&ctx.cfg, stopping) {
        Ok(()) => ok(object),
        Err(e) => status(500, "InternalError", &e.to_string(), None),
    }
}

fn resource_path(
    ctx: &Context,
    group: &str,
    rest: &[&str],
    sel: &Selectors,
    accept: &str,
) -> Reply {
    let lookup = |plural: &str| discovery::resource(group, plural);
    let (res, namespace, name) = match rest {
        [plural] => match lookup(plural) {
            Some(r) => (r, None, None),
            None => return not_found_path(),
        },
        ["namespaces", ns, plural] => match lookup(plural) {
            Some(r) if r.namespaced => (r, Some(*ns), None),
            _ => return not_found_path(),
        },
        ["namespaces", ns, plural, name] => match lookup(plural) {
            Some(r) if r.namespaced => (r, Some(*ns), Some(*name)),
            _ => return not_found_path(),
        },
        [plural, name] => match lookup(plural) {
            Some(r) if !r.namespaced => (r, None, Some(*name)),
            _ => return not_found_path(),
        },
        _ => return not_found_path(),
    };
    let collection = match resources::collect(&ctx.cfg, res, namespace) {
        Ok(c) => c,
        Err(e) => return status(500, "InternalError", &e.to_string(), None),
    };
    let as_table = table::wants_table(accept);
    let mut rows = collection.rows;
    if let Some(name) = name {
        rows.retain(|(_, obj)| obj["metadata"]["name"] == name);
        if rows.is_empty() {
            return status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", qualified(res)),
                Some(json!({"name": name, "group": res.group, "kind": res.plural})),
            );
        }
        if !as_table {
            return ok(rows.swap_remove(0).1);
        }
    } else {
        let labels = match selectors::parse_labels(&sel.labels) {
            Ok(l) => l,
            Err(e) => return status(400, "BadRequest", &e.to_string(), None),
        };
        let fields = match selectors::parse_fields(&sel.fields, res.kind) {
            Ok(f) => f,
            Err(e) => return status(400, "BadRequest", &e.to_string(), None),
        };
        rows.retain(|(_, obj)| {
            selectors::matches(&labels, &selectors::labels_of(obj))
                && selectors::fields_match(&fields, obj)
        });
    }
    let rv = resource_version();
    if as_table {
        return ok(table::table(&collection.columns, &rows, &rv));
    }
    ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": discovery::api_version(res.group),
        "metadata": {"resourceVersion": rv},
        "items": rows.into_iter().map(|(_, o)| o).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let root = std::env::temp_dir().join(format!("podrun-api-router-{}", std::process::id()));
        Context {
            cfg: Config {
                root: root.clone(),
                bridge: "podrun0".into(),
                pod_cidr: "10.244.0.0/24".parse().unwrap(),
                netns_dir: root.join("netns"),
                cgroup_root: "/sys/fs/cgroup".into(),
                cgroup_parent: "podrun".into(),
                image_root: root.join("images"),
                node_name: "node1".into(),
                registries_conf: root.join("registries.conf"),
            },
            address: "127.0.0.1:6443".into(),
        }
    }

    #[test]
    fn discovery_and_errors() {
        let c = ctx();
        let r = route(&c, "GET", "/api/v1", "", "application/json", b"");
        assert_eq!(r.body["kind"], "APIResourceList");
        let pods = &r.body["resources"][0];
        assert_eq!(pods["name"], "pods");
        assert_eq!(pods["shortNames"][0], "po");
        let apps = route(&c, "GET", "/apis/apps/v1", "", "", b"");
        assert!(
            apps.body["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["shortNames"][0] == "deploy")
        );
        let missing = route(
            &c,
            "GET",
            "/api/v1/namespaces/default/pods/x",
            "",
            "application/json",
            b"",
        );
        assert_eq!(missing.status, 404);
        assert_eq!(missing.body["message"], "pods \"x\" not found");
        let d = route(
            &c,
            "GET",
            "/apis/apps/v1/namespaces/default/deployments/x",
            "",
            "",
            b"",
        );
        assert_eq!(d.body["message"], "deployments.apps \"x\" not found");
        assert_eq!(route(&c, "GET", "/apis/foo/v1", "", "", b"").status, 404);
        assert_eq!(
            route(&c, "POST", "/api/v1/namespaces/default/pods", "", "", b"").status,
            405
        );
        assert_eq!(
            route(&c, "DELETE", "/api/v1/nodes/node1", "", "", b"").status,
            405
        );
        let gone = route(
            &c,
            "DELETE",
            "/api/v1/namespaces/default/pods/x",
            "",
            "",
            b"{}",
        );
        assert_eq!(gone.status, 404);
        assert_eq!(gone.body["message"], "pods \"x\" not found");
        let bad = route(
            &c,
            "GET",
            "/api/v1/pods",
            "labelSelector=a%20in%20b",
            "",
            b"",
        );
        assert_eq!(bad.status, 400);
    }

    #[test]
    fn node_and_namespaces_listed() {
        let c = ctx();
        let nodes = route(&c, "GET", "/api/v1/nodes", "", "application/json", b"");
        assert_eq!(nodes.body["kind"], "NodeList");
        assert_eq!(nodes.body["items"][0]["metadata"]["name"], "node1");
        assert_eq!(
            nodes.body["items"][0]["status"]["addresses"][0]["address"],
            "10.244.0.1"
        );
        let t = route(
            &c,
            "GET",
            "/api/v1/namespaces",
            "",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            b"",
        );
        assert_eq!(t.body["kind"], "Table");
        assert_eq!(t.body["rows"][0]["cells"][0], "default");
        let pods = route(&c, "GET", "/api/v1/pods", "", "application/json", b"");
        assert_eq!(pods.body["kind"], "PodList");
        assert_eq!(pods.body["items"], json!([]));
    }
}
