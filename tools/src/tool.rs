//! The [`Tool`] interface and the description a model sees of it.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde_json::Value;

use crate::{Result, ToolError};

/// A tool's name: `[A-Za-z_][A-Za-z0-9_-]{0,63}` (what OpenAI-style function calling and
/// LFM2's template accept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ToolName(String);

impl ToolName {
    /// Checks and wraps a name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && name.len() <= 64;
        if ok {
            Ok(ToolName(name))
        } else {
            Err(ToolError::BadName(name))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ToolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the model is told about a tool: the function-calling shape LFM2's chat template
/// renders (`{"name", "description", "parameters"}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: ToolName,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments (an object schema).
    pub parameters: Value,
}

impl ToolSpec {
    /// A spec; the name is checked.
    pub fn new(name: &str, description: impl Into<String>, parameters: Value) -> Result<Self> {
        Ok(ToolSpec {
            name: ToolName::new(name)?,
            description: description.into(),
            parameters,
        })
    }
}

/// The future a tool call returns.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<Value>> + Send + 'a>>;

/// A tool the agent can call. The registry validates the arguments against
/// [`ToolSpec::parameters`] before `call`, applies the timeout and caps the output, so an
/// implementation does only its own work.
pub trait Tool: Send + Sync {
    /// Its description.
    fn spec(&self) -> &ToolSpec;
    /// Runs it on arguments that match the schema.
    fn call(&self, args: Value) -> ToolFuture<'_>;
}
