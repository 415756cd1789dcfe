//! The crate's error type. Errors of a call ([`ToolError::InvalidArguments`],
//! [`ToolError::Timeout`], [`ToolError::Failed`], ...) are meant to go back to the model as
//! the tool's response; errors of set-up ([`ToolError::BadSpec`], [`ToolError::NotAllowed`])
//! are the user's to fix.

/// What can go wrong registering or calling a tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// A tool name that is not `[A-Za-z_][A-Za-z0-9_-]{0,63}`.
    #[error("invalid tool name `{0}`: use letters, digits, `_` and `-`, starting with a letter or `_`, at most 64")]
    BadName(String),
    /// A tool's parameter schema does not compile, or is not an object schema.
    #[error("tool `{tool}`: bad parameters schema: {why}")]
    BadSpec {
        /// The tool.
        tool: String,
        /// What is wrong.
        why: String,
    },
    /// Two tools with one name.
    #[error("tool `{0}` is registered twice")]
    Duplicate(String),
    /// A command tool's program is not on the allowlist.
    #[error("tool `{tool}`: program `{program}` is not on the allowlist")]
    NotAllowed {
        /// The tool.
        tool: String,
        /// The program.
        program: String,
    },
    /// The model called a tool that is not offered.
    #[error("unknown tool `{name}`; available: {available}")]
    UnknownTool {
        /// The name it used.
        name: String,
        /// The names it may use, comma-separated.
        available: String,
    },
    /// The arguments do not match the tool's schema.
    #[error("invalid arguments for `{tool}`: {}", errors.join("; "))]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// Each violation, with its JSON pointer.
        errors: Vec<String>,
    },
    /// The call took longer than its timeout.
    #[error("tool `{tool}` timed out after {ms} ms")]
    Timeout {
        /// The tool.
        tool: String,
        /// The limit.
        ms: u64,
    },
    /// An MCP server could not be started, initialized or listed, or lacks a tool the
    /// config names.
    #[error("mcp server `{server}`: {why}")]
    Mcp {
        /// The server's name in the config.
        server: String,
        /// What went wrong.
        why: String,
    },
    /// The tool ran and failed.
    #[error("tool `{tool}` failed: {why}")]
    Failed {
        /// The tool.
        tool: String,
        /// Why.
        why: String,
    },
}

/// `Result` with [`ToolError`].
pub type Result<T, E = ToolError> = std::result::Result<T, E>;

impl ToolError {
    pub(crate) fn failed(tool: &str, why: impl std::fmt::Display) -> Self {
        ToolError::Failed {
            tool: tool.to_string(),
            why: why.to_string(),
        }
    }
}
