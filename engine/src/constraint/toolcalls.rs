//! "One of these tool calls": the constraint for an assistant turn that calls tools in
//! LFM2's format, built from the tools' parameter schemas.
//!
//! ```text
//! start: body | WS body                                       (opened: start: calls END)
//! body:  <|tool_call_start|> calls <|tool_call_end|>           (when there are tools)
//!      | answer                                               (when there is an answer schema)
//! calls:  %json [{"name": <one tool>, "arguments": <its parameters>}, ...]  (1..=max_calls)
//! answer: %json <answer schema>
//! ```
//!
//! Calls are written in the JSON form (`[{"name": "f", "arguments": {...}}]`), one of the two
//! forms LFM2.5 emits between the call tokens; the other, Python-like `[f(a=1)]`, has no
//! JSON Schema to check it against. Every call names a listed tool and its arguments
//! validate under that tool's schema, by construction.
//!
//! The call tokens are special-token references (`<|tool_call_start|>`, not a quoted
//! string): llguidance's token trie treats every added token of the form `<...>` as special,
//! so the one token the model was trained to emit matches only that way.

use serde::Deserialize;
use serde_json::{json, Value};

use super::schema;
use crate::error::{Error, Result};

/// The call tokens, as the grammar references them.
pub const CALL_START: &str = "<|tool_call_start|>";
/// See [`CALL_START`].
pub const CALL_END: &str = "<|tool_call_end|>";
/// The default for [`ToolCallSpec::max_calls`].
pub const DEFAULT_MAX_CALLS: usize = 8;

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolDef {
    /// The name the model calls it by.
    pub name: String,
    /// JSON Schema of its arguments.
    pub parameters: Value,
}

/// What a turn may contain: one to `max_calls` calls of `tools`, or the final `answer`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallSpec {
    /// The tools on offer (names distinct).
    pub tools: Vec<ToolDef>,
    /// Also admit a final answer, JSON under this schema, instead of a call.
    pub answer: Option<Value>,
    /// `<|tool_call_start|>` is already out: only the call list and `<|tool_call_end|>`
    /// remain.
    pub opened: bool,
    /// Most calls in one list.
    pub max_calls: usize,
}

impl ToolCallSpec {
    /// A required call of one of `tools`.
    pub fn new(tools: Vec<ToolDef>) -> Self {
        ToolCallSpec {
            tools,
            answer: None,
            opened: false,
            max_calls: DEFAULT_MAX_CALLS,
        }
    }

    /// Reads a tool list as users write one: an array of `{"name", "parameters"}` objects,
    /// or of OpenAI-style `{"type": "function", "function": {"name", "parameters", ...}}`.
    /// Other fields (descriptions) are ignored; a tool without `parameters` takes none.
    pub fn tools_from_json(v: &Value) -> Result<Vec<ToolDef>> {
        let bad = |m: String| Error::arg("tools", m);
        let list = v
            .as_array()
            .ok_or_else(|| bad("expected a JSON array of tools".into()))?;
        list.iter()
            .enumerate()
            .map(|(i, t)| {
                let t = t.get("function").unwrap_or(t);
                let name = t
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("tool {i}: missing string field `name`")))?;
                let parameters = t
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                Ok(ToolDef {
                    name: name.to_string(),
                    parameters,
                })
            })
            .collect()
    }

    /// The schema of a call list: `[{"name": "<tool>", "arguments": {...}}, ...]`.
    pub fn call_list_schema(&self) -> Value {
        let one: Vec<Value> = self
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": {
                        "name": {"const": t.name.as_str()},
                        "arguments": t.parameters,
                    },
                    "required": ["name", "arguments"],
                    "additionalProperties": false
                })
            })
            .collect();
        json!({
            "type": "array",
            "items": {"anyOf": one},
            "minItems": 1,
            "maxItems": self.max_calls
        })
    }

    /// The Lark grammar, or an error naming what is wrong with the spec.
    pub fn to_lark(&self) -> Result<String> {
        let bad = |m: String| Error::arg("tools", m);
        if self.max_calls == 0 {
            return Err(bad("max_calls must be at least 1".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.tools {
            if t.name.is_empty() {
                return Err(bad("a tool has an empty name".into()));
            }
            if !seen.insert(t.name.as_str()) {
                return Err(bad(format!("tool `{}` is listed twice", t.name)));
            }
        }
        if self.tools.is_empty() && (self.opened || self.answer.is_none()) {
            return Err(bad("no tools to call".into()));
        }
        let calls = if self.tools.is_empty() {
            None
        } else {
            Some(json_rule(&self.call_list_schema())?)
        };
        if self.opened {
            let calls = calls.unwrap_or_default();
            return Ok(format!("start: calls {CALL_END}\ncalls: {calls}\n"));
        }
        let mut alts = Vec::new();
        let mut rules = String::new();
        if let Some(c) = calls {
            alts.push(format!("{CALL_START} calls {CALL_END}"));
            rules.push_str(&format!("calls: {c}\n"));
        }
        if let Some(a) = &self.answer {
            alts.push("answer".to_string());
            rules.push_str(&format!("answer: {}\n", json_rule(a)?));
        }
        Ok(format!(
            "start: body | WS body\nWS: /[ \\n]{{1,3}}/\nbody: {}\n{rules}",
            alts.join(" | ")
        ))
    }
}

/// `%json {...}` for `schema`, prepared as every schema is (see [`schema::prepare`]), on one
/// line with Python's `json.dumps` separators (`", "`, `": "`, the layout of the tool list the
/// chat template renders) unless the schema sets its own `x-guidance`: calls and answers are
/// read by programs, and no token goes to layout.
fn json_rule(schema: &Value) -> Result<String> {
    let mut schema = schema.clone();
    if let Value::Object(o) = &mut schema {
        o.entry("x-guidance").or_insert_with(
            || json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    let prepared = schema::prepare(&schema)?;
    Ok(format!("%json {}", prepared.schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup() -> ToolDef {
        ToolDef {
            name: "lookup".into(),
            parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        }
    }

    #[test]
    fn the_grammar_offers_calls_and_the_answer() {
        let mut spec = ToolCallSpec::new(vec![lookup()]);
        let g = spec.to_lark().unwrap();
        assert!(g.contains("body: <|tool_call_start|> calls <|tool_call_end|>\n"));
        assert!(g.contains("calls: %json {") && !g.contains("answer:"));
        spec.answer = Some(json!({"type": "object"}));
        let g = spec.to_lark().unwrap();
        assert!(g.contains("body: <|tool_call_start|> calls <|tool_call_end|> | answer\n"));
        assert!(g.contains("answer: %json {"));
        spec.opened = true;
        assert!(spec
            .to_lark()
            .unwrap()
            .starts_with("start: calls <|tool_call_end|>\ncalls: %json {"));
        let answer_only = ToolCallSpec {
            tools: vec![],
            answer: Some(json!({"type": "object"})),
            ..ToolCallSpec::new(vec![])
        };
        assert!(answer_only.to_lark().unwrap().contains("body: answer\n"));
    }

    #[test]
    fn bad_specs_are_refused_by_name() {
        let e = ToolCallSpec::new(vec![]).to_lark().unwrap_err().to_string();
        assert!(e.contains("no tools"), "{e}");
        let e = ToolCallSpec::new(vec![lookup(), lookup()])
            .to_lark()
            .unwrap_err()
            .to_string();
        assert!(e.contains("`lookup` is listed twice"), "{e}");
        let e = ToolCallSpec::tools_from_json(&json!([{"parameters": {}}]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tool 0") && e.contains("name"), "{e}");
    }

    #[test]
    fn tool_lists_read_both_shapes() {
        let v = json!([
            {"name": "a", "parameters": {"type": "object"}},
            {"type": "function", "function": {"name": "b", "description": "B."}}
        ]);
        let t = ToolCallSpec::tools_from_json(&v).unwrap();
        assert_eq!(t[0].name, "a");
        assert_eq!(t[1].name, "b");
        assert_eq!(t[1].parameters["type"], "object");
    }
}
