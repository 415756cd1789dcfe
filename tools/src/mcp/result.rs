//! An MCP `CallToolResult` as the value the model reads.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::{Result, ToolError};

/// `isError` becomes a failure with the server's text; otherwise the structured content
/// when there is some, else the text content (parsed as JSON when it is JSON).
pub(crate) fn to_value(tool: &str, res: CallToolResult) -> Result<Value> {
    let text = res
        .content
        .iter()
        .map(block_text)
        .collect::<Vec<_>>()
        .join("\n");
    if res.is_error.unwrap_or(false) {
        let why = if text.is_empty() {
            "the server reported an error".to_string()
        } else {
            text
        };
        return Err(ToolError::failed(tool, why));
    }
    if let Some(v) = res.structured_content {
        return Ok(v);
    }
    Ok(serde_json::from_str::<Value>(&text)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
        .unwrap_or(Value::String(text)))
}

fn block_text(c: &ContentBlock) -> String {
    match c.as_text() {
        Some(t) => t.text.clone(),
        None => {
            let kind = serde_json::to_value(c)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "non-text".into());
            format!("[{kind} content omitted]")
        }
    }
}
