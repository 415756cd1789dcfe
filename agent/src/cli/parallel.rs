//! `--parallel N` and `--kv-budget TOKENS`: how many sequences run at once, batched in shared
//! forward passes (`lfm_engine::batch`), and how much KV they may hold together.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use lfm_agent::backend::{EngineBackend, EngineOptions};
use lfm_engine::batch::{BatchOptions, Batcher, SharedPrefixes};
use lfm_engine::folder::LoadedModel;

#[derive(Debug, Clone, Args)]
pub struct ParallelArgs {
    /// Sequences in flight at once, batched in shared forward passes (default: 1 for models
    /// too small for batching to pay; else 4 per core, as many full-context KV caches as fit
    /// in half the available memory, at most 8).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Tokens of KV the parallel sequences may hold together (default: parallel × context).
    /// Each turn holds room for its prompt and most new tokens; between turns a sequence's
    /// KV is kept while there is room (an idle one is dropped for a turn that needs it); a
    /// turn that does not fit waits, one larger is refused. It holds with `--parallel 1`
    /// too. The budget is per model: a `--writer` model's sequences get one of their own.
    #[arg(long, value_name = "TOKENS")]
    pub kv_budget: Option<usize>,
}

/// The prefill chunk of a batched sequence: a long prompt holds the others' next token
/// back for one chunk of this many tokens at a time (about a second for the 1.2B model on two
/// cores). Larger chunks prefill faster per token (pp128 runs at nine tenths of pp512) and take
/// fewer passes; a triage ticket's first turn fits one.
pub const BATCHED_PREFILL_CHUNK: usize = 256;

/// What `--parallel` resolved to.
pub struct Parallel {
    pub n: usize,
    pub kv_budget: usize,
    /// `--kv-budget` was given: sequences go through a batcher even one at a time, so that
    /// the budget holds.
    budget_given: bool,
    batcher: Option<Batcher>,
    /// Bytes of KV per token of the model (for the figures).
    kv_token_bytes: usize,
}

/// An engine backend over `model`: alone, or batched through `batcher` (its prefill chunk cut
/// to [`BATCHED_PREFILL_CHUNK`]) sharing system turns through `prefixes` with its pool.
pub fn engine_backend(
    model: &Arc<LoadedModel>,
    opts: &EngineOptions,
    batcher: Option<&Batcher>,
    prefixes: &SharedPrefixes,
) -> Result<EngineBackend> {
    let mut opts = opts.clone();
    if batcher.is_some() {
        opts.prefill_chunk = opts.prefill_chunk.min(BATCHED_PREFILL_CHUNK);
    }
    let e = EngineBackend::new(model.clone(), opts)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("model {}", model.dir.display()))?;
    match batcher {
        Some(b) => Ok(e
            .with_batcher(b.clone())
            .map_err(anyhow::Error::msg)?
            .with_shared_prefixes(prefixes.clone())),
        None => Ok(e),
    }
}

fn batch_options(n: usize, kv_budget: usize) -> BatchOptions {
    BatchOptions {
        max_batch: n,
        kv_budget,
        wait: Duration::from_millis(2),
    }
}

/// Bytes of KV one token takes in every attention layer of `m` (f16 for GGUF files, the
/// compute dtype for safetensors, as sessions store them).
fn kv_bytes_per_token(m: &LoadedModel) -> usize {
    let c = m.model.config();
    let attn = c
        .layer_kinds
        .iter()
        .filter(|k| matches!(k, lfm_engine::config::LayerKind::Attention))
        .count();
    2 * attn * c.num_kv_heads * c.head_dim * m.model.default_kv_dtype().size_in_bytes()
}

/// Available memory in bytes, where the OS says.
fn available_memory() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Weights read per token below which one sequence's decode is not bound by memory traffic,
/// so stacking sequences saves nothing (the small test and demo models).
const BATCH_PAYS_BYTES: usize = 64 << 20;

/// Sequences at once when `--parallel` is not given: one when the model is too small for
/// batching to pay; else four per core, as many full-context KV caches as fit in half the
/// available memory, at most 8.
fn default_parallel(model: &LoadedModel, context: usize) -> usize {
    if model.model.weight_bytes_per_token() < BATCH_PAYS_BYTES {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_seq = kv_bytes_per_token(model).max(1) * context;
    let mem = available_memory().unwrap_or(4 << 30) / 2;
    (mem / per_seq).min(4 * cores).clamp(1, 8)
}

impl ParallelArgs {
    /// `--parallel`, or `default()` when it is not given; 0 is refused.
    fn count(&self, default: impl FnOnce() -> usize) -> Result<usize> {
        match self.parallel {
            Some(0) => anyhow::bail!("--parallel 0: need at least one sequence"),
            Some(n) => Ok(n),
            None => Ok(default()),
        }
    }

    /// Resolves the flags for `model` at `context` tokens per sequence.
    pub fn resolve(&self, model: &LoadedModel, context: usize) -> Result<Parallel> {
        let n = self.count(|| default_parallel(model, context))?;
        let kv_budget = match self.kv_budget {
            Some(0) => anyhow::bail!("--kv-budget 0: need at least one token"),
            Some(b) => b,
            None => n * context,
        };
        let mut p = Parallel {
            n,
            kv_budget,
            budget_given: self.kv_budget.is_some(),
            batcher: None,
            kv_token_bytes: kv_bytes_per_token(model),
        };
        p.batcher = p.another_batcher()?;
        Ok(p)
    }

    /// For a server backend: that many requests in flight (1 unless given); no batcher.
    pub fn resolve_remote(&self) -> Result<Parallel> {
        if let Some(b) = self.kv_budget {
            anyhow::bail!(
                "--kv-budget {b}: the server behind --backend keeps its own KV; the budget is \
                 for the built-in engine"
            );
        }
        let n = self.count(|| 1)?;
        Ok(Parallel {
            n,
            kv_budget: usize::MAX,
            budget_given: false,
            batcher: None,
            kv_token_bytes: 0,
        })
    }
}

impl Parallel {
    /// One backend per sequence in flight over the shared `model` (`opts` as for one alone).
    pub fn backends(
        &self,
        model: &Arc<LoadedModel>,
        opts: &EngineOptions,
    ) -> Result<Vec<EngineBackend>> {
        let prefixes = SharedPrefixes::default();
        (0..self.n)
            .map(|_| engine_backend(model, opts, self.batcher.as_ref(), &prefixes))
            .collect()
    }

    /// A new batcher with these settings (for a second model), when sequences share passes
    /// or a KV budget was given.
    pub fn another_batcher(&self) -> Result<Option<Batcher>> {
        if (self.n < 2 && !self.budget_given) || self.kv_budget == usize::MAX {
            return Ok(None);
        }
        Ok(Some(
            Batcher::new(batch_options(self.n, self.kv_budget)).context("--parallel")?,
        ))
    }

    /// The batcher, when sequences share passes.
    pub fn batcher(&self) -> Option<&Batcher> {
        self.batcher.as_ref()
    }

    /// How much the sequences shared their passes, and the KV they held, when batched.
    pub fn print_stats(&self) {
        if let Some(b) = &self.batcher {
            let (passes, per_pass) = b.stats();
            let kv = b.budget_use();
            let mib = |tokens: usize| (tokens * self.kv_token_bytes) as f64 / (1 << 20) as f64;
            let peak = lfm_engine::session::kv_memory().peak as f64 / (1 << 20) as f64;
            println!(
                "parallel {}: {passes} shared forward passes, {per_pass:.2} sequences per pass, \
                 {:.1} s in them",
                self.n,
                b.pass_time().as_secs_f64()
            );
            println!(
                "KV budget {} tokens ({:.1} MiB): at most {} tokens ({:.1} MiB) held, {} idle \
                 sequences evicted; KV buffers in the process peaked at {peak:.1} MiB",
                kv.limit,
                mib(kv.limit),
                kv.peak,
                mib(kv.peak),
                kv.evictions
            );
        }
    }

    /// For the startup line.
    pub fn describe(&self) -> String {
        match (self.n, &self.batcher) {
            (1, None) => "1 sequence at a time".to_string(),
            (1, Some(_)) => format!("1 sequence at a time, KV budget {} tokens", self.kv_budget),
            (n, _) => format!("{n} sequences batched, KV budget {} tokens", self.kv_budget),
        }
    }
}
