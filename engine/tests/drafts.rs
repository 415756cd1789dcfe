//! Prompt-lookup drafts checked in one pass (`GenerateOptions::draft`): greedy output, the
//! stream, the finish reason and the session's tokens are the same as decoding one token at
//! a time, unconstrained and under a JSON schema, with stop strings and `max_tokens` cutting
//! inside a draft; and drafts are taken. The model is the micro GGUF fixture: with a 512-token
//! vocabulary its random weights fall into loops that drafts predict, so the taking path runs
//! (a 65,536-token random model seldom repeats itself).

use std::path::Path;
use std::sync::OnceLock;

use lfm_engine::constraint::{ConstraintCompiler, ConstraintSpec};
use lfm_engine::folder::{LoadOptions, LoadedModel};
use lfm_engine::generate::{generate, generate_constrained, GenerateOptions, Generation};
use lfm_engine::lookup::DraftOptions;
use lfm_engine::sampling::SamplingParams;
use lfm_engine::session::Session;
use serde_json::json;

/// Log text that repeats itself, as extraction prompts do.
const LOG: &str = "2026-12-05T10:00:01Z db-1 ERROR disk /var full\n2026-12-05T10:00:02Z db-2 ERROR disk /var full\n2026-12-05T10:00:03Z db-3 ERROR disk /var full\n2026-12-05T10:00:04Z db-4 ERROR disk";

fn opts(max_tokens: usize, draft: bool, stop: &[&str]) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampling: SamplingParams::greedy(),
        stop_tokens: vec![],
        stop_strings: stop.iter().map(|s| s.to_string()).collect(),
        draft: draft.then(DraftOptions::default),
        ..Default::default()
    }
}

type Model = (LoadedModel, ConstraintCompiler);

fn load(file: &str) -> Model {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(file);
    let m = LoadedModel::load(&p, &LoadOptions::default()).unwrap();
    let c = m.constraint_compiler().unwrap();
    (m, c)
}

fn micro() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| load("micro-f16.gguf"))
}

/// The generation, what was streamed, and the session's tokens afterwards.
fn run(
    prompt: &str,
    o: &GenerateOptions,
    schema: Option<&serde_json::Value>,
) -> (Generation, String, Vec<u32>) {
    run_on(micro(), prompt, o, schema)
}

fn run_on(
    (m, c): &Model,
    prompt: &str,
    o: &GenerateOptions,
    schema: Option<&serde_json::Value>,
) -> (Generation, String, Vec<u32>) {
    let tok = m.tokenizer.as_ref().unwrap();
    let ids = tok.encode(prompt).unwrap();
    let mut s = Session::new(m.model.clone(), 4096).unwrap();
    let mut streamed = String::new();
    let g = match schema {
        None => generate(&mut s, Some(tok), &ids, o, &mut |p| streamed.push_str(p)).unwrap(),
        Some(sch) => {
            let mut matcher = c.compile(&ConstraintSpec::JsonSchema(sch.clone())).unwrap();
            generate_constrained(&mut s, Some(tok), &ids, o, &mut matcher, &mut |p| {
                streamed.push_str(p)
            })
            .unwrap()
        }
    };
    (g, streamed, s.tokens().to_vec())
}

fn same(a: &(Generation, String, Vec<u32>), b: &(Generation, String, Vec<u32>), what: &str) {
    assert_eq!(a.0.tokens, b.0.tokens, "{what}: tokens");
    assert_eq!(a.0.text, b.0.text, "{what}: text");
    assert_eq!(a.0.finish_reason, b.0.finish_reason, "{what}: finish");
    assert_eq!(
        a.0.constraint_complete, b.0.constraint_complete,
        "{what}: complete"
    );
    assert_eq!(a.1, b.1, "{what}: stream");
    assert_eq!(a.2, b.2, "{what}: session tokens");
}

#[test]
fn greedy_output_is_the_same_with_drafts_and_drafts_are_taken() {
    let mut accepted = 0;
    // Consecutive limits: drafts are 4 tokens long, so some of these cut inside one.
    let cuts = (60..69).map(|n| (LOG, n));
    let others = [
        (LOG, 160),
        (LOG, 7),
        ("hello hello hello hello", 96),
        ("x", 64),
    ];
    for (prompt, max) in others.into_iter().chain(cuts) {
        let plain = run(prompt, &opts(max, false, &[]), None);
        let drafted = run(prompt, &opts(max, true, &[]), None);
        same(&plain, &drafted, &format!("{prompt:?} max {max}"));
        assert_eq!(plain.0.draft_passes, 0);
        assert!(drafted.0.decode_steps <= plain.0.decode_steps + drafted.0.draft_passes);
        accepted += drafted.0.draft_accepted;
    }
    assert!(
        accepted > 0,
        "no draft was ever taken: the check path went untested"
    );
}

#[test]
fn quantized_greedy_output_is_the_same_with_drafts() {
    // Every file's drafts are checked in multi-token passes; whether one is taken depends on
    // what the random model writes, which depends on the CPU's kernels (on an AVX2-only CPU
    // micro-q8_0's text copies no span of the prompt), so acceptance is asked of the three
    // together.
    let mut accepted = 0;
    for file in ["micro-q4_0.gguf", "micro-q8_0.gguf", "micro-q4_k_m.gguf"] {
        let m = load(file);
        let mut checked = 0;
        for max in [64, 160] {
            let plain = run_on(&m, LOG, &opts(max, false, &[]), None);
            let drafted = run_on(&m, LOG, &opts(max, true, &[]), None);
            same(&plain, &drafted, &format!("{file} max {max}"));
            checked += drafted.0.draft_passes;
            accepted += drafted.0.draft_accepted;
        }
        assert!(checked > 0, "{file}: no draft was checked");
    }
    assert!(accepted > 0, "no draft was taken on any quantized file");
}

#[test]
fn a_stop_string_inside_a_draft_ends_at_the_same_place() {
    let plain = run(LOG, &opts(160, false, &[]), None);
    let text = plain.0.text.clone();
    // Stops taken from the middle and the end of what greedy decoding writes.
    let mut cuts: Vec<String> = [text.len() / 3, 2 * text.len() / 3]
        .iter()
        .filter_map(|&at| {
            text.get(at..)
                .map(|t| t.chars().take(3).collect::<String>())
        })
        .filter(|s| s.chars().count() == 3)
        .collect();
    // The end of the text is a loop the drafts predict: its first occurrence is written by
    // a draft.
    let tail: String = text
        .chars()
        .rev()
        .take(9)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    cuts.push(tail);
    assert!(!cuts.is_empty(), "{text:?}");
    for stop in &cuts {
        let a = run(LOG, &opts(160, false, &[stop]), None);
        let b = run(LOG, &opts(160, true, &[stop]), None);
        same(&a, &b, &format!("stop {stop:?}"));
    }
}

#[test]
fn a_stop_token_inside_a_draft_ends_at_the_same_place() {
    let plain = run(LOG, &opts(160, false, &[]), None);
    // Tokens from the loop the drafts predict, and one from before it.
    for at in [20, 100, 150] {
        let stop = plain.0.tokens[at];
        let with_stop = |draft| GenerateOptions {
            stop_tokens: vec![stop],
            ..opts(160, draft, &[])
        };
        let a = run(LOG, &with_stop(false), None);
        let b = run(LOG, &with_stop(true), None);
        same(&a, &b, &format!("stop token {stop}"));
        assert!(
            matches!(a.0.finish_reason, lfm_engine::generate::FinishReason::StopToken(t) if t == stop)
        );
    }
}

#[test]
fn constrained_greedy_output_is_the_same_with_drafts() {
    let schema = json!({
        "type": "object",
        "properties": {
            "events": {"type": "array", "maxItems": 4, "items": {
                "type": "object",
                "properties": {"time": {"type": "string"}, "host": {"type": "string"},
                               "message": {"type": "string"}},
                "required": ["time", "host", "message"], "additionalProperties": false}}
        },
        "required": ["events"], "additionalProperties": false
    });
    let prompt = format!("<|startoftext|><|im_start|>user\nExtract the events as JSON.\n{LOG}<|im_end|>\n<|im_start|>assistant\n");
    let mut accepted = 0;
    for max in [48, 200] {
        let plain = run(&prompt, &opts(max, false, &[]), Some(&schema));
        let drafted = run(&prompt, &opts(max, true, &[]), Some(&schema));
        same(&plain, &drafted, &format!("schema, max {max}"));
        accepted += drafted.0.draft_accepted;
    }
    assert!(accepted > 0, "no draft was taken under the grammar");
}
