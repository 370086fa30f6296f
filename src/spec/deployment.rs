//! Deployments: the pod-template hash and the pods a ReplicaSet would create.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::plan::{namespace_or_default, new_uid};
use super::workload::{PodTemplate, Strategy, pod_name, template_hash_labels};
use super::{DeploymentPlan, Owner, PodPlan};

/// `k8s.io/apimachinery/pkg/util/rand` alphabet: no vowels, no confusable characters.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
const RANDOM_SUFFIX_LEN: usize = 5;

/// Builds the plan of a validated Deployment.
pub fn deployment_plan(deployment: &Deployment) -> DeploymentPlan {
    let meta = &deployment.metadata;
    let spec = deployment.spec.clone();
    let name = meta.name.clone().unwrap_or_default();
    let namespace = namespace_or_default(meta.namespace.as_deref());
    let template_hash = template_hash(&spec.template);
    let template = PodTemplate::compile(&namespace, &spec.template);
    DeploymentPlan {
        replica_set_name: format!("{name}-{template_hash}"),
        replica_set_uid: new_uid(),
        name,
        namespace,
        replicas: u32::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0),
        template_hash,
        uid: new_uid(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        selector: spec.selector.match_labels.clone().unwrap_or_default(),
        template_hostname: template.hostname,
        template: template.plan,
        template_json: template.json,
        strategy: Strategy::of(spec.strategy.as_ref()),
        min_ready_seconds: u32::try_from(spec.min_ready_seconds.unwrap_or(0)).unwrap_or(0),
        revision_history_limit: u32::try_from(spec.revision_history_limit.unwrap_or(10))
            .unwrap_or(0),
        progress_deadline_seconds: u32::try_from(spec.progress_deadline_seconds.unwrap_or(600))
            .unwrap_or(600),
        last_applied: None,
    }
}

impl DeploymentPlan {
    /// The pod template, compiled.
    pub fn pod_template(&self) -> PodTemplate {
        PodTemplate {
            plan: self.template.clone(),
            hostname: self.template_hostname.clone(),
            json: self.template_json.clone(),
        }
    }

    /// The owner reference of its ReplicaSet's pods.
    pub fn replica_set_owner(&self) -> Owner {
        Owner {
            kind: "ReplicaSet".to_string(),
            name: self.replica_set_name.clone(),
            deployment: Some(self.name.clone()),
            uid: self.replica_set_uid.clone(),
        }
    }
}

/// `replicas` pods as the ReplicaSet controller would create them.
pub fn pod_plans(plan: &DeploymentPlan) -> Vec<PodPlan> {
    let template = plan.pod_template();
    let labels = template_hash_labels(&plan.template_hash);
    let mut names = std::collections::HashSet::new();
    let mut pods = Vec::new();
    while pods.len() < plan.replicas as usize {
        let name = pod_name(&plan.replica_set_name);
        if names.insert(name.clone()) {
            pods.push(template.pod(name, plan.replica_set_owner(), &labels));
        }
    }
    pods
}

/// FNV-32a over the canonical JSON of the template, printed in decimal and safe-encoded
/// (`controller.ComputeHash` + `rand.SafeEncodeString`).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    safe_encode(&fnv32a(canonical.as_bytes()).to_string())
}

/// [`template_hash`] of a template as JSON (`PodTemplateSpec`).
pub fn template_hash_of(template: &Value) -> String {
    let typed: PodTemplateSpec = serde_json::from_value(template.clone()).unwrap_or_default();
    template_hash(&typed)
}

fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// `rand.SafeEncodeString`: each byte mapped into the safe alphabet.
pub fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// Compact JSON with object keys sorted, independent of map ordering features.
pub(super) fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Five characters from the safe alphabet, drawn from a v4 uuid's random bytes.
pub(super) fn random_suffix() -> String {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    // 27^5 is about 2^23.8, so 32 random bits give an almost uniform pick.
    let mut n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    (0..RANDOM_SUFFIX_LEN)
        .map(|_| {
            let c = SAFE_ALPHABET[(n % 27) as usize] as char;
            n /= 27;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_maps_decimal_digits() {
        // '0' is byte 48: 48 % 27 = 21 -> '4'; '9' is 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("0"), "4");
        assert_eq!(safe_encode("9"), "f");
        assert_eq!(safe_encode("123"), "567");
    }

    #[test]
    fn random_suffixes_use_the_safe_alphabet() {
        for _ in 0..50 {
            let suffix = random_suffix();
            assert_eq!(suffix.len(), 5);
            assert!(suffix.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        }
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let value = serde_json::json!({"b": [1, {"d": 1, "c": "x"}], "a": null});
        let mut out = String::new();
        write_canonical(&value, &mut out);
        assert_eq!(out, r#"{"a":null,"b":[1,{"c":"x","d":1}]}"#);
    }
}
