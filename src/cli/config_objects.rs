//! `podrun delete configmap|secret NAME...` (`cm/NAME`, `--all`) and `podrun describe
//! configmap|secret NAME`: the ConfigMaps and Secrets stored on the node
//! (`state::config_objects`). `get` lists them with the other kinds (`workloads.rs`).

use super::delete::DeleteArgs;
use super::{Result, msg};
use crate::config::Config;
use crate::state::ConfigKind;

/// The kind and names a delete's words name, if they name ConfigMaps or Secrets: `configmap
/// A B`, `cm/A secret/B`.
fn targets(words: &[String]) -> Option<Vec<(ConfigKind, String)>> {
    let first = words.first()?;
    if let Some(kind) = ConfigKind::from_word(first) {
        return Some(words[1..].iter().map(|n| (kind, n.clone())).collect());
    }
    let split = |w: &String| {
        w.split_once('/')
            .and_then(|(k, n)| Some((ConfigKind::from_word(k)?, n.to_owned())))
    };
    split(first)?;
    words.iter().map(split).collect()
}

/// `delete` of ConfigMaps or Secrets; None when the words name something else.
pub fn delete(cfg: &Config, namespace: &str, args: &DeleteArgs) -> Option<Result<i32>> {
    let mut named = targets(&args.names)?;
    let store = cfg.store();
    if args.all {
        let kind = ConfigKind::from_word(&args.names[0])?;
        named = store
            .list_configs(kind, Some(namespace))
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(|n| (kind, n.to_owned())))
            .collect();
    } else if named.is_empty() {
        return Some(Err(msg(
            "resource(s) were provided, but no name was specified",
        )));
    }
    let mut missing = Vec::new();
    for (kind, name) in named {
        match store.remove_config(kind, namespace, &name) {
            Ok(true) => println!("{} \"{name}\" deleted", kind.singular()),
            Ok(false) if args.ignore_not_found => {}
            Ok(false) => missing.push(format!("{} \"{name}\" not found", kind.plural())),
            Err(e) => return Some(Err(e.into())),
        }
    }
    Some(if missing.is_empty() {
        Ok(0)
    } else {
        Err(msg(missing.join("\n")))
    })
}

/// `describe configmap NAME` (`cm/NAME`, `secret NAME`); None when the words name something
/// else.
pub fn describe(cfg: &Config, namespace: &str, words: &[String]) -> Option<Result<i32>> {
    let (kind, name) = match targets(words)?.as_slice() {
        [(kind, name)] => (*kind, name.clone()),
        _ => return Some(Err(msg("describe takes one NAME"))),
    };
    Some(match cfg.store().load_config(kind, namespace, &name) {
        Some(object) => {
            print!("{}", crate::objects::config::describe(&object));
            Ok(0)
        }
        None => Err(msg(format!("{} \"{name}\" not found", kind.plural()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_name_config_objects() {
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            targets(&w(&["cm", "a", "b"])).unwrap(),
            [
                (ConfigKind::ConfigMap, "a".to_owned()),
                (ConfigKind::ConfigMap, "b".to_owned())
            ]
        );
        assert_eq!(
            targets(&w(&["secret/s"])).unwrap(),
            [(ConfigKind::Secret, "s".to_owned())]
        );
        assert!(targets(&w(&["pod", "a"])).is_none());
        assert!(targets(&w(&["web"])).is_none());
        assert!(targets(&w(&["cm/a", "pod/b"])).is_none());
    }
}
