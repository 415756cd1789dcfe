//! Citations are checked, not trusted: an `ask` answer may cite only passages that this run
//! actually put in front of the model (the passages in its prompt, and the results of its
//! `search_docs` and `read_doc` calls).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::runner::Step;

/// The passage ids the run's successful `search_docs` / `read_doc` calls returned.
pub fn retrieved_ids(steps: &[Step]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for step in steps {
        let Step::ToolCall {
            name,
            result,
            ok: true,
            ..
        } = step
        else {
            continue;
        };
        if name != "search_docs" && name != "read_doc" {
            continue;
        }
        // A result cut at the output cap is not JSON any more: the model saw only part of
        // it, so only the ids that appear whole in the text count.
        match serde_json::from_str::<Value>(result) {
            Ok(v) => collect(&v, &mut ids),
            Err(_) => ids.extend(quoted_ids(result)),
        }
    }
    ids
}

fn collect(v: &Value, ids: &mut BTreeSet<String>) {
    if let Some(id) = v.get("id").and_then(Value::as_str) {
        ids.insert(id.to_string());
    }
    if let Some(source) = v.get("source").and_then(Value::as_str) {
        ids.insert(source.to_string());
    }
    if let Some(results) = v.get("results").and_then(Value::as_array) {
        for r in results {
            collect(r, ids);
        }
    }
}

/// `"id":"..."` and `"source":"..."` values in a cut JSON text.
fn quoted_ids(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["\"id\":\"", "\"source\":\""] {
        let mut rest = text;
        while let Some(i) = rest.find(key) {
            let after = &rest[i + key.len()..];
            match after.find('"') {
                Some(end) => {
                    out.push(after[..end].to_string());
                    rest = &after[end..];
                }
                None => break,
            }
        }
    }
    out
}

/// Problems with the `citations` of `answer` (an array of ids) given what was `allowed`.
pub fn check(answer: &Value, allowed: &BTreeSet<String>) -> Vec<String> {
    let Some(cited) = answer.get("citations").and_then(Value::as_array) else {
        return Vec::new();
    };
    cited
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let id = c.as_str().unwrap_or_default();
            (!allowed.contains(id)).then(|| {
                format!("/citations/{i}: `{id}` is not a passage you were given or retrieved; cite ids exactly as shown in square brackets or returned by search_docs")
            })
        })
        .collect()
}

/// `schema` with its `citations` array narrowed to the ids in `allowed` (those its own item
/// schema accepts): the constraint decoding enforces, so a model cannot cite a passage it was
/// not shown. A schema without a `citations` array property comes back unchanged.
pub fn narrow(schema: &Value, allowed: &BTreeSet<String>) -> Value {
    let mut out = schema.clone();
    let Some(cites) = out
        .get_mut("properties")
        .and_then(|p| p.get_mut("citations"))
        .filter(|c| c["type"] == "array")
    else {
        return out;
    };
    let item_ok = match cites.get("items").map(|i| jsonschema::validator_for(i)) {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return schema.clone(),
        None => None,
    };
    let ids: Vec<Value> = allowed
        .iter()
        .map(|id| Value::String(id.clone()))
        .filter(|id| item_ok.as_ref().is_none_or(|v| v.is_valid(id)))
        .collect();
    if ids.is_empty() {
        cites["maxItems"] = 0.into();
        if let Some(o) = cites.as_object_mut() {
            o.remove("items");
            o.remove("minItems");
        }
    } else {
        cites["items"] = serde_json::json!({ "enum": ids });
    }
    out
}

/// `schema` with its string property `field` (a single cited id, as triage's
/// `runbook_citation`) narrowed to the ids in `allowed` that its own schema accepts, plus
/// `null` where it allowed null. Unchanged when there is no such property, or when nothing
/// could be written (no id retrieved and no null allowed: the check then reports it).
pub fn narrow_field(schema: &Value, field: &str, allowed: &BTreeSet<String>) -> Value {
    let Some(prop) = schema.get("properties").and_then(|p| p.get(field)) else {
        return schema.clone();
    };
    let types: Vec<&str> = match &prop["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return schema.clone(),
    };
    if !types.contains(&"string") {
        return schema.clone();
    }
    let Ok(v) = jsonschema::validator_for(prop) else {
        return schema.clone();
    };
    let mut ids: Vec<Value> = allowed
        .iter()
        .map(|id| Value::String(id.clone()))
        .filter(|id| v.is_valid(id))
        .collect();
    if types.contains(&"null") && v.is_valid(&Value::Null) {
        ids.push(Value::Null);
    }
    if ids.is_empty() {
        return schema.clone();
    }
    let mut out = schema.clone();
    out["properties"][field] = serde_json::json!({ "enum": ids });
    out
}

/// The problem with `answer[field]` (a single cited id) given what was `allowed`, if any.
pub fn check_field(answer: &Value, field: &str, allowed: &BTreeSet<String>) -> Vec<String> {
    match answer.get(field).and_then(Value::as_str) {
        Some(id) if !allowed.contains(id) => vec![format!(
            "/{field}: `{id}` is not a passage search_docs or read_doc returned in this run; use an id exactly as returned, or null"
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(name: &str, result: &str, ok: bool) -> Step {
        Step::ToolCall {
            name: name.into(),
            arguments: json!({}),
            result: result.into(),
            ok,
            truncated: false,
            ms: 0,
        }
    }

    #[test]
    fn only_retrieved_passages_may_be_cited() {
        let steps = vec![
            call(
                "search_docs",
                r#"{"results":[{"id":"net/vpn.md#3","source":"net/vpn.md#L1-L9"}]}"#,
                true,
            ),
            call("read_doc", r#"{"id":"db/pg.md#1"}"#, true),
            call("read_doc", r#"{"error":"no passage with id `x#1`"}"#, false),
            call(
                "search_docs",
                r#"{"results":[{"id":"cut/one.md#2","text":"abc…"#,
                true,
            ),
            call(
                "read_doc",
                r#"{"source":"cut/two.md#L1-L80","text":"1: …"#,
                true,
            ),
            call("sql_query", r#"{"id":"rows/1"}"#, true),
        ];
        let ids = retrieved_ids(&steps);
        let want: BTreeSet<String> = [
            "net/vpn.md#3",
            "net/vpn.md#L1-L9",
            "db/pg.md#1",
            "cut/one.md#2",
            "cut/two.md#L1-L80",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(ids, want);
        let errors = check(
            &json!({"answer": "a", "citations": ["net/vpn.md#3", "x#1", "rows/1"]}),
            &ids,
        );
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("/citations/1: `x#1`"));
        assert!(errors[1].starts_with("/citations/2: `rows/1`"));
    }

    #[test]
    fn narrowing_lists_the_allowed_ids_and_nothing_else() {
        let schema = json!({"type": "object", "properties": {
            "answer": {"type": "string"},
            "citations": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 8}
        }});
        let allowed: BTreeSet<String> = ["a.md#1", "b.md#L1-L9", "much/too/long.md#3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let n = narrow(&schema, &allowed);
        assert_eq!(
            n["properties"]["citations"],
            json!({"type": "array", "items": {"enum": ["a.md#1", "b.md#L1-L9"]}, "maxItems": 8})
        );
        assert_eq!(n["properties"]["answer"], schema["properties"]["answer"]);
        // Nothing retrieved yet: no citation can be written.
        let none = narrow(&schema, &BTreeSet::new());
        assert_eq!(
            none["properties"]["citations"],
            json!({"type": "array", "maxItems": 0})
        );
        // Another shape of answer is left alone.
        let other = json!({"type": "object", "properties": {"citations": {"type": "string"}}});
        assert_eq!(narrow(&other, &allowed), other);
    }

    #[test]
    fn a_single_citation_field_is_narrowed_and_checked() {
        let schema = json!({"type": "object", "properties": {
            "runbook_citation": {"type": ["string", "null"], "maxLength": 12}, "n": {"type": "integer"}}});
        let allowed: BTreeSet<String> = ["a.md#1", "much/too/long.md#3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let n = narrow_field(&schema, "runbook_citation", &allowed);
        assert_eq!(
            n["properties"]["runbook_citation"],
            json!({"enum": ["a.md#1", null]})
        );
        assert_eq!(n["properties"]["n"], schema["properties"]["n"]);
        // Nothing retrieved: only null can be written.
        let none = narrow_field(&schema, "runbook_citation", &BTreeSet::new());
        assert_eq!(
            none["properties"]["runbook_citation"],
            json!({"enum": [null]})
        );
        // Not nullable and nothing retrieved: left for the check.
        let strict =
            json!({"type": "object", "properties": {"runbook_citation": {"type": "string"}}});
        assert_eq!(
            narrow_field(&strict, "runbook_citation", &BTreeSet::new()),
            strict
        );
        assert_eq!(narrow_field(&schema, "absent", &allowed), schema);
        assert!(check_field(
            &json!({"runbook_citation": null}),
            "runbook_citation",
            &allowed
        )
        .is_empty());
        assert!(check_field(
            &json!({"runbook_citation": "a.md#1"}),
            "runbook_citation",
            &allowed
        )
        .is_empty());
        let e = check_field(
            &json!({"runbook_citation": "made/up.md#9"}),
            "runbook_citation",
            &allowed,
        );
        assert!(
            e[0].starts_with("/runbook_citation: `made/up.md#9`"),
            "{e:?}"
        );
    }
}
