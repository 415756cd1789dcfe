//! The engine backend on a synthetic model: runs finish within their limits, every answer
//! validates, thinking stays within its budget, and the session is reused (the system turn
//! is prefilled once for all runs; a later turn prefills only its new tokens).

use std::sync::Arc;

use lfm_agent::backend::{EngineBackend, EngineOptions};
use lfm_agent::runner::{run, Limits, RunTask, Step, StopReason};
use lfm_engine::folder::{LoadOptions, LoadedModel};
use lfm_engine::sampling::SamplingParams;
use lfm_engine::synth::{write_model_folder, DiskDtype, Preset};
use lfm_engine::text::{Message, Role};
use lfm_tools::builtin::CurrentTime;
use lfm_tools::Registry;
use serde_json::json;

fn backend(think: usize, seed: u64) -> (EngineBackend, Arc<LoadedModel>) {
    let tmp = tempfile::tempdir().unwrap();
    write_model_folder(Preset::Tiny, DiskDtype::F32, 0, tmp.path()).unwrap();
    let m = Arc::new(LoadedModel::load(tmp.path(), &LoadOptions::default()).unwrap());
    let b = EngineBackend::new(
        m.clone(),
        EngineOptions {
            think_budget: think,
            sampling: SamplingParams {
                temperature: 0.9,
                seed,
                ..SamplingParams::greedy()
            },
            context: 4096,
            prefill_chunk: 256,
            draft: None,
        },
    )
    .unwrap();
    (b, m)
}

#[tokio::test]
async fn runs_on_the_engine_finish_in_limits_and_answers_validate() {
    let mut reg = Registry::new();
    reg.register(Arc::new(CurrentTime::new().unwrap())).unwrap();
    let schema = json!({
        "type": "object",
        "properties": {"team": {"enum": ["sre", "dba"]}, "urgent": {"type": "boolean"}},
        "required": ["team", "urgent"],
        "additionalProperties": false
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    let limits = Limits {
        max_steps: 4,
        max_turn_tokens: 160,
        ..Limits::default()
    };
    let task = RunTask {
        registry: &reg,
        answer_schema: Some(&schema),
        check: None,
        narrow: None,
        limits: &limits,
        observer: None,
    };
    let think = 12;
    let (mut b, model) = backend(think, 7);
    let tok = model.tokenizer.as_ref().unwrap();
    let mut answered = 0;
    let mut first_prompts = Vec::new();
    for i in 0..4 {
        let messages = vec![
            Message::new(
                Role::System,
                "You route tickets. Output function calls as JSON.",
            ),
            Message::new(Role::User, format!("Ticket {i}: db-{i} is slow")),
        ];
        let out = run(&mut b, &task, messages).await;
        let turns: Vec<(usize, usize, &str)> = out
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Generate {
                    prompt_tokens,
                    completion_tokens,
                    text,
                    ..
                } => Some((*prompt_tokens, *completion_tokens, text.as_str())),
                _ => None,
            })
            .collect();
        assert!(turns.len() <= limits.max_steps);
        for (_, n, text) in &turns {
            assert!(*n <= limits.max_turn_tokens, "{n} tokens: {text}");
            // Thinking opens, stays within its budget, and closes.
            assert!(text.starts_with("<think>"), "{text}");
            assert!(text.contains("</think>"), "{text}");
        }
        first_prompts.push(turns[0].0);
        if let Some(second) = turns.get(1) {
            // The second turn extends the first exactly: only the messages after the first
            // turn (tool results) and their markers are prefilled, never the system turn or
            // the first turn's tokens again.
            let new: usize = out.messages[3..]
                .iter()
                .take_while(|m| m.role == Role::Tool)
                .map(|m| tok.encode(&m.content).unwrap().len() + 8)
                .sum();
            assert!(second.0 <= new + 8, "{} > {new}: {turns:?}", second.0);
        }
        match out.stop {
            StopReason::Answered => {
                let a = out.answer.unwrap();
                assert!(validator.is_valid(&a), "{a}");
                answered += 1;
            }
            StopReason::MaxSteps
            | StopReason::MaxTokens
            | StopReason::InvalidAnswer { .. }
            | StopReason::DoomLoop { .. }
            | StopReason::RepeatedThinking => {}
            other => panic!("unexpected stop {other:?}: {:#?}", out.steps),
        }
        // Calls under the grammar always parse and name an offered tool, unless the turn's
        // token budget cut them short.
        let mut last_turn = 0;
        for s in &out.steps {
            match s {
                Step::Generate {
                    completion_tokens, ..
                } => last_turn = *completion_tokens,
                Step::BadCall { .. } => {
                    assert!(last_turn >= limits.max_turn_tokens - 1, "{s:?}")
                }
                Step::ToolCall { name, .. } => assert_eq!(name, "current_time"),
                _ => {}
            }
        }
    }
    println!("{answered}/4 answered; first-turn prefill: {first_prompts:?}");
    // The system turn is prefilled by the first run only.
    assert!(
        first_prompts[1..].iter().all(|&p| p < first_prompts[0]),
        "{first_prompts:?}"
    );
    assert!(answered >= 1, "no run answered");
}

#[test]
fn the_turn_grammar_takes_the_call_tokens_as_single_tokens() {
    use lfm_agent::toolcall::turn_spec;
    use lfm_engine::constraint::ConstraintSpec;
    use lfm_engine::text::special::{TOOL_CALL_END, TOOL_CALL_START};
    let (_, model) = backend(0, 0);
    let compiler = model.constraint_compiler().unwrap();
    let mut reg = Registry::new();
    reg.register(Arc::new(CurrentTime::new().unwrap())).unwrap();
    let spec = turn_spec(&reg.specs(), Some(&json!({"type": "object"})), false);
    let mut m = compiler.compile(&ConstraintSpec::ToolCalls(spec)).unwrap();
    // The model's own call token opens a call; `{` opens the answer.
    assert!(m.allows(TOOL_CALL_START).unwrap());
    let tok = model.tokenizer.as_ref().unwrap();
    m.accept(TOOL_CALL_START).unwrap();
    for t in tok
        .encode(r#"[{"name": "current_time", "arguments": {}}]"#)
        .unwrap()
    {
        m.accept(t).unwrap();
    }
    assert!(m.allows(TOOL_CALL_END).unwrap());
    m.accept(TOOL_CALL_END).unwrap();
    assert!(m.is_complete());
}

/// A run whose caller gives up (a server task past its deadline) stops inside the turn, at
/// its next token, not when the turn ends: the observer's flag reaches the engine. Here the
/// flag is already raised while `cancelled()` lets the run start its turn, so a backend that
/// ignored the flag would generate the whole turn.
#[tokio::test]
async fn a_raised_cancel_flag_stops_the_engine_inside_the_turn() {
    use lfm_agent::runner::RunObserver;
    use std::sync::atomic::AtomicBool;
    struct GaveUp(AtomicBool);
    impl RunObserver for GaveUp {
        fn step(&self, _: &Step) {}
        fn cancel_flag(&self) -> Option<&AtomicBool> {
            Some(&self.0)
        }
    }
    let observer = GaveUp(AtomicBool::new(true));
    let reg = Registry::new();
    let limits = Limits {
        max_steps: 1,
        max_turn_tokens: 64,
        ..Limits::default()
    };
    let task = RunTask {
        registry: &reg,
        answer_schema: None,
        check: None,
        narrow: None,
        limits: &limits,
        observer: Some(&observer),
    };
    let (mut b, _) = backend(0, 3);
    let messages = vec![
        Message::new(Role::System, "Answer briefly."),
        Message::new(Role::User, "What is the time?"),
    ];
    let out = run(&mut b, &task, messages).await;
    match &out.stop {
        StopReason::BackendError { message } => assert!(message.contains("cancelled"), "{message}"),
        other => panic!("the turn was not cancelled: {other:?}: {:#?}", out.steps),
    }
    assert!(out.completion_tokens <= 1, "{}", out.completion_tokens);
}
