//! Writes of ConfigMaps and Secrets: `POST`, `PATCH` (strategic merge, JSON merge or JSON
//! patch through `patch.rs`) and `DELETE`. A body is loaded as `podrun apply` loads a file
//! (the same strict decoding, `fieldValidation` and the API server's validation), the object
//! stored under the state root (`state::config_objects`) with the server's metadata, and
//! answered as the API server answers. Reads go through `objects::resources` as every
//! resource's do.

use serde_json::{Value, json};

use super::patch::{self, PatchError};
use super::router::{Context, Reply, created, not_found, ok, qualified, status};
use super::write::{self, FieldValidation, Target};
use crate::objects::config::{self, Planned};
use crate::state::ConfigKind;

fn body_object(body: &[u8]) -> Result<Value, Reply> {
    // A protobuf body (kubectl 1.33's typed clients) reaches here as JSON (`super::protobuf`).
    match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(status(400, "BadRequest", "the body is not an object", None)),
        Err(e) => Err(status(
            400,
            "BadRequest",
            &format!("decoding the body: {e}"),
            None,
        )),
    }
}

/// The document's kind and apiVersion are the target's, its namespace the URL's (filled in
/// when it names none).
fn check_document(t: &Target, document: &mut Value) -> Result<(), Reply> {
    if document["kind"].as_str() != Some(t.res.kind) || document["apiVersion"] != "v1" {
        return Err(status(
            400,
            "BadRequest",
            &format!(
                "the API version in the data ({}) does not match the expected API version (v1) or kind ({})",
                document["apiVersion"].as_str().unwrap_or_default(),
                t.res.kind
            ),
            None,
        ));
    }
    match document["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() && ns != t.namespace => Err(status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
            None,
        )),
        _ => {
            document["metadata"]["namespace"] = json!(t.namespace);
            Ok(())
        }
    }
}

/// The document loaded and validated: its stored form and the warnings.
fn loaded(
    ctx: &Context,
    t: &Target,
    document: &Value,
    validation: FieldValidation,
) -> Result<(crate::spec::DataObject, Vec<String>), Reply> {
    let (loaded, warnings) = write::load(ctx, document, t.res, validation)?;
    match loaded.configs.into_iter().next() {
        Some(object) => Ok((object, warnings)),
        None => Err(status(500, "InternalError", "no object in the body", None)),
    }
}

fn stored(ctx: &Context, planned: &Planned, current: Option<Value>) -> Result<Value, Reply> {
    config::commit(&ctx.cfg, std::slice::from_ref(planned))
        .map_err(|e| status(500, "InternalError", &e.to_string(), None))?;
    Ok(planned.object.clone().or(current).unwrap_or(Value::Null))
}

/// `POST .../namespaces/NS/configmaps|secrets`: 201 with the object stored.
pub fn create(
    ctx: &Context,
    t: &Target,
    kind: ConfigKind,
    validation: FieldValidation,
    body: &[u8],
) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let mut document = body_object(body)?;
        check_document(t, &mut document)?;
        let (object, warnings) = loaded(ctx, t, &document, validation)?;
        let store = ctx.cfg.store();
        if store
            .load_config(kind, &object.namespace, &object.name)
            .is_some()
        {
            let name = &object.name;
            return Err(status(
                409,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", qualified(t.res)),
                Some(json!({"name": name, "kind": t.res.plural})),
            ));
        }
        let planned =
            config::plan(&ctx.cfg, &object, false).map_err(|e| status(422, "Invalid", &e, None))?;
        let mut reply = created(stored(ctx, &planned, None)?);
        reply.warnings = warnings;
        Ok(reply)
    };
    run().unwrap_or_else(|r| r)
}

/// `PATCH .../configmaps|secrets/NAME`: the stored object patched, validated, and stored if
/// the API server would take the change (`immutable`, a Secret's `type`).
pub fn patch(
    ctx: &Context,
    t: &Target,
    kind: ConfigKind,
    name: &str,
    validation: FieldValidation,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let store = ctx.cfg.store();
        let Some(current) = store.load_config(kind, t.namespace, name) else {
            return Err(not_found(t.res, name));
        };
        let mut patched = patch::apply(content_type, &current, body).map_err(|e| match e {
            PatchError::UnsupportedMediaType => {
                status(415, "UnsupportedMediaType", &e.to_string(), None)
            }
            PatchError::Malformed(_) => status(400, "BadRequest", &e.to_string(), None),
            PatchError::Unprocessable(_) => status(422, "Invalid", &e.to_string(), None),
        })?;
        if patched["metadata"]["name"].as_str() != Some(name) {
            return Err(status(
                400,
                "BadRequest",
                "the name of the object does not match the name on the URL",
                None,
            ));
        }
        check_document(t, &mut patched)?;
        let (object, warnings) = loaded(ctx, t, &patched, validation)?;
        let planned = config::plan_value(kind, name, object.document, Some(&current))
            .map_err(|e| status(422, "Invalid", &e, None))?;
        let mut reply = ok(stored(ctx, &planned, Some(current))?);
        reply.warnings = warnings;
        Ok(reply)
    };
    run().unwrap_or_else(|r| r)
}

/// `DELETE .../configmaps|secrets/NAME`: removed; the API server's `Status` of success.
pub fn delete(ctx: &Context, t: &Target, kind: ConfigKind, name: &str) -> Reply {
    let store = ctx.cfg.store();
    let Some(current) = store.load_config(kind, t.namespace, name) else {
        return not_found(t.res, name);
    };
    match store.remove_config(kind, t.namespace, name) {
        Ok(true) => ok(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "kind": t.res.plural, "uid": current["metadata"]["uid"]},
        })),
        Ok(false) => not_found(t.res, name),
        Err(e) => status(500, "InternalError", &e.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::router::{Call, route};
    use super::*;

    fn ctx(root: &std::path::Path) -> Context {
        crate::api::router::test_context(root)
    }

    fn call(c: &Context, method: &str, path: &str, query: &str, body: &str) -> Reply {
        let content_type = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        route(
            c,
            &Call {
                method,
                path,
                query,
                accept: if query == "table" {
                    "application/json;as=Table;v=v1;g=meta.k8s.io"
                } else {
                    "application/json"
                },
                content_type,
                body: body.as_bytes(),
            },
        )
    }

    #[test]
    fn created_listed_patched_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        let ns = "/api/v1/namespaces/default/secrets";
        let body = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","labels":{"a":"b"}},"stringData":{"pw":"hunter2"}}"#;
        let made = call(&c, "POST", ns, "", body);
        assert_eq!(made.status, 201, "{}", made.body);
        assert_eq!(made.body["data"]["pw"], "aHVudGVyMg==");
        assert_eq!(made.body["type"], "Opaque");
        assert_eq!(made.body["metadata"]["namespace"], "default");
        assert_eq!(call(&c, "POST", ns, "", body).status, 409);
        let table = call(&c, "GET", "/api/v1/secrets", "table", "");
        let names: Vec<&Value> = table.body["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, ["Name", "Type", "Data", "Age"]);
        assert_eq!(table.body["rows"][0]["cells"][1], "Opaque");
        let selected = call(&c, "GET", ns, "labelSelector=a%3Db", "");
        assert_eq!(selected.body["kind"], "SecretList");
        assert_eq!(selected.body["items"].as_array().unwrap().len(), 1);
        let none = call(&c, "GET", ns, "fieldSelector=metadata.name%3Dx", "");
        assert_eq!(none.body["items"], json!([]));
        let uid = made.body["metadata"]["uid"].clone();
        let patched = call(&c, "PATCH", &format!("{ns}/s"), "", r#"{"immutable":true}"#);
        assert_eq!(patched.status, 200, "{}", patched.body);
        assert_eq!(patched.body["metadata"]["uid"], uid);
        let refused = call(
            &c,
            "PATCH",
            &format!("{ns}/s"),
            "",
            r#"{"data":{"pw":"eA=="}}"#,
        );
        assert_eq!(refused.status, 422);
        assert_eq!(
            refused.body["message"],
            "The Secret \"s\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
        let bad =
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a b":"1"}}"#;
        let invalid = call(&c, "POST", "/api/v1/namespaces/default/configmaps", "", bad);
        assert_eq!(invalid.status, 422);
        assert!(invalid.body["message"].as_str().unwrap().starts_with(
            "The ConfigMap \"c\" is invalid: data[a b]: Invalid value: \"a b\": a valid config key"
        ));
        let gone = call(&c, "DELETE", &format!("{ns}/s"), "", "");
        assert_eq!(gone.body["status"], "Success");
        assert_eq!(call(&c, "GET", &format!("{ns}/s"), "", "").status, 404);
        assert_eq!(call(&c, "DELETE", &format!("{ns}/s"), "", "").status, 404);
    }
}
