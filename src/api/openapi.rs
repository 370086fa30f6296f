//! The OpenAPI documents kubectl reads before it writes, and `kubectl explain` reads.
//!
//! `/openapi/v3` lists a document per group version; each holds the paths of the resources
//! served, and for every PATCH and POST the `fieldValidation` query parameter, so kubectl
//! (its `QueryParamVerifierV3`) leaves validation to the server: unknown and unsupported
//! fields are refused with podrun's own messages, and kubectl validates nothing itself,
//! schemas or not. Its `components.schemas` are the served kinds' (Pod, Event, Namespace,
//! Node; Deployment, ReplicaSet; Job) and all they refer to: k8s-openapi's JSON Schemas (its
//! `schemars` feature, generated from the same OpenAPI with the Kubernetes descriptions and
//! `required` lists), under kube-apiserver's names (`io.k8s.api.core.v1.PodSpec`), with a
//! `$ref` that has a description beside it as `allOf: [{$ref}]` (schemars' OpenAPI 3.0
//! settings; kube-apiserver writes the same) and each kind's `x-kubernetes-group-version-kind`
//! added: `kubectl explain` (v3 by default from 1.27 on, unless `--output
//! plaintext-openapiv2`) finds a kind's schema by that extension and walks the refs. Each
//! document is built on first request (tens of ms) and kept; the root names it by its
//! SHA-512, as kube-apiserver does, since kubectl caches documents on disk by that hash.
//!
//! The schemas lack kube-apiserver's `x-kubernetes-patch-strategy`, `-patch-merge-key`,
//! `-list-type` and `-list-map-keys` (k8s-openapi does not carry them), and nothing here
//! needs them: a PATCH's request body lists JSON patch and JSON merge patch and not
//! strategic merge patch, though the server takes it. With strategic merge patch listed,
//! `kubectl apply` would compute its patch from these schemas (and without the merge keys
//! would replace lists whole); without, it computes it from its own built-in types, as for any
//! server whose schema it cannot read, and sends a strategic merge patch.
//!
//! `/openapi/v2` is what kubectl 1.27 parses before any apply or explain, and what `kubectl
//! explain --output plaintext-openapiv2` prints from: a protobuf `Document` of gnostic's
//! OpenAPI v2 message (hand-encoded, [`pb`]) with `swagger: "2.0"`, the same schemas as
//! `definitions` and no paths, so kubectl's patch type lookup there finds no PATCH and apply
//! falls back to its built-in types as above.

use std::sync::OnceLock;

use schemars::Schema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

use super::discovery::{self, RESOURCES, Resource};
use super::router::{Reply, ok};

/// The content type kube-openapi answers a protobuf request with (the `@` of the type
/// kubectl asks for is not valid in a response's media type for Go's `mime`).
const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The reply for `/openapi/<rest>`, None for a path that has no document.
pub fn route(rest: &[&str], _accept: &str) -> Option<Reply> {
    let document = |group: &str| {
        let mut reply = ok(Value::Null);
        reply.raw = Some(("application/json", cached(group).json.clone()));
        reply
    };
    match rest {
        ["v2"] => {
            let mut reply = ok(Value::Null);
            reply.raw = Some((PROTOBUF, v2_document()));
            Some(reply)
        }
        ["v3"] => Some(ok(v3_root())),
        ["v3", "api", "v1"] => Some(document("")),
        ["v3", "apis", group, "v1"] if discovery::GROUPS.contains(group) => Some(document(group)),
        _ => None,
    }
}

/// A group version's document, serialized, and its hash.
struct Cached {
    json: Vec<u8>,
    hash: String,
}

/// The groups with a document: the core group, then [`discovery::GROUPS`].
fn groups() -> impl Iterator<Item = &'static str> {
    std::iter::once("").chain(discovery::GROUPS.iter().copied())
}

/// `group`'s document, built on first use (2-11 ms in a release build here, 40-70 ms in a
/// debug one; `serve` starts without).
fn cached(group: &str) -> &'static Cached {
    static DOCUMENTS: [OnceLock<Cached>; 1 + discovery::GROUPS.len()] =
        [const { OnceLock::new() }; 1 + discovery::GROUPS.len()];
    let index = groups().position(|g| g == group).expect("a group served");
    DOCUMENTS[index].get_or_init(|| {
        let t0 = std::time::Instant::now();
        let json = serde_json::to_vec(&v3_document(group)).unwrap_or_default();
        let hash = Sha512::digest(&json)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        tracing::debug!(group, bytes = json.len(), elapsed = ?t0.elapsed(), "openapi v3 document built");
        Cached { json, hash }
    })
}

/// `/openapi/v2`: gnostic's `openapi.v2.Document` (openapiv2/OpenAPIv2.proto) as protobuf,
/// with `swagger: "2.0"`, its `info` and the `definitions` of every group's kinds (the v3
/// documents' schemas, refs to `#/definitions/`), and no paths: kubectl's patch type lookup
/// finds no PATCH there (`GetConsumes`) and computes its patch from built-in types, as
/// before. Built once, on first request.
fn v2_document() -> Vec<u8> {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let t0 = std::time::Instant::now();
            let mut definitions = serde_json::Map::new();
            for group in groups() {
                definitions.extend(schemas(group));
            }
            // v2 has no int-or-string: kube-apiserver's swagger says string (IntOrString
            // with its format), and kubectl's v2 printer shows `<string>`.
            for (name, format) in [
                ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", Some("int-or-string")),
                ("io.k8s.apimachinery.pkg.api.resource.Quantity", None),
            ] {
                if let Some(Value::Object(schema)) = definitions.get_mut(name) {
                    schema.insert("type".into(), json!("string"));
                    schema.extend(format.map(|f| ("format".into(), json!(f))));
                    schema.remove("x-kubernetes-int-or-string");
                }
            }
            let mut info = Vec::new();
            pb::string(&mut info, 1, "Kubernetes");
            pb::string(&mut info, 2, crate::objects::KUBE_VERSION);
            let mut named = Vec::new();
            for (name, schema) in &definitions {
                pb::message(&mut named, 1, &pb::named_schema(name, schema));
            }
            let mut out = Vec::new();
            pb::string(&mut out, 1, "2.0");
            pb::message(&mut out, 2, &info);
            pb::message(&mut out, 9, &named);
            tracing::debug!(bytes = out.len(), elapsed = ?t0.elapsed(), "openapi v2 document built");
            out
        })
        .clone()
}

/// A hand-written encoder of the few gnostic OpenAPI v2 messages the schemas need (field
/// numbers from openapiv2/OpenAPIv2.proto): no protobuf crate for ~60 lines.
mod pb {
    use serde_json::Value;

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A length-delimited field: a string, bytes or an embedded message.
    pub fn message(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        varint(out, (field << 3) | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    pub fn string(out: &mut Vec<u8>, field: u64, s: &str) {
        message(out, field, s.as_bytes());
    }

    fn boolean(out: &mut Vec<u8>, field: u64, b: bool) {
        varint(out, field << 3);
        varint(out, u64::from(b));
    }

    /// `NamedSchema { name = 1, value = 2 }`.
    pub fn named_schema(name: &str, schema: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, 1, name);
        message(&mut out, 2, &self::schema(schema));
        out
    }

    /// `Schema`: `_ref` 1, `format` 2, `title` 3, `description` 4, `required` 19,
    /// `additional_properties` 21, `type` 22, `items` 23, `properties` 25, `read_only` 27,
    /// `vendor_extension` 31 (each `x-` key, its value as YAML: JSON is YAML). An OpenAPI v3
    /// `allOf: [{$ref}]` beside a description is v2's `$ref` with the description, as
    /// kube-apiserver's v2 writes it (kubectl's v2 parser reads no allOf).
    pub fn schema(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(o) = v.as_object() else {
            return out;
        };
        let all_of_ref = o
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 1)
            .and_then(|a| a[0].get("$ref"));
        if let Some(r) = o.get("$ref").or(all_of_ref).and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r);
            string(&mut out, 1, &format!("#/definitions/{name}"));
        }
        for (key, field) in [("format", 2), ("title", 3), ("description", 4)] {
            if let Some(s) = o.get(key).and_then(Value::as_str) {
                string(&mut out, field, s);
            }
        }
        for r in o
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            string(&mut out, 19, r.as_str().unwrap_or_default());
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(b)) => {
                let mut item = Vec::new();
                boolean(&mut item, 2, *b);
                message(&mut out, 21, &item);
            }
            Some(sub @ Value::Object(_)) => {
                let mut item = Vec::new();
                message(&mut item, 1, &schema(sub));
                message(&mut out, 21, &item);
            }
            _ => {}
        }
        if let Some(t) = o.get("type").and_then(Value::as_str) {
            let mut item = Vec::new();
            string(&mut item, 1, t);
            message(&mut out, 22, &item);
        }
        if let Some(items) = o.get("items").filter(|i| i.is_object()) {
            let mut item = Vec::new();
            message(&mut item, 1, &schema(items));
            message(&mut out, 23, &item);
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            let mut item = Vec::new();
            for (name, sub) in props {
                message(&mut item, 1, &named_schema(name, sub));
            }
            message(&mut out, 25, &item);
        }
        if o.get("readOnly") == Some(&Value::Bool(true)) {
            boolean(&mut out, 27, true);
        }
        for (key, value) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
            // NamedAny { name = 1, value = 2: Any { yaml = 2 } }
            let mut any = Vec::new();
            string(&mut any, 2, &value.to_string());
            let mut named = Vec::new();
            string(&mut named, 1, key);
            message(&mut named, 2, &any);
            message(&mut out, 31, &named);
        }
        out
    }
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
    for group in groups() {
        let path = gv_path(group);
        let url = format!("/openapi/v3/{path}?hash={}", cached(group).hash);
        paths.insert(path, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

/// The JSON Schema of a kind served, from k8s-openapi (a `$ref` to its definition, which
/// `generator` now holds with all it refers to); None for a kind without one.
fn kind_schema(generator: &mut SchemaGenerator, group: &str, kind: &str) -> Option<Schema> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    Some(match (group, kind) {
        ("", "Pod") => generator.subschema_for::<core::Pod>(),
        ("", "Event") => generator.subschema_for::<core::Event>(),
        ("", "ConfigMap") => generator.subschema_for::<core::ConfigMap>(),
        ("", "Secret") => generator.subschema_for::<core::Secret>(),
        ("", "Namespace") => generator.subschema_for::<core::Namespace>(),
        ("", "Node") => generator.subschema_for::<core::Node>(),
        ("apps", "Deployment") => generator.subschema_for::<apps::Deployment>(),
        ("apps", "ReplicaSet") => generator.subschema_for::<apps::ReplicaSet>(),
        ("batch", "Job") => generator.subschema_for::<batch::Job>(),
        _ => return None,
    })
}

/// `components.schemas` of a group's document: the kinds served, named and referred to as
/// kube-apiserver names them (`io.k8s.api.core.v1.Pod`, `#/components/schemas/...`), each
/// with its `x-kubernetes-group-version-kind`, and every schema they refer to. A `$ref` with
/// a description beside it becomes `allOf: [{$ref}]` (schemars' OpenAPI 3.0 settings), as
/// kube-apiserver writes it: `kubectl explain pod.spec` then prints both descriptions.
fn schemas(group: &str) -> serde_json::Map<String, Value> {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();
    let mut kinds = Vec::new();
    for res in RESOURCES.iter().filter(|r| r.group == group) {
        let Some(schema) = kind_schema(&mut generator, group, res.kind) else {
            continue;
        };
        let name = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map(str::to_owned);
        kinds.extend(name.map(|name| (name, res.kind)));
    }
    let mut definitions = generator.take_definitions(true);
    for (name, kind) in kinds {
        if let Some(Value::Object(schema)) = definitions.get_mut(&name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "kind": kind, "version": "v1"}]),
            );
        }
    }
    definitions
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
            let mut collection = json!({"get": operation(res, "list", None)});
            let mut item = json!({"get": operation(res, "get", None)});
            // Namespaces are made and deleted (`kubectl create namespace`, `delete ns`).
            if res.plural == "namespaces" {
                collection["post"] =
                    operation(res, "post", Some(json!({"application/json": object})));
                item["delete"] = operation(res, "delete", None);
            }
            paths.insert(format!("{base}/{}", res.plural), collection);
            paths.insert(format!("{base}/{}/{{name}}", res.plural), item);
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
        "components": {"schemas": schemas(group)},
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
        assert!(v2_document().starts_with(b"\x0a\x032.0\x12"));
        assert!(route(&["v3", "apis", "nope", "v1"], "").is_none());
    }

    /// Every `$ref` under `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                out.extend(o.get("$ref").and_then(Value::as_str));
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn documents_carry_the_kinds_schemas_and_all_they_refer_to() {
        for res in RESOURCES {
            let doc = v3_document(res.group);
            let schemas = &doc["components"]["schemas"];
            let kind = schemas
                .as_object()
                .unwrap()
                .values()
                .find(|s| s["x-kubernetes-group-version-kind"][0]["kind"] == res.kind)
                .unwrap_or_else(|| panic!("no schema of {}", res.kind));
            assert_eq!(
                kind["x-kubernetes-group-version-kind"][0]["group"],
                res.group
            );
            assert_eq!(kind["x-kubernetes-group-version-kind"][0]["version"], "v1");
            assert!(kind["properties"]["metadata"].is_object(), "{}", res.kind);
            let mut all = Vec::new();
            refs(&doc, &mut all);
            for r in all {
                let name = r.strip_prefix("#/components/schemas/").expect(r);
                assert!(schemas[name].is_object(), "{r} of {}", res.kind);
            }
        }
        let core = v3_document("");
        let schemas = &core["components"]["schemas"];
        let spec = &schemas["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
        assert_eq!(
            spec["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}])
        );
        assert!(
            spec["description"]
                .as_str()
                .unwrap()
                .starts_with("Specification of the desired behavior of the pod.")
        );
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert!(
            containers["description"]
                .as_str()
                .unwrap()
                .starts_with("List of containers belonging to the pod.")
        );
        assert_eq!(
            containers["items"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Container"
        );
        let container = &schemas["io.k8s.api.core.v1.Container"];
        assert_eq!(container["properties"]["image"]["type"], "string");
        assert_eq!(container["required"], json!(["name"]));
        // The same document each time (kubectl caches it by the hash the root names).
        assert_eq!(cached("").json, serde_json::to_vec(&core).unwrap());
    }

    #[test]
    fn v2_schemas_are_gnostic_protobuf() {
        // Schema { _ref: 1, description: 4 } from an allOf ref beside a description.
        let field = json!({"allOf": [{"$ref": "#/components/schemas/a.B"}], "description": "d"});
        assert_eq!(pb::schema(&field), b"\x0a\x11#/definitions/a.B\x22\x01d");
        // type 22 (TypeItem.value 1), required 19, properties 25 (NamedSchema 1: name 1, value 2).
        let object =
            json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "string"}}});
        assert_eq!(
            pb::schema(&object),
            b"\x9a\x01\x01n\xb2\x01\x08\x0a\x06object\xca\x01\x12\x0a\x10\x0a\x01n\x12\x0b\xb2\x01\x08\x0a\x06string"
                .as_slice()
        );
        let doc = v2_document();
        let text = String::from_utf8_lossy(&doc);
        assert!(text.contains("#/definitions/io.k8s.api.core.v1.PodSpec"));
        assert!(text.contains("io.k8s.api.apps.v1.Deployment"));
        assert!(!text.contains("#/components/"));
    }
}
