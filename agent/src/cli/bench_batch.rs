//! `lfm-agent bench --model M --batch 1,2,4,8,16`: decode speed of several sequences in one
//! pass (`Session::forward_batch`), as llama.cpp's `llama-batched-bench` measures it; and
//! `--depth 0,8192,30720`: prefill speed after a long context, as `llama-bench -d` does.
//!
//! For each batch size B: B sessions each prefill the same `--prompt-tokens` prompt (one pass
//! for all B, not timed), then `--gen-tokens` decode steps advance all B together (timed).
//! Aggregate decode speed is B × steps / time; per-sequence speed is steps / time. With
//! `--shared-prompt` the prompt is prefilled once and the B sessions are forks of it (as
//! `llama-batched-bench -pps` shares it): their attention reads the prompt's keys once for all
//! of them.

use std::time::Instant;

use anyhow::{Context, Result};
use lfm_engine::folder::LoadedModel;
use lfm_engine::model::Logits;
use lfm_engine::sampling::argmax;
use lfm_engine::session::Session;
use serde_json::json;

/// One batch size's result.
pub struct BatchRow {
    pub batch: usize,
    pub seconds: f64,
    pub aggregate_tok_s: f64,
    pub per_seq_tok_s: f64,
}

/// The greedy token of a row of logits.
fn greedy(logits: &[f32]) -> Result<u32> {
    argmax(logits).context("the logits are all NaN")
}

/// What [`measure`] runs.
pub struct BatchPlan<'a> {
    /// Every sequence's prompt.
    pub prompt: &'a [u32],
    /// Decode steps timed.
    pub gen: usize,
    /// Batch sizes, one row each.
    pub sizes: &'a [usize],
    /// Prefill the prompt once and fork it into every sequence.
    pub shared_prompt: bool,
}

/// Times `plan.gen` batched decode steps for each size in `plan.sizes`.
pub fn measure(m: &LoadedModel, ctx: usize, plan: &BatchPlan) -> Result<Vec<BatchRow>> {
    let (prompt, gen) = (plan.prompt, plan.gen);
    let mut rows = Vec::new();
    for &b in plan.sizes {
        let last = vec![Logits::Last; b];
        let (mut sessions, logits) = if plan.shared_prompt {
            let mut first = Session::new(m.model.clone(), ctx)?;
            let l = first.forward(prompt, Logits::Last)?;
            let mut all = vec![];
            for _ in 1..b {
                all.push(first.fork()?);
            }
            all.push(first);
            (all, vec![l; b])
        } else {
            let mut all = (0..b)
                .map(|_| Session::new(m.model.clone(), ctx))
                .collect::<lfm_engine::Result<Vec<_>>>()?;
            let mut refs: Vec<&mut Session> = all.iter_mut().collect();
            let chunks: Vec<&[u32]> = vec![prompt; b];
            let l = Session::forward_batch(&mut refs, &chunks, &last)?;
            (all, l)
        };
        let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
        // Each sequence continues greedily from its own logits.
        let mut next: Vec<u32> = logits
            .iter()
            .map(|l| greedy(&l.flatten_all()?.to_vec1::<f32>()?))
            .collect::<Result<_>>()?;
        let t = Instant::now();
        for _ in 0..gen {
            let toks: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let chunks: Vec<&[u32]> = toks.iter().map(|t| t.as_slice()).collect();
            let logits =
                Session::forward_batch(&mut refs, &chunks, &last).context("batched decode")?;
            for (n, l) in next.iter_mut().zip(&logits) {
                *n = greedy(&l.flatten_all()?.to_vec1::<f32>()?)?;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        rows.push(BatchRow {
            batch: b,
            seconds: secs,
            aggregate_tok_s: (b * gen) as f64 / secs,
            per_seq_tok_s: gen as f64 / secs,
        });
    }
    Ok(rows)
}

/// The table, or one JSON object per line.
pub fn print(rows: &[BatchRow], as_json: bool, head: &str) {
    if as_json {
        for r in rows {
            println!(
                "{}",
                json!({"batch": r.batch, "seconds": r.seconds,
                    "aggregate_tok_s": r.aggregate_tok_s, "per_seq_tok_s": r.per_seq_tok_s})
            );
        }
        return;
    }
    println!("{head}");
    println!("batch   aggregate tok/s   per-sequence tok/s   vs batch 1");
    let base = rows.first().map_or(1.0, |r| r.aggregate_tok_s);
    for r in rows {
        println!(
            "{:>5}   {:>15.2}   {:>18.2}   {:>9.2}x",
            r.batch,
            r.aggregate_tok_s,
            r.per_seq_tok_s,
            r.aggregate_tok_s / base
        );
    }
}

/// Parses `1,2,4,8,16`.
pub fn parse_sizes(s: &str) -> Result<Vec<usize>> {
    let sizes: Vec<usize> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .with_context(|| format!("--batch {s}: `{p}` is not a batch size (1 or more)"))
        })
        .collect::<Result<_>>()?;
    anyhow::ensure!(!sizes.is_empty(), "--batch: give at least one size");
    Ok(sizes)
}

/// Parses `0,8192,30720`.
pub fn parse_depths(s: &str) -> Result<Vec<usize>> {
    let d: Vec<usize> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .with_context(|| format!("--depth {s}: `{p}` is not a token count"))
        })
        .collect::<Result<_>>()?;
    anyhow::ensure!(!d.is_empty(), "--depth: give at least one depth");
    Ok(d)
}

/// Prefill speed of `prompt` after `depth` tokens of context.
pub struct DepthRow {
    pub depth: usize,
    pub prefill_tok_s: f64,
}

/// For each depth: a context of that many tokens (prefilled in 512-token chunks, not timed),
/// then `prompt` in one chunk, timed; the mean of `reps`.
pub fn depths(
    m: &LoadedModel,
    ctx: usize,
    prompt: &[u32],
    depths: &[usize],
    reps: usize,
) -> Result<Vec<DepthRow>> {
    let vocab = m.model.config().vocab_size;
    let mut rows = Vec::new();
    for &d in depths {
        let mut secs = 0.0;
        for r in 0..reps {
            let mut s = Session::new(m.model.clone(), ctx)?;
            if d > 0 {
                let filler = super::bench_model::random_tokens(d, vocab, 0xde9 + r as u64);
                s.prefill(&filler, 512)?;
            }
            let t = Instant::now();
            s.forward(prompt, Logits::Last)?;
            secs += t.elapsed().as_secs_f64();
        }
        rows.push(DepthRow {
            depth: d,
            prefill_tok_s: prompt.len() as f64 * reps as f64 / secs,
        });
    }
    Ok(rows)
}

/// The depth table, or one JSON object per line.
pub fn print_depths(rows: &[DepthRow], as_json: bool, head: &str) {
    if as_json {
        for r in rows {
            println!(
                "{}",
                json!({"depth": r.depth, "prefill_tok_s": r.prefill_tok_s})
            );
        }
        return;
    }
    println!("{head}");
    println!(
        "depth   prefill tok/s   vs depth {}",
        rows.first().map_or(0, |r| r.depth)
    );
    let base = rows.first().map_or(1.0, |r| r.prefill_tok_s);
    for r in rows {
        println!(
            "{:>5}   {:>13.1}   {:>7.2}x",
            r.depth,
            r.prefill_tok_s,
            r.prefill_tok_s / base
        );
    }
}
