//! `--json-schema FILE | --regex RE | --grammar FILE.lark | --tools FILE [--json-schema
//! ANSWER]`, shared by `generate` and `constraint check`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::constraint::{ConstraintSpec, ToolCallSpec, DEFAULT_MAX_CALLS};

#[derive(Debug, Clone, Args)]
pub struct ConstraintArgs {
    /// Constrain the output to JSON valid under this JSON Schema file (with --tools: the
    /// final answer, offered beside the calls).
    #[arg(long, value_name = "FILE")]
    pub json_schema: Option<PathBuf>,
    /// Constrain the output to match this regular expression.
    #[arg(long, value_name = "RE", conflicts_with_all = ["json_schema", "grammar", "tools"])]
    pub regex: Option<String>,
    /// Constrain the output to this Lark grammar file.
    #[arg(long, value_name = "FILE.lark", conflicts_with_all = ["json_schema", "tools"])]
    pub grammar: Option<PathBuf>,
    /// Constrain the output to a call of these tools in LFM2's format
    /// (`<|tool_call_start|>[{"name": ..., "arguments": {...}}]<|tool_call_end|>`). FILE is a
    /// JSON array of `{"name", "parameters"}` or OpenAI-style `{"type": "function",
    /// "function": {...}}` tools.
    #[arg(long, value_name = "FILE")]
    pub tools: Option<PathBuf>,
    /// With --tools: most calls in one list.
    #[arg(long, value_name = "N", requires = "tools", default_value_t = DEFAULT_MAX_CALLS)]
    pub max_calls: usize,
}

impl ConstraintArgs {
    /// The spec, if any flag was given.
    pub fn spec(&self) -> Result<Option<ConstraintSpec>> {
        let schema = self
            .json_schema
            .as_ref()
            .map(|p| read_json("--json-schema", p))
            .transpose()?;
        if let Some(p) = &self.tools {
            let tools = ToolCallSpec::tools_from_json(&read_json("--tools", p)?)
                .with_context(|| format!("--tools {}", p.display()))?;
            let spec = ToolCallSpec {
                answer: schema,
                max_calls: self.max_calls,
                ..ToolCallSpec::new(tools)
            };
            return Ok(Some(ConstraintSpec::ToolCalls(spec)));
        }
        if let Some(v) = schema {
            return Ok(Some(ConstraintSpec::JsonSchema(v)));
        }
        if let Some(r) = &self.regex {
            return Ok(Some(ConstraintSpec::Regex(r.clone())));
        }
        if let Some(p) = &self.grammar {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("--grammar {}", p.display()))?;
            return Ok(Some(ConstraintSpec::Lark(text)));
        }
        Ok(None)
    }

    /// The flag that was given, for messages.
    pub fn flag(&self) -> String {
        match (&self.tools, &self.json_schema, &self.regex, &self.grammar) {
            (Some(p), _, _, _) => format!("--tools {}", p.display()),
            (_, Some(p), _, _) => format!("--json-schema {}", p.display()),
            (_, _, Some(r), _) => format!("--regex {r:?}"),
            (_, _, _, Some(p)) => format!("--grammar {}", p.display()),
            _ => String::new(),
        }
    }
}

fn read_json(flag: &str, p: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("{flag} {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{flag} {}: invalid JSON", p.display()))
}
