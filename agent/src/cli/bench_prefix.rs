//! `lfm-agent bench prefix`: time to first token with and without a prefix-cache hit.
//!
//! A system prompt of about `--prefix-tokens` tokens (runbooks from `--docs`, as a runbook
//! question would carry them) and different user questions. Without a hit, every question
//! starts from a fresh session and prefills the whole prompt, as a server that re-prefills
//! every request must. With a hit, the questions go one after another through one backend
//! (the server's engine thread), which restores the saved state at the end of the system turn
//! (attention KV and short-conv state alike) and prefills only the question. The first token
//! is timed where the model yields it, inside the turn.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lfm_agent::backend::{EngineBackend, EngineOptions};
use lfm_agent::runner::{Backend, TurnRequest};
use lfm_engine::folder::LoadedModel;
use lfm_engine::sampling::SamplingParams;
use lfm_engine::text::{Message, Role};

use super::common::ModelArgs;

#[derive(Debug, Args)]
pub struct PrefixBenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Tokens of shared system prompt.
    #[arg(long, default_value_t = 4096)]
    prefix_tokens: usize,
    /// Questions timed each way.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Documents the system prompt is cut from (every file, sorted, concatenated).
    #[arg(long, default_value = "examples/docs")]
    docs: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

const QUESTIONS: &[&str] = &[
    "The VPN drops every hour on the hotel wifi. What should I check first?",
    "Disk usage on db-3 is at 97%. Which runbook applies and what is step one?",
    "A deploy is stuck at 'waiting for health checks'. How do I roll it back?",
    "Grafana shows 5xx errors on the payments API since 09:00. Who is on call?",
    "My laptop cannot reach the internal wiki after the OS update.",
    "How do I rotate the TLS certificate on the edge proxy?",
];

/// The first `tokens` tokens' worth of the docs (every file under the folder, sorted), as
/// text.
fn system_prompt(model: &LoadedModel, docs: &Path, tokens: usize) -> Result<String> {
    let tok = model
        .tokenizer
        .as_ref()
        .context("--model: the benchmark needs a tokenizer")?;
    let mut files = Vec::new();
    let mut dirs = vec![docs.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("--docs {}", d.display()))? {
            let p = e.with_context(|| format!("--docs {}", d.display()))?.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut text = String::from("Answer from these runbooks; cite the runbook.\n\n");
    let mut ids = tok.encode(&text)?;
    'fill: while ids.len() < tokens {
        let before = ids.len();
        for f in &files {
            let Ok(body) = std::fs::read_to_string(f) else {
                continue;
            };
            for line in body.lines() {
                text.push_str(line);
                text.push('\n');
                ids = tok.encode(&text)?;
                if ids.len() >= tokens {
                    break 'fill;
                }
            }
        }
        anyhow::ensure!(
            ids.len() > before,
            "--docs {}: no text to build the prompt from",
            docs.display()
        );
    }
    Ok(text)
}

/// Seconds to the first token of `question` after `system`, and the tokens prefilled.
fn ttft(b: &mut EngineBackend, system: &str, question: &str) -> Result<(f64, usize)> {
    let first = Arc::new(Mutex::new(None::<f64>));
    let t = Instant::now();
    let seen = first.clone();
    b.set_observer(Some(Box::new(
        move |_: &lfm_agent::backend::Generated<'_>| {
            if let Ok(mut f) = seen.lock() {
                f.get_or_insert(t.elapsed().as_secs_f64());
            }
            true
        },
    )));
    let messages = [
        Message::new(Role::System, system.to_string()),
        Message::new(Role::User, question.to_string()),
    ];
    let turn = b
        .complete(&TurnRequest {
            messages: &messages,
            tools: &[],
            answer_schema: None,
            max_tokens: 1,
            require_call: false,
            cancel: None,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    b.set_observer(None);
    let secs = first
        .lock()
        .ok()
        .and_then(|f| *f)
        .context("the turn yielded no token")?;
    Ok((secs, turn.prompt_tokens))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(a: PrefixBenchArgs) -> Result<()> {
    anyhow::ensure!(
        a.runs >= 1 && a.runs < QUESTIONS.len(),
        "--runs must be between 1 and {}",
        QUESTIONS.len() - 1
    );
    let threads = super::bench_model::set_threads(a.threads)?;
    let model = Arc::new(a.model.load()?);
    let context = a.model.context(&model)?;
    anyhow::ensure!(
        context > a.prefix_tokens + 256,
        "--ctx {context} cannot hold a {}-token prefix and a question",
        a.prefix_tokens
    );
    let system = system_prompt(&model, &a.docs, a.prefix_tokens)?;
    let opts = EngineOptions {
        think_budget: 0,
        sampling: SamplingParams::default(),
        context,
        prefill_chunk: 512,
        draft: None,
    };
    let backend = || {
        EngineBackend::new(model.clone(), opts.clone())
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--model {}", a.model.model.display()))
    };
    let (mut miss, mut miss_tokens) = (Vec::new(), 0);
    for q in &QUESTIONS[1..=a.runs] {
        let (s, n) = ttft(&mut backend()?, &system, q)?;
        miss.push(s);
        miss_tokens = n;
    }
    let mut shared = backend()?;
    // The first question pays for the prefix; the rest hit it.
    ttft(&mut shared, &system, QUESTIONS[0])?;
    let (mut hit, mut hit_tokens) = (Vec::new(), 0);
    for q in &QUESTIONS[1..=a.runs] {
        let (s, n) = ttft(&mut shared, &system, q)?;
        hit.push(s);
        hit_tokens = n;
    }
    let (m, h) = (median(miss), median(hit));
    let synthetic = model.model.config().synthetic;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model": a.model.model, "synthetic": synthetic, "threads": threads,
                "prefix_tokens": a.prefix_tokens, "runs": a.runs,
                "ttft_miss_s": m, "ttft_hit_s": h, "speedup": m / h,
                "prefilled_miss": miss_tokens, "prefilled_hit": hit_tokens})
        );
        return Ok(());
    }
    println!(
        "prefix cache: {}-token shared system prompt, {} questions each way, median TTFT ({} threads{})",
        a.prefix_tokens,
        a.runs,
        threads,
        if synthetic {
            ", synthetic random weights: speed only"
        } else {
            ""
        }
    );
    println!("without a hit: {m:>8.3} s  ({miss_tokens} tokens prefilled)");
    println!("with a hit:    {h:>8.3} s  ({hit_tokens} tokens prefilled)");
    println!("speedup:       {:>8.1}x", m / h);
    Ok(())
}
