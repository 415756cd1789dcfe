//! Evals for lfm-agent's tasks: suites, scoring, stored results and the report.
//!
//! - [`suite`]: a suite folder (`suite.toml`, `cases.jsonl`, optional schema, tools and
//!   system prompt), loaded and checked up front;
//! - [`score`]: what one run of a case produced ([`score::Observation`]), scored against
//!   the case, and a suite's [`score::Summary`];
//! - [`store`]: results in SQLite, one row per suite run and per case;
//! - [`report`]: a self-contained HTML page comparing each run with the previous run of its
//!   suite, and the same summary as a text table.
//!
//! Running the cases is the agent's job (`lfm-agent eval SUITE` drives the same task code as
//! `lfm-agent triage`, `ask` and `extract`); this crate knows nothing of models, so the
//! scoring can be tested on its own and reused for results that came from elsewhere.
//!
//! Accuracy from a synthetic random-weight model means nothing: runs record whether the model
//! was synthetic, and the report says so above every such run.

#![warn(missing_docs)]

mod error;
pub mod report;
pub mod score;
pub mod store;
pub mod suite;

pub use error::{Error, Result};
pub use suite::{Case, Suite, TaskKind};
