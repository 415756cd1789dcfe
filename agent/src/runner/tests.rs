use std::sync::Arc;

use lfm_tools::{Tool, ToolFuture};
use serde_json::json;

use super::*;

/// Plays back a script of assistant messages and records what it was asked.
struct Script {
    turns: Vec<String>,
    asked: Vec<usize>,
}

impl Script {
    fn new(turns: &[&str]) -> Self {
        Script {
            turns: turns.iter().rev().map(|s| s.to_string()).collect(),
            asked: Vec::new(),
        }
    }
}

/// The loop with the task spelled out, as the tests below use it.
async fn run(
    b: &mut dyn Backend,
    registry: &Registry,
    messages: Vec<Message>,
    answer_schema: Option<&Value>,
    limits: &Limits,
) -> RunOutcome {
    let task = RunTask {
        registry,
        answer_schema,
        check: None,
        narrow: None,
        limits,
        observer: None,
    };
    super::run(b, &task, messages).await
}

impl Backend for Script {
    fn complete(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        self.asked.push(req.messages.len());
        let text = self.turns.pop().ok_or("script ran out")?;
        Ok(Turn {
            completion_tokens: text.len() / 4 + 1,
            prompt_tokens: 10,
            text,
        })
    }
}

struct Lookup(ToolSpec);

impl Tool for Lookup {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call(&self, args: Value) -> ToolFuture<'_> {
        Box::pin(async move {
            Ok(json!({"owner": format!("team-{}", args["host"].as_str().unwrap_or("?"))}))
        })
    }
}

fn registry() -> Registry {
    let spec = ToolSpec::new(
        "lookup_host",
        "Who owns a host.",
        json!({"type": "object", "properties": {"host": {"type": "string"}}, "required": ["host"], "additionalProperties": false}),
    )
    .unwrap();
    let mut r = Registry::new();
    r.register(Arc::new(Lookup(spec))).unwrap();
    r
}

fn start() -> Vec<Message> {
    vec![
        Message::new(Role::System, "You triage tickets."),
        Message::new(Role::User, "db-1 is down"),
    ]
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"team": {"type": "string"}}, "required": ["team"], "additionalProperties": false})
}

#[tokio::test]
async fn calls_are_dispatched_and_the_answer_validated() {
    let mut b = Script::new(&[
        "<think>Find the owner.</think><|tool_call_start|>[lookup_host(host=\"db-1\")]<|tool_call_end|>",
        "<think>It is team-db-1.</think>{\"team\": \"team-db-1\"}",
    ]);
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(out.stop, StopReason::Answered);
    assert_eq!(out.answer, Some(json!({"team": "team-db-1"})));
    assert!(
        matches!(&out.steps[1], Step::ToolCall { name, ok: true, result, .. } if name == "lookup_host" && result == r#"{"owner":"team-db-1"}"#)
    );
    // The second turn saw the call and its result.
    assert_eq!(b.asked, [2, 4]);
    assert_eq!(out.messages[3].role, Role::Tool);
}

#[tokio::test]
async fn invalid_arguments_and_unknown_tools_go_back_to_the_model() {
    let mut b = Script::new(&[
        "<|tool_call_start|>[lookup_host(hostname=\"db-1\")]<|tool_call_end|>",
        "<|tool_call_start|>[delete_tickets(all=True)]<|tool_call_end|>",
        "<|tool_call_start|>[lookup_host(host=\"db-1\"]<|tool_call_end|>",
        "{\"team\": \"dba\"}",
    ]);
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(out.stop, StopReason::Answered);
    let errors: Vec<&str> = out
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::ToolCall {
                ok: false, result, ..
            } => Some(result.as_str()),
            Step::BadCall { error } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 3, "{:#?}", out.steps);
    assert!(errors[0].contains("invalid arguments for `lookup_host`"));
    assert!(errors[1].contains("unknown tool `delete_tickets`; available: lookup_host"));
    assert!(errors[2].contains("could not parse tool call"));
    // Each went back as a tool message.
    let tool_msgs = out.messages.iter().filter(|m| m.role == Role::Tool).count();
    assert_eq!(tool_msgs, 3);
}

#[tokio::test]
async fn bad_answers_are_sent_back_then_the_run_stops() {
    let mut b = Script::new(&["not json", "{\"team\": 3}", "{\"team\": 4}"]);
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert!(
        matches!(&out.stop, StopReason::InvalidAnswer { errors } if errors[0].contains("/team")),
        "{:?}",
        out.stop
    );
    assert_eq!(
        out.steps
            .iter()
            .filter(|s| matches!(s, Step::AnswerRejected { .. }))
            .count(),
        3
    );
    assert!(out
        .messages
        .iter()
        .any(|m| m.role == Role::User && m.content.contains("Your answer was not accepted")));

    // Without a schema any text is the answer; a fenced JSON answer is read.
    let mut b = Script::new(&["Restart it."]);
    let out = run(&mut b, &registry(), start(), None, &Limits::default()).await;
    assert_eq!(out.answer, Some(json!("Restart it.")));
    let mut b = Script::new(&["```json\n{\"team\": \"sre\"}\n```"]);
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(out.answer, Some(json!({"team": "sre"})));
}

#[tokio::test]
async fn the_same_call_is_redirected_once_then_stops_the_run() {
    let call = "<|tool_call_start|>[lookup_host(host=\"db-1\")]<|tool_call_end|>";
    let mut b = Script::new(&[call, call, call, "{\"team\": \"x\"}"]);
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(
        out.stop,
        StopReason::DoomLoop {
            call: r#"lookup_host({"host":"db-1"})"#.into()
        }
    );
    assert!(out
        .steps
        .iter()
        .any(|s| matches!(s, Step::Redirected { .. })));
    let dispatched = out
        .steps
        .iter()
        .filter(|s| matches!(s, Step::ToolCall { .. }))
        .count();
    assert_eq!(dispatched, 1);
}

#[tokio::test]
async fn repeating_thinking_stops_the_run() {
    let loop_text = "<think>I need to check the owner of the host first. I need to check the owner of the host first. I need to check the owner of the host first.</think>";
    let mut b = Script::new(&[loop_text]);
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(out.stop, StopReason::RepeatedThinking);

    let same = "<think>Let me think about who owns db-1 here.</think><|tool_call_start|>[lookup_host(host=\"db-2\")]<|tool_call_end|>";
    let same2 = "<think>Let me think about who owns db-1 here.</think><|tool_call_start|>[lookup_host(host=\"db-3\")]<|tool_call_end|>";
    let mut b = Script::new(&[same, same2]);
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(out.stop, StopReason::RepeatedThinking);
}

#[tokio::test]
async fn limits_stop_the_run() {
    let calls: Vec<String> = (0..20)
        .map(|i| format!("<|tool_call_start|>[lookup_host(host=\"h{i}\")]<|tool_call_end|>"))
        .collect();
    let refs: Vec<&str> = calls.iter().map(String::as_str).collect();
    let limits = Limits {
        max_steps: 3,
        ..Limits::default()
    };
    let out = run(&mut Script::new(&refs), &registry(), start(), None, &limits).await;
    assert_eq!(out.stop, StopReason::MaxSteps);
    assert_eq!(
        out.steps
            .iter()
            .filter(|s| matches!(s, Step::Generate { .. }))
            .count(),
        3
    );

    let limits = Limits {
        max_tokens: 30,
        ..Limits::default()
    };
    let out = run(&mut Script::new(&refs), &registry(), start(), None, &limits).await;
    assert_eq!(out.stop, StopReason::MaxTokens);
    assert!(out.completion_tokens >= 30);

    let limits = Limits {
        max_wall: Duration::ZERO,
        ..Limits::default()
    };
    let out = run(&mut Script::new(&refs), &registry(), start(), None, &limits).await;
    assert_eq!(out.stop, StopReason::WallTime);

    let out = run(
        &mut Script::new(&[]),
        &registry(),
        start(),
        None,
        &Limits::default(),
    )
    .await;
    assert_eq!(
        out.stop,
        StopReason::BackendError {
            message: "script ran out".into()
        }
    );
}

/// Reports a full context while any tool result is still in full, or always.
struct Tight {
    inner: Script,
    always: bool,
}

impl Backend for Tight {
    fn complete(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        let full = req
            .messages
            .iter()
            .any(|m| m.role == Role::Tool && m.content != COMPACTED);
        if self.always || full {
            return Err(BackendError::ContextFull {
                needed: 9000,
                limit: 8192,
            });
        }
        self.inner.complete(req)
    }
}

#[tokio::test]
async fn an_overflowing_conversation_compacts_the_oldest_tool_result_and_says_so() {
    let mut b = Tight {
        inner: Script::new(&[
            "<|tool_call_start|>[lookup_host(host=\"db-1\")]<|tool_call_end|>",
            "{\"team\": \"dba\"}",
        ]),
        always: false,
    };
    // The first turn has no tool result yet, so it fits; the second needs the compaction.
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(out.stop, StopReason::Answered, "{:#?}", out.steps);
    let compacted: Vec<&Step> = out
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Compacted { .. }))
        .collect();
    assert_eq!(
        compacted,
        [&Step::Compacted {
            message: 3,
            chars: r#"{"owner":"team-db-1"}"#.len()
        }]
    );
    assert_eq!(out.messages[3].content, COMPACTED);
    assert_eq!(out.messages[0].content, "You triage tickets.");

    // Nothing left to compact: the run stops and says why; the system turn is untouched.
    let mut b = Tight {
        inner: Script::new(&["{\"team\": \"dba\"}"]),
        always: true,
    };
    let out = run(&mut b, &registry(), start(), None, &Limits::default()).await;
    assert!(
        matches!(&out.stop, StopReason::ContextFull { message } if message.contains("8192")),
        "{:?}",
        out.stop
    );
    assert_eq!(out.messages, start());
}

#[tokio::test]
async fn the_task_check_sends_a_schema_valid_answer_back() {
    let mut b = Script::new(&["{\"team\": \"made-up\"}", "{\"team\": \"team-db-1\"}"]);
    let check = |answer: &Value, _: &[Step]| -> Vec<String> {
        if answer["team"] == "made-up" {
            vec!["/team: not a team any tool returned".to_string()]
        } else {
            Vec::new()
        }
    };
    let task = RunTask {
        registry: &registry(),
        answer_schema: Some(&schema()),
        check: Some(&check),
        narrow: None,
        limits: &Limits::default(),
        observer: None,
    };
    let out = super::run(&mut b, &task, start()).await;
    assert_eq!(out.answer, Some(json!({"team": "team-db-1"})));
    assert!(out
        .steps
        .iter()
        .any(|s| matches!(s, Step::AnswerRejected { errors } if errors[0].contains("not a team"))));
}

/// Refuses every answer schema up front.
struct Picky;

impl Backend for Picky {
    fn complete(&mut self, _: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        panic!("no turn may be asked for after prepare failed")
    }
    fn prepare(&mut self, _: &[&ToolSpec], _: Option<&Value>) -> Result<(), String> {
        Err("cannot enforce `$dynamicAnchor`".into())
    }
}

#[tokio::test]
async fn a_backend_that_cannot_enforce_the_schema_stops_the_run_before_any_turn() {
    let out = run(
        &mut Picky,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(
        out.stop,
        StopReason::BadAnswerSchema {
            message: "cannot enforce `$dynamicAnchor`".into()
        }
    );
    assert!(out.steps.is_empty());
}

/// Records the answer schema each turn was asked to decode under.
struct SchemaSpy {
    inner: Script,
    seen: Vec<Option<Value>>,
}

impl Backend for SchemaSpy {
    fn complete(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        self.seen.push(req.answer_schema.cloned());
        self.inner.complete(req)
    }
}

#[tokio::test]
async fn each_turn_decodes_under_the_narrowed_schema_and_the_answer_meets_the_task_schema() {
    let mut b = SchemaSpy {
        inner: Script::new(&[
            "<|tool_call_start|>[lookup_host(host=\"db-1\")]<|tool_call_end|>",
            "{\"team\": \"team-db-1\"}",
        ]),
        seen: Vec::new(),
    };
    // The narrowing lists what the tool results so far named.
    let narrow = |base: &Value, steps: &[Step]| {
        let mut s = base.clone();
        let seen: Vec<Value> = steps
            .iter()
            .filter_map(|st| match st {
                Step::ToolCall { result, .. } => Some(json!(result)),
                _ => None,
            })
            .collect();
        s["properties"]["team"] = json!({ "enum": seen });
        s
    };
    let task = RunTask {
        registry: &registry(),
        answer_schema: Some(&schema()),
        check: None,
        narrow: Some(&narrow),
        limits: &Limits::default(),
        observer: None,
    };
    let out = super::run(&mut b, &task, start()).await;
    assert_eq!(out.stop, StopReason::Answered);
    assert_eq!(b.seen.len(), 2);
    assert_eq!(
        b.seen[0].as_ref().unwrap()["properties"]["team"],
        json!({"enum": []})
    );
    let second = &b.seen[1].as_ref().unwrap()["properties"]["team"]["enum"];
    assert_eq!(second.as_array().map(Vec::len), Some(1), "{second}");
    // Without a narrowing the task's own schema goes to every turn.
    let mut b = SchemaSpy {
        inner: Script::new(&["{\"team\": \"x\"}"]),
        seen: Vec::new(),
    };
    let out = run(
        &mut b,
        &registry(),
        start(),
        Some(&schema()),
        &Limits::default(),
    )
    .await;
    assert_eq!(out.stop, StopReason::Answered);
    assert_eq!(b.seen, vec![Some(schema())]);
}

/// Records the steps it is told of; asks to stop once it has seen `stop_after` of them.
struct Watcher {
    seen: std::sync::Mutex<Vec<Step>>,
    stop_after: usize,
}

impl RunObserver for Watcher {
    fn step(&self, step: &Step) {
        self.seen.lock().unwrap().push(step.clone());
    }
    fn cancelled(&self) -> bool {
        self.seen.lock().unwrap().len() >= self.stop_after
    }
}

#[tokio::test]
async fn the_observer_sees_every_step_as_it_happens_and_can_stop_the_run() {
    let script = [
        "<think>Find the owner.</think><|tool_call_start|>[lookup_host(host=\"db-1\")]<|tool_call_end|>",
        "<think>It is team-db-1.</think>{\"team\": \"team-db-1\"}",
    ];
    let (reg, schema, limits) = (registry(), schema(), Limits::default());
    let watch = |stop_after| Watcher {
        seen: Default::default(),
        stop_after,
    };
    let task = |w| RunTask {
        registry: &reg,
        answer_schema: Some(&schema),
        check: None,
        narrow: None,
        limits: &limits,
        observer: Some(w),
    };

    let w = watch(usize::MAX);
    let out = super::run(&mut Script::new(&script), &task(&w), start()).await;
    assert_eq!(out.stop, StopReason::Answered);
    assert_eq!(*w.seen.lock().unwrap(), out.steps, "every step, in order");
    assert_eq!(out.steps.len(), 3, "turn, call, turn");

    // Stopped before the second turn: the first turn and its call ran, nothing after.
    let w = watch(2);
    let out = super::run(&mut Script::new(&script), &task(&w), start()).await;
    assert_eq!(out.stop, StopReason::Cancelled);
    assert_eq!(out.answer, None);
    assert_eq!(out.steps.len(), 2);
}
