//! The one error type of the `spec` module. Every `Display` is a complete, user-facing message
//! that starts with where the problem is (`pods/web.yaml: document 2: ...`).

use std::fmt;

/// Where in the input an object came from: the source name and, when the input holds several
/// documents, the 1-based document number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub document: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(n) => write!(f, "{}: document {n}", self.source),
            None => f.write_str(&self.source),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{source_name}: cannot read manifest: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },

    #[error("{source_name}:{line}:{column}: invalid YAML: {message}")]
    Yaml {
        source_name: String,
        line: u64,
        column: u64,
        message: String,
    },

    #[error(
        "the namespace from the provided object \"{object}\" does not match the namespace \
         \"{flag}\". You must pass '--namespace={object}' to perform this operation."
    )]
    NamespaceMismatch { object: String, flag: String },

    #[error("{origin}: {message}")]
    NotAnObject { origin: Origin, message: String },

    #[error(
        "{origin}: Object 'Kind' is missing: every manifest needs \"apiVersion\" and \"kind\" \
         (for example apiVersion: v1, kind: Pod)"
    )]
    MissingKind { origin: Origin },

    #[error(
        "{origin}: Object 'apiVersion' is missing for kind \"{kind}\" \
         (use apiVersion: v1 for Pod, apps/v1 for Deployment)"
    )]
    MissingApiVersion { origin: Origin, kind: String },

    #[error(
        "{origin}: kind \"{kind}\" ({api_version}) is not supported by podrun yet; \
         supported kinds: Pod (v1), Deployment (apps/v1)"
    )]
    UnsupportedKind {
        origin: Origin,
        kind: String,
        api_version: String,
    },

    #[error("{origin}: no matches for kind \"{kind}\" in version \"{api_version}\"")]
    NoMatchForKind {
        origin: Origin,
        kind: String,
        api_version: String,
    },

    #[error("{origin}: strict decoding error: {}", unknown_list(.paths))]
    UnknownFields { origin: Origin, paths: Vec<String> },

    #[error("{origin}: {path}: {message}")]
    InvalidType {
        origin: Origin,
        path: String,
        message: String,
    },

    #[error("{origin}: {}", .problems.join("; "))]
    NotSupported {
        origin: Origin,
        problems: Vec<String>,
    },

    #[error("{origin}: The {kind} \"{name}\" is invalid: {}", cause_list(.causes))]
    Invalid {
        origin: Origin,
        kind: String,
        name: String,
        causes: Vec<String>,
    },

    #[error("{origin}: {kind} \"{name}\": {message}")]
    Reference {
        origin: Origin,
        kind: &'static str,
        name: String,
        message: String,
    },

    #[error(
        "{origin}: {kind} \"{name}\" in namespace \"{namespace}\" is defined more than once{}",
        first_document.map(|n| format!(" (first in document {n})")).unwrap_or_default()
    )]
    DuplicateObject {
        origin: Origin,
        kind: &'static str,
        namespace: String,
        name: String,
        /// The document that defined it first.
        first_document: Option<usize>,
    },
}

fn unknown_list(paths: &[String]) -> String {
    let quoted: Vec<String> = paths
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    quoted.join(", ")
}

/// Like the API server's aggregate: one cause inline, several as `[a, b]`.
fn cause_list(causes: &[String]) -> String {
    match causes {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// One `field.Error` in the API server's wording.
pub(crate) fn required(path: &str) -> String {
    format!("{path}: Required value")
}

pub(crate) fn required_because(path: &str, why: &str) -> String {
    format!("{path}: Required value: {why}")
}

pub(crate) fn invalid(path: &str, value: &str, why: &str) -> String {
    format!("{path}: Invalid value: \"{value}\": {why}")
}

pub(crate) fn invalid_raw(path: &str, value: &str, why: &str) -> String {
    format!("{path}: Invalid value: {value}: {why}")
}

pub(crate) fn duplicate(path: &str, value: &str) -> String {
    format!("{path}: Duplicate value: \"{value}\"")
}

pub(crate) fn unsupported(path: &str, value: &str, supported: &[&str]) -> String {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{path}: Unsupported value: \"{value}\": supported values: {}",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(document: Option<usize>) -> Origin {
        Origin {
            source: "pods/bad.yaml".into(),
            document,
        }
    }

    #[test]
    fn invalid_lists_one_cause_inline_and_several_in_brackets() {
        let one = SpecError::Invalid {
            origin: origin(None),
            kind: "Pod".into(),
            name: "sidecar".into(),
            causes: vec![required("spec.containers[0].image")],
        };
        assert_eq!(
            one.to_string(),
            "pods/bad.yaml: The Pod \"sidecar\" is invalid: spec.containers[0].image: Required value"
        );
        let two = SpecError::Invalid {
            origin: origin(Some(2)),
            kind: "Pod".into(),
            name: "sidecar".into(),
            causes: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            two.to_string(),
            "pods/bad.yaml: document 2: The Pod \"sidecar\" is invalid: [a, b]"
        );
    }

    #[test]
    fn unsupported_value_lists_choices() {
        assert_eq!(
            unsupported(
                "spec.restartPolicy",
                "Sometimes",
                &["Always", "OnFailure", "Never"]
            ),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \
             \"Always\", \"OnFailure\", \"Never\""
        );
    }
}
