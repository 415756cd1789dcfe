//! `lfm-agent bench --model M`: prefill and decode speed, time to first token and peak memory,
//! measured the way llama.cpp's `llama-bench` measures `pp512` and `tg128` (random token ids,
//! each test from an empty context, a warm-up run first, the mean of the repetitions), so the
//! two can be put side by side (`bench/compare-llamacpp.sh`).

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::model::Logits;
use lfm_engine::sampling::argmax;
use lfm_engine::session::Session;
use serde_json::json;

use super::common::ModelArgs;

#[derive(Debug, Args)]
pub struct ModelBenchArgs {
    /// GGUF file or Hugging Face model folder to measure.
    #[arg(long, value_name = "PATH")]
    model: Option<std::path::PathBuf>,
    /// Compute dtype for safetensors folders: auto (f32), f32, bf16, f16 or f64.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// Context reserved for each session (default: the model's maximum, capped at 32768).
    #[arg(long, value_name = "N")]
    ctx: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Prompt length of the prefill test.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens of the decode test.
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// Repetitions of each test (the mean is reported).
    #[arg(long, default_value_t = 3)]
    repetitions: usize,
    /// Prefill at these depths instead (`0,8192,30720`): `--prompt-tokens` more tokens timed
    /// after a context of that many (as llama-bench's `-d`).
    #[arg(long, value_name = "LIST")]
    depth: Option<String>,
    /// Batched decode instead: these batch sizes (`1,2,4,8,16`), each sequence after its own
    /// `--prompt-tokens` prompt, `--gen-tokens` steps of all of them together.
    #[arg(long, value_name = "LIST")]
    batch: Option<String>,
    /// With `--batch`: prefill the prompt once and fork it into every sequence (as
    /// `llama-batched-bench -pps`), instead of each sequence prefilling its own copy.
    #[arg(long, requires = "batch")]
    shared_prompt: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Sets the worker count for the quantized kernels (rayon) and candle's dense matmuls. Must
/// run before either pool starts.
pub fn set_threads(n: Option<usize>) -> Result<usize> {
    let n = match n {
        Some(0) => anyhow::bail!("--threads 0: need at least one thread"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // candle reads RAYON_NUM_THREADS for its own matmul threading.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .context("starting the thread pool")?;
    Ok(n)
}

/// Peak resident set size of this process in MiB (`VmHWM`), where the OS reports it.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// llama-bench-style random token ids (fixed seed), avoiding the special tokens.
pub fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (16 + s % (vocab as u64 - 16)) as u32
        })
        .collect()
}

pub fn run(a: ModelBenchArgs) -> Result<()> {
    let Some(path) = a.model.clone() else {
        anyhow::bail!("bench: give --model FILE, or a subcommand (constraint)");
    };
    let model = ModelArgs {
        model: path,
        dtype: a.dtype.clone(),
        ctx: a.ctx,
    };
    let threads = set_threads(a.threads)?;
    if a.prompt_tokens == 0 || a.gen_tokens == 0 || a.repetitions == 0 {
        anyhow::bail!("--prompt-tokens, --gen-tokens and --repetitions must be at least 1");
    }
    let t0 = Instant::now();
    let m = model.load()?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let ctx = model.context(&m)?;
    let depths = a
        .depth
        .as_deref()
        .map(super::bench_batch::parse_depths)
        .transpose()?;
    let need = match (&a.batch, &depths) {
        (_, Some(d)) => a.prompt_tokens + d.iter().max().copied().unwrap_or(0),
        (Some(_), None) => a.prompt_tokens + a.gen_tokens,
        (None, None) => a.prompt_tokens.max(a.gen_tokens + 1),
    };
    if need > ctx {
        anyhow::bail!("--prompt-tokens/--gen-tokens need {need} tokens of context; --ctx is {ctx}");
    }
    let vocab = m.model.config().vocab_size;
    let prompt = random_tokens(a.prompt_tokens, vocab, 0x5eed);

    // Warm-up: page the weights in and start the threads.
    {
        let mut s = Session::new(m.model.clone(), ctx)?;
        s.forward(&prompt[..prompt.len().min(32)], Logits::Last)?;
        s.decode(1)?;
    }

    if let Some(depths) = &depths {
        let rows = super::bench_batch::depths(&m, ctx, &prompt, depths, a.repetitions)?;
        let head = format!(
            "prefill at depth: {}{}, {threads} threads, pp{} after each depth, mean of {}",
            model.model.display(),
            if m.model.config().synthetic {
                " (random weights)"
            } else {
                ""
            },
            a.prompt_tokens,
            a.repetitions
        );
        super::bench_batch::print_depths(&rows, a.json, &head);
        return Ok(());
    }
    if let Some(list) = &a.batch {
        let sizes = super::bench_batch::parse_sizes(list)?;
        let most = sizes.iter().max().copied().unwrap_or(1);
        let plan = super::bench_batch::BatchPlan {
            prompt: &prompt,
            gen: a.gen_tokens,
            sizes: &sizes,
            shared_prompt: a.shared_prompt,
        };
        let rows = super::bench_batch::measure(&m, ctx, &plan)?;
        let head = format!(
            "batched decode: {}{}, {threads} threads, pp{} {} then tg{} per sequence, up to {most} sequences",
            model.model.display(),
            if m.model.config().synthetic { " (random weights)" } else { "" },
            a.prompt_tokens,
            if a.shared_prompt { "shared (forked)" } else { "each" },
            a.gen_tokens
        );
        super::bench_batch::print(&rows, a.json, &head);
        if !a.json {
            if let Some(r) = peak_rss_mib() {
                println!("peak RSS {r:.0} MiB");
            }
        }
        return Ok(());
    }
    let mut prefill_s = Vec::new();
    let mut ttft_s = Vec::new();
    let mut decode_s = Vec::new();
    for _ in 0..a.repetitions {
        // Prefill test: the prompt from an empty context, then the first token picked.
        let mut s = Session::new(m.model.clone(), ctx)?;
        let t = Instant::now();
        let logits = s.forward(&prompt, Logits::Last)?;
        let p = t.elapsed().as_secs_f64();
        let row = logits.flatten_all()?.to_vec1::<f32>()?;
        let _first = argmax(&row).context("the logits are all NaN")?;
        ttft_s.push(t.elapsed().as_secs_f64());
        prefill_s.push(p);

        // Decode test: `gen_tokens` greedy steps from an empty context, as tg128 does.
        let mut s = Session::new(m.model.clone(), ctx)?;
        let mut tok = 1u32;
        let t = Instant::now();
        for _ in 0..a.gen_tokens {
            tok = argmax(&s.decode(tok)?).context("the logits are all NaN")?;
        }
        decode_s.push(t.elapsed().as_secs_f64());
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let prefill_tok_s = a.prompt_tokens as f64 / mean(&prefill_s);
    let decode_tok_s = a.gen_tokens as f64 / mean(&decode_s);
    let ttft_ms = mean(&ttft_s) * 1e3;
    let bytes = m.model.weight_bytes_per_token() as f64;
    let decode_gb_s = bytes * decode_tok_s / 1e9;
    let rss = peak_rss_mib();
    let synthetic = m.model.config().synthetic;
    if a.json {
        let out = json!({
            "model": model.model.display().to_string(),
            "synthetic": synthetic,
            "threads": threads,
            "context": ctx,
            "prompt_tokens": a.prompt_tokens,
            "gen_tokens": a.gen_tokens,
            "repetitions": a.repetitions,
            "load_ms": load_ms,
            "prefill_tok_s": prefill_tok_s,
            "decode_tok_s": decode_tok_s,
            "ttft_ms": ttft_ms,
            "peak_rss_mib": rss,
            "weight_bytes_per_token": bytes,
            "decode_gb_s": decode_gb_s,
        });
        println!("{out}");
    } else {
        println!(
            "model          {}{}",
            model.model.display(),
            if synthetic { " (random weights)" } else { "" }
        );
        println!("threads        {threads}   context {ctx}   load {load_ms:.0} ms");
        println!(
            "prefill        {prefill_tok_s:.1} tok/s   (pp{}, mean of {})",
            a.prompt_tokens, a.repetitions
        );
        println!("ttft           {ttft_ms:.1} ms");
        println!(
            "decode         {decode_tok_s:.2} tok/s   (tg{}; {:.2} GB/s of weights)",
            a.gen_tokens, decode_gb_s
        );
        match rss {
            Some(r) => println!("peak RSS       {r:.0} MiB"),
            None => println!("peak RSS       (not reported by this OS)"),
        }
    }
    Ok(())
}
