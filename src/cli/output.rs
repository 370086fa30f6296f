//! What `get` shares across kinds: `-l/--selector` and `--field-selector` (the API server's
//! grammar, `objects::selectors`) and the template outputs `-o jsonpath=TEMPLATE` and
//! `-o custom-columns=HEADER:EXPR,...` (`objects::jsonpath`), as kubectl prints them.

use serde_json::Value;

use super::{Result, msg, table};
use crate::objects::jsonpath::{Template, text_of};
use crate::objects::selectors::{self, FieldRequirement, Requirement};

/// The selectors of a `get`.
pub struct Selection {
    labels: Vec<Requirement>,
    fields: Vec<FieldRequirement>,
}

impl Selection {
    pub fn parse(labels: Option<&str>, fields: Option<&str>, kind: &str) -> Result<Selection> {
        let labels = selectors::parse_labels(labels.unwrap_or_default())
            .map_err(|e| msg(format!("unable to parse requirement: {e}")))?;
        let fields = selectors::parse_fields(fields.unwrap_or_default(), kind)
            .map_err(|e| msg(format!("field selector: {e}")))?;
        Ok(Selection { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        selectors::matches(&self.labels, &selectors::labels_of(obj))
            && selectors::fields_match(&self.fields, obj)
    }
}

/// Print `doc` (the object, or the List of `objects`) with a template output; false when
/// `output` is not one.
pub fn print_template(
    output: &str,
    doc: &Value,
    objects: &[Value],
    no_headers: bool,
) -> Result<bool> {
    if let Some(t) = output.strip_prefix("jsonpath=") {
        let template = Template::parse(t).map_err(|e| msg(e.to_string()))?;
        print!("{}", template.render(doc));
        return Ok(true);
    }
    if let Some(spec) = output.strip_prefix("custom-columns=") {
        let mut columns = Vec::new();
        for column in spec.split(',') {
            let Some((header, expr)) = column.split_once(':') else {
                return Err(msg(format!(
                    "expected <header>:<json-path-expr> in custom-columns, found \"{column}\""
                )));
            };
            let expr = expr.trim_start_matches('{').trim_end_matches('}');
            let template =
                Template::parse(&format!("{{{expr}}}")).map_err(|e| msg(e.to_string()))?;
            columns.push((header.to_owned(), template));
        }
        let mut rows = Vec::new();
        if !no_headers {
            rows.push(columns.iter().map(|(h, _)| h.clone()).collect());
        }
        for obj in objects {
            rows.push(
                columns
                    .iter()
                    .map(|(_, t)| {
                        let values = t.values(obj);
                        if values.is_empty() {
                            "<none>".to_owned()
                        } else {
                            values.iter().map(text_of).collect::<Vec<_>>().join(",")
                        }
                    })
                    .collect(),
            );
        }
        table::print(&rows);
        return Ok(true);
    }
    Ok(false)
}
