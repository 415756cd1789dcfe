//! [`BatchedSession`]: a session whose forward passes go through a [`Batcher`] when it has one.
//!
//! Batched, the session lives in turns: [`BatchedSession::begin`] brings it back from the
//! batcher's park (or starts an empty one, if it was evicted) and holds KV room for the turn
//! in the budget; [`BatchedSession::end`] parks it again with what it holds.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::{DType, Tensor};

use super::{Batcher, Hold, Member, Ticket};
use crate::error::{Error, Result};
use crate::model::{Lfm2Model, Logits};
use crate::session::{prefill_chunks, Session, Snapshot};

/// A session that runs alone, or shares its passes with other threads' sessions.
pub struct BatchedSession {
    /// `None` while parked between turns, or after a pass that panicked lost it (see
    /// [`BatchedSession::forward`]).
    session: Option<Session>,
    batcher: Option<Batcher>,
    /// Batched: the budget held for the session's KV while it is out of the park.
    hold: Option<Hold>,
    /// Batched, between turns: where it is parked.
    parked: Option<Ticket>,
    /// Batched, in a turn: counted by the passes.
    turn: Option<Member>,
    /// What a lost session is replaced with: the model, the context and the KV dtype.
    model: Arc<Lfm2Model>,
    context: usize,
    kv_dtype: DType,
}

fn lost() -> Error {
    Error::arg(
        "batch",
        "the session is parked between turns, or was lost with the batch thread",
    )
}

impl BatchedSession {
    /// `session`, batched through `batcher` when one is given (then emptied, its KV freed:
    /// it grows again inside the budget).
    pub fn new(mut session: Session, batcher: Option<Batcher>) -> Result<BatchedSession> {
        if batcher.is_some() {
            session.release_kv()?;
        }
        Ok(BatchedSession {
            model: session.model().clone(),
            context: session.context(),
            kv_dtype: session.kv_dtype(),
            hold: batcher.as_ref().map(Batcher::empty_hold),
            session: Some(session),
            batcher,
            parked: None,
            turn: None,
        })
    }

    /// The batcher, when batched.
    pub fn batcher(&self) -> Option<&Batcher> {
        self.batcher.as_ref()
    }

    /// An empty session with no KV buffers, in place of one that is gone.
    fn fresh(&self) -> Result<Session> {
        Session::with_capacity(self.model.clone(), self.context, self.kv_dtype, 0)
    }

    /// Starts a turn that will hold at most `tokens` (the whole sequence at its end). Batched:
    /// takes the session back from the park (an empty one if it was evicted) and holds KV
    /// room for `tokens` in the budget: at once when it fits (evicting parked sessions), else
    /// the session is emptied and the turn waits in line for room, unless `cancel` is raised
    /// ([`Batcher::hold`]). Alone: only checks `tokens` against the context.
    pub fn begin(&mut self, tokens: usize, cancel: Option<&AtomicBool>) -> Result<()> {
        if tokens > self.context {
            return Err(Error::ContextFull {
                needed: tokens,
                limit: self.context,
            });
        }
        let Some(b) = self.batcher.clone() else {
            return Ok(());
        };
        self.end();
        if let Some(t) = self.parked.take() {
            let back = b.unpark(t);
            let (s, h) = match back {
                Some(p) => p,
                None => (self.fresh()?, b.empty_hold()),
            };
            self.session = Some(s);
            self.hold = Some(h);
        }
        if self.session.is_none() {
            self.session = Some(self.fresh()?);
        }
        let mut hold = self.hold.take().unwrap_or_else(|| b.empty_hold());
        let s = self.session.as_mut().ok_or_else(lost)?;
        let cap = s.kv_capacity();
        // Growing, old and new buffers are both held for a moment.
        let peak = if tokens > cap { tokens + cap } else { cap };
        if !b.try_grow(&mut hold, peak)? {
            // No room now: wait in line holding nothing.
            s.release_kv()?;
            drop(hold);
            hold = match b.hold(tokens, cancel) {
                Ok(h) => h,
                Err(e) => {
                    self.hold = Some(b.empty_hold());
                    return Err(e);
                }
            };
        }
        let want = tokens.max(s.kv_capacity());
        let grown = s.reserve_kv(want);
        hold.shrink(want);
        self.hold = Some(hold);
        grown?;
        self.turn = Some(b.member());
        Ok(())
    }

    /// Ends the turn: batched, the session is parked with what it holds until the next
    /// [`BatchedSession::begin`]. Does nothing outside a turn or alone.
    pub fn end(&mut self) {
        self.turn = None;
        let Some(b) = &self.batcher else {
            return;
        };
        let Some(s) = self.session.take() else {
            return;
        };
        let hold = self.hold.take().unwrap_or_else(|| b.empty_hold());
        self.parked = Some(b.park(s, hold));
    }

    /// The session.
    pub fn get(&self) -> Result<&Session> {
        self.session.as_ref().ok_or_else(lost)
    }

    /// The session, to change.
    pub fn get_mut(&mut self) -> Result<&mut Session> {
        self.session.as_mut().ok_or_else(lost)
    }

    /// Runs `tokens` as one chunk (in a shared pass when batched).
    pub fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<Tensor> {
        let Some(b) = &self.batcher else {
            return self.get_mut()?.forward(tokens, want);
        };
        let s = self.session.take().ok_or_else(lost)?;
        let (back, out) = b.forward(s, tokens.to_vec(), want);
        self.session = match back {
            Some(s) => Some(s),
            // The pass panicked with it: an empty session in its place, so the next turn
            // starts over (and its saved points are refused, not wrong).
            None => self.fresh().ok(),
        };
        // The budget covers what the session really holds, should a turn outgrow its room.
        if let (Some(h), Some(s)) = (&mut self.hold, &self.session) {
            let cap = s.kv_capacity();
            if cap > h.tokens() {
                tracing::warn!(cap, held = h.tokens(), "a turn outgrew its KV room");
                h.cover(cap);
            }
        }
        out
    }

    /// Consumes one token and returns the logits for the next.
    pub fn decode(&mut self, token: u32) -> Result<Vec<f32>> {
        Ok(self
            .forward(&[token], Logits::Last)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// Prefills `tokens` in chunks of at most `chunk` (each a shared pass when batched); the
    /// last position's logits.
    pub fn prefill(&mut self, tokens: &[u32], chunk: usize) -> Result<Vec<f32>> {
        let s = self.get()?;
        let (len, context) = (s.len(), s.context());
        prefill_chunks(len, context, tokens, chunk, |part| {
            self.forward(part, Logits::Last)
        })
    }

    /// Tokens consumed so far (none if the session was lost).
    pub fn tokens(&self) -> &[u32] {
        self.session.as_ref().map_or(&[], |s| s.tokens())
    }

    /// Most tokens the session can hold.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Saves the current point.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.get()?.snapshot())
    }

    /// Whether [`BatchedSession::restore`] of `snap` would succeed (false while parked).
    pub fn can_restore(&self, snap: &Snapshot) -> bool {
        self.session.as_ref().is_some_and(|s| s.can_restore(snap))
    }

    /// Returns to `snap`.
    pub fn restore(&mut self, snap: &Snapshot) -> Result<()> {
        self.get_mut()?.restore(snap)
    }

    /// Empties the session.
    pub fn reset(&mut self) -> Result<()> {
        self.get_mut()?.reset()
    }
}
