//! Sessions: one sequence's state over a shared model.
//!
//! A [`Session`] owns the per-layer state (a [`KvCache`] per attention layer, the last `L-1`
//! gated inputs per conv layer), the position, and the tokens it has consumed. It runs chunked
//! prefill and one-token decode, and it can be snapshotted, restored and forked, the base for
//! prefix caching and for rolling back a rejected continuation.
//!
//! Snapshots are cheap: a conv window is a few KiB, and a KV cache only needs its length,
//! because positions before it are never rewritten while the tokens that produced them are
//! unchanged. To make that safe, the session remembers the tokens behind every KV row it still
//! holds (even past the current position after a rollback); a snapshot restores only if those
//! tokens still match, so a restore after the rows were overwritten is refused, not wrong.

mod attend;
mod kv;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{DType, Tensor};
pub(crate) use kv::attend_all;
pub use kv::{kv_memory, reset_kv_peak, KvCache, KvMemory};

use crate::error::{Error, Result};
use crate::model::{Lfm2Model, Logits, Seq};

/// Prefill of `tokens` in chunks of at most `chunk` through `forward`, after `len` tokens of
/// a session holding at most `context`: everything is checked before the first chunk runs.
/// Returns the last position's logits.
pub(crate) fn prefill_chunks(
    len: usize,
    context: usize,
    tokens: &[u32],
    chunk: usize,
    mut forward: impl FnMut(&[u32]) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    if chunk == 0 {
        return Err(Error::arg("prefill_chunk", "must be at least 1"));
    }
    if tokens.is_empty() {
        return Err(Error::arg("tokens", "at least one token is needed"));
    }
    let needed = len + tokens.len();
    if needed > context {
        return Err(Error::ContextFull {
            needed,
            limit: context,
        });
    }
    let mut last = None;
    for part in tokens.chunks(chunk) {
        last = Some(forward(part)?);
    }
    match last {
        Some(t) => Ok(t.flatten_all()?.to_vec1()?),
        None => Err(Error::arg("tokens", "at least one token is needed")),
    }
}

/// The state of one decoder layer for one sequence.
#[derive(Debug)]
pub enum LayerState {
    /// Attention layer: keys and values so far.
    Kv(KvCache),
    /// Conv layer: the last `L-1` rows of `B ⊙ x`, `[L-1, H]`.
    Conv(Tensor),
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One sequence being decoded.
#[derive(Debug)]
pub struct Session {
    model: Arc<Lfm2Model>,
    id: u64,
    state: Vec<LayerState>,
    /// Tokens consumed; `tokens.len()` is the position of the next token.
    tokens: Vec<u32>,
    /// Tokens behind every KV row still held, including rows past `tokens.len()`.
    kv_tokens: Vec<u32>,
    context: usize,
}

/// A saved point of a session, restorable into that session or its forks.
#[derive(Debug, Clone)]
pub struct Snapshot {
    lineage: u64,
    tokens: Vec<u32>,
    conv: Vec<Option<Tensor>>,
}

impl Snapshot {
    /// Tokens consumed at the snapshot.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
}

impl Session {
    /// A session over `model` holding at most `context` tokens (at most the model's
    /// `max_position_embeddings`). KV room for `min(context, 512)` tokens is reserved now.
    pub fn new(model: Arc<Lfm2Model>, context: usize) -> Result<Self> {
        let kv = model.default_kv_dtype();
        Self::with_kv_dtype(model, context, kv)
    }

    /// A session whose KV cache is stored in `kv_dtype` (f16, bf16, or the compute dtype).
    pub fn with_kv_dtype(model: Arc<Lfm2Model>, context: usize, kv_dtype: DType) -> Result<Self> {
        Self::with_capacity(model, context, kv_dtype, context.min(512))
    }

    /// Like [`Session::with_kv_dtype`], with KV room for `reserve` tokens now (none is
    /// allowed: the buffers grow as tokens come).
    pub fn with_capacity(
        model: Arc<Lfm2Model>,
        context: usize,
        kv_dtype: DType,
        reserve: usize,
    ) -> Result<Self> {
        if !matches!(kv_dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
            return Err(Error::arg(
                "kv_dtype",
                format!("{kv_dtype:?}: use f32, f16 or bf16"),
            ));
        }
        let max = model.config().max_position_embeddings;
        if context == 0 || context > max {
            return Err(Error::arg(
                "context",
                format!(
                    "{context} must be between 1 and the model's max_position_embeddings ({max})"
                ),
            ));
        }
        let state = model.new_state(reserve.min(context), context, kv_dtype)?;
        Ok(Session {
            model,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            state,
            tokens: Vec::new(),
            kv_tokens: Vec::new(),
            context,
        })
    }

    /// The dtype the KV cache stores rows in.
    pub fn kv_dtype(&self) -> DType {
        self.state
            .iter()
            .find_map(|l| match l {
                LayerState::Kv(c) => Some(c.store_dtype()),
                LayerState::Conv(_) => None,
            })
            .unwrap_or(self.model.dtype())
    }

    /// The model this session runs.
    pub fn model(&self) -> &Arc<Lfm2Model> {
        &self.model
    }

    /// Tokens consumed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Position of the next token.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether nothing has been consumed.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Most tokens this session can hold.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Runs `tokens` as one chunk and returns f32 logits `[n, vocab]` (`n` = 1 or the chunk).
    pub fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<Tensor> {
        let mut out = Session::forward_batch(&mut [self], &[tokens], &[want])?;
        out.pop()
            .ok_or_else(|| Error::arg("tokens", "at least one token is needed"))
    }

    /// Runs several sessions over the same model in one pass: `tokens[i]` is the chunk of
    /// `sessions[i]` (one token to decode, or a prefill chunk; they may mix), each at its own
    /// position with its own KV cache and conv windows, and `wants[i]` the logits it returns
    /// (they may mix too). Each weight is read once for all of them. Returns each session's
    /// f32 logits, as [`Session::forward`] would alone (the same to rounding: rows are stacked,
    /// never mixed). On an error no session has moved.
    pub fn forward_batch(
        sessions: &mut [&mut Session],
        tokens: &[&[u32]],
        wants: &[Logits],
    ) -> Result<Vec<Tensor>> {
        if sessions.len() != tokens.len() {
            return Err(Error::arg(
                "tokens",
                format!("{} chunks for {} sessions", tokens.len(), sessions.len()),
            ));
        }
        if sessions.len() != wants.len() {
            return Err(Error::arg(
                "wants",
                format!(
                    "{} logits choices for {} sessions",
                    wants.len(),
                    sessions.len()
                ),
            ));
        }
        let Some(first) = sessions.first() else {
            return Ok(Vec::new());
        };
        let model = first.model.clone();
        for (i, (s, t)) in sessions.iter().zip(tokens).enumerate() {
            if t.is_empty() {
                return Err(Error::arg("tokens", "at least one token is needed"));
            }
            if !Arc::ptr_eq(&s.model, &model) {
                return Err(Error::arg(
                    "sessions",
                    format!("session {i} runs another model than session 0"),
                ));
            }
            let needed = s.tokens.len() + t.len();
            if needed > s.context {
                return Err(Error::ContextFull {
                    needed,
                    limit: s.context,
                });
            }
        }
        let saved: Vec<Vec<Option<Tensor>>> = sessions.iter().map(|s| s.conv_windows()).collect();
        let positions: Vec<usize> = sessions.iter().map(|s| s.tokens.len()).collect();
        let mut seqs: Vec<Seq<'_>> = sessions
            .iter_mut()
            .zip(tokens)
            .zip(wants)
            .map(|((s, t), &want)| Seq {
                tokens: t,
                pos: s.tokens.len(),
                state: &mut s.state,
                want,
            })
            .collect();
        let result = model.forward_batch(&mut seqs);
        drop(seqs);
        match result {
            Ok(out) => {
                for (s, t) in sessions.iter_mut().zip(tokens) {
                    s.commit(t);
                }
                Ok(out)
            }
            Err(e) => {
                for ((s, w), pos) in sessions.iter_mut().zip(saved).zip(positions) {
                    s.roll_back(pos, w);
                }
                Err(e)
            }
        }
    }

    /// A copy of every conv window (`None` for attention layers).
    fn conv_windows(&self) -> Vec<Option<Tensor>> {
        self.state
            .iter()
            .map(|s| match s {
                LayerState::Conv(w) => Some(w.clone()),
                LayerState::Kv(_) => None,
            })
            .collect()
    }

    /// Back to `pos` after a failed pass: no half-appended KV rows. Rows from `pos` on may
    /// have been overwritten in some layers, so they are invalid now.
    fn roll_back(&mut self, pos: usize, saved: Vec<Option<Tensor>>) {
        self.kv_tokens.truncate(pos);
        for (st, w) in self.state.iter_mut().zip(saved) {
            match (st, w) {
                (LayerState::Kv(c), _) => c.truncate(pos),
                (LayerState::Conv(cur), Some(w)) => *cur = w,
                (LayerState::Conv(_), None) => {}
            }
        }
    }

    /// Records `tokens` as consumed after a pass.
    fn commit(&mut self, tokens: &[u32]) {
        let pos = self.tokens.len();
        let needed = pos + tokens.len();
        // Rows past this chunk stay valid only if the chunk rewrote the same tokens.
        if self.kv_tokens.get(pos..needed) != Some(tokens) {
            self.kv_tokens.truncate(pos);
            self.kv_tokens.extend_from_slice(tokens);
        }
        self.tokens.extend_from_slice(tokens);
    }

    /// Prefills `tokens` in chunks of at most `chunk` and returns the last position's logits.
    pub fn prefill(&mut self, tokens: &[u32], chunk: usize) -> Result<Vec<f32>> {
        let (len, context) = (self.tokens.len(), self.context);
        prefill_chunks(len, context, tokens, chunk, |part| {
            self.forward(part, Logits::Last)
        })
    }

    /// Consumes one token and returns the logits for the next.
    pub fn decode(&mut self, token: u32) -> Result<Vec<f32>> {
        Ok(self
            .forward(&[token], Logits::Last)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// Saves the current point.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            lineage: self.id,
            tokens: self.tokens.clone(),
            conv: self
                .state
                .iter()
                .map(|s| match s {
                    LayerState::Conv(w) => Some(w.clone()),
                    LayerState::Kv(_) => None,
                })
                .collect(),
        }
    }

    /// Whether [`Session::restore`] of `snap` would succeed.
    pub fn can_restore(&self, snap: &Snapshot) -> bool {
        snap.lineage == self.id
            && snap.conv.len() == self.state.len()
            && self.kv_tokens.get(..snap.tokens.len()) == Some(&snap.tokens[..])
    }

    /// Returns to `snap`, which must come from this session or the session it was forked
    /// from, and whose KV rows must not have been overwritten since.
    pub fn restore(&mut self, snap: &Snapshot) -> Result<()> {
        if snap.lineage != self.id || snap.conv.len() != self.state.len() {
            return Err(Error::StaleSnapshot(
                "it was taken from another session".into(),
            ));
        }
        let n = snap.tokens.len();
        if self.kv_tokens.get(..n) != Some(&snap.tokens[..]) {
            return Err(Error::StaleSnapshot(
                "the session has since rewritten positions the snapshot depends on".into(),
            ));
        }
        for (st, saved) in self.state.iter_mut().zip(&snap.conv) {
            match (st, saved) {
                (LayerState::Conv(w), Some(s)) => *w = s.clone(),
                (LayerState::Kv(c), None) => c.set_len(n)?,
                _ => return Err(Error::StaleSnapshot("layer layout differs".into())),
            }
        }
        self.tokens.truncate(0);
        self.tokens.extend_from_slice(&snap.tokens);
        Ok(())
    }

    /// An independent copy of this session at its current point. Snapshots taken from this
    /// session before the fork restore into the fork too.
    pub fn fork(&self) -> Result<Session> {
        self.fork_sized(false)
    }

    /// Like [`Session::fork`], with KV buffers holding just the tokens consumed (no room to
    /// grow): a copy to keep, not to go on from.
    pub fn fork_exact(&self) -> Result<Session> {
        self.fork_sized(true)
    }

    /// A fork whose KV buffers have this session's capacity, or (`exact`) just its length.
    fn fork_sized(&self, exact: bool) -> Result<Session> {
        let state = self
            .state
            .iter()
            .map(|s| match s {
                LayerState::Kv(c) => c
                    .deep_clone(if exact { c.len() } else { c.capacity() })
                    .map(LayerState::Kv),
                LayerState::Conv(w) => Ok(LayerState::Conv(w.clone())),
            })
            .collect::<Result<_>>()?;
        Ok(Session {
            model: self.model.clone(),
            id: self.id,
            state,
            tokens: self.tokens.clone(),
            kv_tokens: self.tokens.clone(),
            context: self.context,
        })
    }

    /// Makes `dst` a fork of this session at its current point (as [`Session::fork`] would,
    /// snapshots included), reusing `dst`'s KV buffers where they have room. Both must run
    /// the same model with the same context and KV dtype.
    pub fn fork_into(&self, dst: &mut Session) -> Result<()> {
        if !Arc::ptr_eq(&self.model, &dst.model)
            || self.context != dst.context
            || self.kv_dtype() != dst.kv_dtype()
            || self.state.len() != dst.state.len()
        {
            return Err(Error::arg(
                "session",
                "cannot fork into a session of another model, context or KV dtype",
            ));
        }
        for (src, st) in self.state.iter().zip(dst.state.iter_mut()) {
            match (src, st) {
                (LayerState::Kv(from), LayerState::Kv(to)) => from.copy_into(to)?,
                (LayerState::Conv(from), LayerState::Conv(to)) => *to = from.clone(),
                _ => return Err(Error::arg("session", "layer layouts differ")),
            }
        }
        dst.id = self.id;
        dst.tokens.clone_from(&self.tokens);
        dst.kv_tokens.clone_from(&self.tokens);
        Ok(())
    }

    /// Tokens every KV cache has room for without reallocating (the largest, where they
    /// differ).
    pub fn kv_capacity(&self) -> usize {
        self.state
            .iter()
            .map(|s| match s {
                LayerState::Kv(c) => c.capacity(),
                LayerState::Conv(_) => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// Grows every KV cache to room for exactly `tokens` (where it has less), keeping what
    /// it holds.
    pub fn reserve_kv(&mut self, tokens: usize) -> Result<()> {
        if tokens > self.context {
            return Err(Error::ContextFull {
                needed: tokens,
                limit: self.context,
            });
        }
        for st in &mut self.state {
            if let LayerState::Kv(c) = st {
                c.reserve_exact(tokens)?;
            }
        }
        Ok(())
    }

    /// Empties the session and frees its KV buffers (they grow again as it is used).
    pub fn release_kv(&mut self) -> Result<()> {
        self.reset()?;
        for st in &mut self.state {
            if let LayerState::Kv(c) = st {
                c.release()?;
            }
        }
        Ok(())
    }

    /// Forgets everything; the KV buffers are kept for reuse.
    pub fn reset(&mut self) -> Result<()> {
        for st in &mut self.state {
            match st {
                LayerState::Kv(c) => c.truncate(0),
                LayerState::Conv(w) => *w = w.zeros_like()?,
            }
        }
        self.tokens.clear();
        self.kv_tokens.clear();
        Ok(())
    }

    /// Bytes of KV cache currently allocated.
    pub fn kv_bytes(&self) -> usize {
        self.state
            .iter()
            .map(|s| match s {
                LayerState::Kv(c) => c.bytes(),
                LayerState::Conv(_) => 0,
            })
            .sum()
    }
}
