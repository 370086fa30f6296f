//! Writes: `POST` (create), `PATCH` and `DELETE` of pods, Deployments, ReplicaSets and Jobs.
//! Each goes through the pod library as the CLI's verbs do: a created or patched object is
//! loaded as a manifest (the same strict decoding, whitelist and validation as `podrun apply`,
//! with the request's `fieldValidation`) and given to `pod::apply::apply`, which creates it,
//! leaves it unchanged, updates it where Kubernetes allows it or refuses with the API server's
//! message; a delete is `pod::delete` (a pod's grace period) or `pod::workloads::forget` and
//! the workload's pods stopped (cascade).

use serde_json::{Value, json};

use super::discovery::{self, Resource};
use super::patch::{self, PatchError};
use super::router::{Context, Reply, created, not_allowed, not_found, ok, qualified, status};
use crate::objects::resources;
use crate::pod::PodError;
use crate::spec::{LAST_APPLIED_ANNOTATION, SpecError};
use crate::state::{ConfigKind, PodKey, StateError, WorkloadKind};

/// What a write request names.
pub struct Target<'a> {
    pub res: &'static Resource,
    pub namespace: &'a str,
    pub name: Option<&'a str>,
}

/// The request's `fieldValidation` (the API server's default, without one, is Warn).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub fn from_query(value: &str) -> Result<Self, Reply> {
        match value {
            "Strict" => Ok(Self::Strict),
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            other => Err(status(
                400,
                "BadRequest",
                &format!(
                    "fieldValidation {other} is invalid, valid values are: Ignore, Warn, Strict"
                ),
                None,
            )),
        }
    }
}

fn workload_kind(res: &Resource) -> Option<WorkloadKind> {
    crate::pod::workloads::workload_kind(res.plural)
}

fn writable(res: &Resource) -> bool {
    res.plural == "pods" || workload_kind(res).is_some()
}

/// `POST .../namespaces/NS/PLURAL`: the object created, 201 with it as it is now.
pub fn create(ctx: &Context, t: &Target, validation: FieldValidation, body: &[u8]) -> Reply {
    if let Some(kind) = ConfigKind::from_word(t.res.plural) {
        return super::config::create(ctx, t, kind, validation, body);
    }
    if !writable(t.res) {
        return not_allowed("POST");
    }
    let document: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return status(400, "BadRequest", "the body is not an object", None),
        Err(e) => return status(400, "BadRequest", &format!("decoding the body: {e}"), None),
    };
    let Some(name) = document["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(
            422,
            "Invalid",
            &format!(
                "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                t.res.kind
            ),
            None,
        );
    };
    if exists(ctx, t.res, t.namespace, &name) {
        return status(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", qualified(t.res)),
            Some(json!({"name": name, "group": t.res.group, "kind": t.res.plural})),
        );
    }
    let (reply_status, warnings) = match write(ctx, t, document, validation) {
        Ok(w) => (201, w),
        Err(r) => return r,
    };
    with_object(ctx, t.res, t.namespace, &name, reply_status, warnings)
}

/// `PATCH .../PLURAL/NAME`: the object as applied last (a workload with its replicas as they
/// are now) patched, then applied as `podrun apply` applies a changed file.
pub fn patch(
    ctx: &Context,
    t: &Target,
    validation: FieldValidation,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let Some(name) = t.name else {
        return not_allowed("PATCH");
    };
    if let Some(kind) = ConfigKind::from_word(t.res.plural) {
        return super::config::patch(ctx, t, kind, name, validation, content_type, body);
    }
    if !writable(t.res) {
        return not_allowed("PATCH");
    }
    let Some(current) = as_applied(ctx, t.res, t.namespace, name) else {
        return not_found(t.res, name);
    };
    let patched = match patch::apply(content_type, &current, body) {
        Ok(p) => p,
        Err(e @ PatchError::UnsupportedMediaType) => {
            return status(415, "UnsupportedMediaType", &e.to_string(), None);
        }
        Err(e @ PatchError::Malformed(_)) => {
            return status(400, "BadRequest", &e.to_string(), None);
        }
        Err(e @ PatchError::Unprocessable(_)) => {
            return status(422, "Invalid", &e.to_string(), None);
        }
    };
    if patched["metadata"]["name"].as_str() != Some(name) {
        return status(
            400,
            "BadRequest",
            "the name of the object does not match the name on the URL",
            None,
        );
    }
    match write(ctx, t, patched, validation) {
        Ok(warnings) => with_object(ctx, t.res, t.namespace, name, 200, warnings),
        Err(r) => r,
    }
}

/// The object named as applied last: the manifest it came from (without the
/// last-applied annotation), with a workload's current replicas; None if there is none.
fn as_applied(ctx: &Context, res: &Resource, namespace: &str, name: &str) -> Option<Value> {
    let store = ctx.cfg.store();
    let key = PodKey::new(namespace, name);
    let parsed = |text: &str| serde_json::from_str::<Value>(text).ok();
    let mut object = match workload_kind(res) {
        None => {
            let r = crate::pod::read::get(&ctx.cfg, namespace, name).ok()?;
            r.plan
                .last_applied
                .as_deref()
                .and_then(parsed)
                .unwrap_or(r.plan.manifest)
        }
        Some(WorkloadKind::Deployment) => {
            let d = store.load_deployment(&key).ok()??;
            let mut object = parsed(&d.last_applied)?;
            object["spec"]["replicas"] = json!(d.plan.replicas);
            object
        }
        Some(WorkloadKind::ReplicaSet) => {
            let r = store.load_replica_set(&key).ok()??;
            let mut object = r.last_applied.as_deref().and_then(parsed)?;
            object["spec"]["replicas"] = json!(r.replicas);
            object
        }
        Some(WorkloadKind::Job) => parsed(&store.load_job(&key).ok()??.last_applied)?,
    };
    if let Some(annotations) = object["metadata"]["annotations"].as_object_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    Some(object)
}

fn exists(ctx: &Context, res: &Resource, namespace: &str, name: &str) -> bool {
    let key = PodKey::new(namespace, name);
    match workload_kind(res) {
        None => ctx.cfg.store().exists(&key),
        Some(kind) => crate::pod::workloads::exists(&ctx.cfg.store(), kind, &key).unwrap_or(false),
    }
}

/// The reply with the object as it is now (`code` 201 or 200).
fn with_object(
    ctx: &Context,
    res: &'static Resource,
    namespace: &str,
    name: &str,
    code: u16,
    warnings: Vec<String>,
) -> Reply {
    let object = resources::object(&ctx.cfg, res.plural, namespace, name)
        .unwrap_or_else(|| json!({"apiVersion": discovery::api_version(res.group), "kind": res.kind, "metadata": {"name": name, "namespace": namespace}}));
    let mut reply = if code == 201 {
        created(object)
    } else {
        ok(object)
    };
    reply.warnings = warnings;
    reply
}

/// Load `document` as a manifest of `t`'s kind in `t`'s namespace and apply it. Returns the
/// warnings (unknown fields, with `Warn`).
fn write(
    ctx: &Context,
    t: &Target,
    mut document: Value,
    validation: FieldValidation,
) -> Result<Vec<String>, Reply> {
    let api_version = discovery::api_version(t.res.group);
    if document["kind"].as_str() != Some(t.res.kind)
        || document["apiVersion"].as_str() != Some(api_version.as_str())
    {
        return Err(status(
            400,
            "BadRequest",
            &format!(
                "the API version in the data ({}) does not match the expected API version ({api_version}) or kind ({})",
                document["apiVersion"].as_str().unwrap_or_default(),
                t.res.kind
            ),
            None,
        ));
    }
    match document["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() && ns != t.namespace => {
            return Err(status(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
                None,
            ));
        }
        _ => document["metadata"]["namespace"] = json!(t.namespace),
    }
    let (loaded, warnings) = load(ctx, &document, t.res, validation)?;
    let objects = loaded.objects;
    let mut notes = Vec::new();
    let applied =
        crate::pod::apply::apply(&ctx.cfg, objects, &mut |line| notes.push(line), &mut |_| {});
    for line in notes {
        tracing::info!("{line}");
    }
    match applied {
        Ok(_) => Ok(warnings),
        Err(e) => Err(apply_error(t.res, &e)),
    }
}

pub(super) const SOURCE: &str = "request";

/// The manifest's objects, as `podrun apply` loads a file; with Warn or Ignore, unknown
/// fields are dropped (Warn: one warning each, as the API server's `Warning` headers).
pub(super) fn load(
    ctx: &Context,
    document: &Value,
    res: &Resource,
    validation: FieldValidation,
) -> Result<(crate::spec::Loaded, Vec<String>), Reply> {
    let mut document = document.clone();
    let mut warnings = Vec::new();
    loop {
        let stored = crate::objects::config::stored(&ctx.cfg);
        match crate::spec::load_str_with(&document.to_string(), SOURCE, None, &stored) {
            Ok(loaded) => return Ok((loaded, warnings)),
            Err(SpecError::UnknownFields { paths, .. })
                if validation != FieldValidation::Strict =>
            {
                for path in &paths {
                    if !remove_path(&mut document, path) {
                        return Err(status(
                            500,
                            "InternalError",
                            &format!("unknown field \"{path}\" could not be dropped"),
                            None,
                        ));
                    }
                    if validation == FieldValidation::Warn {
                        warnings.push(format!("unknown field \"{path}\""));
                    }
                }
            }
            Err(e @ SpecError::UnknownFields { .. }) => {
                return Err(status(
                    400,
                    "BadRequest",
                    &format!(
                        "{} in version \"{}\" cannot be handled as a {}: {}",
                        res.kind,
                        discovery::api_version(res.group),
                        res.kind,
                        without_origin(&e)
                    ),
                    None,
                ));
            }
            Err(e) => return Err(status(422, "Invalid", &without_origin(&e), None)),
        }
    }
}

/// A manifest error's words without the `request: ` it starts with.
pub(super) fn without_origin(e: &SpecError) -> String {
    let text = e.to_string();
    text.strip_prefix(&format!("{SOURCE}: "))
        .unwrap_or(&text)
        .to_owned()
}

fn apply_error(res: &Resource, e: &PodError) -> Reply {
    match e {
        PodError::Spec(s) => status(422, "Invalid", &without_origin(s), None),
        PodError::Refused(r) => status(422, "Invalid", &r.to_string(), None),
        PodError::State(StateError::AlreadyExists(name)) => status(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", qualified(res)),
            None,
        ),
        other => status(500, "InternalError", &other.to_string(), None),
    }
}

/// Remove the field at `path` (`spec.containers[0].foo`) from `document`; false if it is not
/// there.
pub(super) fn remove_path(document: &mut Value, path: &str) -> bool {
    let mut steps: Vec<Step> = Vec::new();
    for part in path.split('.') {
        let (name, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            steps.push(Step::Key(name.to_owned()));
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            match index.trim_end_matches(']').parse() {
                Ok(i) => steps.push(Step::Index(i)),
                Err(_) => return false,
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut at = document;
    for step in parents {
        let next = match step {
            Step::Key(k) => at.get_mut(k.as_str()),
            Step::Index(i) => at.get_mut(*i),
        };
        let Some(next) = next else {
            return false;
        };
        at = next;
    }
    match (last, at) {
        (Step::Key(k), Value::Object(map)) => map.remove(k).is_some(),
        _ => false,
    }
}

enum Step {
    Key(String),
    Index(usize),
}

/// `DELETE .../PLURAL/NAME`: a pod stopped with its grace period (DeleteOptions'
/// `gracePeriodSeconds`, in the body or the query) and removed; a workload forgotten and
/// its pods stopped and removed, before the answer: the object as it was when its deletion
/// was asked. kubectl's wait for the deletion then finds it gone.
pub fn delete(ctx: &Context, t: &Target, query: &str, body: &[u8]) -> Reply {
    let Some(name) = t.name else {
        return not_allowed("DELETE");
    };
    if let Some(kind) = ConfigKind::from_word(t.res.plural) {
        return super::config::delete(ctx, t, kind, name);
    }
    if !writable(t.res) {
        return not_allowed("DELETE");
    }
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
    let Some(mut object) = resources::object(&ctx.cfg, t.res.plural, t.namespace, name) else {
        return not_found(t.res, name);
    };
    object["metadata"]["deletionTimestamp"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let key = PodKey::new(t.namespace, name);
    let store = ctx.cfg.store();
    let pods = match workload_kind(t.res) {
        None => vec![key],
        Some(kind) => match crate::pod::workloads::forget(&store, kind, &key) {
            Ok(owned) => owned,
            Err(_) => return not_found(t.res, name),
        },
    };
    let owned = workload_kind(t.res).is_some();
    // Every pod is asked to stop and waited for even when one fails: a workload's record is
    // gone already, so a pod left running would be nobody's.
    let mut stopping = Vec::new();
    let mut failed = None;
    for pod in &pods {
        match crate::pod::delete::request_stop(&ctx.cfg, pod, grace) {
            Ok((s, _)) => stopping.push(s),
            // Gone meanwhile (its controller or another delete removed it).
            Err(StateError::NotFound(_)) if owned => {}
            Err(StateError::NotFound(_)) => return not_found(t.res, name),
            Err(e) => failed = failed.or(Some(e.to_string())),
        }
    }
    for s in stopping {
        if let Err(e) = crate::pod::delete::finish(&ctx.cfg, s) {
            failed = failed.or(Some(e.to_string()));
        }
    }
    match failed {
        Some(e) => status(500, "InternalError", &e, None),
        None => ok(object),
    }
}

/// `POST /api/v1/namespaces` (`kubectl create namespace`, `kubectl apply` of a Namespace).
pub fn create_namespace(ctx: &Context, body: &[u8]) -> Reply {
    use crate::pod::namespaces::{self, NamespaceError};
    let ns: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", &format!("Namespace: {e}"), None),
    };
    let name = ns["metadata"]["name"].as_str().unwrap_or_default();
    let labels = ns["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    match namespaces::create(&ctx.cfg, name, labels) {
        Ok(_) => {
            created(resources::object(&ctx.cfg, "namespaces", "", name).unwrap_or(Value::Null))
        }
        Err(e @ NamespaceError::AlreadyExists(_)) => status(
            409,
            "AlreadyExists",
            &e.to_string(),
            Some(json!({"name": name, "kind": "namespaces"})),
        ),
        Err(e @ NamespaceError::Invalid(_)) => status(422, "Invalid", &e.to_string(), None),
        Err(e) => status(500, "InternalError", &e.to_string(), None),
    }
}

/// `DELETE /api/v1/namespaces/NAME`: its pods and workloads, then itself; the answer is the
/// namespace as it was, `Terminating` (kubectl then waits for the 404).
pub fn delete_namespace(ctx: &Context, name: &str) -> Reply {
    use crate::pod::namespaces::{self, NamespaceError};
    let object = resources::object(&ctx.cfg, "namespaces", "", name);
    match namespaces::delete(&ctx.cfg, name) {
        Ok(()) => {
            let mut obj = object.unwrap_or(Value::Null);
            obj["status"]["phase"] = json!("Terminating");
            ok(obj)
        }
        Err(e @ NamespaceError::NotFound(_)) => status(
            404,
            "NotFound",
            &e.to_string(),
            Some(json!({"name": name, "kind": "namespaces"})),
        ),
        Err(e @ NamespaceError::Forbidden(_)) => status(403, "Forbidden", &e.to_string(), None),
        Err(e) => status(500, "InternalError", &e.to_string(), None),
    }
}

/// `pods/eviction` (`kubectl drain`): the pod is deleted with the Eviction's delete
/// options, and the answer is the API server's 201 Status. podrun has no
/// PodDisruptionBudgets, so no eviction is refused for one (no 429).
pub fn evict(ctx: &Context, namespace: &str, name: &str, body: &[u8]) -> Reply {
    let eviction: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", &format!("Eviction: {e}"), None),
    };
    if !matches!(eviction["kind"].as_str(), Some("Eviction") | None) {
        return status(
            400,
            "BadRequest",
            &format!("expected kind Eviction, got {}", eviction["kind"]),
            None,
        );
    }
    let options = serde_json::to_vec(&eviction["deleteOptions"]).unwrap_or_default();
    let options: &[u8] = if eviction["deleteOptions"].is_object() {
        &options
    } else {
        b""
    };
    let pods = discovery::resource("", "pods").expect("pods are served");
    let target = Target {
        res: pods,
        namespace,
        name: Some(name),
    };
    let deleted = delete(ctx, &target, "", options);
    if deleted.status != 200 {
        return deleted;
    }
    created(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_removed_by_path() {
        let mut doc = json!({"spec": {"containers": [{"name": "a", "foo": 1}], "bar": {"x": 1}}});
        assert!(remove_path(&mut doc, "spec.containers[0].foo"));
        assert!(remove_path(&mut doc, "spec.bar"));
        assert!(!remove_path(&mut doc, "spec.containers[3].foo"));
        assert_eq!(doc, json!({"spec": {"containers": [{"name": "a"}]}}));
    }

    #[test]
    fn field_validation_values() {
        assert_eq!(
            FieldValidation::from_query("Strict").ok(),
            Some(FieldValidation::Strict)
        );
        assert_eq!(
            FieldValidation::from_query("").ok(),
            Some(FieldValidation::Warn)
        );
        assert_eq!(FieldValidation::from_query("Loud").unwrap_err().status, 400);
    }
}
