//! `POST /v1/chat/completions` and `POST /v1/completions`: checks the request, queues it for
//! the engine thread, and answers with one JSON body or, with `stream: true`, server-sent
//! events.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout_at;

use super::openai::{self, ApiError, ChatJob};
use super::reply::{raw, raw_finish, reply};
use super::stream::{chunk, delta_json, sse_response, Delta};
use super::{authorized, error, AppState, CancelOnDrop, Job};
use crate::runner::Turn;

type Outcome = Result<(Turn, usize), ApiError>;

fn api(status: u16, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        param: None,
    }
}

type Parse = fn(&Value) -> Result<ChatJob, ApiError>;

/// Reads and checks the body; an error is the response to send.
async fn read(s: &AppState, req: Request, parse: Parse) -> Result<ChatJob, ApiError> {
    parse(&read_body(s, req).await?)
}

/// Checks the API key, reads the body under the size limit and parses it as JSON.
pub(super) async fn read_body(s: &AppState, req: Request) -> Result<Value, ApiError> {
    authorized(s, req.headers())?;
    // Refused from its Content-Length before any of it is read, or while reading a body
    // without one.
    let too_big = || api(413, format!("the body is over {} bytes", s.opts.body_limit));
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > s.opts.body_limit) {
        return Err(too_big());
    }
    let body = axum::body::to_bytes(req.into_body(), s.opts.body_limit)
        .await
        .map_err(|_| too_big())?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad("body", format!("not JSON: {e}")))
}

pub(super) async fn chat(State(s): State<AppState>, req: Request) -> Response {
    serve(s, req, openai::parse_chat).await
}

pub(super) async fn completions(State(s): State<AppState>, req: Request) -> Response {
    serve(s, req, openai::parse_completion).await
}

async fn serve(s: AppState, req: Request, parse: Parse) -> Response {
    let arrived = Instant::now();
    let chat = match read(&s, req, parse).await {
        Ok(c) => c,
        Err(e) => return error(&s.metrics, e),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let guard = CancelOnDrop(cancel.clone());
    let (tx, rx) = oneshot::channel();
    let (events, deltas) = match chat.stream {
        true => {
            let (t, r) = mpsc::unbounded_channel();
            (Some(t), Some(r))
        }
        false => (None, None),
    };
    let kept = chat.clone();
    s.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        chat,
        reply: tx,
        events,
        cancel,
        queued: arrived,
    };
    if let Err(e) = s.jobs.try_send(job) {
        s.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        return error(
            &s.metrics,
            match e {
                mpsc::error::TrySendError::Full(_) => api(429, "the queue is full; retry later"),
                mpsc::error::TrySendError::Closed(_) => api(503, "the model worker has stopped"),
            },
        );
    }
    let deadline = tokio::time::Instant::from_std(arrived + s.opts.timeout);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = format!(
        "{}-{created}{:06}",
        if kept.raw_prompt.is_some() {
            "cmpl"
        } else {
            "chatcmpl"
        },
        arrived.elapsed().subsec_micros()
    );
    let Some(mut deltas) = deltas else {
        let outcome = wait(&s, deadline, rx).await;
        let (turn, max_tokens) = match outcome {
            Ok(done) => done,
            Err(e) => return error(&s.metrics, e),
        };
        answered(&s, arrived);
        let model = &s.opts.model_name;
        if kept.raw_prompt.is_some() {
            let text = raw(&turn.text, &kept, true).0;
            let finish = raw_finish(&turn, &kept, max_tokens);
            return Json(openai::completion_response(
                &id, model, created, &text, finish, &turn,
            ))
            .into_response();
        }
        let r = reply(&turn, &kept, max_tokens, s.opts.thinking);
        return Json(openai::response(&id, model, created, &r, &turn)).into_response();
    };
    // Streamed: an error before the first delta is still an HTTP error.
    let first = match timeout_at(deadline, deltas.recv()).await {
        Ok(d) => d,
        Err(_) => return error(&s.metrics, timed_out(&s)),
    };
    let (rx, early) = match first {
        Some(_) => (Some(rx), None),
        None => match wait(&s, deadline, rx).await {
            Err(e) => return error(&s.metrics, e),
            Ok(done) => (None, Some(done)),
        },
    };
    s.metrics.count(200);
    let (out, body) = mpsc::channel::<Bytes>(64);
    let sse = Sse {
        s: s.clone(),
        id,
        created,
        chat: kept,
        out,
    };
    tokio::spawn(async move {
        // Dropped when the stream ends or its reader goes away: stops the turn.
        let _guard = guard;
        sse.run(first, deltas, rx, early, deadline, arrived).await;
    });
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|b| (Ok::<_, Infallible>(b), body))
    });
    sse_response(Body::from_stream(stream))
}

fn timed_out(s: &AppState) -> ApiError {
    api(
        504,
        format!("no answer within {} s", s.opts.timeout.as_secs()),
    )
}

/// The engine thread's answer, or the timeout.
async fn wait(
    s: &AppState,
    deadline: tokio::time::Instant,
    rx: oneshot::Receiver<Outcome>,
) -> Outcome {
    match timeout_at(deadline, rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(api(500, "the model worker dropped the request")),
        Err(_) => Err(timed_out(s)),
    }
}

fn answered(s: &AppState, arrived: Instant) {
    s.metrics
        .latency_us
        .fetch_add(arrived.elapsed().as_micros() as u64, Ordering::Relaxed);
    s.metrics.answered.fetch_add(1, Ordering::Relaxed);
    s.metrics.count(200);
}

/// Writes one streamed reply as server-sent events.
struct Sse {
    s: AppState,
    id: String,
    created: u64,
    chat: ChatJob,
    out: mpsc::Sender<Bytes>,
}

impl Sse {
    async fn send(&self, v: &Value) -> bool {
        self.out
            .send(Bytes::from(format!("data: {v}\n\n")))
            .await
            .is_ok()
    }

    /// A chunk: a chat delta, or a plain completion's text.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        let model = &self.s.opts.model_name;
        if self.chat.raw_prompt.is_none() {
            return chunk(&self.id, model, self.created, delta, finish);
        }
        json!({"id": self.id, "object": "text_completion", "created": self.created, "model": model,
            "choices": [{"index": 0, "text": delta["content"].as_str().unwrap_or_default(),
                "logprobs": null, "finish_reason": finish}]})
    }

    async fn delta(&self, d: &Delta) -> bool {
        let c = self.chunk(delta_json(d, &self.id), None);
        self.send(&c).await
    }

    async fn run(
        self,
        first: Option<Delta>,
        mut deltas: mpsc::UnboundedReceiver<Delta>,
        rx: Option<oneshot::Receiver<Outcome>>,
        early: Option<(Turn, usize)>,
        deadline: tokio::time::Instant,
        arrived: Instant,
    ) {
        let model = self.s.opts.model_name.clone();
        if self.chat.raw_prompt.is_none() {
            let role = chunk(
                &self.id,
                &model,
                self.created,
                json!({"role": "assistant", "content": ""}),
                None,
            );
            if !self.send(&role).await {
                return;
            }
        }
        if let Some(d) = first {
            if !self.delta(&d).await {
                return;
            }
            loop {
                match timeout_at(deadline, deltas.recv()).await {
                    Ok(Some(d)) => {
                        if !self.delta(&d).await {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.fail(timed_out(&self.s)).await;
                        return;
                    }
                }
            }
        }
        let outcome = match (early, rx) {
            (Some(done), _) => Ok(done),
            (None, Some(rx)) => wait(&self.s, deadline, rx).await,
            (None, None) => Err(api(500, "the model worker dropped the request")),
        };
        let (turn, max_tokens) = match outcome {
            Ok(done) => done,
            Err(e) => {
                self.fail(e).await;
                return;
            }
        };
        let finish = match self.chat.raw_prompt {
            Some(_) => raw_finish(&turn, &self.chat, max_tokens),
            None => reply(&turn, &self.chat, max_tokens, self.s.opts.thinking).finish_reason,
        };
        let last = self.chunk(json!({}), Some(finish));
        if !self.send(&last).await {
            return;
        }
        if self.chat.include_usage {
            let object = match self.chat.raw_prompt {
                Some(_) => "text_completion",
                None => "chat.completion.chunk",
            };
            let usage = json!({"id": self.id, "object": object, "created": self.created,
                "model": model, "choices": [], "usage": openai::usage(&turn)});
            if !self.send(&usage).await {
                return;
            }
        }
        let _ = self.out.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
        self.s
            .metrics
            .latency_us
            .fetch_add(arrived.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.s.metrics.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// An error after the stream began: an error event, then the end.
    async fn fail(&self, e: ApiError) {
        tracing::warn!(status = e.status, message = %e.message, "streamed request failed");
        if self.send(&e.body()).await {
            let _ = self.out.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
        }
    }
}
