//! The OpenAI chat-completions wire format: a request checked into a [`ChatJob`] (every
//! problem is a 400 naming the parameter), and a finished turn as a response.

use lfm_engine::text::{Message, Role};
use lfm_tools::ToolSpec;
use serde_json::{json, Value};

use super::reply::Reply;
use crate::runner::Turn;
use crate::toolcall::openai_calls_text;

/// A request error: HTTP status, message, and the parameter at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What is wrong.
    pub message: String,
    /// The request parameter, when one is at fault.
    pub param: Option<String>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn bad(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
            param: Some(param.to_string()),
        }
    }

    /// The OpenAI error body.
    pub fn body(&self) -> Value {
        let kind = match self.status {
            400 | 413 => "invalid_request_error",
            401 => "authentication_error",
            429 => "rate_limit_error",
            _ => "server_error",
        };
        json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": null}})
    }
}

/// A checked chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatJob {
    /// The conversation, in the loop's form (calls as LFM2 call text).
    pub messages: Vec<Message>,
    /// Tools on offer (after `tool_choice`).
    pub tools: Vec<ToolSpec>,
    /// `tool_choice` required or named.
    pub require_call: bool,
    /// `response_format`: the schema the answer is decoded under.
    pub answer_schema: Option<Value>,
    /// `max_tokens` / `max_completion_tokens`.
    pub max_tokens: Option<usize>,
    /// Sampling overrides.
    pub temperature: Option<f32>,
    /// Nucleus threshold.
    pub top_p: Option<f32>,
    /// Seed.
    pub seed: Option<u64>,
    /// Stop strings (the content is cut at the first).
    pub stop: Vec<String>,
    /// `stream`.
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the token counts.
    pub include_usage: bool,
    /// A `/v1/completions` request: the prompt, completed without the chat template (then
    /// `messages` is empty).
    pub raw_prompt: Option<String>,
}

fn text_of(content: &Value, param: &str) -> Result<String, ApiError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match (p["type"].as_str(), p["text"].as_str()) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => {
                        return Err(ApiError::bad(
                            param,
                            "only text content parts are supported",
                        ))
                    }
                }
            }
            Ok(out)
        }
        _ => Err(ApiError::bad(
            param,
            "content must be a string or a list of text parts",
        )),
    }
}

fn messages(v: &Value) -> Result<Vec<Message>, ApiError> {
    let list = v
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ApiError::bad("messages", "must be a non-empty list"))?;
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let content = text_of(&m["content"], &format!("{param}.content"))?;
        let role = match m["role"].as_str() {
            Some("system") | Some("developer") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("tool") => Role::Tool,
            other => {
                return Err(ApiError::bad(
                    &format!("{param}.role"),
                    format!("unknown role {other:?}"),
                ))
            }
        };
        let mut text = content;
        if let Some(calls) = m["tool_calls"].as_array().filter(|c| !c.is_empty()) {
            let calls = openai_calls_text(calls)
                .map_err(|(j, why)| ApiError::bad(&format!("{param}.tool_calls[{j}]"), why))?;
            text.push_str(&calls);
        }
        out.push(Message::new(role, text));
    }
    Ok(out)
}

fn tools(v: &Value) -> Result<Vec<ToolSpec>, ApiError> {
    let Some(list) = v.as_array() else {
        return match v {
            Value::Null => Ok(Vec::new()),
            _ => Err(ApiError::bad("tools", "must be a list")),
        };
    };
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let p = format!("tools[{i}]");
        if t["type"] != "function" {
            return Err(ApiError::bad(&p, "only type \"function\" is supported"));
        }
        let f = &t["function"];
        let name = f["name"]
            .as_str()
            .ok_or_else(|| ApiError::bad(&p, "function.name is missing"))?;
        let params = match &f["parameters"] {
            Value::Null => json!({"type": "object", "properties": {}}),
            v => v.clone(),
        };
        let spec = ToolSpec::new(name, f["description"].as_str().unwrap_or_default(), params)
            .map_err(|e| ApiError::bad(&p, e.to_string()))?;
        out.push(spec);
    }
    Ok(out)
}

/// Checks a chat-completions body.
pub fn parse_chat(body: &Value) -> Result<ChatJob, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad("body", "must be a JSON object"));
    }
    let mut tools = tools(&body["tools"])?;
    let mut require_call = false;
    match &body["tool_choice"] {
        Value::Null => {}
        Value::String(s) if s == "auto" => {}
        Value::String(s) if s == "none" => tools.clear(),
        Value::String(s) if s == "required" => require_call = true,
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("function")
                .and_then(|f| f["name"].as_str())
                .ok_or_else(|| ApiError::bad("tool_choice", "function.name is missing"))?;
            tools.retain(|t| t.name.as_str() == name);
            if tools.is_empty() {
                return Err(ApiError::bad(
                    "tool_choice",
                    format!("`{name}` is not in tools"),
                ));
            }
            require_call = true;
        }
        other => {
            return Err(ApiError::bad(
                "tool_choice",
                format!("{other} is not auto, none, required or a named function"),
            ))
        }
    }
    if require_call && tools.is_empty() {
        return Err(ApiError::bad(
            "tool_choice",
            "required, but no tools were given",
        ));
    }
    let answer_schema = match &body["response_format"] {
        Value::Null => None,
        rf => match rf["type"].as_str() {
            Some("text") => None,
            Some("json_object") => Some(json!({"type": "object"})),
            Some("json_schema") => {
                Some(rf["json_schema"].get("schema").cloned().ok_or_else(|| {
                    ApiError::bad("response_format", "json_schema.schema is missing")
                })?)
            }
            _ => {
                return Err(ApiError::bad(
                    "response_format",
                    "type must be text, json_object or json_schema",
                ))
            }
        },
    };
    let num = |k: &str| -> Result<Option<f64>, ApiError> {
        match &body[k] {
            Value::Null => Ok(None),
            v => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ApiError::bad(k, "must be a number")),
        }
    };
    let max_tokens = match num("max_completion_tokens")?.or(num("max_tokens")?) {
        // Bounded so that prompt + max_tokens cannot overflow; past any context anyway.
        Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX) => Some(n as usize),
        Some(_) => return Err(ApiError::bad("max_tokens", "must be a positive integer")),
        None => None,
    };
    let temperature = num("temperature")?.map(|t| t as f32);
    if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ApiError::bad("temperature", "must be between 0 and 2"));
    }
    let top_p = num("top_p")?.map(|t| t as f32);
    if top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return Err(ApiError::bad("top_p", "must be in (0, 1]"));
    }
    let seed = match &body["seed"] {
        Value::Null => None,
        v => Some(
            v.as_u64()
                .ok_or_else(|| ApiError::bad("seed", "must be a non-negative integer"))?,
        ),
    };
    let mut stop = match &body["stop"] {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad("stop", "must be strings"))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::bad(
                "stop",
                "must be a string or a list of strings",
            ))
        }
    };
    // An empty stop string would end every reply before it began.
    stop.retain(|s| !s.is_empty());
    if let Some(n) = body["n"].as_u64().filter(|&n| n != 1) {
        return Err(ApiError::bad(
            "n",
            format!("{n} choices: only n = 1 is supported"),
        ));
    }
    Ok(ChatJob {
        messages: messages(&body["messages"])?,
        tools,
        require_call,
        answer_schema,
        max_tokens,
        temperature,
        top_p,
        seed,
        stop,
        stream: body["stream"].as_bool().unwrap_or(false),
        include_usage: body["stream_options"]["include_usage"]
            .as_bool()
            .unwrap_or(false),
        raw_prompt: None,
    })
}

/// Checks a `/v1/completions` body: `prompt` (a string, or a list of one), and the sampling,
/// `stop`, `max_tokens` and `stream` parameters of chat requests.
pub fn parse_completion(body: &Value) -> Result<ChatJob, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad("body", "must be a JSON object"));
    }
    let prompt = match &body["prompt"] {
        Value::String(p) => p.clone(),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        Value::Array(a) if a.len() > 1 => {
            return Err(ApiError::bad(
                "prompt",
                format!("{} prompts: send one per request", a.len()),
            ))
        }
        _ => return Err(ApiError::bad("prompt", "must be a string")),
    };
    if prompt.is_empty() {
        return Err(ApiError::bad("prompt", "is empty"));
    }
    for (k, unsupported) in [
        ("echo", body["echo"].as_bool() == Some(true)),
        ("suffix", !body["suffix"].is_null()),
        ("logprobs", !body["logprobs"].is_null()),
        ("best_of", body["best_of"].as_u64().is_some_and(|n| n > 1)),
    ] {
        if unsupported {
            return Err(ApiError::bad(k, "is not supported"));
        }
    }
    for k in ["messages", "tools", "tool_choice", "response_format"] {
        if !body[k].is_null() {
            return Err(ApiError::bad(k, "belongs to /v1/chat/completions"));
        }
    }
    let mut chat_body = body.clone();
    chat_body["messages"] = json!([{"role": "user", "content": ""}]);
    let mut job = parse_chat(&chat_body)?;
    job.messages.clear();
    job.raw_prompt = Some(prompt);
    Ok(job)
}

/// The `/v1/completions` response body.
pub fn completion_response(
    id: &str,
    model: &str,
    created: u64,
    text: &str,
    finish: &str,
    turn: &Turn,
) -> Value {
    json!({
        "id": id, "object": "text_completion", "created": created, "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}],
        "usage": usage(turn),
    })
}

/// The chat-completion response body.
pub fn response(id: &str, model: &str, created: u64, r: &Reply, turn: &Turn) -> Value {
    let mut message = json!({"role": "assistant", "content": if r.content.is_empty() && !r.calls.is_empty() { Value::Null } else { r.content.clone().into() }});
    if let Some(t) = &r.reasoning {
        message["reasoning_content"] = t.clone().into();
    }
    if !r.calls.is_empty() {
        message["tool_calls"] = r
            .calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| {
                json!({"id": format!("call_{id}_{i}"), "type": "function",
                "function": {"name": name, "arguments": args.to_string()}})
            })
            .collect::<Vec<_>>()
            .into();
    }
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": r.finish_reason}],
        "usage": usage(turn),
    })
}

/// A turn's token counts (`prompt_tokens` are those prefilled: a prefix-cache hit is not
/// counted again).
pub fn usage(turn: &Turn) -> Value {
    json!({"prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens,
        "total_tokens": turn.prompt_tokens + turn.completion_tokens})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::reply::reply;

    fn tool(name: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}})
    }

    #[test]
    fn requests_are_checked_parameter_by_parameter() {
        let ok = json!({"messages": [{"role": "user", "content": "hi"}], "tools": [tool("a"), tool("b")],
            "tool_choice": {"type": "function", "function": {"name": "b"}}, "max_tokens": 9, "seed": 3, "stop": "x"});
        let j = parse_chat(&ok).unwrap();
        assert_eq!(j.tools.len(), 1);
        assert!(j.require_call);
        assert_eq!(
            (j.max_tokens, j.seed, j.stop.clone()),
            (Some(9), Some(3), vec!["x".to_string()])
        );
        let empty_stop = parse_chat(
            &json!({"messages": [{"role": "user", "content": "hi"}], "stop": ["", "x"]}),
        )
        .unwrap();
        assert_eq!(empty_stop.stop, vec!["x".to_string()]);
        let none = parse_chat(&json!({"messages": [{"role": "user", "content": "hi"}], "tools": [tool("a")], "tool_choice": "none"})).unwrap();
        assert!(none.tools.is_empty() && !none.require_call);
        for (body, param) in [
            (json!({"messages": []}), "messages"),
            (
                json!({"messages": [{"role": "robot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
                "tool_choice",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "temperature": 7}),
                "temperature",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e20}),
                "max_tokens",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}),
                "response_format",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
                "n",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "a", "arguments": "{"}}]}]}),
                "messages[0].tool_calls[0]",
            ),
        ] {
            let e = parse_chat(&body).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {e:?}");
            assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn assistant_calls_become_call_text_and_replies_split_back() {
        let j = parse_chat(&json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "a", "arguments": "{\"q\": \"v\"}"}}]},
            {"role": "tool", "tool_call_id": "1", "content": "r"}], "tools": [tool("a")]})).unwrap();
        assert_eq!(
            j.messages[1].content,
            "<|tool_call_start|>[{\"name\":\"a\",\"arguments\":{\"q\":\"v\"}}]<|tool_call_end|>"
        );
        let turn = Turn { text: "<think>plan</think><|tool_call_start|>[{\"name\": \"a\", \"arguments\": {\"q\": \"w\"}}]<|tool_call_end|>".into(), prompt_tokens: 4, completion_tokens: 6 };
        let r = reply(&turn, &j, 100, false);
        assert_eq!(
            (r.reasoning.as_deref(), r.finish_reason),
            (Some("plan"), "tool_calls")
        );
        assert_eq!(r.calls, vec![("a".to_string(), json!({"q": "w"}))]);
        let body = response("x", "m", 1, &r, &turn);
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"q\":\"w\"}"
        );
        assert_eq!(body["usage"]["total_tokens"], 10);
        let mut j2 = j.clone();
        j2.stop = vec!["END".into()];
        let t2 = Turn {
            text: "hello END more".into(),
            prompt_tokens: 1,
            completion_tokens: 100,
        };
        let r2 = reply(&t2, &j2, 100, false);
        assert_eq!((r2.content.as_str(), r2.finish_reason), ("hello", "stop"));
        let t3 = Turn {
            text: "long".into(),
            prompt_tokens: 1,
            completion_tokens: 100,
        };
        assert_eq!(reply(&t3, &j, 100, false).finish_reason, "length");
    }
}
