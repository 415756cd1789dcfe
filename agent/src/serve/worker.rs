//! The engine thread: takes jobs off the queue one at a time and runs them on the backend.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lfm_tools::ToolSpec;
use tokio::sync::mpsc;

use super::openai::ApiError;
use super::openai::ChatJob;
use super::reply::{partial, raw, reply, Reply};
use super::stream::Streamer;
use super::{Job, Metrics, ServeOptions};
use crate::backend::{EngineBackend, Generated, Observer};
use crate::runner::{Backend, BackendError, Turn, TurnRequest};

/// Takes the next job; `None` when the server is shutting down.
fn next(rx: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    rx.lock().ok()?.blocking_recv()
}

pub(super) fn work(
    mut backend: EngineBackend,
    rx: &Mutex<mpsc::Receiver<Job>>,
    opts: &ServeOptions,
    m: &Arc<Metrics>,
) {
    while let Some(job) = next(rx) {
        m.queue_depth.fetch_sub(1, Ordering::Relaxed);
        m.queue_us
            .fetch_add(job.queued.elapsed().as_micros() as u64, Ordering::Relaxed);
        if job.reply.is_closed() || job.cancel.load(Ordering::Relaxed) {
            m.cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let streamer = Arc::new(Mutex::new(Streamer::default()));
        backend.set_observer(Some(observer(&job, opts.thinking, &streamer, m)));
        backend.set_cancel(Some(job.cancel.clone()));
        let result = run(&mut backend, &job, opts, m);
        backend.set_cancel(None);
        backend.set_observer(None);
        if result.as_ref().is_err_and(|e| e.status == 499) {
            m.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        let Job {
            reply: to,
            events,
            chat,
            ..
        } = job;
        if let (Some(tx), Ok((turn, max_tokens))) = (&events, &result) {
            // What the partial replies held back, up to the finished reply.
            let done = match chat.raw_prompt {
                Some(_) => Reply {
                    content: raw(&turn.text, &chat, true).0,
                    ..Reply::default()
                },
                None => reply(turn, &chat, *max_tokens, opts.thinking),
            };
            if let Ok(mut s) = streamer.lock() {
                for d in s.advance(&done) {
                    let _ = tx.send(d);
                }
            }
        }
        drop(events);
        let _ = to.send(result);
    }
}

/// Sees each token: counts the time to the first, streams what can no longer change, and
/// ends the turn at a stop string or when the stream's reader is gone.
fn observer(
    job: &Job,
    thinking: bool,
    streamer: &Arc<Mutex<Streamer>>,
    m: &Arc<Metrics>,
) -> Observer {
    let (chat, events, streamer, m, cancel) = (
        job.chat.clone(),
        job.events.clone(),
        streamer.clone(),
        m.clone(),
        job.cancel.clone(),
    );
    let queued = job.queued;
    let mut first = true;
    Box::new(move |g: &Generated<'_>| {
        if first {
            first = false;
            m.ttft_us
                .fetch_add(queued.elapsed().as_micros() as u64, Ordering::Relaxed);
            m.ttft_count.fetch_add(1, Ordering::Relaxed);
        }
        if events.is_none() && chat.stop.is_empty() {
            return true;
        }
        let (p, stopped) = shown(&g.text(), &chat, thinking);
        if let Some(tx) = &events {
            let deltas = match streamer.lock() {
                Ok(mut s) => s.advance(&p),
                Err(_) => return false,
            };
            if deltas.into_iter().any(|d| tx.send(d).is_err()) {
                // The stream's reader is gone: the turn is cancelled at its next token.
                cancel.store(true, Ordering::Relaxed);
            }
        }
        !stopped
    })
}

/// What of a turn being generated can be shown, and whether it reached a stop string.
fn shown(text: &str, chat: &ChatJob, thinking: bool) -> (Reply, bool) {
    match chat.raw_prompt {
        Some(_) => {
            let (content, stopped) = raw(text, chat, false);
            (
                Reply {
                    content,
                    ..Reply::default()
                },
                stopped,
            )
        }
        None => partial(text, chat, thinking),
    }
}

fn run(
    backend: &mut EngineBackend,
    job: &Job,
    opts: &ServeOptions,
    m: &Metrics,
) -> Result<(Turn, usize), ApiError> {
    let c = &job.chat;
    let mut sampling = opts.sampling.clone();
    sampling.temperature = c.temperature.unwrap_or(sampling.temperature);
    sampling.top_p = c.top_p.or(sampling.top_p);
    sampling.seed = c.seed.unwrap_or(sampling.seed);
    backend
        .set_sampling(sampling)
        .map_err(|e| ApiError::bad("temperature", e))?;
    let max_tokens = c.max_tokens.unwrap_or(opts.default_max_tokens);
    let t = Instant::now();
    if let Some(prompt) = &c.raw_prompt {
        let turn = backend
            .complete_raw(prompt, max_tokens)
            .map_err(|e| api_error(e, "prompt"))?;
        return Ok(counted(m, t, turn, max_tokens));
    }
    let tools: Vec<&ToolSpec> = c.tools.iter().collect();
    if let Err(e) = backend.prepare(&tools, c.answer_schema.as_ref()) {
        let param = if c.answer_schema.is_some() {
            "response_format"
        } else {
            "tools"
        };
        return Err(ApiError::bad(param, e));
    }
    let req = TurnRequest {
        messages: &c.messages,
        tools: &tools,
        answer_schema: c.answer_schema.as_ref(),
        max_tokens,
        require_call: c.require_call,
        // The worker sets the job's flag on the backend itself.
        cancel: None,
    };
    let turn = backend
        .complete(&req)
        .map_err(|e| api_error(e, "messages"))?;
    Ok(counted(m, t, turn, max_tokens))
}

/// A backend error as a response; `prompt` names the parameter a full context blames.
fn api_error(e: BackendError, prompt: &str) -> ApiError {
    match e {
        BackendError::ContextFull { needed, limit } => ApiError::bad(
            prompt,
            format!("context_length_exceeded: the prompt and max_tokens need {needed} tokens; the context holds {limit}"),
        ),
        BackendError::Failed(msg) if msg == "cancelled" => ApiError {
            status: 499,
            message: "cancelled".into(),
            param: None,
        },
        BackendError::Failed(msg) => ApiError {
            status: 500,
            message: msg,
            param: None,
        },
    }
}

/// Adds a finished turn to the metrics.
fn counted(m: &Metrics, t: Instant, turn: Turn, max_tokens: usize) -> (Turn, usize) {
    m.generate_us
        .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
    m.prompt_tokens
        .fetch_add(turn.prompt_tokens as u64, Ordering::Relaxed);
    m.completion_tokens
        .fetch_add(turn.completion_tokens as u64, Ordering::Relaxed);
    (turn, max_tokens)
}
