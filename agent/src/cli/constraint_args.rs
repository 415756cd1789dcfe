//! `--json-schema FILE | --regex RE | --grammar FILE.lark`, shared by `generate` and
//! `constraint check`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::constraint::ConstraintSpec;

#[derive(Debug, Clone, Args)]
#[group(multiple = false)]
pub struct ConstraintArgs {
    /// Constrain the output to JSON valid under this JSON Schema file.
    #[arg(long, value_name = "FILE")]
    pub json_schema: Option<PathBuf>,
    /// Constrain the output to match this regular expression.
    #[arg(long, value_name = "RE")]
    pub regex: Option<String>,
    /// Constrain the output to this Lark grammar file.
    #[arg(long, value_name = "FILE.lark")]
    pub grammar: Option<PathBuf>,
}

impl ConstraintArgs {
    /// The spec, if any flag was given.
    pub fn spec(&self) -> Result<Option<ConstraintSpec>> {
        if let Some(p) = &self.json_schema {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--json-schema {}", p.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("--json-schema {}: invalid JSON", p.display()))?;
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
        match (&self.json_schema, &self.regex, &self.grammar) {
            (Some(p), _, _) => format!("--json-schema {}", p.display()),
            (_, Some(r), _) => format!("--regex {r:?}"),
            (_, _, Some(p)) => format!("--grammar {}", p.display()),
            _ => String::new(),
        }
    }
}
