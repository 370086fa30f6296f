//! The last applied configuration of an object, as `kubectl apply` keeps it in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation: the object as written in
//! the file (its namespace filled in, the annotation itself left out, `metadata.annotations`
//! always present), as compact JSON with sorted keys and a final newline. A second apply
//! compares it with the stored one to tell `unchanged` from `configured`, so it is made
//! before podrun fills in any default.

use serde_json::Value;

/// The annotation kubectl keeps the last applied object in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The last applied configuration of `document` (one manifest document, its namespace set).
pub fn last_applied(document: &Value) -> String {
    let mut object = document.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta.get("namespace").is_none_or(|n| n.as_str() == Some("")) {
            meta.insert("namespace".into(), super::plan::DEFAULT_NAMESPACE.into());
        }
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.remove(LAST_APPLIED_ANNOTATION);
        } else {
            *annotations = Value::Object(Default::default());
        }
    }
    let mut text = String::new();
    super::deployment::write_canonical(&object, &mut text);
    let mut text = go_escaped(&text);
    text.push('\n');
    text
}

/// JSON text with `<`, `>`, `&`, U+2028 and U+2029 escaped as Go's `encoding/json` writes
/// them (kubectl's annotation is Go's JSON: byte for byte the same, a second `kubectl apply`
/// of the same file finds nothing to patch). They can only occur inside strings.
fn go_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_characters_as_go_escapes_them() {
        let doc =
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"x": "a > b && c < d\u{2028}"}});
        let text = last_applied(&doc);
        assert!(
            text.contains(r#""x":"a \u003e b \u0026\u0026 c \u003c d\u2028""#),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["spec"]["x"], doc["spec"]["x"]);
    }

    #[test]
    fn as_kubectl_writes_it() {
        let doc = serde_json::json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        });
        assert_eq!(
            last_applied(&doc),
            "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"annotations\":{},\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"containers\":[{\"image\":\"i\",\"name\":\"c\"}]}}\n"
        );
        // The annotation of an object applied before (`get -o yaml` saved and applied) is
        // not part of the next one.
        let again = serde_json::json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default",
                "annotations": {LAST_APPLIED_ANNOTATION: "{}"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        });
        assert_eq!(last_applied(&again), last_applied(&doc));
    }
}
