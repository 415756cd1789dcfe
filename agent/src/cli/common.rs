//! Arguments shared by the commands that load a model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::folder::{ComputeDtype, LoadOptions, LoadedModel};
use lfm_engine::sampling::SamplingParams;

/// Which model to load and how.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json, ...), a
    /// llama.cpp GGUF file (architecture lfm2), or a pulled repo (`OWNER/NAME[:FILE]`, see
    /// `lfm-agent pull`).
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Compute dtype: auto (f32), f32, bf16, f16 or f64.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// Context size of the session in tokens (default: the model's maximum, capped at 32768).
    #[arg(long, value_name = "N")]
    pub ctx: Option<usize>,
}

impl ModelArgs {
    /// Loads the model, saying so on stderr when it is a synthetic one.
    pub fn load(&self) -> Result<LoadedModel> {
        let dtype: ComputeDtype = self.dtype.parse().context("--dtype")?;
        let path = super::models::resolve_model(&self.model, "--model")?;
        let m = LoadedModel::load(&path, &LoadOptions { dtype })
            .with_context(|| format!("loading model from {}", self.model.display()))?;
        if m.model.config().synthetic {
            eprintln!(
                "note: {} is a synthetic random-weight model (lfm-agent synth): its output is meaningless text",
                self.model.display()
            );
        }
        Ok(m)
    }

    /// The session context for `m`.
    pub fn context(&self, m: &LoadedModel) -> Result<usize> {
        let max = m.model.config().max_position_embeddings;
        match self.ctx {
            Some(n) if n == 0 || n > max => {
                anyhow::bail!(
                    "--ctx {n}: must be between 1 and the model's max_position_embeddings ({max})"
                )
            }
            Some(n) => Ok(n),
            None => Ok(max.min(32768)),
        }
    }
}

/// Sampling flags; unset ones fall back to `generation_config.json`, then to greedy.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Sampling temperature (0 = greedy).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Min-p threshold relative to the most likely token (0 = off).
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Repetition penalty (1 = off).
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when this string is generated (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Prompt tokens per prefill chunk.
    #[arg(long, default_value_t = 512, value_name = "K")]
    pub prefill_chunk: usize,
    /// Check prompt-lookup drafts of up to K tokens in one pass (greedy sampling only; the
    /// output is the same, faster where it copies the prompt). 0: off.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub draft: usize,
}

impl SamplingArgs {
    /// The engine's generation options for `m`.
    pub fn options(&self, m: &LoadedModel) -> lfm_engine::generate::GenerateOptions {
        let d = m.generation.sampling();
        if self.draft > 0 && self.temperature.unwrap_or(d.temperature) > 0.0 {
            eprintln!("warning: --draft checks drafts only at temperature 0 (greedy); it is off for this run");
        }
        let sampling = SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.or(d.top_k),
            top_p: self.top_p.or(d.top_p),
            min_p: self.min_p.or(d.min_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
            seed: self.seed,
        };
        lfm_engine::generate::GenerateOptions {
            max_tokens: self
                .max_tokens
                .or(m.generation.max_new_tokens)
                .unwrap_or(256),
            sampling,
            stop_tokens: m.stop_tokens(),
            stop_strings: self.stop.clone(),
            prefill_chunk: self.prefill_chunk,
            draft: (self.draft > 0).then(|| lfm_engine::lookup::DraftOptions {
                max_tokens: self.draft,
                ..Default::default()
            }),
        }
    }
}

/// Parses `1,5,9` (spaces allowed).
pub fn parse_token_list(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .with_context(|| format!("--tokens: `{t}` is not a token id"))
        })
        .collect()
}
