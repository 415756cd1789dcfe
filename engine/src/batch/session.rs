//! [`BatchedSession`]: a session whose forward passes go through a [`Batcher`] when it has one.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::{DType, Tensor};

use super::{Batcher, Member};
use crate::error::{Error, Result};
use crate::model::{Lfm2Model, Logits};
use crate::session::{prefill_chunks, Session, Snapshot};

/// A session that runs alone, or shares its passes with other threads' sessions.
pub struct BatchedSession {
    /// `None` only while a pass that panicked lost it (see [`BatchedSession::forward`]).
    session: Option<Session>,
    batcher: Option<Batcher>,
    /// What a lost session is replaced with: the model, the context and the KV dtype.
    model: Arc<Lfm2Model>,
    context: usize,
    kv_dtype: DType,
}

fn lost() -> Error {
    Error::arg("batch", "the session was lost with the batch thread")
}

impl BatchedSession {
    /// `session`, batched through `batcher` when one is given.
    pub fn new(session: Session, batcher: Option<Batcher>) -> BatchedSession {
        BatchedSession {
            model: session.model().clone(),
            context: session.context(),
            kv_dtype: session.kv_dtype(),
            session: Some(session),
            batcher,
        }
    }

    /// The session.
    pub fn get(&self) -> Result<&Session> {
        self.session.as_ref().ok_or_else(lost)
    }

    /// The session, to change.
    pub fn get_mut(&mut self) -> Result<&mut Session> {
        self.session.as_mut().ok_or_else(lost)
    }

    /// Puts `session` in place of the current one (a fork of a shared prefix).
    pub fn replace(&mut self, session: Session) {
        self.session = Some(session);
    }

    /// Joins the batcher for a turn of at most `tokens` (prompt and new tokens), waiting in
    /// line for room unless `cancel` is raised (see [`Batcher::join`]); `None` when the
    /// session runs alone.
    pub fn join(&self, tokens: usize, cancel: Option<&AtomicBool>) -> Result<Option<Member>> {
        self.batcher
            .as_ref()
            .map(|b| b.join(tokens, cancel))
            .transpose()
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
            None => Session::with_kv_dtype(self.model.clone(), self.context, self.kv_dtype).ok(),
        };
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
        self.session.as_ref().map_or(0, |s| s.context())
    }

    /// Saves the current point.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.get()?.snapshot())
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
