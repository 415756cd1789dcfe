//! The constraint for a tool call: a JSON Schema that admits exactly a list of calls of the
//! offered tools, each with arguments valid under that tool's parameter schema. Decoded under
//! it (the engine's JSON-Schema constraint), a call is valid by construction, in the JSON
//! form [`super::parse_calls`] reads.

use lfm_tools::ToolSpec;
use serde_json::{json, Value};

/// Most calls in one list.
pub const MAX_CALLS: usize = 8;

/// `[{"name": "<tool>", "arguments": {...}}, ...]`, one to [`MAX_CALLS`] calls, each one of
/// `specs`.
pub fn call_list_schema(specs: &[&ToolSpec]) -> Value {
    let one: Vec<Value> = specs
        .iter()
        .map(|s| {
            json!({
                "type": "object",
                "properties": {
                    "name": {"const": s.name.as_str()},
                    "arguments": s.parameters,
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
        "maxItems": MAX_CALLS
    })
}
