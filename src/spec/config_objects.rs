//! ConfigMap and Secret documents: the API server's validation (`ValidateConfigMap`,
//! `ValidateSecret` and their updates) and the object as it is stored (a Secret's
//! `stringData` merged into `data`, `type` defaulted to `Opaque`; the server's own metadata
//! left for the store to stamp).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::{Value, json};

use super::error::{invalid, required};

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', \
    '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
    '[-._a-zA-Z0-9]+')";
/// The API server's cap on a ConfigMap's or Secret's data (`MaxSecretSize`, 1 MiB).
const MAX_DATA_SIZE: usize = 1024 * 1024;
/// Metadata only the server sets: dropped from what a client sends.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The values of `map` (a Secret's `data`, a ConfigMap's `binaryData`) that are not base64,
/// with Go's words for the first bad byte.
pub fn base64_problems(map: &Value, path: &str) -> Vec<String> {
    use base64::DecodeError;
    use base64::Engine;
    let mut problems = Vec::new();
    for (key, value) in map.as_object().into_iter().flatten() {
        let Some(text) = value.as_str() else {
            continue; // the typed decoding names the wrong type
        };
        let Err(e) = base64::engine::general_purpose::STANDARD.decode(text) else {
            continue;
        };
        let at = match e {
            DecodeError::InvalidByte(at, _) | DecodeError::InvalidLastSymbol(at, _) => at,
            DecodeError::InvalidLength(len) => len,
            DecodeError::InvalidPadding => text.len(),
        };
        problems.push(invalid(
            &format!("{path}[{key}]"),
            text,
            &format!("illegal base64 data at input byte {at}"),
        ));
    }
    problems
}

/// `IsConfigMapKey`: why `key` is not a valid data key, if it is not.
fn key_problem(key: &str) -> Option<&'static str> {
    if key.len() > 253 {
        return Some("must be no more than 253 characters");
    }
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return Some(CONFIG_KEY_MSG);
    }
    match key {
        "." => Some("must not be '.'"),
        ".." => Some("must not be '..'"),
        k if k.starts_with("..") => Some("must not start with '..'"),
        _ => None,
    }
}

fn check_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &str, problems: &mut Vec<String>) {
    for key in keys {
        if let Some(why) = key_problem(key) {
            problems.push(invalid(&format!("{path}[{key}]"), key, why));
        }
    }
}

/// Every problem of a ConfigMap, in the API server's words.
pub fn config_map_problems(cm: &ConfigMap) -> Vec<String> {
    let mut problems = Vec::new();
    super::validate::check_object_meta(&cm.metadata, &mut problems);
    let data = cm.data.as_ref();
    let binary = cm.binary_data.as_ref();
    check_keys(
        data.into_iter().flatten().map(|(k, _)| k),
        "data",
        &mut problems,
    );
    check_keys(
        binary.into_iter().flatten().map(|(k, _)| k),
        "binaryData",
        &mut problems,
    );
    for key in binary.into_iter().flatten().map(|(k, _)| k) {
        if data.is_some_and(|d| d.contains_key(key)) {
            problems.push(invalid(
                &format!("data[{key}]"),
                key,
                "duplicate of key present in binaryData",
            ));
        }
    }
    let size: usize = data
        .into_iter()
        .flatten()
        .map(|(_, v)| v.len())
        .sum::<usize>()
        + binary
            .into_iter()
            .flatten()
            .map(|(_, v)| v.0.len())
            .sum::<usize>();
    if size > MAX_DATA_SIZE {
        problems.push(format!(
            "[]: Too long: must have at most {MAX_DATA_SIZE} bytes"
        ));
    }
    problems
}

/// Every problem of a Secret, in the API server's words.
pub fn secret_problems(secret: &Secret) -> Vec<String> {
    let mut problems = Vec::new();
    super::validate::check_object_meta(&secret.metadata, &mut problems);
    let data = merged_data(secret);
    check_keys(data.keys(), "data", &mut problems);
    let size: usize = data.values().map(Vec::len).sum();
    if size > MAX_DATA_SIZE {
        problems.push(format!(
            "data: Too long: must have at most {MAX_DATA_SIZE} bytes"
        ));
    }
    let needs = |key: &str, problems: &mut Vec<String>| {
        if !data.contains_key(key) {
            problems.push(required(&format!("data[{key}]")));
        }
    };
    match secret.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/dockerconfigjson" => needs(".dockerconfigjson", &mut problems),
        "kubernetes.io/dockercfg" => needs(".dockercfg", &mut problems),
        "kubernetes.io/basic-auth"
        | "kubernetes.io/ssh-auth"
        | "kubernetes.io/tls"
        | "kubernetes.io/service-account-token"
        | "bootstrap.kubernetes.io/token"
        | "Opaque" => {}
        _ => {}
    }
    problems
}

/// `data` with `stringData` merged over it (the API server's conversion).
fn merged_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

fn clean_metadata(object: &mut Value) {
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in SERVER_METADATA {
            meta.remove(*field);
        }
    }
}

/// The ConfigMap as stored (before the server's metadata is stamped on it).
pub fn stored_config_map(cm: &ConfigMap) -> Value {
    let mut object = serde_json::to_value(cm).unwrap_or(Value::Null);
    object["apiVersion"] = json!("v1");
    object["kind"] = json!("ConfigMap");
    clean_metadata(&mut object);
    object
}

/// The Secret as stored: `stringData` merged into `data` (base64), `type` defaulted.
pub fn stored_secret(secret: &Secret) -> Value {
    let mut secret = secret.clone();
    let data = merged_data(&secret);
    secret.string_data = None;
    secret.data = (!data.is_empty() || secret.data.is_some()).then(|| {
        data.into_iter()
            .map(|(k, v)| (k, k8s_openapi::ByteString(v)))
            .collect()
    });
    if secret.type_.as_deref().unwrap_or("").is_empty() {
        secret.type_ = Some("Opaque".into());
    }
    let mut object = serde_json::to_value(&secret).unwrap_or(Value::Null);
    object["apiVersion"] = json!("v1");
    object["kind"] = json!("Secret");
    clean_metadata(&mut object);
    object
}

/// Why `new` may not replace `old` (both stored objects of `kind`), in the API server's
/// words: the data of an immutable object, `immutable` itself once true, a Secret's type.
pub fn update_problems(kind: &str, old: &Value, new: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    const IMMUTABLE: &str = "field is immutable when `immutable` is set";
    if old["immutable"] == json!(true) {
        let fields: &[&str] = if kind == "Secret" {
            &["data"]
        } else {
            &["data", "binaryData"]
        };
        for field in fields {
            if old[*field] != new[*field] {
                problems.push(format!("{field}: Forbidden: {IMMUTABLE}"));
            }
        }
        if new["immutable"] != json!(true) {
            problems.push(format!("immutable: Forbidden: {IMMUTABLE}"));
        }
    }
    if kind == "Secret" && old["type"] != new["type"] {
        problems.push(invalid(
            "type",
            new["type"].as_str().unwrap_or_default(),
            "field is immutable",
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(value: Value) -> ConfigMap {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn config_map_keys_and_duplicates() {
        let ok = cm(json!({"metadata": {"name": "a"}, "data": {"a.b_c-1": "x"}}));
        assert!(config_map_problems(&ok).is_empty());
        let bad = cm(
            json!({"metadata": {"name": "a"}, "data": {"bad key": "x", "..x": "y"},
            "binaryData": {"k": "eA=="}}),
        );
        let p = config_map_problems(&bad);
        assert!(p[0].starts_with("data[..x]: Invalid value: \"..x\": must not start with '..'"));
        assert!(p[1].starts_with(
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
        ));
        let dup =
            cm(json!({"metadata": {"name": "a"}, "data": {"k": "x"}, "binaryData": {"k": "eA=="}}));
        assert_eq!(
            config_map_problems(&dup),
            ["data[k]: Invalid value: \"k\": duplicate of key present in binaryData"]
        );
        let unnamed = cm(json!({"metadata": {}}));
        assert_eq!(
            config_map_problems(&unnamed),
            ["metadata.name: Required value: name or generateName is required"]
        );
    }

    #[test]
    fn secrets_stored_as_the_api_returns_them() {
        let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s", "uid": "x"},
            "data": {"a": "MQ=="}, "stringData": {"b": "2", "a": "3"}}))
        .unwrap();
        assert!(secret_problems(&s).is_empty());
        let stored = stored_secret(&s);
        assert_eq!(stored["type"], "Opaque");
        assert_eq!(stored["data"], json!({"a": "Mw==", "b": "Mg=="}));
        assert!(stored.get("stringData").is_none());
        assert!(stored["metadata"].get("uid").is_none());
        let docker: Secret = serde_json::from_value(
            json!({"metadata": {"name": "d"}, "type": "kubernetes.io/dockerconfigjson"}),
        )
        .unwrap();
        assert_eq!(
            secret_problems(&docker),
            ["data[.dockerconfigjson]: Required value"]
        );
    }

    #[test]
    fn pods_resolve_from_the_file_first_then_from_the_store() {
        use crate::spec::{DataObject, EnvSource, Object, load_str_with};
        let stored_cm = stored_config_map(&cm(
            json!({"metadata": {"name": "app", "namespace": "default"}, "data": {"a": "stored", "b": "2"}}),
        ));
        let pull: Secret = serde_json::from_value(json!({"metadata": {"name": "reg", "namespace": "default"},
            "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{\"auths\":{}}"}}))
        .unwrap();
        let stored_secret = stored_secret(&pull);
        let store = |ns: &str| -> Vec<DataObject> {
            if ns != "default" {
                return Vec::new();
            }
            [&stored_cm, &stored_secret]
                .iter()
                .filter_map(|v| DataObject::from_stored(v))
                .collect()
        };
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  imagePullSecrets: [{name: reg}]\n  containers:\n  - name: c\n    image: busybox\n    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: app, key: a}}}\n    - {name: B, valueFrom: {configMapKeyRef: {name: app, key: b}}}\n";
        let env = |text: &str| {
            let loaded = load_str_with(text, "t", None, &store).unwrap();
            let Object::Pod(plan) = &loaded.objects[0] else {
                panic!("a pod")
            };
            assert_eq!(plan.pull_credentials[0].secret, "reg");
            assert_eq!(plan.pull_credentials[0].config_json, "{\"auths\":{}}");
            plan.containers[0]
                .env
                .iter()
                .map(|v| match &v.source {
                    EnvSource::Literal(l) => format!("{}={l}", v.name),
                    _ => panic!("resolved"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(env(pod), ["A=stored", "B=2"]);
        // The file's own ConfigMap wins over the stored one (and is not merged with it).
        let with_own = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\ndata: {{a: own, b: \"3\"}}\n---\n{pod}"
        );
        assert_eq!(env(&with_own), ["A=own", "B=3"]);
        let missing = pod.replace("key: b", "key: nope");
        let err = load_str_with(&missing, "t", None, &store)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("couldn't find key nope in ConfigMap default/app"),
            "{err}"
        );
        let elsewhere = pod.replace("{name: p}", "{name: p, namespace: other}");
        let err = load_str_with(&elsewhere, "t", None, &store)
            .unwrap_err()
            .to_string();
        assert!(err.contains("configmap \"app\" not found"), "{err}");
    }

    #[test]
    fn immutable_objects_keep_their_data() {
        let old = json!({"data": {"a": "1"}, "immutable": true});
        assert!(update_problems("ConfigMap", &old, &old).is_empty());
        let changed = json!({"data": {"a": "2"}, "immutable": true});
        assert_eq!(
            update_problems("ConfigMap", &old, &changed),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let freed = json!({"data": {"a": "1"}});
        assert_eq!(
            update_problems("ConfigMap", &old, &freed),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        let mutable = json!({"data": {"a": "1"}});
        assert!(update_problems("ConfigMap", &mutable, &changed).is_empty());
        let typed = |t: &str| json!({"type": t});
        assert_eq!(
            update_problems("Secret", &typed("Opaque"), &typed("kubernetes.io/tls")),
            ["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
    }
}
