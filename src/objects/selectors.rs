//! `labelSelector` and `fieldSelector` of list requests, as the API server parses them:
//! labels `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k`, joined by
//! commas; fields `path=v`, `path==v`, `path!=v` over the fields each resource supports. (The
//! apimachinery grammar is small; no maintained Rust crate parses it.)

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// Split at the commas outside parentheses.
fn terms(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn key(k: &str, term: &str) -> Result<String, SelectorError> {
    let k = k.trim();
    if k.is_empty()
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        return Err(SelectorError(format!("invalid label key {term:?}")));
    }
    Ok(k.to_owned())
}

fn set(rest: &str, term: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("{term:?}: expected a (value,...) set")))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

/// A label selector's requirements (all must hold).
pub fn parse_labels(s: &str) -> Result<Vec<Requirement>, SelectorError> {
    let mut out = Vec::new();
    for term in terms(s) {
        let r = if let Some((k, v)) = term.split_once("!=") {
            Requirement::NotEquals(key(k, term)?, v.trim().to_owned())
        } else if let Some((k, v)) = term.split_once("==") {
            Requirement::Equals(key(k, term)?, v.trim().to_owned())
        } else if let Some((k, v)) = term.split_once('=') {
            Requirement::Equals(key(k, term)?, v.trim().to_owned())
        } else if let Some(k) = term.strip_prefix('!') {
            Requirement::DoesNotExist(key(k, term)?)
        } else if let Some((k, rest)) = term.split_once(" notin ") {
            Requirement::NotIn(key(k, term)?, set(rest, term)?)
        } else if let Some((k, rest)) = term.split_once(" in ") {
            Requirement::In(key(k, term)?, set(rest, term)?)
        } else {
            Requirement::Exists(key(term, term)?)
        };
        out.push(r);
    }
    Ok(out)
}

/// Whether `labels` satisfy every requirement.
pub fn matches(reqs: &[Requirement], labels: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| match r {
        Requirement::Equals(k, v) => labels.get(k) == Some(v),
        Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
        Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
        Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
        Requirement::Exists(k) => labels.contains_key(k),
        Requirement::DoesNotExist(k) => !labels.contains_key(k),
    })
}

/// An object's `metadata.labels`.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// One field requirement: `(path, value, equal)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub path: String,
    pub value: String,
    pub equal: bool,
}

/// The field selectors every resource here supports; pods add `status.phase`,
/// `spec.nodeName`, events their `involvedObject.*`, `reason`, `type` and `source`.
fn supported(kind: &str, path: &str) -> bool {
    matches!(path, "metadata.name" | "metadata.namespace")
        || (kind == "Pod" && matches!(path, "status.phase" | "spec.nodeName"))
        || (kind == "Event"
            && (path.starts_with("involvedObject.")
                || matches!(path, "reason" | "type" | "source" | "reportingComponent")))
}

/// A field selector for objects of `kind`; an unsupported field is the API server's error.
pub fn parse_fields(s: &str, kind: &str) -> Result<Vec<FieldRequirement>, SelectorError> {
    let mut out = Vec::new();
    for term in terms(s) {
        let (path, value, equal) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, v, true)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, v, true)
        } else {
            return Err(SelectorError(format!(
                "{term}: field selector must be key=value or key!=value"
            )));
        };
        let path = path.trim();
        if !supported(kind, path) {
            return Err(SelectorError(format!("field label not supported: {path}")));
        }
        out.push(FieldRequirement {
            path: path.to_owned(),
            value: value.trim().to_owned(),
            equal,
        });
    }
    Ok(out)
}

/// Whether `obj` satisfies every field requirement (a missing field is "").
pub fn fields_match(reqs: &[FieldRequirement], obj: &Value) -> bool {
    reqs.iter().all(|r| {
        // An event's `source` is its component's name.
        let path = if r.path == "source" {
            "source.component"
        } else {
            r.path.as_str()
        };
        let got = path
            .split('.')
            .fold(obj, |v, p| &v[p])
            .as_str()
            .unwrap_or_default();
        (got == r.value) == r.equal
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_grammar() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web,db)", false),
            ("tier", true),
            ("!tier", false),
            ("!zone", true),
            ("app=web,tier in (front)", true),
            ("app=web,zone", false),
            ("", true),
        ] {
            assert_eq!(matches(&parse_labels(sel).unwrap(), &l), want, "{sel}");
        }
        assert!(parse_labels("app in web").is_err());
        assert!(parse_labels("a b").is_err());
    }

    #[test]
    fn field_grammar() {
        let pod = json!({"metadata": {"name": "a", "namespace": "default"}, "status": {"phase": "Running"}, "spec": {"nodeName": "n1"}});
        for (sel, want) in [
            ("metadata.name=a", true),
            ("metadata.name!=a", false),
            ("status.phase==Running,spec.nodeName=n1", true),
            ("metadata.namespace=kube-system", false),
        ] {
            assert_eq!(
                fields_match(&parse_fields(sel, "Pod").unwrap(), &pod),
                want,
                "{sel}"
            );
        }
        assert!(parse_fields("status.phase=Running", "Deployment").is_err());
        assert!(parse_fields("spec.foo=1", "Pod").is_err());
    }
}
