//! The KV budget: tokens of KV memory that a batcher's sessions may hold together.
//!
//! Every KV buffer of a batched session is covered by a [`Hold`]: while the session is in a
//! turn its owner keeps the hold; between turns the session is parked in the batcher with its
//! hold ([`Batcher::park`]), and a turn short of room evicts parked sessions, the least
//! recently used first (their owners start over from an empty session, as llama.cpp's server
//! drops an idle slot's cache). A turn that still does not fit waits in line, holding nothing
//! (so two waiting turns never hold what the other needs), first come first served, until
//! turns that are running end and park their sessions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Batcher, Shared};
use crate::error::{Error, Result};
use crate::session::Session;

/// How often a waiting turn looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The budget's state, under one lock.
#[derive(Default)]
pub(super) struct Budget {
    /// Tokens held (by holds in use and by parked sessions).
    used: usize,
    /// The most held at once.
    peak: usize,
    /// Turns waiting for room, first come first.
    waiting: std::collections::VecDeque<u64>,
    /// Sessions parked between turns, in the order they were last used.
    parked: Vec<Parked>,
    /// Parked sessions dropped to make room.
    evictions: usize,
    /// The next id for a waiting turn or a parked session.
    next_id: u64,
}

struct Parked {
    id: u64,
    session: Session,
    tokens: usize,
}

impl Budget {
    fn add(&mut self, tokens: usize) {
        self.used += tokens;
        self.peak = self.peak.max(self.used);
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Takes the parked entry `id` out, if it is still there.
    fn take(&mut self, id: u64) -> Option<Parked> {
        let i = self.parked.iter().position(|p| p.id == id)?;
        Some(self.parked.remove(i))
    }

    /// Whether growing a hold of `have` tokens to `want` fits in `limit`, evicting parked
    /// sessions (least recently used first) when that is needed and enough; evicts nothing
    /// when even evicting all of them would not do.
    fn make_room(&mut self, have: usize, want: usize, limit: usize) -> bool {
        let need = |b: &Budget| (b.used - have + want).saturating_sub(limit);
        let parked: usize = self.parked.iter().map(|p| p.tokens).sum();
        if need(self) > parked {
            return false;
        }
        while need(self) > 0 {
            let p = self.parked.remove(0);
            self.used -= p.tokens;
            self.evictions += 1;
            tracing::debug!(tokens = p.tokens, "evicted a parked session's KV");
        }
        true
    }
}

/// KV tokens held in a batcher's budget for a session's buffers; given back when dropped.
pub struct Hold {
    shared: Arc<Shared>,
    tokens: usize,
}

impl Hold {
    /// Tokens held.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Gives back all but `tokens` (a larger `tokens` changes nothing).
    pub fn shrink(&mut self, tokens: usize) {
        if tokens >= self.tokens {
            return;
        }
        if let Ok(mut b) = self.shared.budget.lock() {
            b.used -= self.tokens - tokens;
        }
        self.tokens = tokens;
        self.shared.freed.notify_all();
    }

    /// Holds `tokens` whether or not they fit: the account must cover what a session
    /// really holds, even past the budget (a turn that grew more than it asked for).
    pub(crate) fn cover(&mut self, tokens: usize) {
        if tokens <= self.tokens {
            return;
        }
        if let Ok(mut b) = self.shared.budget.lock() {
            b.add(tokens - self.tokens);
        }
        self.tokens = tokens;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.shrink(0);
    }
}

/// A session parked in a batcher between turns; dropping the ticket drops the session.
pub struct Ticket {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let gone = self
            .shared
            .budget
            .lock()
            .ok()
            .and_then(|mut b| b.take(self.id));
        if let Some(p) = gone {
            // The session's KV is freed (outside the lock) before its room is given back, so
            // that no turn allocates into that room while the old buffers still exist.
            let tokens = p.tokens;
            drop(p.session);
            if let Ok(mut b) = self.shared.budget.lock() {
                b.used -= tokens;
            }
        }
        self.shared.freed.notify_all();
    }
}

/// Where the budget stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUse {
    /// Tokens held now.
    pub used: usize,
    /// The most held at once.
    pub peak: usize,
    /// The budget.
    pub limit: usize,
    /// Parked sessions dropped to make room.
    pub evictions: usize,
}

fn poisoned() -> Error {
    Error::arg("batch", "the KV budget lock is poisoned")
}

impl Batcher {
    /// A hold of no tokens.
    pub fn empty_hold(&self) -> Hold {
        Hold {
            shared: self.shared.clone(),
            tokens: 0,
        }
    }

    /// Grows `hold` to `tokens` if that fits now, evicting parked sessions when needed; it
    /// never goes ahead of turns waiting in line. False (and `hold` unchanged) otherwise.
    pub fn try_grow(&self, hold: &mut Hold, tokens: usize) -> Result<bool> {
        if tokens <= hold.tokens {
            return Ok(true);
        }
        let mut b = self.shared.budget.lock().map_err(|_| poisoned())?;
        if !b.waiting.is_empty() || !b.make_room(hold.tokens, tokens, self.opts.kv_budget) {
            return Ok(false);
        }
        b.add(tokens - hold.tokens);
        hold.tokens = tokens;
        Ok(true)
    }

    /// Holds `tokens`, waiting in line while they do not fit (turns get room in the order
    /// they asked, evicting parked sessions when first in line); with `cancel`, it stops
    /// waiting (an [`Error::Cancelled`]) soon after the flag is raised. More than the whole
    /// budget is refused at once.
    pub fn hold(&self, tokens: usize, cancel: Option<&AtomicBool>) -> Result<Hold> {
        let limit = self.opts.kv_budget;
        if tokens > limit {
            return Err(Error::ContextFull {
                needed: tokens,
                limit,
            });
        }
        let mut b = self.shared.budget.lock().map_err(|_| poisoned())?;
        let id = b.id();
        b.waiting.push_back(id);
        loop {
            if b.waiting.front() == Some(&id) && b.make_room(0, tokens, limit) {
                break;
            }
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                b.waiting.retain(|&w| w != id);
                drop(b);
                // The turn behind this one may fit now.
                self.shared.freed.notify_all();
                return Err(Error::Cancelled("room in the KV budget"));
            }
            b = match cancel {
                Some(_) => {
                    let (b, _) = self
                        .shared
                        .freed
                        .wait_timeout(b, CANCEL_POLL)
                        .map_err(|_| poisoned())?;
                    b
                }
                None => self.shared.freed.wait(b).map_err(|_| poisoned())?,
            };
        }
        b.waiting.pop_front();
        b.add(tokens);
        drop(b);
        // The next in line may fit too.
        self.shared.freed.notify_all();
        Ok(Hold {
            shared: self.shared.clone(),
            tokens,
        })
    }

    /// Parks `session` with its `hold` until [`Batcher::unpark`]; a turn short of room may
    /// evict it meanwhile.
    pub fn park(&self, session: Session, mut hold: Hold) -> Ticket {
        let tokens = std::mem::take(&mut hold.tokens);
        let mut b = match self.shared.budget.lock() {
            Ok(b) => b,
            // No budget to keep it in: it is dropped, as if evicted at once.
            Err(_) => {
                return Ticket {
                    shared: self.shared.clone(),
                    id: 0,
                }
            }
        };
        let id = b.id();
        b.parked.push(Parked {
            id,
            session,
            tokens,
        });
        drop(b);
        // Parked sessions can be evicted: a waiting turn may fit now.
        self.shared.freed.notify_all();
        Ticket {
            shared: self.shared.clone(),
            id,
        }
    }

    /// The parked session and its hold, unless it was evicted.
    pub fn unpark(&self, ticket: Ticket) -> Option<(Session, Hold)> {
        let p = self.shared.budget.lock().ok()?.take(ticket.id)?;
        Some((
            p.session,
            Hold {
                shared: self.shared.clone(),
                tokens: p.tokens,
            },
        ))
    }

    /// Runs `f` on the parked session (counting as a use, so it is evicted later), unless it
    /// was evicted.
    pub fn with_parked<R>(&self, ticket: &Ticket, f: impl FnOnce(&Session) -> R) -> Option<R> {
        let mut b = self.shared.budget.lock().ok()?;
        let p = b.take(ticket.id)?;
        let out = f(&p.session);
        b.parked.push(p);
        Some(out)
    }

    /// Where the KV budget stands.
    pub fn budget_use(&self) -> BudgetUse {
        let limit = self.opts.kv_budget;
        self.shared.budget.lock().map_or(
            BudgetUse {
                used: 0,
                peak: 0,
                limit,
                evictions: 0,
            },
            |b| BudgetUse {
                used: b.used,
                peak: b.peak,
                limit,
                evictions: b.evictions,
            },
        )
    }

    /// Turns waiting for room in the KV budget.
    pub fn waiting(&self) -> usize {
        self.shared.budget.lock().map_or(0, |b| b.waiting.len())
    }
}
