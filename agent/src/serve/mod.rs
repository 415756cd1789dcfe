//! `lfm-agent serve`: the embedded engine behind an OpenAI-compatible HTTP API (`axum`).
//!
//! - `POST /v1/chat/completions`: messages (tool role and assistant `tool_calls` included),
//!   `tools`, `tool_choice` (auto, none, required, a named function), `response_format`
//!   (json_object, json_schema: enforced by the constraint engine), `stop`, `temperature`,
//!   `top_p`, `max_tokens`, `seed`. Thinking comes back as `reasoning_content`, LFM2 tool
//!   calls as `tool_calls`. `stream: true` answers with server-sent events whose deltas add up
//!   to exactly the non-streamed reply (`reply` and `stream`).
//! - `POST /v1/agent/tasks` (with `serve --tasks`): runs an agent task (triage, ask, extract)
//!   and returns its result, or streams its steps (`tasks`).
//! - `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus text).
//!
//! Engine threads (`--parallel`, one per sequence in flight) each own a session over the
//! shared model (saved points make a request that shares an earlier request's prefix prefill
//! only its new tokens); with more than one, their forward passes are batched. Handlers put
//! jobs on a bounded queue and a full queue is answered 429 with `Retry-After`. A request
//! past the timeout is 504; a request whose client went away, or that timed out, is dropped
//! from the queue, or stopped at its next token. Bodies over the limit are 413; with API keys set, `/v1/*`
//! without `Authorization: Bearer KEY` is 401.

mod chat;
mod metrics;
pub mod openai;
pub mod reply;
pub mod stream;
pub mod tasks;
mod worker;

pub use metrics::Metrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lfm_engine::sampling::SamplingParams;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::backend::EngineBackend;
use crate::runner::Turn;
use lfm_engine::batch::Batcher;
use openai::{ApiError, ChatJob};
pub use tasks::{TaskRequest, TaskRunner};

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model id clients see.
    pub model_name: String,
    /// Requests that may wait for the model; one more is answered 429.
    pub queue: usize,
    /// Arrival to response, at most.
    pub timeout: Duration,
    /// Accepted API keys; empty: no authentication.
    pub api_keys: Vec<String>,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// `max_tokens` when the request sets none.
    pub default_max_tokens: usize,
    /// Sampling when the request sets none (its temperature, top_p and seed override).
    pub sampling: SamplingParams,
    /// Whether turns think (the backend's think budget is above 0): a turn may then think
    /// without writing `<think>`, when the chat template opened it.
    pub thinking: bool,
    /// Whether the model is a synthetic random-weight one (said in `/v1/models`, so that a
    /// client's evals can mark their results).
    pub synthetic: bool,
}

struct Job {
    chat: ChatJob,
    reply: oneshot::Sender<Result<(Turn, usize), ApiError>>,
    /// A streamed request's deltas; closed before `reply` is sent.
    events: Option<mpsc::UnboundedSender<stream::Delta>>,
    cancel: Arc<AtomicBool>,
    queued: Instant,
}

#[derive(Clone)]
struct AppState {
    jobs: mpsc::Sender<Job>,
    opts: Arc<ServeOptions>,
    metrics: Arc<Metrics>,
    /// Runs `/v1/agent/tasks`, when the server offers them.
    tasks: Option<Arc<dyn TaskRunner>>,
    /// Agent tasks running or waiting, at most `queue`.
    task_slots: Arc<tokio::sync::Semaphore>,
}

/// Sets the flag when dropped: the handler's future is dropped when the client goes away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The router over `backends`, each run by its own engine thread (several share their
/// forward passes through a batcher); the returned handles are the engine threads'. With
/// `tasks`, `POST /v1/agent/tasks` runs agent tasks through it.
pub fn router(
    backends: Vec<EngineBackend>,
    opts: ServeOptions,
    batcher: Option<Batcher>,
    tasks: Option<Arc<dyn TaskRunner>>,
) -> (Router, Vec<std::thread::JoinHandle<()>>) {
    let metrics = Arc::new(Metrics {
        batcher,
        ..Metrics::default()
    });
    let (tx, rx) = mpsc::channel(opts.queue.max(1));
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let opts = Arc::new(opts);
    let workers = backends
        .into_iter()
        .map(|backend| {
            let (opts, metrics, rx) = (opts.clone(), metrics.clone(), rx.clone());
            std::thread::spawn(move || worker::work(backend, &rx, &opts, &metrics))
        })
        .collect();
    let state = AppState {
        jobs: tx,
        task_slots: Arc::new(tokio::sync::Semaphore::new(opts.queue.max(1))),
        opts: opts.clone(),
        tasks,
        metrics,
    };
    let app = Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics_text))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat::chat))
        .route("/v1/completions", post(chat::completions))
        .route("/v1/agent/tasks", post(tasks::task))
        .layer(DefaultBodyLimit::max(opts.body_limit))
        .with_state(state);
    (app, workers)
}

fn error(m: &Metrics, e: ApiError) -> Response {
    m.count(e.status);
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, Json(e.body())).into_response();
    if e.status == 429 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn authorized(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if s.opts.api_keys.is_empty() {
        return Ok(());
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(k) if s.opts.api_keys.iter().any(|want| want == k) => Ok(()),
        _ => Err(ApiError {
            status: 401,
            message: "missing or unknown API key (Authorization: Bearer KEY)".into(),
            param: None,
        }),
    }
}

async fn models(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorized(&s, &headers) {
        return error(&s.metrics, e);
    }
    s.metrics.count(200);
    Json(
        json!({"object": "list", "data": [{"id": s.opts.model_name, "object": "model", "created": 0,
        "owned_by": "lfm-agent", "meta": {"synthetic": s.opts.synthetic}}]}),
    )
    .into_response()
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
