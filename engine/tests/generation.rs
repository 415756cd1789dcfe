//! The generation loop on a synthetic model: stop tokens, stop strings, max tokens, seeds,
//! streaming.

use std::sync::OnceLock;

use lfm_engine::folder::{LoadOptions, LoadedModel};
use lfm_engine::generate::{generate, FinishReason, GenerateOptions, Generation};
use lfm_engine::sampling::SamplingParams;
use lfm_engine::session::Session;
use lfm_engine::synth::{write_model_folder, DiskDtype, Preset};

fn tiny() -> &'static LoadedModel {
    static M: OnceLock<(tempfile::TempDir, LoadedModel)> = OnceLock::new();
    &M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        write_model_folder(Preset::Tiny, DiskDtype::F32, 3, dir.path()).unwrap();
        let m = LoadedModel::load(dir.path(), &LoadOptions::default()).unwrap();
        (dir, m)
    })
    .1
}

fn run(prompt: &str, opts: &GenerateOptions) -> (Generation, String) {
    let m = tiny();
    let tok = m.tokenizer.as_ref().unwrap();
    let ids = tok.encode(prompt).unwrap();
    let mut s = Session::new(m.model.clone(), 512).unwrap();
    let mut streamed = String::new();
    let g = generate(&mut s, Some(tok), &ids, opts, &mut |p| streamed.push_str(p)).unwrap();
    (g, streamed)
}

fn opts(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampling: SamplingParams::greedy(),
        stop_tokens: vec![],
        ..Default::default()
    }
}

#[test]
fn max_tokens_ends_with_length_and_the_stream_equals_the_text() {
    let (g, streamed) = run("hello there", &opts(24));
    assert_eq!(g.finish_reason, FinishReason::Length);
    assert_eq!(g.tokens.len(), 24);
    assert_eq!(g.decode_steps, 23);
    assert_eq!(streamed, g.text);
    assert_eq!(
        g.text,
        tiny()
            .tokenizer
            .as_ref()
            .unwrap()
            .decode(&g.tokens)
            .unwrap()
    );
}

#[test]
fn a_stop_token_ends_generation_before_it() {
    let (free, _) = run("hello there", &opts(24));
    let stop = free.tokens[6];
    let first = free.tokens.iter().position(|&t| t == stop).unwrap();
    let (g, _) = run(
        "hello there",
        &GenerateOptions {
            stop_tokens: vec![stop],
            ..opts(24)
        },
    );
    assert_eq!(g.finish_reason, FinishReason::StopToken(stop));
    assert_eq!(g.tokens, free.tokens[..first]);
}

#[test]
fn a_stop_string_cuts_the_text_and_never_reaches_the_stream() {
    let (free, _) = run("status of ticket", &opts(32));
    let chars: Vec<char> = free.text.chars().collect();
    assert!(chars.len() > 20, "need some text: {:?}", free.text);
    let stop: String = chars[12..16].iter().collect();
    let cut = free.text.find(&stop).unwrap();
    let (g, streamed) = run(
        "status of ticket",
        &GenerateOptions {
            stop_strings: vec![stop.clone()],
            ..opts(32)
        },
    );
    assert_eq!(g.finish_reason, FinishReason::StopString(stop.clone()));
    assert_eq!(g.text, free.text[..cut]);
    assert_eq!(streamed, g.text);
    assert!(!streamed.contains(&stop));
}

#[test]
fn sampling_is_reproducible_per_seed() {
    let sampled = |seed| {
        let o = GenerateOptions {
            sampling: SamplingParams {
                temperature: 1.0,
                top_k: Some(50),
                top_p: Some(0.95),
                seed,
                ..Default::default()
            },
            ..opts(20)
        };
        run("write a runbook", &o).0.tokens
    };
    assert_eq!(sampled(1), sampled(1));
    assert_ne!(sampled(1), sampled(2));
}

#[test]
fn generation_config_defaults_are_read() {
    let m = tiny();
    let p = m.generation.sampling();
    assert_eq!(p.temperature, 0.1);
    assert_eq!(p.top_k, Some(50));
    assert_eq!(p.repetition_penalty, 1.05);
    assert_eq!(m.stop_tokens(), vec![7]);
    assert!(m.model.config().synthetic);
}

#[test]
fn bad_arguments_are_errors() {
    let m = tiny();
    let mut s = Session::new(m.model.clone(), 64).unwrap();
    let e = generate(&mut s, None, &[1, 2], &opts(0), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("max_tokens"));
    let e = generate(&mut s, None, &[], &opts(4), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("`tokens`"), "{e}");
    let bad = GenerateOptions {
        stop_strings: vec![String::new()],
        ..opts(4)
    };
    let e = generate(&mut s, None, &[1], &bad, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("stop"), "{e}");
}
