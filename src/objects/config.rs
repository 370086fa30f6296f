//! Stored ConfigMaps and Secrets (`state::config_objects`) for both front ends: what an
//! apply or a write does with one (created, unchanged, configured, or refused as the API
//! server refuses it), the server's metadata stamped on it, the lookup a manifest's pods
//! resolve their references with, and the listing with kube-apiserver's columns.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::resources::{Collection, columns};
use crate::config::Config;
use crate::spec::{DataObject, LAST_APPLIED_ANNOTATION};
use crate::state::ConfigKind;

/// The ConfigMaps and Secrets stored in a namespace, as a manifest's pods look them up.
pub fn stored(cfg: &Config) -> impl Fn(&str) -> Vec<DataObject> + use<> {
    let store = cfg.store();
    move |namespace: &str| {
        ConfigKind::ALL
            .iter()
            .flat_map(|k| store.list_configs(*k, Some(namespace)))
            .filter_map(|v| DataObject::from_stored(&v))
            .collect()
    }
}

/// One object's write, worked out before anything is written.
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: ConfigKind,
    /// `created`, `unchanged` or `configured`.
    pub verb: &'static str,
    /// The object to store (None: unchanged).
    pub object: Option<Value>,
    pub name: String,
}

impl Planned {
    /// kubectl's line: `configmap/NAME created`.
    pub fn line(&self) -> String {
        format!("{}/{} {}", self.kind.singular(), self.name, self.verb)
    }
}

/// The object without what the server sets (for comparing a stored one with a new one).
fn without_server_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object["metadata"].as_object_mut() {
        for f in ["uid", "resourceVersion", "creationTimestamp"] {
            meta.remove(f);
        }
    }
    object
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `new` with the server's metadata: the stored object's uid and creation time (new ones
/// for a new object) and a new resourceVersion (the time in microseconds).
pub fn stamped(new: &Value, old: Option<&Value>) -> Value {
    let mut object = new.clone();
    let old_meta = old.map(|o| &o["metadata"]);
    let meta = &mut object["metadata"];
    meta["uid"] = old_meta
        .and_then(|m| m.get("uid").cloned())
        .unwrap_or_else(|| json!(uuid::Uuid::new_v4().to_string()));
    meta["creationTimestamp"] = old_meta
        .and_then(|m| m.get("creationTimestamp").cloned())
        .unwrap_or_else(|| json!(stamp(Utc::now())));
    meta["resourceVersion"] = json!(Utc::now().timestamp_micros().to_string());
    object
}

/// The error of a refused update: `The ConfigMap "x" is invalid: ...`.
fn invalid(kind: ConfigKind, name: &str, causes: &[String]) -> String {
    let causes = match causes {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!("The {} \"{name}\" is invalid: {causes}", kind.kind())
}

/// What storing `object` (a [`DataObject::document`]) would do; `annotate`: record its last
/// applied configuration as `podrun apply` does (a request's body carries its own).
pub fn plan(cfg: &Config, object: &DataObject, annotate: bool) -> Result<Planned, String> {
    let kind = ConfigKind::from_kind(object.kind).expect("a ConfigMap or a Secret");
    let mut new = object.document.clone();
    if annotate {
        new["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] = json!(object.last_applied);
    }
    let old = cfg
        .store()
        .load_config(kind, &object.namespace, &object.name);
    plan_value(kind, &object.name, new, old.as_ref())
}

/// As [`plan`], for the new object `new` and the stored one `old`.
pub fn plan_value(
    kind: ConfigKind,
    name: &str,
    new: Value,
    old: Option<&Value>,
) -> Result<Planned, String> {
    let Some(old) = old else {
        return Ok(Planned {
            kind,
            verb: "created",
            object: Some(stamped(&new, None)),
            name: name.to_owned(),
        });
    };
    if without_server_fields(old) == without_server_fields(&new) {
        return Ok(Planned {
            kind,
            verb: "unchanged",
            object: None,
            name: name.to_owned(),
        });
    }
    let problems = crate::spec::config_objects::update_problems(kind.kind(), old, &new);
    if !problems.is_empty() {
        return Err(invalid(kind, name, &problems));
    }
    Ok(Planned {
        kind,
        verb: "configured",
        object: Some(stamped(&new, Some(old))),
        name: name.to_owned(),
    })
}

/// Store what `planned` says (nothing for an unchanged object).
pub fn commit(cfg: &Config, planned: &[Planned]) -> Result<(), crate::state::StateError> {
    let store = cfg.store();
    for p in planned {
        if let Some(object) = &p.object {
            store.save_config(p.kind, object)?;
        }
    }
    Ok(())
}

fn created_at(object: &Value) -> DateTime<Utc> {
    object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

fn count(object: &Value, field: &str) -> usize {
    object[field].as_object().map_or(0, |m| m.len())
}

/// The stored objects of `kind` in `namespace` (all: None) with kube-apiserver's columns:
/// configmaps `Name Data Age`, secrets `Name Type Data Age`.
pub fn collect(cfg: &Config, kind: ConfigKind, namespace: Option<&str>) -> Collection {
    let rows = cfg
        .store()
        .list_configs(kind, namespace)
        .into_iter()
        .map(|object| {
            let name = json!(object["metadata"]["name"]);
            let age = json!(super::age(created_at(&object)));
            let cells = match kind {
                ConfigKind::ConfigMap => vec![
                    name,
                    json!(count(&object, "data") + count(&object, "binaryData")),
                    age,
                ],
                ConfigKind::Secret => {
                    vec![
                        name,
                        object["type"].clone(),
                        json!(count(&object, "data")),
                        age,
                    ]
                }
            };
            (cells, object)
        })
        .collect();
    let names: &[&str] = match kind {
        ConfigKind::ConfigMap => &["Name", "Data", "Age"],
        ConfigKind::Secret => &["Name", "Type", "Data", "Age"],
    };
    Collection {
        columns: columns(names, &[]),
        rows,
    }
}

/// `podrun describe configmap|secret NAME`: kubectl's layout (a Secret's values as sizes).
pub fn describe(object: &Value) -> String {
    let meta = &object["metadata"];
    let mut out = String::new();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    out.push_str(&format!("Name:         {}\n", text(&meta["name"])));
    out.push_str(&format!("Namespace:    {}\n", text(&meta["namespace"])));
    let map = |out: &mut String, label: &str, v: &Value| {
        let entries: Vec<String> = v
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != LAST_APPLIED_ANNOTATION)
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        if entries.is_empty() {
            out.push_str(&format!("{label:<14}<none>\n"));
        }
        for (i, e) in entries.iter().enumerate() {
            let label = if i == 0 { label } else { "" };
            out.push_str(&format!("{label:<14}{e}\n"));
        }
    };
    map(&mut out, "Labels:", &meta["labels"]);
    map(&mut out, "Annotations:", &meta["annotations"]);
    out.push('\n');
    let data = object["data"].as_object().cloned().unwrap_or_default();
    if object["kind"] == "Secret" {
        out.push_str(&format!("Type:  {}\n\nData\n====\n", text(&object["type"])));
        for (k, v) in &data {
            let size = DataObject::from_stored(object)
                .and_then(|d| d.entries.get(k).map(Vec::len))
                .unwrap_or_else(|| v.as_str().map_or(0, str::len));
            out.push_str(&format!("{k}:  {size} bytes\n"));
        }
    } else {
        out.push_str("Data\n====\n");
        for (k, v) in &data {
            out.push_str(&format!("{k}:\n----\n{}\n\n", text(v)));
        }
        out.push_str("\nBinaryData\n====\n");
        for (k, v) in object["binaryData"].as_object().into_iter().flatten() {
            let size = DataObject::from_stored(object)
                .and_then(|d| d.entries.get(k).map(Vec::len))
                .unwrap_or_else(|| v.as_str().map_or(0, str::len));
            out.push_str(&format!("{k}: {size} bytes\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_unchanged_configured_refused() {
        let new = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "1"}, "immutable": true});
        let first = plan_value(ConfigKind::ConfigMap, "a", new.clone(), None).unwrap();
        assert_eq!(first.line(), "configmap/a created");
        let stored = first.object.unwrap();
        assert!(stored["metadata"]["uid"].is_string());
        assert!(stored["metadata"]["resourceVersion"].is_string());
        let again = plan_value(ConfigKind::ConfigMap, "a", new.clone(), Some(&stored)).unwrap();
        assert_eq!(again.verb, "unchanged");
        let mut labelled = new.clone();
        labelled["metadata"]["labels"] = json!({"x": "y"});
        let changed = plan_value(ConfigKind::ConfigMap, "a", labelled, Some(&stored)).unwrap();
        assert_eq!(changed.verb, "configured");
        let object = changed.object.unwrap();
        assert_eq!(object["metadata"]["uid"], stored["metadata"]["uid"]);
        let mut other = new;
        other["data"]["k"] = json!("2");
        let refused = plan_value(ConfigKind::ConfigMap, "a", other, Some(&stored)).unwrap_err();
        assert_eq!(
            refused,
            "The ConfigMap \"a\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
    }
}
