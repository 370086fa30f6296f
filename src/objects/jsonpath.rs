//! kubectl's JSONPath templates (`-o jsonpath=...`, `-o custom-columns=...`): text with
//! `{expression}` blocks, `{range EXPR}...{end}` loops and quoted text (`{"\n"}`). Each
//! expression is evaluated by the `serde_json_path` crate (RFC 9535 JSONPath) after kubectl's
//! relaxed form is written as RFC 9535 asks: the leading `$` added, `.name` segments (which
//! kubectl allows with `-` and `/`, and `\.` for a dot in a name) as `['name']`. Inside a
//! range the expressions start from the item, as kubectl's do. What an expression finds is
//! printed as kubectl prints it: strings as they are, anything else as JSON, several results
//! separated by a space, a missing field as nothing.

use serde_json::Value;
use serde_json_path::JsonPath;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("error parsing jsonpath {template}, {message}")]
    Parse { template: String, message: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Expr(String),
    Range(String, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(template: &str) -> Result<Template, TemplateError> {
        let error = |message: String| TemplateError::Parse {
            template: template.to_owned(),
            message,
        };
        let mut stack: Vec<(String, Vec<Node>)> = vec![(String::new(), Vec::new())];
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push_text(&mut stack, rest);
                break;
            };
            push_text(&mut stack, &rest[..open]);
            let close =
                closing(&rest[open..]).ok_or_else(|| error("unclosed action".into()))? + open;
            let inner = rest[open + 1..close].trim();
            rest = &rest[close + 1..];
            if let Some(expr) = inner.strip_prefix("range ") {
                let expr = expr.trim().to_owned();
                check(&expr).map_err(&error)?;
                stack.push((expr, Vec::new()));
            } else if inner == "end" {
                if stack.len() < 2 {
                    return Err(error("not in range, nothing to end".into()));
                }
                let (expr, body) = stack.pop().expect("checked");
                stack
                    .last_mut()
                    .expect("root")
                    .1
                    .push(Node::Range(expr, body));
            } else if let Some(text) = quoted(inner) {
                push_text(&mut stack, &text);
            } else {
                check(inner).map_err(&error)?;
                stack
                    .last_mut()
                    .expect("root")
                    .1
                    .push(Node::Expr(inner.to_owned()));
            }
        }
        if stack.len() != 1 {
            return Err(error("unclosed range".into()));
        }
        Ok(Template {
            nodes: stack.pop().expect("root").1,
        })
    }

    /// The template's text for `root`.
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render(&self.nodes, root, root, &mut out);
        out
    }

    /// What the template's expressions find in `root` (for custom columns: one expression).
    pub fn values(&self, root: &Value) -> Vec<Value> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Expr(e) => Some(eval(e, root, root)),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// The `}` that closes the `{` at the start of `s` (quotes inside are skipped).
fn closing(s: &str) -> Option<usize> {
    let mut in_quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match (in_quote, c) {
            (Some(_), '\\') if !escaped => escaped = true,
            (Some(q), c) if c == q && !escaped => in_quote = None,
            (Some(_), _) => escaped = false,
            (None, '"' | '\'') => in_quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

fn push_text(stack: &mut [(String, Vec<Node>)], text: &str) {
    if text.is_empty() {
        return;
    }
    let nodes = &mut stack.last_mut().expect("root").1;
    if let Some(Node::Text(t)) = nodes.last_mut() {
        t.push_str(text);
    } else {
        nodes.push(Node::Text(text.to_owned()));
    }
}

/// `"text"` with kubectl's escapes (`\n`, `\t`, `\"`, `\\`).
fn quoted(inner: &str) -> Option<String> {
    let body = inner.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

fn check(expr: &str) -> Result<(), String> {
    JsonPath::parse(&rfc9535(expr))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// kubectl's relaxed expression as RFC 9535 writes it.
fn rfc9535(expr: &str) -> String {
    let expr = expr.trim();
    let body = expr
        .strip_prefix('$')
        .or_else(|| expr.strip_prefix('@'))
        .unwrap_or(expr);
    let mut out = String::from("$");
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let descend = chars.get(i + 1) == Some(&'.');
                i += if descend { 2 } else { 1 };
                if descend {
                    out.push_str("..");
                }
                if chars.get(i) == Some(&'*') {
                    out.push_str(if descend { "*" } else { "[*]" });
                    i += 1;
                    continue;
                }
                if chars.get(i) == Some(&'[') {
                    continue;
                }
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                out.push_str(&format!(
                    "['{}']",
                    name.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
            '[' => {
                // A bracket as written (index, slice, wildcard, names, filter).
                let mut depth = 0;
                let mut quote: Option<char> = None;
                while i < chars.len() {
                    let c = chars[i];
                    out.push(c);
                    i += 1;
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, '"' | '\'') => quote = Some(c),
                        (None, '[') => depth += 1,
                        (None, ']') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            other => {
                // A bare first name (`metadata.name`): kubectl takes it from the root.
                let mut name = String::from(other);
                i += 1;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    name.push(chars[i]);
                    i += 1;
                }
                out.push_str(&format!("['{name}']"));
            }
        }
    }
    out
}

fn eval(expr: &str, root: &Value, current: &Value) -> Vec<Value> {
    if let Some(text) = quoted(expr) {
        return vec![Value::String(text)];
    }
    let from = if expr.trim_start().starts_with('$') {
        root
    } else {
        current
    };
    match JsonPath::parse(&rfc9535(expr)) {
        Ok(path) => path.query(from).all().into_iter().cloned().collect(),
        Err(_) => Vec::new(),
    }
}

fn render(nodes: &[Node], root: &Value, current: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Expr(e) => {
                let values = eval(e, root, current);
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(&text_of(v));
                }
            }
            Node::Range(e, body) => {
                for item in eval(e, root, current) {
                    // A range over one list value walks its items.
                    match &item {
                        Value::Array(items) if !e.trim_end().ends_with(']') => {
                            for i in items {
                                render(body, root, i, out);
                            }
                        }
                        _ => render(body, root, &item, out),
                    }
                }
            }
        }
    }
}

/// A value as kubectl prints it: a string as it is, anything else as JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"kind": "Pod", "metadata": {"name": "web", "labels": {"app": "a", "pod-template-hash": "h1", "app.kubernetes.io/name": "n"}},
            "status": {"containerStatuses": [
                {"name": "curl-client", "containerID": "podrun://1", "ready": true},
                {"name": "web-server", "containerID": "podrun://2", "ready": false}]}})
    }

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v)
    }

    #[test]
    fn the_books_command() {
        let t = r#"{range .status.containerStatuses[*]}{.name}: {.containerID}{"\n"}{end}"#;
        assert_eq!(
            render(t, &pod()),
            "curl-client: podrun://1\nweb-server: podrun://2\n"
        );
    }

    #[test]
    fn paths_filters_and_values() {
        let p = pod();
        assert_eq!(render("{.metadata.name}", &p), "web");
        assert_eq!(render("name={metadata.name}", &p), "name=web");
        assert_eq!(render("{.metadata.labels.pod-template-hash}", &p), "h1");
        assert_eq!(
            render(r"{.metadata.labels.app\.kubernetes\.io/name}", &p),
            "n"
        );
        assert_eq!(
            render("{.status.containerStatuses[*].name}", &p),
            "curl-client web-server"
        );
        assert_eq!(
            render(r#"{.status.containerStatuses[?(@.ready==false)].name}"#, &p),
            "web-server"
        );
        assert_eq!(render("{.status.containerStatuses[-1].ready}", &p), "false");
        assert_eq!(render("{.metadata.nope}", &p), "");
        assert_eq!(render("{..containerID}", &p), "podrun://1 podrun://2");
        assert_eq!(
            render(
                "{.metadata.labels}",
                &json!({"metadata": {"labels": {"a": "b"}}})
            ),
            r#"{"a":"b"}"#
        );
        let list = json!({"items": [pod(), pod()]});
        assert_eq!(
            render(r#"{range .items[*]}{.metadata.name}{"\n"}{end}"#, &list),
            "web\nweb\n"
        );
    }

    #[test]
    fn bad_templates_are_named() {
        for bad in [
            "{.metadata.name",
            "{end}",
            "{range .items[*]}x",
            "{.items[?(@.a==]}",
        ] {
            let e = Template::parse(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("error parsing jsonpath"),
                "{bad}: {e}"
            );
        }
    }
}
