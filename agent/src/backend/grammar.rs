//! The grammar of what follows the thinking in an assistant turn: a tool call (one to
//! [`MAX_CALLS`](crate::toolcall::MAX_CALLS) calls of the offered tools, in the JSON form,
//! between the call tokens) or the final answer under the task's schema.
//!
//! ```text
//! start: body | WS body
//! body:  "<|tool_call_start|>" calls "<|tool_call_end|>"     (when tools are offered)
//!      | answer                                               (when there is a schema)
//! calls:  %json {call_list_schema(tools)}
//! answer: %json {answer schema}
//! ```
//!
//! The call tokens are written as special-token references (`<|tool_call_start|>`, not a
//! quoted string): llguidance's token trie treats every added token of the form `<...>` as
//! special, so the one token the model was trained to emit matches only that way. A quoted
//! literal would forbid that token and force a spelling in pieces.

use lfm_engine::constraint::schema;
use lfm_tools::ToolSpec;
use serde_json::Value;

use crate::toolcall::{call_list_schema, CALL_END, CALL_START};

/// The Lark grammar for a turn's body, or `None` when nothing is to be constrained (no
/// schema and no tools). Without a schema but with tools, the body is constrained only once
/// the model opens a call: see [`call_only`].
pub fn body(tools: &[&ToolSpec], answer: Option<&Value>) -> Result<Option<String>, String> {
    let answer = match answer {
        Some(s) => Some(json_rule(s)?),
        None => return Ok(None),
    };
    let mut alts = Vec::new();
    if !tools.is_empty() {
        alts.push(format!("{CALL_START} calls {CALL_END}"));
    }
    alts.push("answer".to_string());
    let mut g = String::from("start: body | WS body\nWS: /[ \\n]{1,3}/\n");
    g.push_str(&format!("body: {}\n", alts.join(" | ")));
    if !tools.is_empty() {
        g.push_str(&format!(
            "calls: {}\n",
            json_rule(&call_list_schema(tools))?
        ));
    }
    if let Some(a) = answer {
        g.push_str(&format!("answer: {a}\n"));
    }
    Ok(Some(g))
}

/// The grammar for the rest of a call once `<|tool_call_start|>` is out: the call list and
/// the end token.
pub fn call_only(tools: &[&ToolSpec]) -> Result<String, String> {
    Ok(format!(
        "start: calls {CALL_END}\ncalls: {}\n",
        json_rule(&call_list_schema(tools))?
    ))
}

/// `%json {...}` for `schema`, prepared as the engine prepares every schema (unknown formats
/// dropped, disjoint `oneOf` as `anyOf`), written on one line with Python's `json.dumps`
/// separators (`", "`, `": "`) unless the schema sets its own `x-guidance`: an agent's calls
/// and answers are read by programs, and no token goes to layout.
fn json_rule(schema: &Value) -> Result<String, String> {
    let mut schema = schema.clone();
    if let Value::Object(o) = &mut schema {
        o.entry("x-guidance")
            .or_insert_with(|| serde_json::json!({"whitespace_flexible": false}));
    }
    let prepared = schema::prepare(&schema).map_err(|e| e.to_string())?;
    Ok(format!("%json {}", prepared.schema))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_body_offers_calls_and_the_answer() {
        let spec = ToolSpec::new(
            "lookup",
            "Looks up.",
            json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
        )
        .unwrap();
        let g = body(&[&spec], Some(&json!({"type": "object"})))
            .unwrap()
            .unwrap();
        assert!(g.contains("body: <|tool_call_start|> calls <|tool_call_end|> | answer"));
        assert!(g.contains("calls: %json {"));
        assert!(g.contains("answer: %json {"));
        let g = body(&[], Some(&json!({"type": "object"})))
            .unwrap()
            .unwrap();
        assert!(g.contains("body: answer\n") && !g.contains("calls:"));
        assert!(body(&[&spec], None).unwrap().is_none());
        assert!(call_only(&[&spec])
            .unwrap()
            .starts_with("start: calls <|tool_call_end|>\n"));
    }
}
