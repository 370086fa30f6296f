//! The three patch types of a `PATCH` request, applied to the object as the API server has
//! it: JSON patch (RFC 6902) and JSON merge patch (RFC 7386) by the `json-patch` crate, and
//! Kubernetes' strategic merge patch here (no maintained Rust crate has it): maps merge, a
//! `null` removes a key, lists of objects with a merge key (`containers` by `name`, `ports`
//! by `containerPort`, `volumeMounts` by `mountPath`, ...) merge item by item, `finalizers`
//! merge as a set, any other list is replaced; the directives `$patch` (`replace`, `delete`,
//! `merge`), `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`
//! do what apimachinery's `strategicpatch` does with them.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    /// The body is not a patch of its type (400).
    #[error("{0}")]
    Malformed(String),
    /// A JSON patch operation that cannot be applied (422).
    #[error("{0}")]
    Unprocessable(String),
    /// A content type that is not a patch (415).
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
    )]
    UnsupportedMediaType,
}

/// `target` patched by `body`, a patch of the type `content_type` names.
pub fn apply(content_type: &str, target: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let mut out = target.clone();
    match media {
        "application/json-patch+json" => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| PatchError::Malformed(format!("json patch: {e}")))?;
            json_patch::patch(&mut out, &patch)
                .map_err(|e| PatchError::Unprocessable(e.to_string()))?;
        }
        "application/merge-patch+json" => {
            let patch = parse_object(body)?;
            json_patch::merge(&mut out, &patch);
        }
        "application/strategic-merge-patch+json" => {
            let patch = parse_object(body)?;
            strategic_merge(&mut out, &patch)?;
        }
        _ => return Err(PatchError::UnsupportedMediaType),
    }
    Ok(out)
}

fn parse_object(body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
    if !patch.is_object() {
        return Err(PatchError::Malformed(
            "unable to find api field in struct Unstructured for the json field \"\"".into(),
        ));
    }
    Ok(patch)
}

/// The merge key of a list field, as the Kubernetes types declare it
/// (`patchStrategy:"merge" patchMergeKey:"..."`), for the fields of the objects served.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers" | "initContainers" | "ephemeralContainers" => "name",
        "env" | "volumes" | "imagePullSecrets" | "resourceClaims" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of scalars that merge as a set.
fn merges_as_set(field: &str) -> bool {
    field == "finalizers"
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Apply strategic merge patch `patch` (an object) to `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match patch.get(PATCH).and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(without_directives(patch));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Malformed(format!(
                "Unknown patch type: {other} in map: {}",
                Value::Object(patch.clone())
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object");
    if let Some(keep) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = keep
            .as_array()
            .ok_or_else(|| PatchError::Malformed("$retainKeys must be a list".into()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        map.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM) {
            if let (Some(list), Some(gone)) = (
                map.get_mut(field).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                list.retain(|v| !gone.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            map.remove(key);
            continue;
        }
        match (map.get_mut(key), value) {
            (Some(current @ Value::Object(_)), Value::Object(_)) => {
                strategic_merge(current, value)?;
            }
            (Some(Value::Array(current)), Value::Array(items)) => {
                merge_list(key, current, items)?;
            }
            _ => {
                map.insert(key.clone(), strip(value));
            }
        }
    }
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ORDER)
            && let (Some(list), Some(order)) = (
                map.get_mut(field).and_then(Value::as_array_mut),
                order.as_array(),
            )
        {
            reorder(field, list, order);
        }
    }
    Ok(())
}

fn merge_list(field: &str, current: &mut Vec<Value>, items: &[Value]) -> Result<(), PatchError> {
    // A `{"$patch": "replace"}` item: the list becomes the other items.
    if items
        .iter()
        .any(|i| i.get(PATCH).and_then(Value::as_str) == Some("replace"))
    {
        *current = items
            .iter()
            .filter(|i| i.get(PATCH).is_none())
            .map(strip)
            .collect();
        return Ok(());
    }
    if merges_as_set(field) {
        for item in items {
            if !current.contains(item) {
                current.push(item.clone());
            }
        }
        return Ok(());
    }
    let Some(key) = merge_key(field) else {
        *current = items.iter().map(strip).collect();
        return Ok(());
    };
    for item in items {
        let Some(id) = item.get(key) else {
            return Err(PatchError::Malformed(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        let found = current.iter().position(|c| c.get(key) == Some(id));
        match (found, item.get(PATCH).and_then(Value::as_str)) {
            (Some(at), Some("delete")) => {
                current.remove(at);
            }
            (None, Some("delete")) => {}
            (Some(at), _) => strategic_merge(&mut current[at], item)?,
            (None, _) => current.push(strip(item)),
        }
    }
    Ok(())
}

/// `$setElementOrder`: the items named in `order` first, in its order; the others after, as
/// they were.
fn reorder(field: &str, list: &mut [Value], order: &[Value]) {
    let rank = |item: &Value| {
        let id = match merge_key(field) {
            Some(key) => item.get(key),
            None => Some(item),
        };
        order
            .iter()
            .position(|o| match merge_key(field) {
                Some(key) => o.get(key) == id,
                None => Some(o) == id,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(|item| rank(item));
}

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip(v)))
        .collect()
}

/// A patch value as it goes into the object: directives removed, and the keys set to `null`
/// (a deletion, in a map that was not there) left out.
fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| i.get(PATCH).is_none())
                .map(strip)
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value) -> Value {
        apply(
            "application/strategic-merge-patch+json",
            &target,
            patch.to_string().as_bytes(),
        )
        .unwrap()
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "web", "labels": {"app": "a", "tier": "t"}},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "side", "image": "busybox", "args": ["sleep", "1"]}
            ], "finalizers": ["a"]}})
    }

    #[test]
    fn containers_merge_by_name_and_other_lists_are_replaced() {
        let out = smp(
            pod(),
            json!({"spec": {"containers": [
                {"name": "side", "image": "busybox:2", "args": ["sleep", "9"]},
                {"name": "new", "image": "x"}
            ]}}),
        );
        let c = &out["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 3);
        assert_eq!(c[0]["image"], "nginx:1");
        assert_eq!(c[1]["image"], "busybox:2");
        assert_eq!(c[1]["args"], json!(["sleep", "9"]));
        assert_eq!(c[2]["name"], "new");
    }

    #[test]
    fn null_deletes_and_directives_delete_replace_and_order() {
        let out = smp(
            pod(),
            json!({"metadata": {"labels": {"tier": null, "new": "n"}},
                "spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
                  "containers": [{"name": "web", "env": [{"name": "A", "$patch": "delete"}]}]}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "a", "new": "n"}));
        assert_eq!(out["spec"]["containers"][0]["name"], "side");
        assert_eq!(
            out["spec"]["containers"][1]["env"],
            json!([{"name": "B", "value": "2"}])
        );
        let replaced = smp(
            pod(),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "i"}]}}),
        );
        assert_eq!(
            replaced["spec"]["containers"],
            json!([{"name": "only", "image": "i"}])
        );
        let map = smp(
            pod(),
            json!({"metadata": {"labels": {"$patch": "replace", "x": "y"}}}),
        );
        assert_eq!(map["metadata"]["labels"], json!({"x": "y"}));
        let retained = smp(
            pod(),
            json!({"metadata": {"$retainKeys": ["name"], "name": "web"}}),
        );
        assert_eq!(retained["metadata"], json!({"name": "web"}));
    }

    #[test]
    fn finalizers_merge_as_a_set_and_can_lose_items() {
        let out = smp(pod(), json!({"spec": {"finalizers": ["a", "b"]}}));
        assert_eq!(out["spec"]["finalizers"], json!(["a", "b"]));
        let out = smp(
            out,
            json!({"spec": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["spec"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn merge_and_json_patches_and_bad_bodies() {
        let merged = apply(
            "application/merge-patch+json",
            &pod(),
            br#"{"spec":{"containers":[{"name":"x","image":"y"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            merged["spec"]["containers"],
            json!([{"name": "x", "image": "y"}])
        );
        let patched = apply(
            "application/json-patch+json",
            &pod(),
            br#"[{"op":"replace","path":"/spec/containers/0/image","value":"nginx:2"}]"#,
        )
        .unwrap();
        assert_eq!(patched["spec"]["containers"][0]["image"], "nginx:2");
        assert!(matches!(
            apply(
                "application/json-patch+json",
                &pod(),
                br#"[{"op":"remove","path":"/spec/nope"}]"#
            ),
            Err(PatchError::Unprocessable(_))
        ));
        assert_eq!(
            apply("text/plain", &pod(), b"{}"),
            Err(PatchError::UnsupportedMediaType)
        );
        assert!(matches!(
            apply("application/strategic-merge-patch+json", &pod(), b"[1]"),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            apply(
                "application/strategic-merge-patch+json",
                &pod(),
                br#"{"spec":{"containers":[{"image":"x"}]}}"#
            ),
            Err(PatchError::Malformed(_))
        ));
    }
}
