//! The agent behind `POST /v1/agent/tasks` (`serve --tasks`): the same task code as the
//! `triage`, `ask` and `extract` commands, with the server's model, the config's tools,
//! limits and index, and traces like any run.

use anyhow::Result;
use lfm_agent::runner::{RunObserver, RunOutcome};
use lfm_agent::serve::openai::ApiError;
use lfm_agent::serve::{TaskRequest, TaskRunner};
use serde_json::{json, Value};

use super::agent_args::{stop_name, Agent};
use super::extract::{windows, ExtractSetup};
use super::triage::TriageSetup;

/// Runs one task at a time per backend of the agent's pool (one: tasks wait their turn).
pub struct AgentTasks {
    agent: Agent,
    triage: TriageSetup,
}

impl AgentTasks {
    /// Tasks over `agent`, with the triage setup built once.
    pub fn new(agent: Agent) -> Result<AgentTasks> {
        let triage = TriageSetup::new(&agent, None)?;
        Ok(AgentTasks { agent, triage })
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError {
        status: 500,
        message: format!("{e:#}"),
        param: None,
    }
}

/// A run's result body.
fn outcome(task: &str, run: i64, out: &RunOutcome) -> Value {
    json!({
        "task": task,
        "run": run,
        "stop": stop_name(&out.stop),
        "answer": out.answer,
        "steps": out.steps,
        "usage": {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens},
    })
}

fn object_schema(v: &Option<Value>, param: &str) -> Result<Option<Value>, ApiError> {
    match v {
        None => Ok(None),
        Some(s @ Value::Object(_)) => {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(s)
                .map_err(|e| ApiError::bad(param, format!("not a valid JSON Schema: {e}")))?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ApiError::bad(param, "must be a JSON Schema object")),
    }
}

impl TaskRunner for AgentTasks {
    fn run(&self, req: &TaskRequest, observer: &dyn RunObserver) -> Result<Value, ApiError> {
        let agent = &self.agent;
        let schema = object_schema(&req.schema, "schema")?;
        match req.task.as_str() {
            "triage" => {
                let ticket = match &req.input {
                    Value::Object(_) => req.input.clone(),
                    Value::String(s) if !s.trim().is_empty() => json!({ "body": s }),
                    _ => {
                        return Err(ApiError::bad(
                            "input",
                            "a ticket: an object of its fields, or its text",
                        ))
                    }
                };
                let id = ticket["id"].as_str().unwrap_or("api").to_string();
                let custom;
                let setup = match schema {
                    Some(s) => {
                        custom = TriageSetup::new(agent, Some(s)).map_err(internal)?;
                        &custom
                    }
                    None => &self.triage,
                };
                let (out, run) = setup
                    .run(agent, &id, &ticket, Some(observer))
                    .map_err(internal)?;
                Ok(outcome("triage", run, &out))
            }
            "ask" => {
                let Some(q) = req.input.as_str().filter(|q| !q.trim().is_empty()) else {
                    return Err(ApiError::bad("input", "the question, a non-empty string"));
                };
                if agent.retriever.is_none() {
                    return Err(ApiError::bad(
                        "task",
                        "ask needs an index: start serve with --docs DIR (or index.docs in lfm-agent.toml)",
                    ));
                }
                let k = req.k.unwrap_or(4).clamp(1, 64);
                let (out, run) =
                    super::ask::ask(agent, q, k, schema, Some(observer)).map_err(internal)?;
                Ok(outcome("ask", run, &out))
            }
            "extract" => {
                let Some(text) = req.input.as_str().filter(|t| !t.trim().is_empty()) else {
                    return Err(ApiError::bad("input", "the log text, a non-empty string"));
                };
                let Some(event) = schema else {
                    return Err(ApiError::bad(
                        "schema",
                        "extract needs the JSON Schema of one event",
                    ));
                };
                let name = req.name.clone().unwrap_or_else(|| "request".into());
                let setup = ExtractSetup::new(agent, &event).map_err(internal)?;
                let mut windows_out = Vec::new();
                let mut events = Vec::new();
                for w in windows(agent, text, None) {
                    let input = format!("{name}:{}-{}", w.first_line, w.last_line);
                    let (out, run) = setup
                        .run(agent, &name, &w, &input, Some(observer))
                        .map_err(internal)?;
                    let found = out.answer.as_ref().and_then(|a| a["events"].as_array());
                    windows_out.push(json!({
                        "first_line": w.first_line, "last_line": w.last_line, "run": run,
                        "stop": stop_name(&out.stop), "events": found.map_or(0, Vec::len),
                    }));
                    events.extend(found.into_iter().flatten().cloned());
                    if observer.cancelled() {
                        break;
                    }
                }
                Ok(json!({"task": "extract", "windows": windows_out, "events": events}))
            }
            other => Err(ApiError::bad("task", format!("unknown task `{other}`"))),
        }
    }
}
