//! The constraint for a tool call, from the registry's specs: the engine's "one of these
//! tool calls" ([`ToolCallSpec`]). Decoded under it, a call is valid by construction, in the
//! JSON form [`super::parse_calls`] reads.

use lfm_engine::constraint::{ToolCallSpec, ToolDef, DEFAULT_MAX_CALLS};
use lfm_tools::ToolSpec;
use serde_json::Value;

/// Most calls in one list.
pub const MAX_CALLS: usize = DEFAULT_MAX_CALLS;

/// The engine's spec for a turn: a call of one of `specs`, or the final answer under
/// `answer` if there is one; `opened` when `<|tool_call_start|>` is already out.
pub fn turn_spec(specs: &[&ToolSpec], answer: Option<&Value>, opened: bool) -> ToolCallSpec {
    ToolCallSpec {
        answer: answer.cloned(),
        opened,
        ..ToolCallSpec::new(
            specs
                .iter()
                .map(|s| ToolDef {
                    name: s.name.as_str().to_string(),
                    parameters: s.parameters.clone(),
                })
                .collect(),
        )
    }
}

/// `[{"name": "<tool>", "arguments": {...}}, ...]`, one to [`MAX_CALLS`] calls, each one of
/// `specs`.
pub fn call_list_schema(specs: &[&ToolSpec]) -> Value {
    turn_spec(specs, None, false).call_list_schema()
}
