//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) and prints as it comes: column
//! names upper-cased, columns of priority 1 only with `-o wide`, the NAMESPACE column of `-A`
//! added by kubectl from each row's object metadata.

use serde_json::{Value, json};

pub use crate::objects::resources::{Column, columns};

/// Whether the Accept header asks for a Table (kubectl lists `as=Table` first; a plain
/// `application/json` after it is its fallback, not a preference).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// The object a row carries: its metadata (kube-apiserver's default `includeObject=Metadata`).
fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    })
}

/// A Table of `rows` (cells, object), with `resource_version` in its list metadata.
pub fn table(columns: &[Column], rows: &[(Vec<Value>, Value)], resource_version: &str) -> Value {
    let defs: Vec<Value> = columns
        .iter()
        .map(|c| {
            let format = if c.name == "Name" || c.name == "NAME" {
                "name"
            } else {
                ""
            };
            json!({"name": c.name, "type": "string", "format": format, "description": "", "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|(cells, obj)| json!({"cells": cells, "object": partial(obj)}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_accept_headers() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json, */*"));
    }

    #[test]
    fn rows_carry_metadata_and_wide_priority() {
        let cols = columns(&["Name", "Age"], &["IP"]);
        let t = table(
            &cols,
            &[(
                vec![json!("a"), json!("1s"), json!("10.0.0.2")],
                json!({"metadata": {"name": "a", "namespace": "ns"}}),
            )],
            "7",
        );
        assert_eq!(t["columnDefinitions"][2]["priority"], 1);
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "ns");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }
}
