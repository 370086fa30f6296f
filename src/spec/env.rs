//! Environment and argv resolution, as kubelet does it (`makeEnvironmentVariables` and
//! `third_party/forked/golang/expansion`).

use std::collections::HashMap;

use super::{ContainerPlan, EnvSource, PodFacts, ResolvedProcess};

const OPERATOR: u8 = b'$';
const OPENER: u8 = b'(';
const CLOSER: u8 = b')';

/// `expansion.Expand`: replaces `$(NAME)` using `lookup`; unknown names stay `$(NAME)`;
/// `$$` becomes `$`; anything else after `$` is copied unchanged.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == OPERATOR && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let (read, advance) = read_reference(&bytes[cursor + 1..], lookup);
            out.extend_from_slice(&read);
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&bytes[checkpoint..]);
    // Only whole UTF-8 sequences are ever copied or inserted, so this cannot fail.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `tryReadVariableName`: what to emit for the text after a `$`, and how many bytes it used.
fn read_reference(rest: &[u8], lookup: &dyn Fn(&str) -> Option<String>) -> (Vec<u8>, usize) {
    match rest[0] {
        OPERATOR => (vec![OPERATOR], 1),
        OPENER => match rest.iter().position(|b| *b == CLOSER) {
            Some(close) => {
                let name = String::from_utf8_lossy(&rest[1..close]);
                let value = lookup(&name).unwrap_or_else(|| format!("$({name})"));
                (value.into_bytes(), close + 1)
            }
            None => (vec![OPERATOR, OPENER], 1),
        },
        other => (vec![OPERATOR, other], 1),
    }
}

/// The value of a supported `fieldRef.fieldPath` for this pod.
pub fn field_value(field_path: &str, facts: &PodFacts) -> Option<String> {
    let value = match field_path {
        "metadata.name" => facts.name,
        "metadata.namespace" => facts.namespace,
        "metadata.uid" => facts.uid,
        "status.podIP" => facts.pod_ip,
        "status.hostIP" => facts.host_ip,
        "spec.nodeName" => facts.node_name,
        _ => return None,
    };
    Some(value.to_string())
}

/// Resolves the container's env in order (each value sees only earlier entries), then argv.
pub fn resolve(container: &ContainerPlan, facts: &PodFacts) -> ResolvedProcess {
    let env = resolve_env(container, facts);
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| map.get(name).map(|v| v.to_string());
    let argv = container
        .command
        .iter()
        .chain(container.args.iter())
        .map(|word| expand(word, &lookup))
        .collect();
    ResolvedProcess {
        argv,
        env,
        working_dir: container.working_dir.clone(),
    }
}

/// The final environment: a later entry with the same name replaces the earlier value in place.
fn resolve_env(container: &ContainerPlan, facts: &PodFacts) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(container.env.len());
    for var in &container.env {
        let value = match &var.source {
            EnvSource::Value(text) => expand(text, &|name| lookup_earlier(&env, name)),
            EnvSource::FieldRef(path) => field_value(path, facts).unwrap_or_default(),
            EnvSource::Literal(text) => text.clone(),
            // Resolved (or dropped, when optional and missing) at load time.
            EnvSource::KeyRef { .. } => continue,
        };
        match env.iter_mut().find(|(name, _)| *name == var.name) {
            Some(slot) => slot.1 = value,
            None => env.push((var.name.clone(), value)),
        }
    }
    env
}

fn lookup_earlier(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EnvVar, Resources};

    fn expand_with(input: &str) -> String {
        let vars: HashMap<&str, &str> = [("VAR_A", "A"), ("VAR_B", "B"), ("EMPTY", "")].into();
        expand(input, &|name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn expands_like_kubernetes() {
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_B)", "A-B"),
            ("$(VAR_A)$(VAR_B)", "AB"),
            ("$(EMPTY)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$()", "$()"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$$", "$"),
            ("$$$", "$$"),
            ("$", "$"),
            ("$VAR_A", "$VAR_A"),
            ("foo$", "foo$"),
            ("$(", "$("),
            ("$(VAR_A", "$(VAR_A"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$((VAR_A))", "$((VAR_A))"),
            ("x$(VAR_A)$", "xA$"),
            ("$é$(VAR_A)", "$éA"),
            ("plain", "plain"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand_with(input), want, "input {input:?}");
        }
    }

    fn container(env: Vec<(&str, EnvSource)>, command: &[&str]) -> ContainerPlan {
        ContainerPlan {
            volume_mounts: Vec::new(),
            security: Default::default(),
            env_from: Vec::new(),
            init: false,
            name: "c".into(),
            image: "busybox".into(),
            image_pull_policy: "Always".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            args: vec![],
            working_dir: None,
            env: env
                .into_iter()
                .map(|(name, source)| EnvVar {
                    name: name.into(),
                    source,
                })
                .collect(),
            ports: vec![],
            resources: Resources::default(),
            ..Default::default()
        }
    }

    fn facts() -> PodFacts<'static> {
        PodFacts {
            name: "web",
            namespace: "default",
            uid: "u-1",
            pod_ip: "10.88.0.5",
            node_name: "node1",
            host_ip: "192.168.1.2",
        }
    }

    #[test]
    fn env_sees_only_earlier_entries() {
        let value = |s: &str| EnvSource::Value(s.into());
        let c = container(
            vec![
                ("B", value("$(A)-b")),
                ("A", value("a")),
                ("C", value("$(A)-$(B)")),
                ("IP", EnvSource::FieldRef("status.podIP".into())),
                ("URL", value("http://$(IP):80")),
            ],
            &["sh", "-c", "echo $(URL) $$(URL) $(NOPE)"],
        );
        let process = resolve(&c, &facts());
        let env: Vec<(&str, &str)> = process
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("B", "$(A)-b"),
                ("A", "a"),
                ("C", "a-$(A)-b"),
                ("IP", "10.88.0.5"),
                ("URL", "http://10.88.0.5:80"),
            ]
        );
        assert_eq!(
            process.argv,
            ["sh", "-c", "echo http://10.88.0.5:80 $(URL) $(NOPE)"]
        );
    }

    #[test]
    fn later_duplicate_replaces_value() {
        let value = |s: &str| EnvSource::Value(s.into());
        let c = container(vec![("A", value("1")), ("A", value("$(A)2"))], &["true"]);
        assert_eq!(
            resolve(&c, &facts()).env,
            [("A".to_string(), "12".to_string())]
        );
    }

    #[test]
    fn field_refs_resolve_from_facts() {
        let f = facts();
        assert_eq!(field_value("metadata.name", &f).as_deref(), Some("web"));
        assert_eq!(field_value("metadata.uid", &f).as_deref(), Some("u-1"));
        assert_eq!(
            field_value("status.hostIP", &f).as_deref(),
            Some("192.168.1.2")
        );
        assert_eq!(field_value("spec.nodeName", &f).as_deref(), Some("node1"));
        assert_eq!(field_value("metadata.labels", &f), None);
    }
}
