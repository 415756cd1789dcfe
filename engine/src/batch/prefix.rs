//! [`SharedPrefixes`]: states at the end of a shared prefix (a task's system turn and tool
//! list), kept for the other sessions of a pool to fork instead of prefilling it again.
//!
//! The first session to need a prefix claims it and prefills it; sessions that need it
//! meanwhile wait, then fork the finished state (its KV rows are copied, its conv windows
//! shared). A claim given up (its prefill failed) wakes the waiters, and one of them claims
//! it in turn.

use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Error, Result};
use crate::session::Session;

/// How many finished prefixes are kept (the oldest goes first).
const KEEP: usize = 4;

enum Entry {
    Pending(Vec<u32>),
    Ready(Session),
}

impl Entry {
    fn tokens(&self) -> &[u32] {
        match self {
            Entry::Pending(t) => t,
            Entry::Ready(s) => s.tokens(),
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

/// What [`SharedPrefixes::get`] found.
pub enum Prefix {
    /// A fork of the finished state.
    Fork(Session),
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
    /// A fork of the state at the end of `tokens`, waiting while another session prefills
    /// it; or the claim to prefill it.
    pub fn get(&self, tokens: &[u32]) -> Result<Prefix> {
        let mut entries = self.0.entries.lock().map_err(|_| poisoned())?;
        loop {
            match entries.iter().find(|e| e.tokens() == tokens) {
                Some(Entry::Ready(s)) => return Ok(Prefix::Fork(s.fork()?)),
                Some(Entry::Pending(_)) => {
                    entries = self.0.changed.wait(entries).map_err(|_| poisoned())?;
                }
                None => {
                    entries.push(Entry::Pending(tokens.to_vec()));
                    return Ok(Prefix::Claimed(Claim {
                        shared: self.clone(),
                        tokens: tokens.to_vec(),
                        done: false,
                    }));
                }
            }
        }
    }

    /// Finished prefixes held.
    pub fn len(&self) -> usize {
        self.0.entries.lock().map_or(0, |e| {
            e.iter().filter(|e| matches!(e, Entry::Ready(_))).count()
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

    /// Hands over `session`, which must stand exactly at the end of the prefix: a fork of it
    /// is kept for the others.
    pub fn fulfil(mut self, session: &Session) -> Result<()> {
        if session.tokens() != self.tokens.as_slice() {
            return Err(Error::arg(
                "prefixes",
                "the session is not at the end of the claimed prefix",
            ));
        }
        let fork = session.fork()?;
        let inner = &self.shared.0;
        let mut entries = inner.entries.lock().map_err(|_| poisoned())?;
        entries.retain(|e| e.tokens() != self.tokens.as_slice());
        entries.push(Entry::Ready(fork));
        let ready = entries
            .iter()
            .filter(|e| matches!(e, Entry::Ready(_)))
            .count();
        if ready > KEEP {
            if let Some(i) = entries.iter().position(|e| matches!(e, Entry::Ready(_))) {
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
