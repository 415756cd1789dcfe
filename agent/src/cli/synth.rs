//! `lfm-agent synth`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::synth::{write_model_folder, DiskDtype, Preset};

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Shape: tiny, or lfm2.5-1.2b (the exact published shape).
    #[arg(long)]
    preset: String,
    /// Folder to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// On-disk dtype: f32 or bf16 (default: f32 for tiny, bf16 for lfm2.5-1.2b).
    #[arg(long)]
    dtype: Option<String>,
    /// Seed of the random weights and tokenizer merges.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: SynthArgs) -> Result<()> {
    let preset: Preset = a.preset.parse().context("--preset")?;
    let dtype = match a.dtype.as_deref() {
        None => preset.default_dtype(),
        Some("f32") => DiskDtype::F32,
        Some("bf16") => DiskDtype::Bf16,
        Some(other) => anyhow::bail!("--dtype `{other}`: expected f32 or bf16"),
    };
    write_model_folder(preset, dtype, a.seed, &a.out)
        .with_context(|| format!("writing a synthetic model to {}", a.out.display()))?;
    eprintln!(
        "wrote {} ({:?}, {:?}): random weights, meaningless output; for tests, demos and speed only",
        a.out.display(),
        preset,
        dtype
    );
    Ok(())
}
