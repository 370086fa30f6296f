//! From a request (method, path, query, Accept and Content-Type, body) to a status and a
//! body. Reads come from the pod library and the object builders (`resources`); writes go
//! to `write`, the OpenAPI documents to `openapi`, metrics.k8s.io/v1beta1 to `metrics`.

use serde_json::{Value, json};

use super::discovery::{self, Resource};
use super::write::{self, FieldValidation, Target};
use super::{logs, metrics, openapi, table, watch};
use crate::config::Config;
use crate::objects::resources;
use crate::objects::selectors;

/// What the router needs of the server.
#[derive(Clone)]
pub struct Context {
    pub cfg: Config,
    /// `host:port` clients reach the server at (in `/api`'s serverAddressByClientCIDRs).
    pub address: String,
}

/// One request, as the router needs it.
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub accept: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// `Warning` headers (`299 - "..."`), e.g. unknown fields with `fieldValidation=Warn`.
    pub warnings: Vec<String>,
    /// A body that is not JSON: its content type and bytes (OpenAPI v2 as protobuf).
    pub raw: Option<(&'static str, Vec<u8>)>,
    /// A body streamed as it comes (a watch's events, one JSON object a line).
    pub stream: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
}

impl Reply {
    pub fn new(status: u16, body: Value) -> Self {
        Reply {
            status,
            body,
            warnings: Vec::new(),
            raw: None,
            stream: None,
        }
    }
}

pub fn ok(body: Value) -> Reply {
    Reply::new(200, body)
}

pub fn created(body: Value) -> Reply {
    Reply::new(201, body)
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
    Reply::new(code, body)
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
pub fn qualified(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.to_owned()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

/// A list's resourceVersion: the time in microseconds (podrun keeps no revision counter; a
/// watch from it reports what changes after it).
pub fn resource_version() -> String {
    chrono::Utc::now().timestamp_micros().to_string()
}

/// A list request's `labelSelector` and `fieldSelector` ("" when absent).
#[derive(Clone)]
pub struct Selectors {
    pub labels: String,
    pub fields: String,
}

pub fn route(ctx: &Context, call: &Call) -> Reply {
    let segs: Vec<&str> = call.path.trim_matches('/').split('/').collect();
    let params: Vec<(String, String)> = form_urlencoded::parse(call.query.as_bytes())
        .into_owned()
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if matches!(segs.first(), Some(&"openapi")) {
        return match call.method {
            "GET" => openapi::route(&segs[1..], call.accept).unwrap_or_else(not_found_path),
            other => not_allowed(other),
        };
    }
    if let ["api", "v1", "namespaces", ns, "pods", name, "eviction"] = segs.as_slice() {
        return match call.method {
            "POST" => write::evict(ctx, ns, name, call.body),
            other => not_allowed(other),
        };
    }
    match (call.method, segs.as_slice()) {
        ("POST", ["api", "v1", "namespaces"]) => return write::create_namespace(ctx, call.body),
        ("DELETE", ["api", "v1", "namespaces", name]) => {
            return write::delete_namespace(ctx, name);
        }
        _ => {}
    }
    if call.method != "GET" {
        let Some(target) = write_target(&segs) else {
            return match call.method {
                "POST" | "PUT" | "PATCH" | "DELETE" => not_allowed(call.method),
                _ => not_found_path(),
            };
        };
        let validation = match FieldValidation::from_query(&param("fieldValidation")) {
            Ok(v) => v,
            Err(reply) => return reply,
        };
        return match call.method {
            "POST" if target.name.is_none() => write::create(ctx, &target, validation, call.body),
            "PATCH" => write::patch(ctx, &target, validation, call.content_type, call.body),
            "DELETE" => write::delete(ctx, &target, call.query, call.body),
            other => not_allowed(other),
        };
    }
    let sel = Selectors {
        labels: param("labelSelector"),
        fields: param("fieldSelector"),
    };
    if let ["api", "v1", "namespaces", ns, "pods", name, "log"] = segs.as_slice() {
        return match call.method {
            "GET" => logs::serve(ctx, ns, name, &param),
            other => not_allowed(other),
        };
    }
    if truthy(&param("watch")) {
        let (group, rest) = match segs.as_slice() {
            ["api", "v1", rest @ ..] => ("", rest),
            ["apis", group, "v1", rest @ ..] => (*group, rest),
            _ => return not_found_path(),
        };
        let Some(target) = read_target(group, rest) else {
            return not_found_path();
        };
        return watch::start(
            ctx,
            &target,
            sel,
            watch::Options::from_params(&param, call.accept),
        );
    }
    let found = |v: Option<Value>| v.map(ok).unwrap_or_else(not_found_path);
    match segs.as_slice() {
        ["version"] => ok(discovery::version()),
        ["api"] => ok(discovery::api_versions(&ctx.address)),
        ["apis"] => ok(discovery::api_group_list()),
        ["api", "v1"] => found(discovery::resource_list("")),
        ["apis", group] => found(discovery::api_group(group)),
        ["apis", group, "v1"] => found(discovery::resource_list(group)),
        ["apis", metrics::GROUP, metrics::VERSION, rest @ ..] => {
            metrics::route(ctx, rest, &sel, call.accept)
        }
        ["api", "v1", rest @ ..] => resource_path(ctx, "", rest, &sel, call.accept, &param),
        ["apis", group, "v1", rest @ ..] => {
            resource_path(ctx, group, rest, &sel, call.accept, &param)
        }
        _ => not_found_path(),
    }
}

/// A boolean query parameter as the API server reads it (Go's `strconv.ParseBool`: the
/// Python client sends `watch=True`).
pub fn truthy(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

pub fn not_allowed(method: &str) -> Reply {
    status(
        405,
        "MethodNotAllowed",
        &format!("the server does not allow this method on the requested resource ({method})"),
        None,
    )
}

/// The API server's 404 for object `name` of `res`.
pub fn not_found(res: &Resource, name: &str) -> Reply {
    status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(res)),
        Some(json!({"name": name, "group": res.group, "kind": res.plural})),
    )
}

/// The namespaced resource (and name) a write names: `.../namespaces/NS/PLURAL[/NAME]`.
fn write_target<'a>(segs: &[&'a str]) -> Option<Target<'a>> {
    let (group, rest) = match segs {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, "v1", rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (ns, plural, name) = match rest {
        ["namespaces", ns, plural] => (*ns, *plural, None),
        ["namespaces", ns, plural, name] => (*ns, *plural, Some(*name)),
        _ => return None,
    };
    let res = discovery::resource(group, plural).filter(|r| r.namespaced)?;
    Some(Target {
        res,
        namespace: ns,
        name,
    })
}

/// What a read path names: the resource, the namespace (None: all, or cluster-scoped) and
/// the name of one object.
pub struct ReadTarget<'a> {
    pub res: &'static Resource,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

fn read_target<'a>(group: &str, rest: &[&'a str]) -> Option<ReadTarget<'a>> {
    let lookup = |plural: &str| discovery::resource(group, plural);
    let (res, namespace, name) = match rest {
        [plural] => (lookup(plural)?, None, None),
        ["namespaces", ns, plural] => (lookup(plural).filter(|r| r.namespaced)?, Some(*ns), None),
        ["namespaces", ns, plural, name] => (
            lookup(plural).filter(|r| r.namespaced)?,
            Some(*ns),
            Some(*name),
        ),
        [plural, name] => (lookup(plural).filter(|r| !r.namespaced)?, None, Some(*name)),
        _ => return None,
    };
    Some(ReadTarget {
        res,
        namespace,
        name,
    })
}

/// The rows of `rows` the selectors choose (a bad selector: the 400 to answer).
pub fn select(
    rows: &mut Vec<(Vec<Value>, Value)>,
    res: &Resource,
    sel: &Selectors,
) -> Result<(), Reply> {
    let labels = selectors::parse_labels(&sel.labels)
        .map_err(|e| status(400, "BadRequest", &e.to_string(), None))?;
    let fields = selectors::parse_fields(&sel.fields, res.kind)
        .map_err(|e| status(400, "BadRequest", &e.to_string(), None))?;
    rows.retain(|(_, obj)| {
        selectors::matches(&labels, &selectors::labels_of(obj))
            && selectors::fields_match(&fields, obj)
    });
    Ok(())
}

fn resource_path(
    ctx: &Context,
    group: &str,
    rest: &[&str],
    sel: &Selectors,
    accept: &str,
    param: &dyn Fn(&str) -> String,
) -> Reply {
    let Some(ReadTarget {
        res,
        namespace,
        name,
    }) = read_target(group, rest)
    else {
        return not_found_path();
    };
    let collection = match resources::collect(&ctx.cfg, res.plural, namespace) {
        Ok(c) => c,
        Err(e) => return status(500, "InternalError", &e.to_string(), None),
    };
    let as_table = table::wants_table(accept);
    let mut rows = collection.rows;
    if let Some(name) = name {
        rows.retain(|(_, obj)| obj["metadata"]["name"] == name);
        if rows.is_empty() {
            return not_found(res, name);
        }
        if !as_table {
            return ok(rows.swap_remove(0).1);
        }
    } else if let Err(reply) = select(&mut rows, res, sel) {
        return reply;
    }
    let rv = resource_version();
    let page = if name.is_none() {
        match super::paging::cut(&mut rows, &param("limit"), &param("continue"), &rv) {
            Ok(p) => Some(p),
            Err(reply) => return reply,
        }
    } else {
        None
    };
    let mut list = if as_table {
        table::table(&collection.columns, &rows, &rv)
    } else {
        json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": discovery::api_version(res.group),
            "metadata": {"resourceVersion": rv},
            "items": rows.into_iter().map(|(_, o)| o).collect::<Vec<_>>(),
        })
    };
    if let Some(p) = page {
        p.annotate(&mut list);
    }
    ok(list)
}

/// A context on state root `root` with the defaults, for the API's unit tests.
#[cfg(test)]
pub fn test_context(root: &std::path::Path) -> Context {
    Context {
        cfg: Config {
            root: root.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        c: &Context,
        method: &str,
        path: &str,
        query: &str,
        accept: &str,
        body: &[u8],
    ) -> Reply {
        route(
            c,
            &Call {
                method,
                path,
                query,
                accept,
                content_type: "application/json",
                body,
            },
        )
    }

    fn ctx() -> Context {
        let root = std::env::temp_dir().join(format!("podrun-api-router-{}", std::process::id()));
        test_context(&root)
    }

    #[test]
    fn discovery_and_errors() {
        let c = ctx();
        let r = call(&c, "GET", "/api/v1", "", "application/json", b"");
        assert_eq!(r.body["kind"], "APIResourceList");
        let pods = &r.body["resources"][0];
        assert_eq!(pods["name"], "pods");
        assert_eq!(pods["shortNames"][0], "po");
        let apps = call(&c, "GET", "/apis/apps/v1", "", "", b"");
        assert!(
            apps.body["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["shortNames"][0] == "deploy")
        );
        let missing = call(
            &c,
            "GET",
            "/api/v1/namespaces/default/pods/x",
            "",
            "application/json",
            b"",
        );
        assert_eq!(missing.status, 404);
        assert_eq!(missing.body["message"], "pods \"x\" not found");
        let d = call(
            &c,
            "GET",
            "/apis/apps/v1/namespaces/default/deployments/x",
            "",
            "",
            b"",
        );
        assert_eq!(d.body["message"], "deployments.apps \"x\" not found");
        assert_eq!(call(&c, "GET", "/apis/foo/v1", "", "", b"").status, 404);
        assert_eq!(
            call(&c, "PUT", "/api/v1/namespaces/default/pods", "", "", b"").status,
            405
        );
        assert_eq!(
            call(&c, "DELETE", "/api/v1/nodes/node1", "", "", b"").status,
            405
        );
        let gone = call(
            &c,
            "DELETE",
            "/api/v1/namespaces/default/pods/x",
            "",
            "",
            b"{}",
        );
        assert_eq!(gone.status, 404);
        assert_eq!(gone.body["message"], "pods \"x\" not found");
        let bad = call(
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
        let nodes = call(&c, "GET", "/api/v1/nodes", "", "application/json", b"");
        assert_eq!(nodes.body["kind"], "NodeList");
        assert_eq!(nodes.body["items"][0]["metadata"]["name"], "node1");
        assert_eq!(
            nodes.body["items"][0]["status"]["addresses"][0]["address"],
            "10.244.0.1"
        );
        let t = call(
            &c,
            "GET",
            "/api/v1/namespaces",
            "",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            b"",
        );
        assert_eq!(t.body["kind"], "Table");
        assert_eq!(t.body["rows"][0]["cells"][0], "default");
        let pods = call(&c, "GET", "/api/v1/pods", "", "application/json", b"");
        assert_eq!(pods.body["kind"], "PodList");
        assert_eq!(pods.body["items"], json!([]));
    }
}
