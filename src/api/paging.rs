//! `limit` and `continue`: a list in pages, as kube-apiserver serves them to `kubectl get`
//! (which asks for 500 at a time) and to informers. The rows are in (namespace, name)
//! order; a page's `continue` token names the first row of the next one and the list's
//! resourceVersion, and `remainingItemCount` says how many rows are after the page. podrun
//! keeps no old revisions: a later page is cut from the current list, so an object created
//! or deleted between pages shows or disappears, as with an etcd compaction's
//! "inconsistent continue" (kube-apiserver's 410 is never needed).

use base64::Engine;
use serde_json::{Value, json};

use super::router::{Reply, status};

/// One page: the rows it keeps, the token of the next page, the rows after it.
pub struct Page {
    pub token: Option<String>,
    pub remaining: usize,
}

fn key(obj: &Value) -> (String, String) {
    let m = &obj["metadata"];
    (
        m["namespace"].as_str().unwrap_or_default().to_owned(),
        m["name"].as_str().unwrap_or_default().to_owned(),
    )
}

fn invalid() -> Reply {
    status(
        400,
        "BadRequest",
        "continue key is not valid: the token is not a continue token of this server",
        None,
    )
}

/// Cut `rows` (sorted by namespace and name) to the page `limit` and `token` ask for.
pub fn cut(
    rows: &mut Vec<(Vec<Value>, Value)>,
    limit: &str,
    token: &str,
    resource_version: &str,
) -> Result<Page, Reply> {
    rows.sort_by_key(|(_, o)| key(o));
    if !token.is_empty() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| invalid())?;
        let t: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
        let (Some(ns), Some(name)) = (t["start"][0].as_str(), t["start"][1].as_str()) else {
            return Err(invalid());
        };
        let start = (ns.to_owned(), name.to_owned());
        rows.retain(|(_, o)| key(o) >= start);
    }
    let limit = match limit {
        "" => 0,
        l => l.parse::<usize>().map_err(|_| {
            status(
                400,
                "BadRequest",
                &format!("invalid limit {l:?}: must be a non-negative integer"),
                None,
            )
        })?,
    };
    if limit == 0 || rows.len() <= limit {
        return Ok(Page {
            token: None,
            remaining: 0,
        });
    }
    let rest = rows.split_off(limit);
    let (ns, name) = key(&rest[0].1);
    let token = json!({"v": "meta.k8s.io/v1", "rv": resource_version, "start": [ns, name]});
    Ok(Page {
        token: Some(
            base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&token).unwrap_or_default()),
        ),
        remaining: rest.len(),
    })
}

impl Page {
    /// Put the token and the count into a list's (or Table's) metadata.
    pub fn annotate(&self, list: &mut Value) {
        if let Some(t) = &self.token {
            list["metadata"]["continue"] = json!(t);
            list["metadata"]["remainingItemCount"] = json!(self.remaining);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(names: &[&str]) -> Vec<(Vec<Value>, Value)> {
        names
            .iter()
            .map(|n| {
                (
                    vec![],
                    json!({"metadata": {"namespace": "default", "name": n}}),
                )
            })
            .collect()
    }

    #[test]
    fn pages_follow_each_other_in_name_order() {
        let mut r = rows(&["c", "a", "e", "b", "d"]);
        let p = cut(&mut r, "2", "", "9").ok().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].1["metadata"]["name"], "b");
        assert_eq!(p.remaining, 3);
        let mut r = rows(&["c", "a", "e", "b", "d"]);
        let p2 = cut(&mut r, "2", p.token.as_deref().unwrap(), "9")
            .ok()
            .unwrap();
        assert_eq!(r[0].1["metadata"]["name"], "c");
        let mut r = rows(&["c", "a", "e", "b", "d"]);
        let p3 = cut(&mut r, "2", p2.token.as_deref().unwrap(), "9")
            .ok()
            .unwrap();
        assert_eq!(r.len(), 1);
        assert!(p3.token.is_none());
        assert_eq!(
            cut(&mut rows(&["a"]), "x", "", "1").err().unwrap().status,
            400
        );
        assert_eq!(
            cut(&mut rows(&["a"]), "1", "!!", "1").err().unwrap().status,
            400
        );
    }
}
