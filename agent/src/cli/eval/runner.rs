//! Running one case: the task code a user runs (`triage`, `ask`, `extract`; for tool calls,
//! one model turn that must call a tool), turned into an [`Observation`] for the scorer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use lfm_agent::runner::{BackendError, RunOutcome, Step, StopReason, TurnRequest};
use lfm_agent::toolcall::parse_message;
use lfm_agent::trace::RunMeta;
use lfm_engine::text::{Message, Role};
use lfm_evals::score::{Cited, Observation};
use lfm_evals::{Case, Suite, TaskKind};
use lfm_tools::ToolSpec;
use serde_json::{json, Value};

use super::super::agent_args::{stop_name, Agent};
use super::super::extract::{windows, ExtractSetup};
use super::super::triage::TriageSetup;

/// What a suite's cases share, set up once.
pub enum Runner {
    Triage {
        setup: TriageSetup,
        citation: Option<String>,
        files: Files,
    },
    Ask {
        schema: Option<Value>,
        k: usize,
        files: Files,
    },
    Extract(ExtractSetup),
    ToolCalls {
        specs: Vec<ToolSpec>,
        system: String,
    },
}

/// Indexed files: display path -> canonical path, to resolve citations.
pub type Files = BTreeMap<String, PathBuf>;

/// The system prompt of a tool-calls suite that sets none.
const TOOL_SYSTEM: &str = "You are a helpful assistant with tools. Answer the request by calling the one tool that serves it, with the arguments the request gives. Output function calls as JSON.";

impl Runner {
    pub fn new(agent: &Agent, suite: &Suite, k: usize) -> Result<Runner> {
        let files = || -> Result<Files> {
            let Some(r) = &agent.retriever else {
                return Ok(Files::new());
            };
            Ok(r.files()?
                .into_iter()
                .map(|(display, abs)| {
                    let abs = std::fs::canonicalize(&abs).unwrap_or(abs);
                    (display, abs)
                })
                .collect())
        };
        Ok(match suite.task {
            TaskKind::Triage => Runner::Triage {
                setup: TriageSetup::new(agent, suite.schema.clone())?,
                citation: suite.scoring.citation.clone(),
                files: files()?,
            },
            TaskKind::Ask => Runner::Ask {
                schema: suite.schema.clone(),
                k,
                files: files()?,
            },
            TaskKind::Extract => {
                let event = suite
                    .schema
                    .as_ref()
                    .context("an extract suite needs the schema of one record")?;
                Runner::Extract(ExtractSetup::new(agent, event)?)
            }
            TaskKind::ToolCalls => Runner::ToolCalls {
                specs: suite
                    .tools
                    .iter()
                    .map(|t| ToolSpec::new(&t.name, t.description.clone(), t.parameters.clone()))
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("suite {}: tools", suite.name))?,
                system: suite
                    .system
                    .clone()
                    .unwrap_or_else(|| TOOL_SYSTEM.to_string()),
            },
        })
    }

    /// Runs `case` and says what came back.
    pub fn observe(&self, agent: &Agent, case: &Case) -> Result<Observation> {
        let t0 = Instant::now();
        let mut obs = match self {
            Runner::Triage {
                setup,
                citation,
                files,
            } => {
                let (out, id) = setup.run(agent, &case.id, &case.input, None)?;
                let mut obs = observation(&out, id);
                if let (Some(field), Some(record)) = (citation, &obs.output) {
                    if let Some(cid) = record.get(field).and_then(Value::as_str) {
                        obs.cited = vec![resolve(agent, files, cid)];
                    }
                }
                obs
            }
            Runner::Ask { schema, k, files } => {
                let question = case.input["question"].as_str().unwrap_or_default();
                let (out, id) = super::super::ask::ask(agent, question, *k, schema.clone(), None)?;
                let mut obs = observation(&out, id);
                if let Some(list) = obs.output.as_ref().and_then(|o| o["citations"].as_array()) {
                    obs.cited = list
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|c| resolve(agent, files, c))
                        .collect();
                }
                obs
            }
            Runner::Extract(setup) => extract(agent, setup, case)?,
            Runner::ToolCalls { specs, system } => tool_call(agent, specs, system, case)?,
        };
        obs.latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
        Ok(obs)
    }
}

/// The run-level facts of one loop run.
fn observation(out: &RunOutcome, run_id: i64) -> Observation {
    let mut o = Observation {
        output: out
            .answer
            .clone()
            .filter(|_| out.stop == StopReason::Answered),
        stop: stop_name(&out.stop),
        error: stop_detail(&out.stop),
        doom_loop: matches!(
            out.stop,
            StopReason::DoomLoop { .. } | StopReason::RepeatedThinking
        ),
        prompt_tokens: out.prompt_tokens,
        completion_tokens: out.completion_tokens,
        runs: vec![run_id],
        ..Observation::default()
    };
    for s in &out.steps {
        if let Step::Generate { ms, .. } = s {
            o.steps += 1;
            o.model_ms += *ms as f64;
        }
    }
    o
}

fn stop_detail(stop: &StopReason) -> Option<String> {
    match stop {
        StopReason::Answered => None,
        StopReason::DoomLoop { call } => Some(format!("repeated call {call}")),
        StopReason::InvalidAnswer { errors } => Some(errors.join("; ")),
        StopReason::BadAnswerSchema { message }
        | StopReason::BackendError { message }
        | StopReason::ContextFull { message } => Some(message.clone()),
        other => Some(stop_name(other)),
    }
}

/// A cited id as a passage: `path#N` through the index, or `path#La-Lb` as written.
fn resolve(agent: &Agent, files: &Files, id: &str) -> Cited {
    let mut c = Cited {
        id: id.to_string(),
        path: None,
        lines: None,
    };
    if let Some(Ok(Some(chunk))) = agent.retriever.as_ref().map(|r| r.chunk(id)) {
        c.path = files.get(&chunk.path).cloned();
        c.lines = Some((chunk.line_start, chunk.line_end));
        return c;
    }
    if let Some((path, range)) = id.rsplit_once("#L") {
        if let Some((a, b)) = range.split_once("-L") {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                c.path = files.get(path).cloned();
                c.lines = Some((a, b));
            }
        }
    }
    c
}

/// Every window of the case's log; the output is all their events, or none when a window
/// gave no answer.
fn extract(agent: &Agent, setup: &ExtractSetup, case: &Case) -> Result<Observation> {
    let name = case.input["file"].as_str().unwrap_or(&case.id).to_string();
    let text = case.input["text"].as_str().unwrap_or_default();
    let mut obs = Observation {
        stop: "answered".into(),
        output: Some(Value::Array(Vec::new())),
        ..Observation::default()
    };
    for w in windows(agent, text, None) {
        let input = format!("{}:{name}:{}-{}", case.id, w.first_line, w.last_line);
        let (out, id) = setup.run(agent, &name, &w, &input, None)?;
        let o = observation(&out, id);
        obs.steps += o.steps;
        obs.model_ms += o.model_ms;
        obs.prompt_tokens += o.prompt_tokens;
        obs.completion_tokens += o.completion_tokens;
        obs.doom_loop |= o.doom_loop;
        obs.runs.extend(o.runs);
        match (o.output, &mut obs.output) {
            (Some(Value::Object(mut a)), Some(Value::Array(all))) => {
                if let Some(Value::Array(events)) = a.remove("events") {
                    all.extend(events);
                }
            }
            _ => {
                obs.output = None;
                obs.stop = o.stop;
                obs.error = o.error;
                break;
            }
        }
    }
    Ok(obs)
}

/// One turn that must call one of `specs`; the output is the first call.
fn tool_call(agent: &Agent, specs: &[ToolSpec], system: &str, case: &Case) -> Result<Observation> {
    let request = case.input["request"].as_str().unwrap_or_default();
    let messages = vec![
        Message::new(Role::System, system.to_string()),
        Message::new(Role::User, request.to_string()),
    ];
    let tools: Vec<&ToolSpec> = specs.iter().collect();
    let req = TurnRequest {
        messages: &messages,
        tools: &tools,
        answer_schema: None,
        max_tokens: agent.config.limits.max_turn_tokens,
        require_call: true,
        cancel: None,
    };
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let t = Instant::now();
    let turn = agent.with_backend(|b| b.complete(&req))?;
    let ms = t.elapsed().as_millis() as u64;
    let budget = req.max_tokens;
    let mut outcome = RunOutcome {
        stop: StopReason::Answered,
        answer: None,
        steps: Vec::new(),
        messages,
        completion_tokens: 0,
        prompt_tokens: 0,
    };
    match turn {
        Ok(turn) => {
            let parsed = parse_message(&turn.text, &|n| specs.iter().any(|s| s.name.as_str() == n));
            outcome.answer = parsed
                .calls
                .first()
                .map(|c| json!({"name": c.name, "arguments": c.arguments}));
            if outcome.answer.is_none() {
                outcome.stop = if turn.completion_tokens >= budget {
                    // Cut inside the call by the turn's token budget.
                    StopReason::MaxTokens
                } else {
                    StopReason::BackendError {
                        message: format!("no tool call in the turn: {}", parsed.errors.join("; ")),
                    }
                };
            }
            outcome.prompt_tokens = turn.prompt_tokens;
            outcome.completion_tokens = turn.completion_tokens;
            outcome.steps.push(Step::Generate {
                prompt_tokens: turn.prompt_tokens,
                completion_tokens: turn.completion_tokens,
                ms,
                text: turn.text.clone(),
            });
            outcome
                .messages
                .push(Message::new(Role::Assistant, turn.text));
        }
        Err(e) => {
            outcome.stop = match e {
                BackendError::ContextFull { .. } => StopReason::ContextFull {
                    message: e.to_string(),
                },
                BackendError::Failed(message) => StopReason::BackendError { message },
            };
        }
    }
    let meta = RunMeta {
        task: "tool-calls".into(),
        model: agent.model_name.clone(),
        input: case.id.clone(),
        started_ms,
        wall_ms: ms as i64,
    };
    let id = agent.record(&meta, &outcome)?;
    Ok(observation(&outcome, id))
}
