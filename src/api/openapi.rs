//! The OpenAPI documents kubectl reads before it writes.
//!
//! `/openapi/v3` lists a document per group version; each holds the paths of the resources
//! served, and for every PATCH and POST the `fieldValidation` query parameter, so kubectl
//! (its `QueryParamVerifierV3`) leaves validation to the server: unknown and unsupported
//! fields are refused with podrun's own messages. A PATCH's request body lists JSON patch and
//! JSON merge patch and not strategic merge patch, though the server takes it: with strategic
//! merge patch listed, `kubectl apply` would compute its patch from schemas (which these
//! documents do not carry yet); without, it computes it from its own built-in types, as for
//! any server whose schema it cannot read, and sends a strategic merge patch.
//!
//! `/openapi/v2` is what kubectl 1.27 parses before any apply: a protobuf `Document` of
//! gnostic's OpenAPI v2 message with `swagger: "2.0"` and no definitions (it then finds no
//! schema of its own to validate with, and asks the server, as above).

use serde_json::{Value, json};

use super::discovery::{self, RESOURCES, Resource};
use super::router::{Reply, ok};

/// The content type kube-openapi answers a protobuf request with (the `@` of the type
/// kubectl asks for is not valid in a response's media type for Go's `mime`).
const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The reply for `/openapi/<rest>`, None for a path that has no document.
pub fn route(rest: &[&str], _accept: &str) -> Option<Reply> {
    match rest {
        ["v2"] => {
            let mut reply = ok(Value::Null);
            reply.raw = Some((PROTOBUF, v2_document()));
            Some(reply)
        }
        ["v3"] => Some(ok(v3_root())),
        ["v3", "api", "v1"] => Some(ok(v3_document(""))),
        ["v3", "apis", group, "v1"] if discovery::GROUPS.contains(group) => {
            Some(ok(v3_document(group)))
        }
        _ => None,
    }
}

/// The protobuf of `Document { swagger: "2.0" }`: field 1, length-delimited.
fn v2_document() -> Vec<u8> {
    let swagger = b"2.0";
    let mut out = vec![(1 << 3) | 2, swagger.len() as u8];
    out.extend_from_slice(swagger);
    out
}

/// The group version's path in `/openapi/v3`: `api/v1`, `apis/apps/v1`.
fn gv_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".into()
    } else {
        format!("apis/{group}/v1")
    }
}

fn v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    for group in std::iter::once("").chain(discovery::GROUPS.iter().copied()) {
        let path = gv_path(group);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(group))}),
        );
    }
    json!({ "paths": paths })
}

/// A document's hash (kubectl caches documents by it): the server's version and the group.
fn hash(group: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (env!("CARGO_PKG_VERSION"), group, RESOURCES.len()).hash(&mut h);
    format!("{:016X}", h.finish())
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
        "schema": {"type": "string", "uniqueItems": true}})
}

fn write_parameters() -> Value {
    json!([
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted."
        ),
        query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes."
        ),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn (the default) or Strict."
        ),
    ])
}

fn operation(res: &Resource, action: &str, body: Option<Value>) -> Value {
    let mut op = json!({
        "operationId": format!("{action}{}", res.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": res.group, "version": "v1", "kind": res.kind},
        "responses": {"200": {"description": "OK"}},
    });
    if let Some(content) = body {
        op["parameters"] = write_parameters();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

fn v3_document(group: &str) -> Value {
    let object = json!({"schema": {"type": "object"}});
    let mut paths = serde_json::Map::new();
    for res in RESOURCES.iter().filter(|r| r.group == group) {
        let base = format!("/{}", gv_path(group));
        let writable = res.plural == "pods"
            || crate::pod::workloads::workload_kind(res.plural).is_some()
            || crate::state::ConfigKind::from_word(res.plural).is_some();
        if !res.namespaced {
            paths.insert(
                format!("{base}/{}", res.plural),
                json!({"get": operation(res, "list", None)}),
            );
            paths.insert(
                format!("{base}/{}/{{name}}", res.plural),
                json!({"get": operation(res, "get", None)}),
            );
            continue;
        }
        let mut collection = json!({"get": operation(res, "list", None)});
        let mut item = json!({"get": operation(res, "get", None)});
        if writable {
            collection["post"] = operation(res, "post", Some(json!({"application/json": object})));
            item["patch"] = operation(
                res,
                "patch",
                Some(json!({
                    "application/json-patch+json": object,
                    "application/merge-patch+json": object,
                })),
            );
            item["delete"] = operation(res, "delete", None);
        }
        paths.insert(
            format!("{base}/namespaces/{{namespace}}/{}", res.plural),
            collection,
        );
        paths.insert(
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", res.plural),
            item,
        );
        paths.insert(
            format!("{base}/{}", res.plural),
            json!({"get": operation(res, "list", None)}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": discovery::version()["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_name_field_validation_on_every_write() {
        let root = v3_root();
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = v3_document("apps");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(
            patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_null()
        );
        let core = v3_document("");
        assert!(core["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"].is_object());
        assert!(core["paths"]["/api/v1/nodes/{name}"]["patch"].is_null());
        assert_eq!(v2_document(), b"\x0a\x032.0");
        assert!(route(&["v3", "apis", "nope", "v1"], "").is_none());
    }
}
