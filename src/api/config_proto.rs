//! The protobuf bodies kubectl's typed clients send (`kubectl create configmap|secret`:
//! `application/vnd.kubernetes.protobuf`), read into the JSON object they encode: the
//! `k8s\0` envelope (`runtime.Unknown`: typeMeta, raw), then a ConfigMap's or Secret's
//! fields as `generated.proto` numbers them. Only what these two kinds carry is read;
//! metadata the server sets (uid, times, managedFields) is skipped.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// One field: its number and its value (a varint, or the bytes of a length-delimited one).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fields(data: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let key = varint(data, &mut at)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(data, &mut at)?),
            2 => {
                let len = usize::try_from(varint(data, &mut at)?).ok()?;
                let bytes = data.get(at..at.checked_add(len)?)?;
                at += len;
                Field::Bytes(bytes)
            }
            1 => {
                at += 8;
                continue;
            }
            5 => {
                at += 4;
                continue;
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    (at == data.len()).then_some(out)
}

fn text(bytes: &[u8]) -> Option<Value> {
    std::str::from_utf8(bytes).ok().map(|s| json!(s))
}

fn base64(bytes: &[u8]) -> Value {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())).unwrap_or(Value::Null)
}

/// A `map<string, V>` entry into `map`; `value` turns V's bytes into JSON.
fn entry(map: &mut Value, bytes: &[u8], value: fn(&[u8]) -> Option<Value>) -> Option<()> {
    let (mut key, mut val) = (String::new(), value(b"")?);
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => key = std::str::from_utf8(b).ok()?.to_owned(),
            (2, Field::Bytes(b)) => val = value(b)?,
            _ => {}
        }
    }
    if !map.is_object() {
        *map = Value::Object(Map::new());
    }
    map[key] = val;
    Some(())
}

fn object_meta(bytes: &[u8]) -> Option<Value> {
    let mut meta = json!({});
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => meta["name"] = text(b)?,
            (2, Field::Bytes(b)) => meta["generateName"] = text(b)?,
            (3, Field::Bytes(b)) => meta["namespace"] = text(b)?,
            (11, Field::Bytes(b)) => entry(&mut meta["labels"], b, text)?,
            (12, Field::Bytes(b)) => entry(&mut meta["annotations"], b, text)?,
            _ => {}
        }
    }
    for empty in ["name", "generateName", "namespace"] {
        if meta[empty] == "" {
            meta.as_object_mut()?.remove(empty);
        }
    }
    Some(meta)
}

/// The JSON object of a protobuf ConfigMap or Secret body; None if it is not one.
pub fn decode(body: &[u8]) -> Option<Value> {
    let envelope = fields(body.strip_prefix(MAGIC)?)?;
    let (mut api_version, mut kind, mut raw) = (None, None, None);
    for (n, f) in envelope {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (n, f) in fields(type_meta)? {
                    match (n, f) {
                        (1, Field::Bytes(b)) => api_version = text(b),
                        (2, Field::Bytes(b)) => kind = text(b),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    let kind = kind?;
    let mut object = json!({"apiVersion": api_version?, "kind": kind, "metadata": {}});
    let secret = kind == "Secret";
    for (n, f) in fields(raw?)? {
        match (secret, n, f) {
            (_, 1, Field::Bytes(b)) => object["metadata"] = object_meta(b)?,
            (false, 2, Field::Bytes(b)) => entry(&mut object["data"], b, text)?,
            (false, 3, Field::Bytes(b)) => {
                entry(&mut object["binaryData"], b, |b| Some(base64(b)))?
            }
            (false, 4, Field::Varint(v)) => object["immutable"] = json!(v != 0),
            (true, 2, Field::Bytes(b)) => entry(&mut object["data"], b, |b| Some(base64(b)))?,
            (true, 3, Field::Bytes(b)) => object["type"] = text(b)?,
            (true, 4, Field::Bytes(b)) => entry(&mut object["stringData"], b, text)?,
            (true, 5, Field::Varint(v)) => object["immutable"] = json!(v != 0),
            _ => {}
        }
    }
    Some(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_create_configmap_body() {
        // kubectl create configmap app --from-literal=a=1 (kubectl 1.27's bytes).
        let mut raw = Vec::new();
        let meta = [&[10u8, 3][..], b"app", &[18, 0, 26, 0, 34, 0, 42, 0, 50, 0]].concat();
        raw.extend([10, meta.len() as u8]);
        raw.extend(&meta);
        let entry = [&[10u8, 1][..], b"a", &[18, 1], b"1"].concat();
        raw.extend([18, entry.len() as u8]);
        raw.extend(&entry);
        let type_meta = [&[10u8, 2][..], b"v1", &[18, 9], b"ConfigMap"].concat();
        let mut body = b"k8s\0".to_vec();
        body.extend([10, type_meta.len() as u8]);
        body.extend(&type_meta);
        body.extend([18, raw.len() as u8]);
        body.extend(&raw);
        body.extend([26, 0, 34, 0]);
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"a": "1"}})
        );
        assert!(decode(b"{}").is_none());
        assert!(decode(b"k8s\0\xff").is_none());
    }
}
