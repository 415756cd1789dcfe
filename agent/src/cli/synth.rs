//! `lfm-agent synth`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::quant::GgmlType;
use lfm_engine::synth::{write_gguf, write_model_folder, DiskDtype, Preset};

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Shape: tiny, micro (2M parameters, for GGUF fixtures), or lfm2.5-1.2b (the exact
    /// published shape).
    #[arg(long)]
    preset: String,
    /// Where to write: a folder (safetensors) or a file (gguf).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// File format: safetensors (a Hugging Face folder) or gguf (one llama.cpp file).
    #[arg(long, default_value = "safetensors")]
    format: String,
    /// safetensors dtype: f32 or bf16 (default: f32 for tiny and micro, bf16 for lfm2.5-1.2b).
    #[arg(long)]
    dtype: Option<String>,
    /// gguf matrix type: f32, f16, bf16, q8_0 or q4_0 (default f16).
    #[arg(long)]
    quant: Option<String>,
    /// Seed of the random weights and tokenizer merges.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn parse_quant(s: &str) -> Result<GgmlType> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "f32" => GgmlType::F32,
        "f16" => GgmlType::F16,
        "bf16" => GgmlType::BF16,
        "q8_0" => GgmlType::Q8_0,
        "q4_0" => GgmlType::Q4_0,
        other => anyhow::bail!("--quant `{other}`: expected f32, f16, bf16, q8_0 or q4_0"),
    })
}

pub fn run(a: SynthArgs) -> Result<()> {
    let preset: Preset = a.preset.parse().context("--preset")?;
    match a.format.as_str() {
        "safetensors" => {
            if a.quant.is_some() {
                anyhow::bail!("--quant applies to --format gguf; use --dtype for safetensors");
            }
            let dtype = match a.dtype.as_deref() {
                None => preset.default_dtype(),
                Some("f32") => DiskDtype::F32,
                Some("bf16") => DiskDtype::Bf16,
                Some(other) => anyhow::bail!("--dtype `{other}`: expected f32 or bf16"),
            };
            write_model_folder(preset, dtype, a.seed, &a.out)
                .with_context(|| format!("writing a synthetic model to {}", a.out.display()))?;
            eprintln!(
                "wrote {} ({}, {:?}): random weights, meaningless output; for tests, demos and speed only",
                a.out.display(),
                preset.name(),
                dtype
            );
        }
        "gguf" => {
            if a.dtype.is_some() {
                anyhow::bail!("--dtype applies to --format safetensors; use --quant for gguf");
            }
            let quant = parse_quant(a.quant.as_deref().unwrap_or("f16"))?;
            write_gguf(preset, quant, a.seed, &a.out)
                .with_context(|| format!("writing a synthetic GGUF to {}", a.out.display()))?;
            eprintln!(
                "wrote {} ({}, {quant}): random weights, meaningless output; for tests, demos and speed only",
                a.out.display(),
                preset.name(),
            );
        }
        other => anyhow::bail!("--format `{other}`: expected safetensors or gguf"),
    }
    Ok(())
}
