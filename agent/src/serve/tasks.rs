//! `POST /v1/agent/tasks`: runs an agent task (triage, ask, extract) and answers with its
//! result, or with `stream: true` streams its steps as they are taken (server-sent events:
//! `event: step` per model turn, tool call, redirect, rejected answer or compaction, then
//! `event: result`, or `event: error`).
//!
//! The request: `{"task": "triage", "input": {ticket fields}}`, `{"task": "ask", "input":
//! "question", "k": 8}`, `{"task": "extract", "input": "log text", "schema": {event schema}}`;
//! `schema` replaces the task's answer schema for triage and ask. The body is the
//! [`TaskRunner`]'s; the server only queues, streams and times out. At most `queue` tasks run
//! or wait at once (then 429); a task whose client went away, or that passed the timeout, is
//! stopped before its next model turn.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::chat::read_body;
use super::openai::ApiError;
use super::stream::sse_response;
use super::{error, AppState, CancelOnDrop};
use crate::runner::{RunObserver, Step};

/// The body of `POST /v1/agent/tasks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// `triage`, `ask` or `extract`.
    pub task: String,
    /// The ticket (an object), the question or the log text.
    pub input: Value,
    /// triage, ask: replaces the answer schema; extract: the schema of one event (required).
    #[serde(default)]
    pub schema: Option<Value>,
    /// ask: passages put in the prompt.
    #[serde(default)]
    pub k: Option<usize>,
    /// extract: the log's name in traces.
    #[serde(default)]
    pub name: Option<String>,
    /// Stream the steps.
    #[serde(default)]
    pub stream: bool,
}

/// Runs agent tasks for the server; the CLI implements it over its agent.
pub trait TaskRunner: Send + Sync + 'static {
    /// Runs `req` on the calling thread (blocking), telling `observer` of each step; returns
    /// the result body. A bad request is a 400 naming the field.
    fn run(&self, req: &TaskRequest, observer: &dyn RunObserver) -> Result<Value, ApiError>;
}

enum Event {
    Step(Value),
    Done(Result<Value, ApiError>),
}

/// Streams steps to the handler and reports the client's departure to the run.
struct Forward {
    tx: mpsc::UnboundedSender<Event>,
    cancel: Arc<AtomicBool>,
}

impl RunObserver for Forward {
    fn step(&self, step: &Step) {
        let v = serde_json::to_value(step).unwrap_or(Value::Null);
        let _ = self.tx.send(Event::Step(v));
    }
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    fn cancel_flag(&self) -> Option<&AtomicBool> {
        Some(&self.cancel)
    }
}

fn api(status: u16, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        param: None,
    }
}

pub(super) async fn task(State(s): State<AppState>, req: Request) -> Response {
    match start(&s, req).await {
        Ok(r) => r,
        Err(e) => error(&s.metrics, e),
    }
}

async fn start(s: &AppState, req: Request) -> Result<Response, ApiError> {
    let body = read_body(s, req).await?;
    let Some(runner) = s.tasks.clone() else {
        return Err(api(
            404,
            "this server runs no agent tasks: start it with `lfm-agent serve --tasks`",
        ));
    };
    let treq: TaskRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad("body", e.to_string()))?;
    if !matches!(treq.task.as_str(), "triage" | "ask" | "extract") {
        return Err(ApiError::bad(
            "task",
            format!("unknown task `{}`: triage, ask or extract", treq.task),
        ));
    }
    let permit = s
        .task_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| api(429, "every agent task slot is busy; retry later"))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let guard = CancelOnDrop(cancel.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let stream = treq.stream;
    let forward = Forward {
        tx: tx.clone(),
        cancel: cancel.clone(),
    };
    std::thread::spawn(move || {
        let _permit = permit;
        let out = runner.run(&treq, &forward);
        let _ = tx.send(Event::Done(out));
        let _ = done_tx.send(());
    });
    let deadline = tokio::time::Instant::now() + s.opts.timeout;
    // Past the deadline the run is told to stop: an engine backend ends the turn at its next
    // token, and the run ends there.
    let timer_cancel = cancel.clone();
    tokio::spawn(async move {
        if tokio::time::timeout_at(deadline, done_rx).await.is_err() {
            timer_cancel.store(true, Ordering::Relaxed);
        }
    });
    if !stream {
        let _guard = guard;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Event::Step(_))) => continue,
                Ok(Some(Event::Done(Ok(v)))) => {
                    s.metrics.count(200);
                    return Ok(Json(v).into_response());
                }
                Ok(Some(Event::Done(Err(e)))) => return Err(e),
                Ok(None) => return Err(api(500, "the task runner stopped without an answer")),
                Err(_) => {
                    return Err(api(
                        504,
                        format!("no result within {} s", s.opts.timeout.as_secs()),
                    ))
                }
            }
        }
    }
    s.metrics.count(200);
    let body = futures_util::stream::unfold(
        (rx, Some(guard), false),
        |(mut rx, guard, finished)| async move {
            if finished {
                return None;
            }
            let (text, finished) = match rx.recv().await {
                Some(Event::Step(v)) => (format!("event: step\ndata: {v}\n\n"), false),
                Some(Event::Done(Ok(v))) => (format!("event: result\ndata: {v}\n\n"), true),
                Some(Event::Done(Err(e))) => {
                    (format!("event: error\ndata: {}\n\n", e.body()), true)
                }
                None => (
                    format!(
                        "event: error\ndata: {}\n\n",
                        json!({"error": {"message": "the task runner stopped"}})
                    ),
                    true,
                ),
            };
            // The guard lives as long as the stream: dropping it (the client left) stops
            // the run at its next turn.
            Some((
                Ok::<_, Infallible>(Bytes::from(text)),
                (rx, guard, finished),
            ))
        },
    );
    Ok(sse_response(Body::from_stream(body)))
}
