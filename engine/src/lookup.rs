//! Prompt-lookup drafts: guesses of the next tokens taken from the text so far.
//!
//! Output that copies its input (extraction copies log lines, ids and timestamps into JSON)
//! repeats spans of the prompt. Where the last few tokens generated also occur earlier, the
//! tokens that followed them there are a likely continuation. The generation loop checks such
//! a draft in one forward pass ([`crate::generate`]): the pass gives the logits at every
//! drafted position, the sampler picks what it would have picked one token at a time, and the
//! draft is accepted up to the first disagreement. Greedy output is the same with and without
//! drafts (to rounding: a multi-token pass gives each position's logits as a one-token pass
//! does, to rounding); a pass that accepts `a` of `k` drafted tokens yields `a + 1` tokens.
//!
//! [`check`] is that pass, for any caller's loop: the caller's `judge` decides about each
//! drafted token from its position's logits, and `check` keeps the session exactly at the
//! tokens taken (rolling back to a snapshot and running them again when the draft was not
//! taken whole).

use candle_core::Tensor;

use crate::batch::BatchedSession;
use crate::error::Result;
use crate::model::Logits;
use crate::session::{Session, Snapshot};

/// How drafts are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftOptions {
    /// Most tokens proposed per draft.
    pub max_tokens: usize,
    /// The longest suffix looked up, in tokens (tried first).
    pub max_ngram: usize,
    /// The shortest suffix looked up; shorter matches are too weak to be worth a pass.
    pub min_ngram: usize,
}

impl Default for DraftOptions {
    fn default() -> Self {
        // On a CPU a pass over k + 1 tokens is not free: on 2 cores over the 1.2B Q4_0 it
        // costs 2.2x a one-token step at k = 3 and 6.5x at k = 8, so short drafts pay first.
        DraftOptions {
            max_tokens: 4,
            max_ngram: 4,
            min_ngram: 2,
        }
    }
}

/// The draft for `history`: for `n` from `max_ngram` down to `min_ngram`, the tokens that
/// followed the most recent earlier occurrence of its last `n` tokens, `max_tokens` of them.
/// A match near the end runs on into the draft itself, so a repeating pattern is drafted for
/// as long as it repeats (`a b a b` drafts `a b a b ...`). Empty when nothing matches.
pub fn draft(history: &[u32], opts: &DraftOptions) -> Vec<u32> {
    draft_in(history.len(), |i| history[i], opts)
}

/// The draft after a session's `tokens` and the `token` just taken (not yet run), at most
/// `room` tokens: [`draft`] of their concatenation, without copying the session's tokens at
/// every step.
pub fn draft_after(tokens: &[u32], token: u32, room: usize, opts: &DraftOptions) -> Vec<u32> {
    let at = |i: usize| tokens.get(i).copied().unwrap_or(token);
    let mut d = draft_in(tokens.len() + 1, at, opts);
    d.truncate(room);
    d
}

/// [`draft`] over the `len` tokens `at(0) .. at(len - 1)`.
fn draft_in(len: usize, at: impl Fn(usize) -> u32, opts: &DraftOptions) -> Vec<u32> {
    if opts.max_tokens == 0 || opts.min_ngram == 0 {
        return Vec::new();
    }
    for n in (opts.min_ngram..=opts.max_ngram.min(len.saturating_sub(1))).rev() {
        // Latest first: the nearest repeat is the likeliest continuation.
        for start in (0..len - n).rev() {
            if (0..n).all(|k| at(start + k) == at(len - n + k)) {
                let from = start + n;
                let mut out = Vec::with_capacity(opts.max_tokens);
                for i in 0..opts.max_tokens {
                    let p = from + i;
                    // `from < len`, so `p - len < i`: the draft so far supplies it.
                    let t = if p < len { at(p) } else { out[p - len] };
                    out.push(t);
                }
                return out;
            }
        }
    }
    Vec::new()
}

/// A session a draft can be checked on, alone or in a batch.
pub trait Verify {
    /// Saves the current point.
    fn snapshot(&self) -> Result<Snapshot>;
    /// Returns to a saved point.
    fn restore(&mut self, snap: &Snapshot) -> Result<()>;
    /// Runs `tokens` as one chunk.
    fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<Tensor>;
    /// Tokens consumed.
    fn tokens(&self) -> &[u32];
}

impl Verify for Session {
    fn snapshot(&self) -> Result<Snapshot> {
        Ok(Session::snapshot(self))
    }
    fn restore(&mut self, snap: &Snapshot) -> Result<()> {
        Session::restore(self, snap)
    }
    fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<Tensor> {
        Session::forward(self, tokens, want)
    }
    fn tokens(&self) -> &[u32] {
        Session::tokens(self)
    }
}

impl Verify for BatchedSession {
    fn snapshot(&self) -> Result<Snapshot> {
        BatchedSession::snapshot(self)
    }
    fn restore(&mut self, snap: &Snapshot) -> Result<()> {
        BatchedSession::restore(self, snap)
    }
    fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<Tensor> {
        BatchedSession::forward(self, tokens, want)
    }
    fn tokens(&self) -> &[u32] {
        BatchedSession::tokens(self)
    }
}

/// What the caller makes of one drafted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Taken; go on to the next.
    Take,
    /// Taken, and generation ends with it (it is kept but not run).
    Last,
    /// Not taken; neither is anything after it.
    Reject,
}

/// What a checked draft came to.
#[derive(Debug)]
pub struct Checked {
    /// Drafted tokens taken.
    pub taken: usize,
    /// The logits after the last token run; `None` when the last one taken ended generation.
    pub logits: Option<Vec<f32>>,
    /// Forward passes run: 1, or 2 after a rollback.
    pub passes: usize,
}

/// Runs `token` (taken, not yet run) followed by `draft` in one pass, and asks `judge` about
/// each drafted token in order with the logits at its position (the caller may mask them)
/// and the tokens before it. Afterwards `session` holds `token` and every drafted token
/// taken, except a last one that ended generation.
pub fn check<S: Verify + ?Sized>(
    session: &mut S,
    token: u32,
    draft: &[u32],
    mut judge: impl FnMut(usize, &mut [f32], &[u32]) -> Result<Verdict>,
) -> Result<Checked> {
    let snap = session.snapshot()?;
    let base = session.tokens().len();
    let mut chunk = Vec::with_capacity(draft.len() + 1);
    chunk.push(token);
    chunk.extend_from_slice(draft);
    let mut rows: Vec<Vec<f32>> = session.forward(&chunk, Logits::All)?.to_vec2()?;
    let mut taken = 0;
    let mut finished = false;
    for (j, row) in rows.iter_mut().enumerate().take(draft.len()) {
        let verdict = judge(j, row, &session.tokens()[..base + j + 1])?;
        match verdict {
            Verdict::Take => taken += 1,
            Verdict::Last => {
                taken += 1;
                finished = true;
                break;
            }
            Verdict::Reject => break,
        }
    }
    if taken == draft.len() && !finished {
        return Ok(Checked {
            taken,
            logits: rows.pop(),
            passes: 1,
        });
    }
    // Back to before the pass, then run what was taken: `token` and the drafted tokens
    // taken, but not a last one that ended generation (kept, not run).
    session.restore(&snap)?;
    if finished {
        session.forward(&chunk[..taken], Logits::Last)?;
        return Ok(Checked {
            taken,
            logits: None,
            passes: 2,
        });
    }
    let l = session.forward(&chunk[..=taken], Logits::Last)?;
    Ok(Checked {
        taken,
        logits: Some(l.flatten_all()?.to_vec1()?),
        passes: 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: DraftOptions = DraftOptions {
        max_tokens: 3,
        max_ngram: 3,
        min_ngram: 2,
    };

    #[test]
    fn the_longest_latest_match_gives_the_draft() {
        //           0  1  2  3  4  5  6  7  8  9
        let h = [5, 6, 7, 8, 9, 1, 6, 7, 2, 6, 7];
        // [6, 7] occurs at 6 (latest) and at 1: the latest wins.
        assert_eq!(draft(&h, &O), [2, 6, 7]);
        // A 3-gram match wins over a later 2-gram one.
        let h = [1, 2, 3, 4, 9, 2, 3, 8, 1, 2, 3];
        assert_eq!(draft(&h, &O), [4, 9, 2]);
    }

    #[test]
    fn drafts_run_on_into_themselves_and_need_the_minimum_ngram() {
        let h = [4, 5, 6, 4, 5];
        assert_eq!(draft(&h, &O), [6, 4, 5]);
        // A period-1 and a period-2 loop are drafted for the whole length.
        assert_eq!(draft(&[9, 7, 7, 7], &O), [7, 7, 7]);
        let long = DraftOptions { max_tokens: 5, ..O };
        assert_eq!(draft(&[1, 2, 1, 2], &long), [1, 2, 1, 2, 1]);
        let h = [4, 5, 6, 5];
        assert!(
            draft(&h, &O).is_empty(),
            "a 1-token match is below min_ngram"
        );
        let one = DraftOptions { min_ngram: 1, ..O };
        assert_eq!(draft(&h, &one), [6, 5, 6]);
        assert!(draft(&[], &O).is_empty());
        assert!(draft(&[1], &one).is_empty());
        // After a session's tokens and the token just taken, cut to the room left.
        assert_eq!(draft_after(&[4, 5, 6, 4], 5, 2, &O), [6, 4]);
    }
}
