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
}
