//! The agent loop: the model plans and calls tools until it gives a final answer.
//!
//! Each step asks the [`Backend`] for the assistant's next message, parses it
//! ([`crate::toolcall::parse_message`]), and either dispatches its tool calls through the
//! task's [`Registry`] (a failure, invalid arguments included, goes back to the model as the
//! tool's response) or takes it as the final answer, checked against the task's output schema
//! (an invalid answer is sent back with the errors, a bounded number of times). The run stops
//! at the first limit it meets (steps, generated tokens, wall time) or when it loops: the same
//! call with the same arguments a second time is answered with a redirect, a third time
//! stops the run; thinking that repeats a stretch or a whole earlier turn stops it. Every
//! step lands in the returned trace with its reason.
//!
//! The backend owns the model and its session state (the embedded engine prefills only the
//! new tokens of each step; a remote server gets the messages); the loop knows only messages.

mod guard;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use lfm_engine::text::{Message, Role};
use lfm_tools::{Registry, ToolSpec};
use serde::Serialize;
use serde_json::Value;

use crate::toolcall::parse_message;

/// What the backend is asked for.
#[derive(Debug)]
pub struct TurnRequest<'a> {
    /// The conversation so far.
    pub messages: &'a [Message],
    /// The tools on offer.
    pub tools: &'a [&'a ToolSpec],
    /// The schema the final answer must satisfy (a backend constrains the text after
    /// `</think>` when the model answers instead of calling a tool).
    pub answer_schema: Option<&'a Value>,
    /// Most tokens for this message.
    pub max_tokens: usize,
    /// The message must be a call of one of `tools` (OpenAI's `tool_choice: "required"`):
    /// a backend that constrains output constrains the whole body after thinking to a call.
    pub require_call: bool,
    /// Once raised, a backend that can stops the turn at its next token (an error): the
    /// run's caller gave up on it.
    pub cancel: Option<&'a AtomicBool>,
}

/// The backend's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The generated text (thinking, calls and answer as the model wrote them).
    pub text: String,
    /// Tokens prefilled for this turn (new tokens only, where state is reused).
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// Why a backend gave no turn.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendError {
    /// The rendered conversation plus the turn's token budget does not fit the context. The
    /// loop then compacts the oldest tool result and asks again.
    ContextFull {
        /// Tokens the prompt and the turn's budget need.
        needed: usize,
        /// The context.
        limit: usize,
    },
    /// Anything else (the message says what).
    Failed(String),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::ContextFull { needed, limit } => write!(
                f,
                "the conversation needs {needed} tokens with the turn's budget; the context holds {limit}"
            ),
            BackendError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<String> for BackendError {
    fn from(m: String) -> Self {
        BackendError::Failed(m)
    }
}

impl From<&str> for BackendError {
    fn from(m: &str) -> Self {
        BackendError::Failed(m.to_string())
    }
}

/// Produces assistant messages: the embedded engine, a remote server, or a script in tests.
pub trait Backend {
    /// The next assistant message.
    fn complete(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError>;

    /// Checks, before the first turn, that the backend can enforce what the run will ask of
    /// it (the embedded engine compiles its turn grammar: an answer schema it cannot enforce
    /// is refused here, naming the keyword, not after tokens were spent).
    fn prepare(
        &mut self,
        _tools: &[&ToolSpec],
        _answer_schema: Option<&Value>,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// A task's own check of a schema-valid answer, beyond the schema: returns the problems
/// (empty when the answer is good). It sees the steps so far, so it can check, for example,
/// that cited passages were really retrieved in this run. Problems go back to the model like
/// schema errors.
pub type AnswerCheck = dyn Fn(&Value, &[Step]) -> Vec<String> + Send + Sync;

/// A task's narrowing of the answer schema for the next turn, from the schema and the steps
/// so far: the constraint the backend enforces, so that what [`AnswerCheck`] would refuse
/// cannot be written (an `ask` answer may cite only the passages retrieved so far). The
/// answer is still validated against the task's own schema and check.
pub type AnswerNarrow = dyn Fn(&Value, &[Step]) -> Value + Send + Sync;

/// What one run is: the tools, what the answer must be, and the limits.
#[derive(Clone, Copy)]
pub struct RunTask<'a> {
    /// The task's tools (already narrowed to the ones it declared).
    pub registry: &'a Registry,
    /// The schema the final answer must satisfy; `None` takes any text.
    pub answer_schema: Option<&'a Value>,
    /// A check beyond the schema.
    pub check: Option<&'a AnswerCheck>,
    /// The schema each turn's answer is constrained to, when it is narrower than
    /// `answer_schema`.
    pub narrow: Option<&'a AnswerNarrow>,
    /// The limits.
    pub limits: &'a Limits,
    /// Told of each step as it happens, and asked before each turn whether to stop.
    pub observer: Option<&'a dyn RunObserver>,
}

/// Watches a run: each step as it is taken (the server streams them), and a way to stop it
/// between turns (the client went away).
pub trait RunObserver: Send + Sync {
    /// A step was taken.
    fn step(&self, step: &Step);
    /// Whether the run should stop before its next turn.
    fn cancelled(&self) -> bool {
        false
    }
    /// A flag the backend watches during a turn: raised, the turn stops at its next token.
    fn cancel_flag(&self) -> Option<&AtomicBool> {
        None
    }
}

/// The text a compacted tool result is replaced with.
pub const COMPACTED: &str = "[this tool result was removed to fit the context]";

/// Limits of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most model turns.
    pub max_steps: usize,
    /// Most generated tokens over the run.
    pub max_tokens: usize,
    /// Most tokens per turn.
    pub max_turn_tokens: usize,
    /// Wall time.
    pub max_wall: Duration,
    /// Final answers that fail the schema and are sent back before the run stops.
    pub answer_retries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 8,
            max_tokens: 8192,
            max_turn_tokens: 1024,
            max_wall: Duration::from_secs(300),
            answer_retries: 2,
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// A final answer (valid under the schema, if there is one).
    Answered,
    /// `max_steps` turns without an answer.
    MaxSteps,
    /// `max_tokens` generated without an answer.
    MaxTokens,
    /// `max_wall` passed.
    WallTime,
    /// The observer asked to stop (the client went away).
    Cancelled,
    /// The same call a third time.
    DoomLoop {
        /// The call, `name(args)`.
        call: String,
    },
    /// Thinking that repeats itself.
    RepeatedThinking,
    /// The answer failed the schema after every retry.
    InvalidAnswer {
        /// The last answer's errors.
        errors: Vec<String>,
    },
    /// The task's answer schema does not compile, or the backend cannot enforce it (checked
    /// before the first turn).
    BadAnswerSchema {
        /// The compiler's message.
        message: String,
    },
    /// The backend failed.
    BackendError {
        /// Its message.
        message: String,
    },
    /// The conversation does not fit the context even with every tool result compacted.
    ContextFull {
        /// The backend's message.
        message: String,
    },
}

/// One entry of the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A model turn.
    Generate {
        /// Tokens prefilled.
        prompt_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
        /// Milliseconds.
        ms: u64,
        /// The text.
        text: String,
    },
    /// A dispatched call.
    ToolCall {
        /// The tool.
        name: String,
        /// Its arguments.
        arguments: Value,
        /// The result's text, or the error handed to the model.
        result: String,
        /// Whether it succeeded.
        ok: bool,
        /// Whether the result was cut at the cap.
        truncated: bool,
        /// Milliseconds.
        ms: u64,
    },
    /// A repeated call answered with a redirect instead of running it again.
    Redirected {
        /// The call.
        call: String,
    },
    /// Text in a call region that did not parse, sent back to the model.
    BadCall {
        /// The parser's message.
        error: String,
    },
    /// A final answer that failed the schema or the task's check, sent back.
    AnswerRejected {
        /// The errors.
        errors: Vec<String>,
    },
    /// A tool result replaced by [`COMPACTED`] because the conversation did not fit.
    Compacted {
        /// Its index in the conversation.
        message: usize,
        /// Characters removed.
        chars: usize,
    },
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOutcome {
    /// Why it ended.
    pub stop: StopReason,
    /// The final answer: the parsed JSON under a schema, else the text as a JSON string.
    pub answer: Option<Value>,
    /// What happened, in order.
    pub steps: Vec<Step>,
    /// The conversation at the end.
    pub messages: Vec<Message>,
    /// Tokens generated over the run.
    pub completion_tokens: usize,
    /// Tokens prefilled over the run.
    pub prompt_tokens: usize,
}

/// Runs one task from `messages` (system and user turns) until an answer or a limit.
pub async fn run(
    backend: &mut dyn Backend,
    task: &RunTask<'_>,
    messages: Vec<Message>,
) -> RunOutcome {
    let mut out = RunOutcome {
        stop: StopReason::MaxSteps,
        answer: None,
        steps: Vec::new(),
        messages,
        completion_tokens: 0,
        prompt_tokens: 0,
    };
    let (stop, answer) = drive(backend, task, &mut out).await;
    out.stop = stop;
    out.answer = answer;
    out
}

/// Records a step and tells the observer.
fn push_step(out: &mut RunOutcome, observer: Option<&dyn RunObserver>, step: Step) {
    if let Some(o) = observer {
        o.step(&step);
    }
    out.steps.push(step);
}

/// The loop itself: fills `out`'s steps, messages and token counts, and returns why it
/// stopped and the answer.
async fn drive(
    backend: &mut dyn Backend,
    task: &RunTask<'_>,
    out: &mut RunOutcome,
) -> (StopReason, Option<Value>) {
    let RunTask {
        registry,
        answer_schema,
        check,
        narrow,
        limits,
        observer,
    } = *task;
    let started = Instant::now();
    let specs = registry.specs();
    let validator = match answer_schema.map(|s| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(s)
    }) {
        Some(Err(e)) => {
            let message = format!("the answer schema does not compile: {e}");
            return (StopReason::BadAnswerSchema { message }, None);
        }
        Some(Ok(v)) => Some(v),
        None => None,
    };
    if let Err(message) = backend.prepare(&specs, answer_schema) {
        return (StopReason::BadAnswerSchema { message }, None);
    }
    let mut guard = guard::LoopGuard::default();
    let mut rejected = 0usize;
    for _ in 0..limits.max_steps {
        if started.elapsed() > limits.max_wall {
            return (StopReason::WallTime, None);
        }
        if observer.is_some_and(|o| o.cancelled()) {
            return (StopReason::Cancelled, None);
        }
        let left = limits.max_tokens.saturating_sub(out.completion_tokens);
        if left == 0 {
            return (StopReason::MaxTokens, None);
        }
        let t = Instant::now();
        let narrowed = match (narrow, answer_schema) {
            (Some(f), Some(s)) => Some(f(s, &out.steps)),
            _ => None,
        };
        let turn = loop {
            let req = TurnRequest {
                messages: &out.messages,
                tools: &specs,
                answer_schema: narrowed.as_ref().or(answer_schema),
                max_tokens: left.min(limits.max_turn_tokens),
                require_call: false,
                cancel: observer.and_then(|o| o.cancel_flag()),
            };
            match backend.complete(&req) {
                Ok(turn) => break turn,
                Err(e @ BackendError::ContextFull { .. }) => {
                    // Explicit, traced compaction: the oldest tool result not yet compacted.
                    let Some(i) = out
                        .messages
                        .iter()
                        .position(|m| m.role == Role::Tool && m.content != COMPACTED)
                    else {
                        let message = e.to_string();
                        return (StopReason::ContextFull { message }, None);
                    };
                    let chars = out.messages[i].content.chars().count();
                    out.messages[i].content = COMPACTED.to_string();
                    push_step(out, observer, Step::Compacted { message: i, chars });
                }
                Err(BackendError::Failed(message)) => {
                    return (StopReason::BackendError { message }, None)
                }
            }
        };
        out.completion_tokens += turn.completion_tokens;
        out.prompt_tokens += turn.prompt_tokens;
        push_step(
            out,
            observer,
            Step::Generate {
                prompt_tokens: turn.prompt_tokens,
                completion_tokens: turn.completion_tokens,
                ms: t.elapsed().as_millis() as u64,
                text: turn.text.clone(),
            },
        );
        if guard.thinking_repeats(&turn.text) {
            out.messages.push(Message::new(Role::Assistant, turn.text));
            return (StopReason::RepeatedThinking, None);
        }
        let parsed = parse_message(&turn.text, &|n| registry.contains(n));
        out.messages.push(Message::new(Role::Assistant, turn.text));
        if !parsed.errors.is_empty() && parsed.calls.is_empty() {
            for error in parsed.errors {
                out.messages.push(tool_error(&error));
                push_step(out, observer, Step::BadCall { error });
            }
            continue;
        }
        if !parsed.calls.is_empty() {
            for call in parsed.calls {
                let arguments = Value::Object(call.arguments);
                let key = format!("{}({})", call.name, arguments);
                match guard.seen_call(&key) {
                    guard::Repeat::First => {}
                    guard::Repeat::Second => {
                        push_step(out, observer, Step::Redirected { call: key });
                        out.messages.push(tool_error(&format!(
                            "You already called {} with these arguments; its result is above. Use it to answer, or call something different.",
                            call.name
                        )));
                        continue;
                    }
                    guard::Repeat::Third => return (StopReason::DoomLoop { call: key }, None),
                }
                let t = Instant::now();
                let (result, ok, truncated) =
                    match registry.call(&call.name, arguments.clone()).await {
                        Ok(o) => (o.text, true, o.truncated),
                        Err(e) => (tool_error(&e.to_string()).content, false, false),
                    };
                push_step(
                    out,
                    observer,
                    Step::ToolCall {
                        name: call.name,
                        arguments,
                        result: result.clone(),
                        ok,
                        truncated,
                        ms: t.elapsed().as_millis() as u64,
                    },
                );
                out.messages.push(Message::new(Role::Tool, result));
            }
            continue;
        }
        // A final answer.
        let content = parsed.content;
        let Some(v) = &validator else {
            return (StopReason::Answered, Some(Value::String(content)));
        };
        let errors = match serde_json::from_str::<Value>(strip_fence(&content)) {
            Ok(answer) => {
                let mut errors: Vec<String> = v
                    .iter_errors(&answer)
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                if errors.is_empty() {
                    if let Some(check) = check {
                        errors = check(&answer, &out.steps);
                    }
                }
                if errors.is_empty() {
                    return (StopReason::Answered, Some(answer));
                }
                errors
            }
            Err(e) => vec![format!("the answer is not JSON: {e}")],
        };
        push_step(
            out,
            observer,
            Step::AnswerRejected {
                errors: errors.clone(),
            },
        );
        if rejected == limits.answer_retries {
            return (StopReason::InvalidAnswer { errors }, None);
        }
        rejected += 1;
        out.messages.push(Message::new(
            Role::User,
            format!(
                "Your answer was not accepted: {}. Answer again with JSON only.",
                errors.join("; ")
            ),
        ));
    }
    (StopReason::MaxSteps, None)
}

/// A `tool` message carrying an error for the model: `{"error": "..."}`.
fn tool_error(message: &str) -> Message {
    Message::new(
        Role::Tool,
        serde_json::json!({ "error": message }).to_string(),
    )
}

/// The JSON inside a ```json fence, or the text.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests;
