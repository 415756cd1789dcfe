//! `lfm-agent bench constraint`: what grammar constraints cost. (`bench --model` is in
//! `bench_model.rs`.)
//!
//! Mask time per token (p50, p99) over a corpus of schemas, with the model's own vocabulary;
//! forward passes per generated token (fast-forward); and, on a second model (the 1.2B
//! shape), the decode time per token constrained against unconstrained, in one run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lfm_engine::constraint::ConstraintSpec;
use lfm_engine::folder::LoadedModel;
use lfm_engine::generate::{generate, generate_constrained, GenerateOptions};
use lfm_engine::sampling::SamplingParams;
use lfm_engine::session::Session;

use super::common::ModelArgs;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchCmd {
    #[command(subcommand)]
    command: Option<BenchSub>,
    /// Speed of one model: `lfm-agent bench --model M [--threads N]`.
    #[command(flatten)]
    model: super::bench_model::ModelBenchArgs,
}

#[derive(Debug, Subcommand)]
enum BenchSub {
    /// Mask time, fast-forward and decode slowdown of constrained generation.
    Constraint(ConstraintBenchArgs),
    /// Retrieval: indexing MB/s on a generated corpus, query latency on a million chunks.
    Retrieval(super::bench_retrieval::RetrievalBenchArgs),
    /// Time to first token with and without a prefix-cache hit on a shared system prompt.
    Prefix(super::bench_prefix::PrefixBenchArgs),
    /// Prompt-lookup drafts checked in one pass, against one token at a time.
    Draft(super::bench_draft::DraftBenchArgs),
}

#[derive(Debug, Args)]
pub struct ConstraintBenchArgs {
    /// Model whose tokenizer and (fast) forward pass drive the mask measurements.
    #[command(flatten)]
    model: ModelArgs,
    /// Folder of schema files (`{"schema": ...}` or bare schemas).
    #[arg(long, default_value = "engine/tests/fixtures/schemas")]
    schemas: PathBuf,
    /// Seeds per schema.
    #[arg(long, default_value_t = 2)]
    seeds: u64,
    /// Most tokens per generation.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// A second model folder (e.g. `synth --preset lfm2.5-1.2b`) for the decode slowdown.
    #[arg(long, value_name = "DIR")]
    slowdown_model: Option<PathBuf>,
    /// Tokens per run on the slowdown model.
    #[arg(long, default_value_t = 32)]
    slowdown_tokens: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(c: BenchCmd) -> Result<()> {
    match c.command {
        Some(BenchSub::Constraint(a)) => constraint(a),
        Some(BenchSub::Retrieval(a)) => super::bench_retrieval::run(a),
        Some(BenchSub::Prefix(a)) => super::bench_prefix::run(a),
        Some(BenchSub::Draft(a)) => super::bench_draft::run(a),
        None => super::bench_model::run(c.model),
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn load_schemas(dir: &PathBuf) -> Result<Vec<(String, serde_json::Value)>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("--schemas {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)
                .with_context(|| format!("{}: invalid JSON", p.display()))?;
            let schema = v.get("schema").cloned().unwrap_or(v);
            Ok((
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
                schema,
            ))
        })
        .collect()
}

fn prompt(m: &LoadedModel) -> Result<Vec<u32>> {
    let tok = m
        .tokenizer
        .as_ref()
        .context("the model needs a tokenizer.json")?;
    Ok(tok.encode("<|startoftext|><|im_start|>user\nTriage this ticket: disk full on db-1.<|im_end|>\n<|im_start|>assistant\n")?)
}

fn constraint(a: ConstraintBenchArgs) -> Result<()> {
    let m = a.model.load()?;
    let compiler = m.constraint_compiler()?;
    let tok = m
        .tokenizer
        .as_ref()
        .context("the model needs a tokenizer.json")?;
    let schemas = load_schemas(&a.schemas)?;
    let ids = prompt(&m)?;
    let (mut masks, mut tokens, mut passes, mut forced, mut refused, mut runs) =
        (Vec::new(), 0, 0, 0, 0, 0);
    let mut dead_ends = 0;
    let t0 = Instant::now();
    for (_, schema) in &schemas {
        for seed in 0..a.seeds {
            let Ok(mut matcher) = compiler.compile(&ConstraintSpec::JsonSchema(schema.clone()))
            else {
                refused += 1;
                break;
            };
            let opts = GenerateOptions {
                max_tokens: a.max_tokens,
                sampling: SamplingParams {
                    temperature: 1.0,
                    seed,
                    ..Default::default()
                },
                stop_tokens: m.stop_tokens(),
                ..Default::default()
            };
            let mut s = Session::new(m.model.clone(), 4096)?;
            let g = match generate_constrained(
                &mut s,
                Some(tok),
                &ids,
                &opts,
                &mut matcher,
                &mut |_| {},
            ) {
                Ok(g) => g,
                Err(lfm_engine::Error::DeadEnd(_)) => {
                    dead_ends += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            runs += 1;
            masks.extend_from_slice(&g.mask_micros);
            tokens += g.tokens.len();
            passes += g.decode_steps + 1; // + the pass that produced the first token's logits
            forced += g.forced_tokens;
        }
    }
    masks.sort_unstable();
    let (p50, p99, max) = (
        percentile(&masks, 0.5),
        percentile(&masks, 0.99),
        masks.last().copied().unwrap_or(0),
    );
    let ratio = if tokens > 0 {
        passes as f64 / tokens as f64
    } else {
        0.0
    };
    let mut report = serde_json::json!({
        "vocab_size": m.model.config().vocab_size,
        "schemas": schemas.len(), "refused": refused, "runs": runs, "dead_ends": dead_ends,
        "masks": masks.len(), "mask_p50_us": p50, "mask_p99_us": p99, "mask_max_us": max,
        "tokens": tokens, "forward_passes": passes, "forced_tokens": forced,
        "forward_passes_per_token": ratio, "wall_s": t0.elapsed().as_secs_f64(),
    });
    if !a.json {
        println!("mask time over {} masks ({} schemas x {} seeds, vocabulary {}): p50 {p50} us, p99 {p99} us, max {max} us",
            masks.len(), schemas.len() - refused, a.seeds, m.model.config().vocab_size);
        println!("fast-forward: {tokens} tokens in {passes} forward passes ({ratio:.3} passes per token, {forced} tokens forced)");
    }
    if let Some(dir) = &a.slowdown_model {
        let big = ModelArgs {
            model: dir.clone(),
            dtype: a.model.dtype.clone(),
            ctx: Some(2048),
        }
        .load()?;
        let slow = slowdown(&big, a.slowdown_tokens)?;
        if !a.json {
            println!(
                "decode on {}: unconstrained {:.2} tok/s ({:.1} ms/token); constrained {:.2} tok/s ({:.1} ms/token, {} tokens in {} passes); slowdown {:+.1}% per token, {:+.1}% per forward pass",
                dir.display(), slow["free_tok_s"].as_f64().unwrap_or(0.0), slow["free_ms_per_token"].as_f64().unwrap_or(0.0),
                slow["constrained_tok_s"].as_f64().unwrap_or(0.0), slow["constrained_ms_per_token"].as_f64().unwrap_or(0.0),
                slow["constrained_tokens"], slow["constrained_passes"],
                slow["slowdown_per_token_pct"].as_f64().unwrap_or(0.0), slow["slowdown_per_pass_pct"].as_f64().unwrap_or(0.0));
        }
        report["slowdown"] = slow;
    }
    if a.json {
        println!("{report}");
    }
    Ok(())
}

/// Runs of each kind in the slowdown measurement.
const SLOWDOWN_REPS: usize = 3;

/// Decode time per token, unconstrained and under a free-text JSON schema, same prompt and
/// seed (so each kind's runs are identical), averaged over [`SLOWDOWN_REPS`] interleaved runs.
fn slowdown(m: &LoadedModel, n: usize) -> Result<serde_json::Value> {
    let tok = m
        .tokenizer
        .as_ref()
        .context("the slowdown model needs a tokenizer.json")?;
    let ids = prompt(m)?;
    let opts = GenerateOptions {
        max_tokens: n,
        sampling: SamplingParams {
            temperature: 1.0,
            seed: 1,
            ..Default::default()
        },
        stop_tokens: Vec::new(),
        ..Default::default()
    };
    // A long free-text field keeps the constrained run going for the whole budget.
    let schema = serde_json::json!({"type": "object", "properties": {"notes": {"type": "string"}}, "required": ["notes"], "additionalProperties": false});
    let compiler = m.constraint_compiler()?;
    let free_run = || -> Result<_> {
        let mut s = Session::new(m.model.clone(), 2048)?;
        Ok(generate(&mut s, Some(tok), &ids, &opts, &mut |_| {})?)
    };
    let con_run = || -> Result<_> {
        let mut matcher = compiler.compile(&ConstraintSpec::JsonSchema(schema.clone()))?;
        let mut s = Session::new(m.model.clone(), 2048)?;
        Ok(generate_constrained(
            &mut s,
            Some(tok),
            &ids,
            &opts,
            &mut matcher,
            &mut |_| {},
        )?)
    };
    // A warm-up pass (weights paged in, caches warm), then the two kinds interleaved, so
    // neither pays for the other's cold start or for the machine's drift.
    free_run()?;
    let (mut free, mut con) = (free_run()?, con_run()?);
    for _ in 1..SLOWDOWN_REPS {
        let f = free_run()?;
        let c = con_run()?;
        free.decode_secs += f.decode_secs;
        con.decode_secs += c.decode_secs;
        con.mask_micros.extend(c.mask_micros);
    }
    free.decode_secs /= SLOWDOWN_REPS as f64;
    con.decode_secs /= SLOWDOWN_REPS as f64;
    let mask_sum: f64 = con.mask_micros.iter().map(|&u| u as f64 * 1e-6).sum();
    let per_token = |secs: f64, toks: usize| {
        if toks > 1 {
            secs / (toks - 1) as f64
        } else {
            0.0
        }
    };
    let free_pt = per_token(free.decode_secs, free.tokens.len());
    let mask_secs = mask_sum / SLOWDOWN_REPS as f64;
    let con_pt = per_token(con.decode_secs + mask_secs, con.tokens.len());
    let free_pp = free.decode_secs / free.decode_steps.max(1) as f64;
    let con_pp = (con.decode_secs + mask_secs) / con.decode_steps.max(1) as f64;
    Ok(serde_json::json!({
        "free_tokens": free.tokens.len(), "free_tok_s": 1.0 / free_pt.max(1e-12), "free_ms_per_token": free_pt * 1e3,
        "constrained_tokens": con.tokens.len(), "constrained_passes": con.decode_steps + 1,
        "constrained_tok_s": 1.0 / con_pt.max(1e-12), "constrained_ms_per_token": con_pt * 1e3,
        "slowdown_per_token_pct": (con_pt / free_pt.max(1e-12) - 1.0) * 100.0,
        "slowdown_per_pass_pct": (con_pp / free_pp.max(1e-12) - 1.0) * 100.0,
    }))
}
