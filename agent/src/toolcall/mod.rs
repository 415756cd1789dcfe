//! LFM2.5 tool calls in generated text.
//!
//! The model writes calls between `<|tool_call_start|>` and `<|tool_call_end|>`, by default as
//! a Python-like list, `[search_docs(query="vpn", k=3), current_time()]`, and sometimes as JSON
//! (`[{"name": "search_docs", "arguments": {"query": "vpn"}}]`). Small models are sloppy, so
//! the parser takes single or double quotes, Python's `True`/`False`/`None` as well as JSON's
//! literals, trailing commas, a missing end token, and a bare call list without the wrapper
//! tokens when it is the whole answer (after any thinking). Text that is not a well-formed
//! call of a known tool is never a call: a `[` in prose stays prose.
//!
//! Arguments come back as JSON objects; validating them against the tool's schema is the
//! registry's job.

mod grammar;
mod value;

pub use grammar::{call_list_schema, turn_spec, MAX_CALLS};
pub use lfm_engine::constraint::{CALL_END, CALL_START};

use serde::Serialize;
use serde_json::{Map, Value};

/// One parsed call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments.
    pub arguments: Map<String, Value>,
}

/// What an assistant message holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedMessage {
    /// The calls, in order.
    pub calls: Vec<ToolCall>,
    /// The text outside the calls and outside `<think>...</think>`, trimmed.
    pub content: String,
    /// Call regions that did not parse, with why (for the model's next turn).
    pub errors: Vec<String>,
}

/// OpenAI `tool_calls` (`[{"function": {"name", "arguments"}}]`, arguments a JSON string or
/// an object) as LFM2 call text: the JSON call list between the call tokens, which
/// [`parse_message`] reads back. An error gives the index of the bad call and why.
pub fn openai_calls_text(calls: &[Value]) -> Result<String, (usize, String)> {
    let mut list = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let f = &c["function"];
        let name = f["name"]
            .as_str()
            .ok_or((i, "function.name is missing".to_string()))?;
        let args: Value = match &f["arguments"] {
            Value::String(s) if s.trim().is_empty() => Value::Object(Map::new()),
            Value::String(s) => serde_json::from_str(s)
                .map_err(|e| (i, format!("function.arguments is not JSON: {e}")))?,
            Value::Object(o) => Value::Object(o.clone()),
            _ => return Err((i, "function.arguments must be a JSON object string".into())),
        };
        list.push(serde_json::json!({"name": name, "arguments": args}));
    }
    Ok(format!("{CALL_START}{}{CALL_END}", Value::Array(list)))
}

/// Splits an assistant message into calls and text. `known` says which names are tools;
/// unwrapped call lists count only when every name in them is known.
pub fn parse_message(text: &str, known: &dyn Fn(&str) -> bool) -> ParsedMessage {
    let after_think = match text.rfind("</think>") {
        Some(i) => &text[i + "</think>".len()..],
        None if text.trim_start().starts_with("<think>") => "",
        None => text,
    };
    parse_body(after_think, known)
}

/// [`parse_message`] of a text that holds no thinking.
pub fn parse_body(body: &str, known: &dyn Fn(&str) -> bool) -> ParsedMessage {
    let mut out = ParsedMessage::default();
    let mut content = String::new();
    let mut rest = body;
    let mut wrapped = false;
    while let Some(start) = rest.find(CALL_START) {
        wrapped = true;
        content.push_str(&rest[..start]);
        let body_start = start + CALL_START.len();
        let (body, next) = match rest[body_start..].find(CALL_END) {
            Some(end) => (
                &rest[body_start..body_start + end],
                &rest[body_start + end + CALL_END.len()..],
            ),
            None => (&rest[body_start..], ""),
        };
        match parse_calls(body) {
            Ok(calls) => out.calls.extend(calls),
            Err(why) => out.errors.push(format!(
                "could not parse tool call `{}`: {why}",
                shorten(body.trim(), 200)
            )),
        }
        rest = next;
    }
    content.push_str(rest);
    if !wrapped {
        // A bare list that is the whole answer, naming only known tools.
        if let Ok(calls) = parse_calls(content.trim()) {
            if !calls.is_empty() && calls.iter().all(|c| known(&c.name)) {
                out.calls = calls;
                content.clear();
            }
        }
    }
    out.content = content.trim().to_string();
    out
}

/// `s` cut to at most `max` characters, with `…` where it was cut (errors quote the model's
/// text back to it; a runaway call must not flood the context).
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Parses the body of a call region: a Python-like list (or a single call), or JSON.
pub fn parse_calls(body: &str) -> Result<Vec<ToolCall>, String> {
    let body = body.trim();
    if body.is_empty() {
        return Err("empty tool call".into());
    }
    let json_form = body.starts_with('{')
        || body
            .strip_prefix('[')
            .is_some_and(|r| r.trim_start().starts_with('{'));
    if json_form {
        return json_calls(body);
    }
    let mut p = value::Parser::new(body);
    let calls = p.call_list()?;
    p.end()?;
    Ok(calls)
}

fn json_calls(body: &str) -> Result<Vec<ToolCall>, String> {
    // Accept strict JSON first, then the Python-literal reading of the same text (single
    // quotes, True/None).
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            let mut p = value::Parser::new(body);
            let v = p.value().map_err(|_| format!("not JSON: {e}"))?;
            p.end()?;
            v
        }
    };
    let items = match v {
        Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Object(mut obj) = item else {
                return Err("a JSON tool call must be an object".to_string());
            };
            // {"name", "arguments"} or {"function": {"name", "arguments"}}.
            if let Some(Value::Object(f)) = obj.remove("function") {
                obj = f;
            }
            let name = match obj.remove("name") {
                Some(Value::String(n)) => n,
                _ => return Err("a JSON tool call needs a string \"name\"".to_string()),
            };
            let args = obj
                .remove("arguments")
                .or_else(|| obj.remove("parameters"))
                .unwrap_or(Value::Object(Map::new()));
            let arguments = match args {
                Value::Object(m) => m,
                // OpenAI style: arguments as a JSON string.
                Value::String(s) => match serde_json::from_str(&s) {
                    Ok(Value::Object(m)) => m,
                    _ => return Err(format!("arguments of `{name}` are not an object")),
                },
                Value::Null => Map::new(),
                _ => return Err(format!("arguments of `{name}` are not an object")),
            };
            Ok(ToolCall { name, arguments })
        })
        .collect()
}

#[cfg(test)]
mod tests;
