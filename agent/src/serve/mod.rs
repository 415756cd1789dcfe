//! `lfm-agent serve`: the embedded engine behind an OpenAI-compatible HTTP API (`axum`).
//!
//! - `POST /v1/chat/completions`: messages (tool role and assistant `tool_calls` included),
//!   `tools`, `tool_choice` (auto, none, required, a named function), `response_format`
//!   (json_object, json_schema: enforced by the constraint engine), `stop`, `temperature`,
//!   `top_p`, `max_tokens`, `seed`. Thinking comes back as `reasoning_content`, LFM2 tool
//!   calls as `tool_calls`. `stream` is refused (not built yet).
//! - `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus text).
//!
//! One engine thread owns the model and its session (saved points make a request that shares
//! the previous request's prefix prefill only its new tokens); handlers put jobs on a bounded
//! queue and a full queue is answered 429 with `Retry-After`. A request past the timeout is
//! 504; a request whose client went away, or that timed out, is dropped from the queue, or
//! stopped at its next token. Bodies over the limit are 413; with API keys set, `/v1/*`
//! without `Authorization: Bearer KEY` is 401.

mod metrics;
pub mod openai;

pub use metrics::Metrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lfm_engine::sampling::SamplingParams;
use lfm_tools::ToolSpec;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::backend::EngineBackend;
use crate::runner::{Backend, BackendError, Turn, TurnRequest};
use openai::{ApiError, ChatJob};

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
    /// Whether the model is a synthetic random-weight one (said in `/v1/models`, so that a
    /// client's evals can mark their results).
    pub synthetic: bool,
}

struct Job {
    chat: ChatJob,
    reply: oneshot::Sender<Result<(Turn, usize), ApiError>>,
    cancel: Arc<AtomicBool>,
    queued: Instant,
}

#[derive(Clone)]
struct AppState {
    jobs: mpsc::Sender<Job>,
    opts: Arc<ServeOptions>,
    metrics: Arc<Metrics>,
}

/// Sets the flag when dropped: the handler's future is dropped when the client goes away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The router over `backend` (run on its own thread); the returned handle is the engine
/// thread's.
pub fn router(backend: EngineBackend, opts: ServeOptions) -> (Router, std::thread::JoinHandle<()>) {
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = mpsc::channel(opts.queue.max(1));
    let opts = Arc::new(opts);
    let worker = {
        let (opts, metrics) = (opts.clone(), metrics.clone());
        std::thread::spawn(move || work(backend, rx, &opts, &metrics))
    };
    let state = AppState {
        jobs: tx,
        opts: opts.clone(),
        metrics,
    };
    let app = Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics_text))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .layer(DefaultBodyLimit::max(opts.body_limit))
        .with_state(state);
    (app, worker)
}

fn work(mut backend: EngineBackend, mut rx: mpsc::Receiver<Job>, opts: &ServeOptions, m: &Metrics) {
    while let Some(job) = rx.blocking_recv() {
        m.queue_depth.fetch_sub(1, Ordering::Relaxed);
        m.queue_us
            .fetch_add(job.queued.elapsed().as_micros() as u64, Ordering::Relaxed);
        if job.reply.is_closed() || job.cancel.load(Ordering::Relaxed) {
            m.cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let c = &job.chat;
        let mut sampling = opts.sampling.clone();
        sampling.temperature = c.temperature.unwrap_or(sampling.temperature);
        sampling.top_p = c.top_p.or(sampling.top_p);
        sampling.seed = c.seed.unwrap_or(sampling.seed);
        let result = (|| {
            backend
                .set_sampling(sampling)
                .map_err(|e| ApiError::bad("temperature", e))?;
            backend.set_cancel(Some(job.cancel.clone()));
            let tools: Vec<&ToolSpec> = c.tools.iter().collect();
            if let Err(e) = backend.prepare(&tools, c.answer_schema.as_ref()) {
                return Err(ApiError::bad(
                    if c.answer_schema.is_some() {
                        "response_format"
                    } else {
                        "tools"
                    },
                    e,
                ));
            }
            let max_tokens = c.max_tokens.unwrap_or(opts.default_max_tokens);
            let req = TurnRequest {
                messages: &c.messages,
                tools: &tools,
                answer_schema: c.answer_schema.as_ref(),
                max_tokens,
                require_call: c.require_call,
            };
            let t = Instant::now();
            let turn = backend.complete(&req).map_err(|e| match e {
                BackendError::ContextFull { needed, limit } => ApiError::bad(
                    "messages",
                    format!("context_length_exceeded: the prompt and max_tokens need {needed} tokens; the context holds {limit}"),
                ),
                BackendError::Failed(msg) if msg == "cancelled" => ApiError { status: 499, message: "cancelled".into(), param: None },
                BackendError::Failed(msg) => ApiError { status: 500, message: msg, param: None },
            })?;
            m.generate_us
                .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
            m.prompt_tokens
                .fetch_add(turn.prompt_tokens as u64, Ordering::Relaxed);
            m.completion_tokens
                .fetch_add(turn.completion_tokens as u64, Ordering::Relaxed);
            Ok((turn, max_tokens))
        })();
        backend.set_cancel(None);
        if result.as_ref().is_err_and(|e| e.status == 499) {
            m.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        let _ = job.reply.send(result);
    }
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

async fn chat(State(s): State<AppState>, req: Request) -> Response {
    let arrived = Instant::now();
    if let Err(e) = authorized(&s, req.headers()) {
        return error(&s.metrics, e);
    }
    // Refused from its Content-Length before any of it is read, or while reading a body
    // without one.
    let too_big = || ApiError {
        status: 413,
        message: format!("the body is over {} bytes", s.opts.body_limit),
        param: None,
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > s.opts.body_limit) {
        return error(&s.metrics, too_big());
    }
    let body = match axum::body::to_bytes(req.into_body(), s.opts.body_limit).await {
        Ok(b) => b,
        Err(_) => return error(&s.metrics, too_big()),
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(&s.metrics, ApiError::bad("body", format!("not JSON: {e}"))),
    };
    let chat = match openai::parse_chat(&body) {
        Ok(c) => c,
        Err(e) => return error(&s.metrics, e),
    };
    if chat.stream {
        return error(
            &s.metrics,
            ApiError::bad(
                "stream",
                "streaming is not supported yet; send stream: false",
            ),
        );
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let (tx, rx) = oneshot::channel();
    let kept = chat.clone();
    s.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        chat,
        reply: tx,
        cancel,
        queued: arrived,
    };
    if let Err(e) = s.jobs.try_send(job) {
        s.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        let (status, message) = match e {
            mpsc::error::TrySendError::Full(_) => (429, "the queue is full; retry later"),
            mpsc::error::TrySendError::Closed(_) => (503, "the model worker has stopped"),
        };
        return error(
            &s.metrics,
            ApiError {
                status,
                message: message.into(),
                param: None,
            },
        );
    }
    let (turn, max_tokens) = match tokio::time::timeout(s.opts.timeout, rx).await {
        Ok(Ok(Ok(done))) => done,
        Ok(Ok(Err(e))) => return error(&s.metrics, e),
        Ok(Err(_)) => {
            return error(
                &s.metrics,
                ApiError {
                    status: 500,
                    message: "the model worker dropped the request".into(),
                    param: None,
                },
            )
        }
        Err(_) => {
            return error(
                &s.metrics,
                ApiError {
                    status: 504,
                    message: format!("no answer within {} s", s.opts.timeout.as_secs()),
                    param: None,
                },
            )
        }
    };
    let reply = openai::reply(&turn, &kept, max_tokens);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = format!("chatcmpl-{created}{:06}", arrived.elapsed().subsec_micros());
    s.metrics
        .latency_us
        .fetch_add(arrived.elapsed().as_micros() as u64, Ordering::Relaxed);
    s.metrics.answered.fetch_add(1, Ordering::Relaxed);
    s.metrics.count(200);
    Json(openai::response(
        &id,
        &s.opts.model_name,
        created,
        &reply,
        &turn,
    ))
    .into_response()
}
