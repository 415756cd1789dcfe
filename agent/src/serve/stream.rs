//! Streamed replies: the deltas between successive [`partial`](super::reply::partial)
//! replies, and their server-sent-event chunks.
//!
//! A delta is sent only for what can no longer change, so the reasoning deltas add up to the
//! finished reply's `reasoning_content`, the content deltas to its `content`, and each call is
//! sent whole, once, with the same id, name and argument string as the non-streamed reply.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::reply::Reply;

/// A `200 text/event-stream` response (no caching) over `body`.
pub(super) fn sse_response(body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// One piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// More thinking.
    Reasoning(String),
    /// More answer text.
    Content(String),
    /// A whole call.
    Call {
        /// Its position among the turn's calls.
        index: usize,
        /// The tool.
        name: String,
        /// The arguments, as the JSON object string of the non-streamed reply.
        arguments: String,
    },
}

/// What has been sent so far.
#[derive(Debug, Default)]
pub struct Streamer {
    reasoning: String,
    content: String,
    calls: usize,
    diverged: bool,
}

/// The part of `now` past `sent`, which `now` must extend.
fn grow(sent: &mut String, now: &str, diverged: &mut bool) -> Option<String> {
    if now.len() <= sent.len() {
        return None;
    }
    if !now.starts_with(sent.as_str()) {
        *diverged = true;
        tracing::warn!(sent = %sent, now, "a streamed reply diverged from what was sent");
        return None;
    }
    let more = now[sent.len()..].to_string();
    sent.push_str(&more);
    Some(more)
}

impl Streamer {
    /// The deltas that bring what was sent up to `r` (a partial reply, or the finished one).
    pub fn advance(&mut self, r: &Reply) -> Vec<Delta> {
        let mut out = Vec::new();
        if let Some(t) = grow(
            &mut self.reasoning,
            r.reasoning.as_deref().unwrap_or_default(),
            &mut self.diverged,
        ) {
            out.push(Delta::Reasoning(t));
        }
        if let Some(t) = grow(&mut self.content, &r.content, &mut self.diverged) {
            out.push(Delta::Content(t));
        }
        for (index, (name, args)) in r.calls.iter().enumerate().skip(self.calls) {
            out.push(Delta::Call {
                index,
                name: name.clone(),
                arguments: args.to_string(),
            });
        }
        self.calls = self.calls.max(r.calls.len());
        out
    }

    /// Whether a reply ever failed to extend what was sent (a bug: the stream then differs
    /// from the non-streamed reply).
    pub fn diverged(&self) -> bool {
        self.diverged
    }
}

/// A delta as a chunk's `delta` object; `id` names the calls as the non-streamed reply does.
pub fn delta_json(d: &Delta, id: &str) -> Value {
    match d {
        Delta::Reasoning(t) => json!({"reasoning_content": t}),
        Delta::Content(t) => json!({"content": t}),
        Delta::Call {
            index,
            name,
            arguments,
        } => json!({"tool_calls": [{"index": index, "id": format!("call_{id}_{index}"),
            "type": "function", "function": {"name": name, "arguments": arguments}}]}),
    }
}

/// A `chat.completion.chunk`.
pub fn chunk(id: &str, model: &str, created: u64, delta: Value, finish: Option<&str>) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

/// Reasoning, content and calls that `deltas` add up to (as a client would assemble them).
pub fn sum(deltas: &[Delta]) -> (String, String, Vec<(String, Value)>) {
    let (mut r, mut c, mut calls) = (String::new(), String::new(), Vec::new());
    for d in deltas {
        match d {
            Delta::Reasoning(t) => r.push_str(t),
            Delta::Content(t) => c.push_str(t),
            Delta::Call {
                name, arguments, ..
            } => calls.push((
                name.clone(),
                serde_json::from_str(arguments).unwrap_or(Value::Null),
            )),
        }
    }
    (r, c, calls)
}
