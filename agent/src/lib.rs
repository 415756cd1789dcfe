//! `lfm-agent`: the agent runtime around `lfm-engine`.
//!
//! Today the crate ships the `lfm-agent` binary (`generate`, `chat`, `synth`, `logits`).
//! It will own the agent loop (plan, call a tool, observe, answer), the task pipelines
//! (triage, ask, extract), traces in SQLite, the TOML config, the backends and the HTTP server.
