//! Continuous batching: sessions driven by several threads advance in shared forward passes.
//!
//! Each sequence keeps its own thread and its own logic (sampling, grammar masks, tool-call
//! detection): only the forward pass is shared. A thread hands its session and its next chunk
//! (one token, or a prefill chunk) to the [`Batcher`] and waits; the batcher's thread stacks
//! every chunk that has arrived into one [`Session::forward_batch`] and hands each session back
//! with its logits. A pass starts as soon as every member has handed in a chunk (or after a
//! short wait for the slow ones), so sequences join and leave at token boundaries, and while
//! the pass runs the other threads' mask and sampling work for the next token overlaps it.
//!
//! Sessions hold their KV memory in a budget, counted in tokens of KV buffers ([`Hold`]): in a
//! turn the owner holds it, between turns the session is parked in the batcher, where a turn
//! short of room may evict it (see `budget.rs`). A turn that does not fit waits in line, and
//! stops waiting when its cancel flag is raised; one larger than the whole budget is refused.
//! A long prompt goes in chunks ([`BatchedSession::prefill`]), so it never stalls the others'
//! decoding for longer than one chunk. Sessions that share a prefix (a task's system turn)
//! fork one prefilled state of it ([`SharedPrefixes`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::Logits;
use crate::session::Session;

mod budget;
mod prefix;
mod session;

pub use budget::{BudgetUse, Hold, Ticket};
pub use prefix::{Claim, Prefix, SharedPrefixes};
pub use session::BatchedSession;

/// How a [`Batcher`] runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Most sequences in one pass.
    pub max_batch: usize,
    /// Tokens of KV buffers the sessions may hold together, in turns and parked between
    /// them.
    pub kv_budget: usize,
    /// How long a pass waits for members that have not handed in a chunk yet.
    pub wait: Duration,
}

struct Request {
    session: Session,
    tokens: Vec<u32>,
    want: Logits,
    reply: mpsc::SyncSender<(Session, Result<Tensor>)>,
}

/// Counts and the KV budget, shared with the members.
struct Shared {
    members: AtomicUsize,
    budget: Mutex<budget::Budget>,
    freed: Condvar,
    /// Passes run and sequences in them (for the mean batch size), and the most in one.
    passes: AtomicUsize,
    rows: AtomicUsize,
    largest: AtomicUsize,
    /// Nanoseconds spent in passes (the rest of the batcher's time it waits for chunks).
    busy_ns: AtomicU64,
}

/// The shared forward pass. Cheap to clone; its thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    opts: Arc<BatchOptions>,
}

/// A sequence in a turn, which the passes wait for: counted while it lives.
pub struct Member {
    shared: Arc<Shared>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.shared.members.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Batcher {
    /// Starts the batcher's thread.
    pub fn new(opts: BatchOptions) -> Result<Batcher> {
        if opts.max_batch == 0 || opts.kv_budget == 0 {
            return Err(Error::arg(
                "batch",
                "max_batch and kv_budget must be at least 1",
            ));
        }
        let shared = Arc::new(Shared {
            members: AtomicUsize::new(0),
            budget: Mutex::new(budget::Budget::default()),
            freed: Condvar::new(),
            passes: AtomicUsize::new(0),
            rows: AtomicUsize::new(0),
            largest: AtomicUsize::new(0),
            busy_ns: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel::<Request>();
        let opts = Arc::new(opts);
        {
            let (shared, opts) = (shared.clone(), opts.clone());
            std::thread::Builder::new()
                .name("lfm-batcher".into())
                .spawn(move || run(rx, &shared, &opts))
                .map_err(|e| Error::arg("batch", format!("cannot start the batch thread: {e}")))?;
        }
        Ok(Batcher { tx, shared, opts })
    }

    /// The options it runs with.
    pub fn options(&self) -> &BatchOptions {
        &self.opts
    }

    /// Counts a sequence in a turn until the returned member is dropped: passes wait a
    /// moment for members that have not handed in their next chunk.
    pub fn member(&self) -> Member {
        self.shared.members.fetch_add(1, Ordering::SeqCst);
        Member {
            shared: self.shared.clone(),
        }
    }

    /// Runs `tokens` on `session` in the next shared pass. The session comes back with the
    /// result, whatever it is, unless the batch thread died holding it.
    pub fn forward(
        &self,
        session: Session,
        tokens: Vec<u32>,
        want: Logits,
    ) -> (Option<Session>, Result<Tensor>) {
        let (reply, back) = mpsc::sync_channel(1);
        let req = Request {
            session,
            tokens,
            want,
            reply,
        };
        if let Err(mpsc::SendError(req)) = self.tx.send(req) {
            return (Some(req.session), Err(stopped()));
        }
        match back.recv() {
            Ok((s, out)) => (Some(s), out),
            Err(_) => (None, Err(stopped())),
        }
    }

    /// Passes run so far, and the mean number of sequences in each.
    pub fn stats(&self) -> (usize, f64) {
        let p = self.shared.passes.load(Ordering::Relaxed);
        let r = self.shared.rows.load(Ordering::Relaxed);
        (p, if p == 0 { 0.0 } else { r as f64 / p as f64 })
    }

    /// The most sequences one pass has run (never over `max_batch`).
    pub fn largest_pass(&self) -> usize {
        self.shared.largest.load(Ordering::Relaxed)
    }

    /// Time spent in passes so far (between them, the batcher waits for the sequences'
    /// next chunks: sampling, grammar masks, tools, new requests).
    pub fn pass_time(&self) -> Duration {
        Duration::from_nanos(self.shared.busy_ns.load(Ordering::Relaxed))
    }
}

fn stopped() -> Error {
    Error::arg("batch", "the batch thread has stopped")
}

fn run(rx: mpsc::Receiver<Request>, shared: &Shared, opts: &BatchOptions) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let until = Instant::now() + opts.wait;
        while batch.len() < opts.max_batch {
            // Everyone in: go. Otherwise wait a little for the members still working.
            if batch.len() >= shared.members.load(Ordering::SeqCst).max(1) {
                match rx.try_recv() {
                    Ok(r) => {
                        batch.push(r);
                        continue;
                    }
                    Err(_) => break,
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => batch.push(r),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        shared.passes.fetch_add(1, Ordering::Relaxed);
        shared.rows.fetch_add(batch.len(), Ordering::Relaxed);
        shared.largest.fetch_max(batch.len(), Ordering::Relaxed);
        // A panic inside a pass loses that pass's sessions (their owners start fresh ones,
        // see `BatchedSession`), not the batcher: the other sequences go on.
        let (sequences, rows) = (
            batch.len(),
            batch.iter().map(|r| r.tokens.len()).sum::<usize>(),
        );
        let t = Instant::now();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pass(batch))).is_err() {
            tracing::error!("a batched forward pass panicked; its sequences were reset");
        }
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // One line per pass (`LFM_LOG=lfm_engine::batch=debug`): where a run's time goes by
        // pass size.
        tracing::debug!(sequences, rows, ms = ns as f64 / 1e6, "forward pass");
        shared.busy_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// One shared pass; if it fails, each sequence runs alone so that only the one at fault gets
/// the error.
fn pass(batch: Vec<Request>) {
    let (mut sessions, rest): (Vec<Session>, Vec<_>) = batch
        .into_iter()
        .map(|r| (r.session, (r.tokens, r.want, r.reply)))
        .unzip();
    let wants: Vec<Logits> = rest.iter().map(|r| r.1).collect();
    let result = {
        let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
        let chunks: Vec<&[u32]> = rest.iter().map(|r| r.0.as_slice()).collect();
        Session::forward_batch(&mut refs, &chunks, &wants)
    };
    match result {
        Ok(outs) => {
            for ((s, o), (_, _, reply)) in sessions.into_iter().zip(outs).zip(rest) {
                let _ = reply.send((s, Ok(o)));
            }
        }
        Err(_) => {
            for (mut s, (tokens, want, reply)) in sessions.into_iter().zip(rest) {
                let out = s.forward(&tokens, want);
                let _ = reply.send((s, out));
            }
        }
    }
}
