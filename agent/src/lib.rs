//! `lfm-agent`: the agent runtime around `lfm-engine`.
//!
//! The crate ships the `lfm-agent` binary (`generate`, `chat`, `synth`, `logits`,
//! `constraint`, `bench`, `index`, `search`, `eval`). As a library it holds [`toolcall`], the
//! parser of LFM2.5 tool calls in generated text. It will own the agent loop (plan, call a
//! tool, observe, answer), the task pipelines (triage, ask, extract), traces in SQLite, the
//! TOML config, the backends and the HTTP server.

pub mod backend;
pub mod config;
pub mod runner;
pub mod serve;
pub mod tasks;
pub mod toolcall;
pub mod trace;
