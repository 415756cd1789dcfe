//! [`SharedPrefixes`]: states at the end of a shared prefix (a task's system turn and tool
//! list), kept for the other sessions of a pool to fork instead of prefilling it again.
//!
//! The first session to need a prefix claims it and prefills it; sessions that need it
//! meanwhile wait, then fork the finished state into their own buffers (its KV rows are
//! copied, its conv windows shared). A claim given up (its prefill failed) wakes the waiters,
//! and one of them claims it in turn.
//!
//! For batched sessions the kept state is parked in their batcher, inside its KV budget: a
//! turn short of room may evict it like any idle session (the next to need it prefills it
//! again), and it is kept only if it fits.

use std::sync::{Arc, Condvar, Mutex};

use super::{BatchedSession, Ticket};
use crate::error::{Error, Result};
use crate::session::Session;

/// How many finished prefixes are kept (the oldest goes first).
const KEEP: usize = 4;

/// Where a finished prefix state is kept.
enum Kept {
    /// Held here (sessions that run alone).
    Own(Session),
    /// Parked in the sessions' batcher.
    Parked(Ticket),
}

enum Entry {
    Pending(Vec<u32>),
    Ready(Vec<u32>, Kept),
}

impl Entry {
    fn tokens(&self) -> &[u32] {
        match self {
            Entry::Pending(t) | Entry::Ready(t, _) => t,
        }
    }
}

#[derive(Default)]
struct Inner {
    entries: Mutex<Vec<Entry>>,
    changed: Condvar,
}

/// Prefix states shared by a pool of sessions over one model. Cheap to clone.
#[derive(Clone, Default)]
pub struct SharedPrefixes(Arc<Inner>);

/// What [`SharedPrefixes::get`] did.
pub enum Prefix {
    /// The session is now a fork of the finished state.
    Forked,
    /// Nobody has it: this caller prefills it and hands it over with [`Claim::fulfil`].
    Claimed(Claim),
}

/// The duty to prefill a prefix; dropping it unfulfilled gives the claim up.
pub struct Claim {
    shared: SharedPrefixes,
    tokens: Vec<u32>,
    done: bool,
}

fn poisoned() -> Error {
    Error::arg("prefixes", "the shared prefix lock is poisoned")
}

impl SharedPrefixes {
    /// Makes `into` (in a turn, when batched) a fork of the state at the end of `tokens`,
    /// waiting while another session prefills it; or gives the claim to prefill it.
    pub fn get(&self, tokens: &[u32], into: &mut BatchedSession) -> Result<Prefix> {
        let mut entries = self.0.entries.lock().map_err(|_| poisoned())?;
        loop {
            let Some(i) = entries.iter().position(|e| e.tokens() == tokens) else {
                entries.push(Entry::Pending(tokens.to_vec()));
                return Ok(Prefix::Claimed(Claim {
                    shared: self.clone(),
                    tokens: tokens.to_vec(),
                    done: false,
                }));
            };
            let Entry::Ready(_, kept) = &entries[i] else {
                entries = self.0.changed.wait(entries).map_err(|_| poisoned())?;
                continue;
            };
            let forked = match kept {
                Kept::Own(s) => Some(s.fork_into(into.get_mut()?)),
                Kept::Parked(t) => {
                    let b = into.batcher().cloned();
                    let dst = into.get_mut()?;
                    b.and_then(|b| b.with_parked(t, |s| s.fork_into(dst)))
                }
            };
            match forked {
                Some(r) => {
                    r?;
                    return Ok(Prefix::Forked);
                }
                // Evicted: gone, so this caller claims it.
                None => {
                    entries.remove(i);
                }
            }
        }
    }

    /// Finished prefixes held.
    pub fn len(&self) -> usize {
        self.0.entries.lock().map_or(0, |e| {
            e.iter().filter(|e| matches!(e, Entry::Ready(..))).count()
        })
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Claim {
    /// The prefix's tokens.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Hands over `session`, which must stand exactly at the end of the prefix: a copy of
    /// it is kept for the others (batched, only if the budget has room for it now).
    pub fn fulfil(mut self, session: &BatchedSession) -> Result<()> {
        let s = session.get()?;
        if s.tokens() != self.tokens.as_slice() {
            return Err(Error::arg(
                "prefixes",
                "the session is not at the end of the claimed prefix",
            ));
        }
        let kept = match session.batcher() {
            None => Kept::Own(s.fork_exact()?),
            Some(b) => {
                let mut hold = b.empty_hold();
                if !b.try_grow(&mut hold, s.len())? {
                    tracing::debug!("no KV room to keep a shared prefix");
                    // Dropped unfulfilled: the waiters go on by themselves.
                    return Ok(());
                }
                Kept::Parked(b.park(s.fork_exact()?, hold))
            }
        };
        let inner = &self.shared.0;
        let mut entries = inner.entries.lock().map_err(|_| poisoned())?;
        entries.retain(|e| e.tokens() != self.tokens.as_slice());
        entries.push(Entry::Ready(self.tokens.clone(), kept));
        let ready = entries
            .iter()
            .filter(|e| matches!(e, Entry::Ready(..)))
            .count();
        if ready > KEEP {
            if let Some(i) = entries.iter().position(|e| matches!(e, Entry::Ready(..))) {
                entries.remove(i);
            }
        }
        self.done = true;
        inner.changed.notify_all();
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let inner = &self.shared.0;
        if let Ok(mut entries) = inner.entries.lock() {
            entries.retain(|e| !matches!(e, Entry::Pending(t) if *t == self.tokens));
        }
        inner.changed.notify_all();
    }
}
