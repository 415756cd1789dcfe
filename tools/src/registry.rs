//! The registry: tools by name, their compiled argument validators, and the call path every
//! tool goes through (validate, run under a timeout, cap the output).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::tool::{Tool, ToolName, ToolSpec};
use crate::{Result, ToolError};

/// Limits applied to every call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLimits {
    /// Wall time of one call (default 30 s).
    pub timeout: Duration,
    /// Most characters of the result's JSON text handed back (default 6,000); longer
    /// results are cut, with a marker saying so.
    pub max_output_chars: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            timeout: Duration::from_secs(30),
            max_output_chars: 6000,
        }
    }
}

/// The result of a call, as the model will read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallOutput {
    /// The tool's result.
    pub value: Value,
    /// Its JSON text, cut to the cap.
    pub text: String,
    /// Whether `text` was cut.
    pub truncated: bool,
}

struct Entry {
    tool: Arc<dyn Tool>,
    validator: Arc<jsonschema::Validator>,
}

/// Tools by name. Cheap to clone; [`Registry::only`] makes the restricted view a task gets.
#[derive(Clone, Default)]
pub struct Registry {
    tools: BTreeMap<ToolName, Arc<Entry>>,
    limits: CallLimits,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Registry {
    /// An empty registry with default limits.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Sets the limits of every call.
    pub fn with_limits(mut self, limits: CallLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits.
    pub fn limits(&self) -> &CallLimits {
        &self.limits
    }

    /// Adds a tool; its parameter schema must be an object schema that compiles
    /// (draft 2020-12).
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<()> {
        let spec = tool.spec();
        let name = spec.name.clone();
        if self.tools.contains_key(&name) {
            return Err(ToolError::Duplicate(name.to_string()));
        }
        let is_object = spec.parameters.get("type").and_then(Value::as_str) == Some("object");
        if !is_object {
            return Err(ToolError::BadSpec {
                tool: name.to_string(),
                why: "parameters must be a JSON Schema with \"type\": \"object\"".into(),
            });
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&spec.parameters)
            .map_err(|e| ToolError::BadSpec {
                tool: name.to_string(),
                why: e.to_string(),
            })?;
        self.tools.insert(
            name,
            Arc::new(Entry {
                tool,
                validator: Arc::new(validator),
            }),
        );
        Ok(())
    }

    /// Only the named tools (a task's allowlist). A name that is not registered is an error:
    /// a task must not silently run without a tool it declared.
    pub fn only(&self, names: &[&str]) -> Result<Registry> {
        let mut tools = BTreeMap::new();
        for n in names {
            let name = ToolName::new(*n)?;
            let entry = self.tools.get(&name).ok_or_else(|| self.unknown(n))?;
            tools.insert(name, Arc::clone(entry));
        }
        Ok(Registry {
            tools,
            limits: self.limits.clone(),
        })
    }

    /// The `k` tools most relevant to `request` (BM25 over names, descriptions and parameter
    /// names), plus every tool named in `always`; the whole registry when it holds at most
    /// [`crate::SELECT_ABOVE`] tools. Tools that match nothing are not offered, unless none
    /// match at all (then the first `k` by name).
    pub fn relevant(&self, request: &str, k: usize, always: &[&str]) -> Registry {
        if self.tools.len() <= crate::SELECT_ABOVE {
            return self.clone();
        }
        let specs = self.specs();
        let ranked = crate::select::rank(&specs, request);
        let any = ranked.first().is_some_and(|r| r.1 > 0.0);
        let mut tools = BTreeMap::new();
        for &(i, score) in ranked.iter().take(k) {
            if score > 0.0 || !any {
                let name = specs[i].name.clone();
                if let Some(e) = self.tools.get(&name) {
                    tools.insert(name, Arc::clone(e));
                }
            }
        }
        for a in always {
            if let Some((n, e)) = self.tools.iter().find(|(n, _)| n.as_str() == *a) {
                tools.insert(n.clone(), Arc::clone(e));
            }
        }
        Registry {
            tools,
            limits: self.limits.clone(),
        }
    }

    /// The specs, in name order, as the chat template renders them.
    pub fn specs(&self) -> Vec<&ToolSpec> {
        self.tools.values().map(|e| e.tool.spec()).collect()
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(ToolName::as_str).collect()
    }

    /// Whether a tool of that name is offered.
    pub fn contains(&self, name: &str) -> bool {
        ToolName::new(name).is_ok_and(|n| self.tools.contains_key(&n))
    }

    /// Checks arguments against a tool's schema without calling it.
    pub fn validate(&self, name: &str, args: &Value) -> Result<()> {
        let entry = self.entry(name)?;
        check(name, &entry.validator, args)
    }

    /// Validates `args`, runs the tool under the timeout and caps its output. Every error is
    /// one the agent can hand back to the model as the tool's response.
    pub async fn call(&self, name: &str, args: Value) -> Result<CallOutput> {
        let entry = self.entry(name)?;
        check(name, &entry.validator, &args)?;
        let ms = self.limits.timeout.as_millis() as u64;
        let value = tokio::time::timeout(self.limits.timeout, entry.tool.call(args))
            .await
            .map_err(|_| ToolError::Timeout {
                tool: name.to_string(),
                ms,
            })??;
        let (text, truncated) = cap(&value.to_string(), self.limits.max_output_chars);
        Ok(CallOutput {
            value,
            text,
            truncated,
        })
    }

    fn entry(&self, name: &str) -> Result<&Arc<Entry>> {
        ToolName::new(name)
            .ok()
            .and_then(|n| self.tools.get(&n))
            .ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> ToolError {
        ToolError::UnknownTool {
            name: name.to_string(),
            available: self.names().join(", "),
        }
    }
}

fn check(name: &str, validator: &jsonschema::Validator, args: &Value) -> Result<()> {
    let errors: Vec<String> = validator
        .iter_errors(args)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ToolError::InvalidArguments {
            tool: name.to_string(),
            errors,
        })
    }
}

/// Cuts `text` to `max` characters, with a marker naming how much was kept.
pub fn cap(text: &str, max: usize) -> (String, bool) {
    let total = text.chars().count();
    if total <= max {
        return (text.to_string(), false);
    }
    let kept: String = text.chars().take(max).collect();
    (
        format!("{kept}\n[... truncated: {max} of {total} characters shown]"),
        true,
    )
}
