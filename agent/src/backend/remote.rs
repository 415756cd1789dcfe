//! [`RemoteBackend`]: any OpenAI-compatible server (`POST {url}/chat/completions`: vLLM,
//! llama.cpp's server, another `lfm-agent serve`) as the loop's backend, so a pipeline can use
//! a model served elsewhere, or several replicas behind one URL.
//!
//! Each turn sends the conversation as OpenAI messages: assistant turns that called tools
//! carry `tool_calls` (with ids), and each `tool` message answers the next id in order;
//! thinking is not sent back. The tools go as `tools`. What the server is held to:
//! - a turn that must call a tool sends `tool_choice: "required"`;
//! - a turn with an answer schema and no tools sends `response_format: json_schema` (strict);
//! - a turn with tools and an answer schema sends the tools only (`tool_choice: "auto"`): a
//!   request cannot ask for "a call, or an answer under this schema" the way the embedded
//!   engine's grammar does, so the loop validates the answer and sends errors back.
//!
//! The reply becomes the text the loop parses: `<think>reasoning</think>` when the server
//! returns `reasoning_content`, then the calls as a JSON call list between the LFM2 call
//! tokens, or the content.

use std::time::Duration;

use lfm_engine::text::{Message, Role};
use serde_json::{json, Value};

use crate::runner::{Backend, BackendError, Turn, TurnRequest};
use crate::toolcall::{openai_calls_text, parse_message};

/// Where the server is and how to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteOptions {
    /// The API base, e.g. `http://127.0.0.1:8080/v1` (`/chat/completions` is appended).
    pub url: String,
    /// The model name sent with each request; `None` asks `GET {url}/models` for the first.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus threshold.
    pub top_p: Option<f32>,
    /// Seed.
    pub seed: Option<u64>,
    /// Time allowed for one request.
    pub timeout: Duration,
}

/// An OpenAI-compatible server.
pub struct RemoteBackend {
    opts: RemoteOptions,
    model: String,
    synthetic: bool,
    http: ureq::Agent,
}

impl RemoteBackend {
    /// Connects: resolves the model name (asking the server when none is given).
    pub fn new(opts: RemoteOptions) -> Result<RemoteBackend, String> {
        let url = opts.url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("`{}` is not an http:// or https:// URL", opts.url));
        }
        let http: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut b = RemoteBackend {
            opts: RemoteOptions { url, ..opts },
            model: String::new(),
            synthetic: false,
            http,
        };
        // The listing names the model when none is given, and says (lfm-agent serve) whether
        // it is a synthetic one; a server without it is fine when the model is named.
        match (b.list_models(), &b.opts.model) {
            (Ok(list), named) => {
                let pick = match named {
                    Some(m) => list.iter().find(|e| e["id"] == m.as_str()),
                    None => list.first(),
                };
                b.synthetic = pick.is_some_and(|e| e["meta"]["synthetic"] == true);
                b.model = match (named, pick) {
                    (Some(m), _) => m.clone(),
                    (None, Some(e)) => e["id"].as_str().unwrap_or_default().to_string(),
                    (None, None) => String::new(),
                };
                if b.model.is_empty() {
                    return Err(format!(
                        "GET {}/models: no model listed; name one",
                        b.opts.url
                    ));
                }
            }
            (Err(_), Some(m)) => b.model = m.clone(),
            (Err(e), None) => return Err(e),
        }
        Ok(b)
    }

    /// The model name requests carry.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether the server said its model is a synthetic random-weight one.
    pub fn synthetic(&self) -> bool {
        self.synthetic
    }

    fn list_models(&self) -> Result<Vec<Value>, String> {
        let url = format!("{}/models", self.opts.url);
        let mut req = self.http.get(&url);
        if let Some(k) = &self.opts.api_key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = req.call().map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}: {}", cut(&text)));
        }
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
        v["data"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("GET {url}: no `data` list"))
    }

    /// The request body for `req`.
    pub fn body(&self, req: &TurnRequest<'_>) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": wire_messages(req.messages),
            "max_tokens": req.max_tokens,
        });
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name.as_str(), "description": t.description, "parameters": t.parameters}})
                })
                .collect();
            body["tools"] = tools.into();
            body["tool_choice"] = if req.require_call { "required" } else { "auto" }.into();
        } else if let Some(schema) = req.answer_schema {
            body["response_format"] = json!({"type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": true}});
        }
        for (key, v) in [
            ("temperature", self.opts.temperature.map(Value::from)),
            ("top_p", self.opts.top_p.map(Value::from)),
            ("seed", self.opts.seed.map(Value::from)),
        ] {
            if let Some(v) = v {
                body[key] = v;
            }
        }
        body
    }
}

impl Backend for RemoteBackend {
    fn complete(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        let url = format!("{}/chat/completions", self.opts.url);
        let body = self.body(req).to_string();
        let mut r = self
            .http
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(k) = &self.opts.api_key {
            r = r.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = r
            .send(body.as_bytes())
            .map_err(|e| BackendError::Failed(format!("POST {url}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| BackendError::Failed(format!("POST {url}: {e}")))?;
        if status != 200 {
            // Servers say "context length" in their 400s when the prompt does not fit.
            let lower = text.to_lowercase();
            if status == 400
                && (lower.contains("context")
                    && (lower.contains("length") || lower.contains("exceed")))
            {
                return Err(BackendError::ContextFull {
                    needed: 0,
                    limit: 0,
                });
            }
            return Err(BackendError::Failed(format!(
                "POST {url}: HTTP {status}: {}",
                cut(&text)
            )));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            BackendError::Failed(format!("POST {url}: not JSON: {e}: {}", cut(&text)))
        })?;
        turn_from_reply(&v).map_err(|e| BackendError::Failed(format!("POST {url}: {e}")))
    }
}

/// The loop's messages as OpenAI messages.
pub fn wire_messages(messages: &[Message]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut pending: std::collections::VecDeque<String> = Default::default();
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System => out.push(json!({"role": "system", "content": m.content})),
            Role::User => out.push(json!({"role": "user", "content": m.content})),
            Role::Assistant => {
                let parsed = parse_message(&m.content, &|_| true);
                pending.clear();
                if parsed.calls.is_empty() {
                    out.push(json!({"role": "assistant", "content": parsed.content}));
                    continue;
                }
                let calls: Vec<Value> = parsed
                    .calls
                    .iter()
                    .enumerate()
                    .map(|(j, c)| {
                        let id = format!("call_{i}_{j}");
                        pending.push_back(id.clone());
                        json!({"id": id, "type": "function", "function": {
                            "name": c.name, "arguments": Value::Object(c.arguments.clone()).to_string()}})
                    })
                    .collect();
                let content = if parsed.content.is_empty() {
                    Value::Null
                } else {
                    parsed.content.into()
                };
                out.push(json!({"role": "assistant", "content": content, "tool_calls": calls}));
            }
            Role::Tool => match pending.pop_front() {
                Some(id) => {
                    out.push(json!({"role": "tool", "tool_call_id": id, "content": m.content}))
                }
                // A reply to a call that did not parse: no id to answer, so it is said as the user.
                None => out.push(
                    json!({"role": "user", "content": format!("Tool result: {}", m.content)}),
                ),
            },
        }
    }
    out
}

/// A chat completion reply as the text the loop parses.
pub fn turn_from_reply(v: &Value) -> Result<Turn, String> {
    let msg = v["choices"][0]
        .get("message")
        .ok_or_else(|| "the reply has no choices[0].message".to_string())?;
    let mut text = String::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        text.push_str(&format!("<think>{r}</think>"));
    }
    let calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
    if calls.is_empty() {
        text.push_str(msg["content"].as_str().unwrap_or_default());
    } else {
        let calls =
            openai_calls_text(&calls).map_err(|(i, why)| format!("tool call {i}: {why}"))?;
        text.push_str(&calls);
    }
    let usage = &v["usage"];
    let n = |k: &str| usage[k].as_u64().unwrap_or(0) as usize;
    Ok(Turn {
        text,
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
    })
}

fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_results_keep_their_ids_and_thinking_is_not_sent() {
        let m = vec![
            Message::new(Role::System, "sys"),
            Message::new(Role::User, "q"),
            Message::new(
                Role::Assistant,
                "<think>plan</think><|tool_call_start|>[search_docs(query=\"vpn\"), current_time()]<|tool_call_end|>",
            ),
            Message::new(Role::Tool, "r1"),
            Message::new(Role::Tool, "r2"),
            Message::new(Role::Tool, "stray"),
            Message::new(Role::Assistant, "<think>x</think>done"),
        ];
        let w = wire_messages(&m);
        assert_eq!(w[2]["content"], Value::Null);
        assert_eq!(w[2]["tool_calls"][0]["id"], "call_2_0");
        assert_eq!(
            w[2]["tool_calls"][0]["function"]["arguments"],
            "{\"query\":\"vpn\"}"
        );
        assert_eq!(
            w[3],
            json!({"role": "tool", "tool_call_id": "call_2_0", "content": "r1"})
        );
        assert_eq!(w[4]["tool_call_id"], "call_2_1");
        assert_eq!(
            w[5],
            json!({"role": "user", "content": "Tool result: stray"})
        );
        assert_eq!(w[6], json!({"role": "assistant", "content": "done"}));
    }

    #[test]
    fn replies_become_the_text_the_loop_parses() {
        let t = turn_from_reply(&json!({"choices": [{"message": {"content": null, "reasoning_content": "hm",
            "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3}}))
        .unwrap();
        assert_eq!(t.text, "<think>hm</think><|tool_call_start|>[{\"name\":\"f\",\"arguments\":{\"x\":1}}]<|tool_call_end|>");
        assert_eq!((t.prompt_tokens, t.completion_tokens), (7, 3));
        let p = parse_message(&t.text, &|n| n == "f");
        assert_eq!(p.calls.len(), 1);
        let t =
            turn_from_reply(&json!({"choices": [{"message": {"content": "{\"a\": 1}"}}]})).unwrap();
        assert_eq!((t.text.as_str(), t.prompt_tokens), ("{\"a\": 1}", 0));
        assert!(turn_from_reply(&json!({"error": "x"})).is_err());
        let bad = json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}}]});
        assert!(turn_from_reply(&bad).unwrap_err().contains("not JSON"));
    }
}
