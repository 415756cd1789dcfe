//! `lfm-agent bench draft`: prompt-lookup drafts checked in one pass, against decoding one
//! token at a time, in one run on one model.
//!
//! The prompt is an extraction request over a log (`--log`, default the bundled
//! `examples/logs/app.log`), whose output would copy spans of the input. Both runs are greedy
//! from a fresh session and must produce the same tokens (checked). Printed: decode tok/s each
//! way, forward passes, draft passes, drafted and taken tokens, taken tokens per draft pass;
//! and what a pass over `k + 1` tokens costs against a one-token step at the same depth, from
//! which the speed-up at any acceptance rate follows: `(taken + 1) / cost`. On random weights
//! how often drafts are taken is the random model's, not a trained one's.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::generate::{generate, GenerateOptions, Generation};
use lfm_engine::lookup::DraftOptions;
use lfm_engine::model::Logits;
use lfm_engine::sampling::SamplingParams;
use lfm_engine::session::Session;

use super::common::ModelArgs;

#[derive(Debug, Args)]
pub struct DraftBenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The log in the prompt.
    #[arg(long, default_value = "examples/logs/app.log")]
    log: PathBuf,
    /// Log tokens in the prompt, at most.
    #[arg(long, default_value_t = 1024)]
    log_tokens: usize,
    /// Tokens generated each way.
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// Most tokens per draft.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn run_once(
    m: &lfm_engine::folder::LoadedModel,
    ctx: usize,
    prompt: &[u32],
    opts: &GenerateOptions,
) -> Result<Generation> {
    let mut s = Session::new(m.model.clone(), ctx)?;
    Ok(generate(
        &mut s,
        m.tokenizer.as_ref(),
        prompt,
        opts,
        &mut |_| {},
    )?)
}

/// Seconds of one forward pass over `n` tokens after `prompt`, median of `reps`.
fn pass_secs(
    m: &lfm_engine::folder::LoadedModel,
    ctx: usize,
    prompt: &[u32],
    n: usize,
    reps: usize,
) -> Result<f64> {
    let mut s = Session::new(m.model.clone(), ctx)?;
    s.prefill(prompt, 512)?;
    let snap = s.snapshot();
    let chunk: Vec<u32> = prompt.iter().copied().cycle().take(n).collect();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        s.restore(&snap)?;
        let t = Instant::now();
        s.forward(&chunk, if n == 1 { Logits::Last } else { Logits::All })?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

pub fn run(a: DraftBenchArgs) -> Result<()> {
    if a.k == 0 || a.tokens == 0 {
        anyhow::bail!("--k and --tokens must be at least 1");
    }
    let threads = super::bench_model::set_threads(a.threads)?;
    let m = a.model.load()?;
    let tok = m
        .tokenizer
        .as_ref()
        .context("the model needs a tokenizer (tokenizer.json or GGUF metadata)")?;
    let log = std::fs::read_to_string(&a.log)
        .with_context(|| format!("--log {}: cannot read", a.log.display()))?;
    let mut log_ids = tok.encode(&log)?;
    log_ids.truncate(a.log_tokens);
    let log = tok.decode(&log_ids)?;
    let text = format!(
        "<|startoftext|><|im_start|>user\nCopy every ERROR line of this log into a JSON list of {{\"time\", \"level\", \"message\"}} objects.\n\n{log}<|im_end|>\n<|im_start|>assistant\n"
    );
    let prompt = tok.encode(&text)?;
    let ctx = (prompt.len() + a.tokens + a.k + 8).min(m.model.config().max_position_embeddings);
    let opts = |draft| GenerateOptions {
        max_tokens: a.tokens,
        sampling: SamplingParams::greedy(),
        stop_tokens: Vec::new(),
        draft,
        ..Default::default()
    };
    // Warm-up: page the weights in and start the threads.
    run_once(&m, ctx, &prompt[..prompt.len().min(64)], &opts(None))?;
    let plain = run_once(&m, ctx, &prompt, &opts(None))?;
    let drafted = run_once(
        &m,
        ctx,
        &prompt,
        &opts(Some(DraftOptions {
            max_tokens: a.k,
            ..Default::default()
        })),
    )?;
    let same = plain.tokens == drafted.tokens;
    let one = pass_secs(&m, ctx, &prompt, 1, 5)?;
    let many = pass_secs(&m, ctx, &prompt, a.k + 1, 5)?;
    let rate = |g: &Generation| g.tokens.len().saturating_sub(1) as f64 / g.decode_secs.max(1e-9);
    let synthetic = m.model.config().synthetic;
    if a.json {
        let v = serde_json::json!({
            "model": a.model.model, "synthetic": synthetic, "threads": threads,
            "prompt_tokens": prompt.len(), "tokens": a.tokens, "k": a.k, "same_tokens": same,
            "plain": {"decode_tok_s": rate(&plain), "forward_passes": plain.decode_steps},
            "drafted": {"decode_tok_s": rate(&drafted), "forward_passes": drafted.decode_steps,
                "draft_passes": drafted.draft_passes, "drafted_tokens": drafted.draft_proposed,
                "taken_tokens": drafted.draft_accepted,
                "taken_per_draft_pass": drafted.accepted_per_draft_pass()},
            "speedup": rate(&drafted) / rate(&plain).max(1e-9),
            "pass_secs": {"one_token": one, "k_plus_one_tokens": many},
        });
        println!("{v}");
    } else {
        println!(
            "prompt-lookup drafts: {}{}, {threads} threads, prompt {} tokens (extraction over {}), {} tokens greedy, k = {}",
            a.model.model.display(),
            if synthetic { " (SYNTHETIC random weights: how often drafts are taken is the random model's)" } else { "" },
            prompt.len(),
            a.log.display(),
            a.tokens,
            a.k
        );
        println!(
            "one token at a time: {:.2} tok/s, {} forward passes",
            rate(&plain),
            plain.decode_steps
        );
        println!(
            "with drafts:         {:.2} tok/s, {} forward passes, of which {} checked drafts: {} drafted tokens, {} taken ({:.2} per draft pass)",
            rate(&drafted),
            drafted.decode_steps,
            drafted.draft_passes,
            drafted.draft_proposed,
            drafted.draft_accepted,
            drafted.accepted_per_draft_pass()
        );
        println!(
            "speed-up {:.2}x; the same tokens: {same}",
            rate(&drafted) / rate(&plain).max(1e-9)
        );
        println!(
            "a pass over {} tokens: {:.1} ms, over 1: {:.1} ms ({:.2}x): a pass that takes t drafted tokens yields t + 1 tokens, so drafts pay when more than {:.2} are taken per pass",
            a.k + 1,
            many * 1e3,
            one * 1e3,
            many / one.max(1e-9),
            many / one.max(1e-9) - 1.0
        );
    }
    if !same {
        anyhow::bail!("the drafted run's tokens differ from one token at a time");
    }
    Ok(())
}
