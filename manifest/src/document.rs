//! Reading a manifest file as kubectl reads it: JSON or YAML, told apart by
//! content (a JSON document starts with `{`), YAML with several documents
//! (`---`), comments, anchors, block scalars and YAML 1.1's octal numbers
//! (`defaultMode: 0644` is 420); a `kind: List` (what `kubectl get -o yaml`
//! prints) contributes its `items`.
//!
//! YAML goes through serde-saphyr: no unsafe code, budgets against alias
//! bombs and huge documents, and the YAML 1.1 octal option (serde_yaml is
//! archived, serde_yml has soundness advisories).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::Value;

use crate::error::Error;

/// One object of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Where it came from, for messages: `document 2`, or `document 1, items[3]`.
    pub origin: String,
    /// Its `kind` (empty when absent).
    pub kind: String,
    /// Its `metadata.name` (empty when absent).
    pub name: String,
    /// The object itself.
    pub value: Value,
}

impl Object {
    /// `document 2 (ConfigMap settings)`: how messages name it.
    pub fn label(&self) -> String {
        match (self.kind.as_str(), self.name.as_str()) {
            ("", "") => self.origin.clone(),
            (kind, "") => format!("{} ({kind})", self.origin),
            ("", name) => format!("{} ({name})", self.origin),
            (kind, name) => format!("{} ({kind} {name})", self.origin),
        }
    }
}

/// Every object in `text`, in order.
pub fn objects(text: &str) -> Result<Vec<Object>, Error> {
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let documents: Vec<Value> = if trimmed.starts_with('{') {
        // serde_json's message names the line and column.
        let v: Value =
            serde_json::from_str(text).map_err(|e| Error::new("", format!("not valid JSON: {e}")))?;
        alloc::vec![v]
    } else {
        let mut options = serde_saphyr::Options::default();
        options.legacy_octal_numbers = true;
        serde_saphyr::from_multiple_with_options(text, options)
            .map_err(|e| Error::new("", format!("not valid YAML: {e}")))?
    };
    let mut out = Vec::new();
    for (i, doc) in documents.into_iter().enumerate() {
        let origin = format!("document {}", i + 1);
        if doc.is_null() {
            continue;
        }
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            let Some(Value::Array(items)) = doc.get("items") else {
                return Err(Error::new(
                    format!("{origin}: items"),
                    "a List needs an items array",
                ));
            };
            for (j, item) in items.iter().enumerate() {
                out.push(object(format!("{origin}, items[{j}]"), item.clone())?);
            }
        } else {
            out.push(object(origin, doc)?);
        }
    }
    Ok(out)
}

fn object(origin: String, value: Value) -> Result<Object, Error> {
    if !value.is_object() {
        return Err(Error::new(
            origin,
            "not an object (a mapping with kind, metadata, ...)",
        ));
    }
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(Object {
        kind: text(value.get("kind")),
        name: text(value.get("metadata").and_then(|m| m.get("name"))),
        origin,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_as_kubectl_reads_it() {
        let text = "# a comment\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: &l {app: web}\n  annotations:\n    note: |\n      two\n      lines\nspec:\n  volumes:\n  - name: v\n    configMap: {name: c, defaultMode: 0644}\n---\n---\nkind: ConfigMap\nmetadata: {name: c}\ndata: {mode: '0644', n: 010}\n";
        let objs = objects(text).expect("parses");
        assert_eq!(objs.len(), 2);
        assert_eq!((objs[0].kind.as_str(), objs[0].name.as_str()), ("Pod", "web"));
        let v = &objs[0].value;
        assert_eq!(v["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
        assert_eq!(v["metadata"]["annotations"]["note"], "two\nlines\n");
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        // Empty documents are skipped and not counted.
        assert_eq!(objs[1].label(), "document 2 (ConfigMap c)");
        assert_eq!(objs[1].value["data"]["mode"], "0644");
        assert_eq!(objs[1].value["data"]["n"], 8);
    }

    #[test]
    fn json_and_lists() {
        let json = r#"  {"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": "a"}}, {"kind": "Secret"}]}"#;
        let objs = objects(json).expect("parses");
        assert_eq!(
            objs.iter().map(Object::label).collect::<Vec<_>>(),
            ["document 1, items[0] (Pod a)", "document 1, items[1] (Secret)"]
        );
        assert!(objects("{\"kind\": ")
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        assert!(objects("a: [1, 2\nb: c\n")
            .unwrap_err()
            .message
            .contains("not valid YAML"));
        assert!(objects("- 1\n- 2\n")
            .unwrap_err()
            .message
            .contains("not an object"));
        assert!(objects("kind: List\nitems: 3\n")
            .unwrap_err()
            .to_string()
            .contains("items"));
    }
}
