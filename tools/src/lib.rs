//! `lfm-tools`: what the agent can call.
//!
//! - [`Tool`]: a name, a description and a JSON Schema of its parameters ([`ToolSpec`]), and
//!   an async call.
//! - [`Registry`]: tools by name. Every call goes through one path: the arguments are
//!   validated against the schema (draft 2020-12, the `jsonschema` crate), the call runs under
//!   a timeout, and the result's text is capped ([`CallLimits`]). Each failure is a
//!   [`ToolError`] the agent hands back to the model as the tool's response, not to the user.
//!   [`Registry::only`] gives a task the tools it declared and nothing else: text inside
//!   documents or tickets cannot widen it. [`Registry::relevant`] narrows a long list to the
//!   tools most relevant to a request (BM25 over names and descriptions).
//! - [`builtin`]: `search_docs` and `read_doc` (over `lfm-retrieval`; `read_doc` reads only
//!   indexed files), `sql_query` (read-only SQLite with a row limit), `current_time`, and
//!   command tools (a program with fixed arguments, JSON on stdin and stdout, no shell, an
//!   allowlist, killed at the timeout).
//! - [`mcp`]: tools from Model Context Protocol servers over stdio, registered and called
//!   like the built-ins.
//!
//! The crate knows nothing of models: how a tool list is rendered into a prompt and how calls
//! are parsed from generated text belongs to the agent.

#![deny(missing_docs)]

pub mod builtin;
mod error;
pub mod mcp;
mod registry;
mod select;
mod tool;

pub use error::{Result, ToolError};
pub use registry::{cap, CallLimits, CallOutput, Registry};
pub use select::SELECT_ABOVE;
pub use tool::{Tool, ToolFuture, ToolName, ToolSpec};
