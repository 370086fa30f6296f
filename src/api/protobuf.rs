//! Request bodies in Kubernetes' protobuf (`application/vnd.kubernetes.protobuf`), which
//! client-go's typed clients send from kubectl 1.33 on (`kubectl create namespace`,
//! `create configmap`, `create secret`, drain's evictions): the `k8s\0` envelope
//! (`runtime.Unknown`: typeMeta, raw) around the object, decoded into the JSON the rest of
//! the server reads. Only the messages those commands send are known (Namespace, ConfigMap,
//! Secret, Eviction, with ObjectMeta's name, namespace, labels and annotations, and
//! DeleteOptions' grace period and propagation policy); anything else is a 415, which names
//! the type. Field numbers from k8s.io/api's and apimachinery's generated.proto.
//!
//! Hand-written: the wire format is a few lines (varints and length-delimited fields), and
//! prost with k8s-pb would bring the generated code of the whole API for four messages.

use base64::Engine;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// One field: its number and its value (varint, or the bytes of a length-delimited one).
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message, in order; None if it is not well-formed.
fn fields(mut b: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = varint(&mut b)?;
        let value = match tag & 7 {
            0 => Wire::Varint(varint(&mut b)?),
            2 => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                let (v, rest) = (b.get(..n)?, b.get(n..)?);
                b = rest;
                Wire::Bytes(v)
            }
            1 => {
                b = b.get(8..)?;
                Wire::Varint(0)
            }
            5 => {
                b = b.get(4..)?;
                Wire::Varint(0)
            }
            _ => return None,
        };
        out.push((tag >> 3, value));
    }
    Some(out)
}

fn text(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

/// A map entry (key 1, value 2) into `into`; `bytes` values go in as base64, as JSON has them.
fn entry(b: &[u8], into: &mut Map<String, Value>, bytes: bool) -> Option<()> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => k = text(x)?,
            (2, Wire::Bytes(x)) if bytes => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x))
            }
            (2, Wire::Bytes(x)) => v = json!(text(x)?),
            _ => {}
        }
    }
    into.insert(k, v);
    Some(())
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => drop(meta.insert("name".into(), json!(text(x)?))),
            (2, Wire::Bytes(x)) => drop(meta.insert("generateName".into(), json!(text(x)?))),
            (3, Wire::Bytes(x)) => drop(meta.insert("namespace".into(), json!(text(x)?))),
            (11, Wire::Bytes(x)) => entry(x, &mut labels, false)?,
            (12, Wire::Bytes(x)) => entry(x, &mut annotations, false)?,
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Some(Value::Object(meta))
}

fn delete_options(b: &[u8]) -> Option<Value> {
    let mut o = Map::new();
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Varint(v)) => drop(o.insert("gracePeriodSeconds".into(), json!(v as i64))),
            (4, Wire::Bytes(x)) => drop(o.insert("propagationPolicy".into(), json!(text(x)?))),
            _ => {}
        }
    }
    Some(Value::Object(o))
}

/// The object of `kind` from its protobuf `raw`.
fn object(kind: &str, api_version: &str, raw: &[u8]) -> Option<Value> {
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let (mut data, mut binary, mut string_data) = (Map::new(), Map::new(), Map::new());
    for (n, w) in fields(raw)? {
        match (kind, n, w) {
            (_, 1, Wire::Bytes(x)) => drop(obj.insert("metadata".into(), object_meta(x)?)),
            ("Namespace", _, _) => {}
            ("ConfigMap", 2, Wire::Bytes(x)) => entry(x, &mut data, false)?,
            ("ConfigMap", 3, Wire::Bytes(x)) => entry(x, &mut binary, true)?,
            ("ConfigMap", 4, Wire::Varint(v)) => {
                drop(obj.insert("immutable".into(), json!(v != 0)))
            }
            ("Secret", 2, Wire::Bytes(x)) => entry(x, &mut data, true)?,
            ("Secret", 3, Wire::Bytes(x)) => drop(obj.insert("type".into(), json!(text(x)?))),
            ("Secret", 4, Wire::Bytes(x)) => entry(x, &mut string_data, false)?,
            ("Secret", 5, Wire::Varint(v)) => drop(obj.insert("immutable".into(), json!(v != 0))),
            ("Eviction", 2, Wire::Bytes(x)) => {
                drop(obj.insert("deleteOptions".into(), delete_options(x)?))
            }
            _ => {}
        }
    }
    for (name, m) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !m.is_empty() {
            obj.insert(name.into(), Value::Object(m));
        }
    }
    Some(Value::Object(obj))
}

/// Whether `content_type` is Kubernetes' protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.starts_with("application/vnd.kubernetes.protobuf")
}

/// The JSON of a protobuf body; Err: the 415's message.
pub fn to_json(body: &[u8]) -> Result<Vec<u8>, String> {
    let bad =
        || "the body is not a Kubernetes protobuf object (k8s\\0 and runtime.Unknown)".to_owned();
    let inner = body.strip_prefix(MAGIC).ok_or_else(bad)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, w) in fields(inner).ok_or_else(bad)? {
        match (n, w) {
            (1, Wire::Bytes(tm)) => {
                for (m, v) in fields(tm).ok_or_else(bad)? {
                    match (m, v) {
                        (1, Wire::Bytes(x)) => api_version = text(x).ok_or_else(bad)?,
                        (2, Wire::Bytes(x)) => kind = text(x).ok_or_else(bad)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    if !matches!(
        kind.as_str(),
        "Namespace" | "ConfigMap" | "Secret" | "Eviction"
    ) {
        return Err(format!(
            "the body of content type application/vnd.kubernetes.protobuf is a {kind} ({api_version}), which podrun reads only as JSON"
        ));
    }
    let obj = object(&kind, &api_version, raw).ok_or_else(bad)?;
    Ok(serde_json::to_vec(&obj).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_namespace_and_a_secret_as_kubectl_sends_them() {
        let meta = [
            field(1, b"team-a"),
            field(11, &[field(1, b"env"), field(2, b"dev")].concat()),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let body = [
            MAGIC.to_vec(),
            field(1, &type_meta),
            field(2, &field(1, &meta)),
        ]
        .concat();
        let v: Value = serde_json::from_slice(&to_json(&body).unwrap()).unwrap();
        assert_eq!(v["kind"], "Namespace");
        assert_eq!(v["metadata"]["name"], "team-a");
        assert_eq!(v["metadata"]["labels"]["env"], "dev");

        let secret = [
            field(1, &field(1, b"pw")),
            field(2, &[field(1, b"pw"), field(2, b"hunter2")].concat()),
            field(3, b"Opaque"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let v: Value = serde_json::from_slice(&to_json(&body).unwrap()).unwrap();
        assert_eq!(v["data"]["pw"], "aHVudGVyMg==");
        assert_eq!(v["type"], "Opaque");
        let type_meta = [field(1, b"v1"), field(2, b"Pod")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta)].concat();
        assert!(to_json(&body).unwrap_err().contains("Pod (v1)"));
        assert!(to_json(b"{}").is_err());
    }
}
