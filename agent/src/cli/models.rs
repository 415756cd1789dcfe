//! `lfm-agent pull REPO` and `lfm-agent models list|rm`: models from the Hugging Face Hub
//! (`lfm-hub`), and `--model` values that name a pulled repo.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lfm_hub::{Hub, PullOptions, RepoId};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The repo, `OWNER/NAME` (for example LiquidAI/LFM2.5-1.2B-Instruct-GGUF).
    repo: String,
    /// One file of the repo (a GGUF); default: Q4_K_M, else Q4_0, else Q8_0, else the first
    /// GGUF; for a safetensors repo, the model folder.
    #[arg(long, value_name = "NAME")]
    file: Option<String>,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
}

#[derive(Debug, Args)]
pub struct ModelsCmd {
    #[command(subcommand)]
    command: ModelsSub,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ModelsSub {
    /// The pulled models, with their files and size.
    List,
    /// Remove a pulled model (every file and revision of the repo).
    Rm {
        /// The repo, `OWNER/NAME`.
        repo: String,
    },
}

fn repo_arg(s: &str) -> Result<RepoId> {
    RepoId::parse(s).map_err(anyhow::Error::msg)
}

pub fn pull(a: PullArgs) -> Result<()> {
    let hub = hub()?;
    let repo = repo_arg(&a.repo)?;
    let opts = PullOptions {
        file: a.file.clone(),
        revision: a.revision.clone(),
    };
    eprintln!(
        "pulling {repo} from {}{} into {}",
        hub.endpoint(),
        if hub.offline() {
            " (offline: cache only)"
        } else {
            ""
        },
        hub.cache_dir().display()
    );
    let p = hub.pull(&repo, &opts).map_err(anyhow::Error::msg)?;
    for f in &p.files {
        println!(
            "{:<48} {:>12} bytes  {}{}",
            f.name,
            f.bytes,
            f.checked,
            if f.downloaded { "" } else { ", already here" }
        );
    }
    println!("commit {}", p.commit);
    println!("model: {}", p.model_path.display());
    if a.revision != "main" {
        println!(
            "revision {} is not main: use it as --model {}",
            a.revision,
            p.model_path.display()
        );
    } else if let Some(f) = &a.file {
        println!("use it as: --model {repo}:{f}");
    } else {
        println!("use it as: --model {repo}");
    }
    Ok(())
}

pub fn models(c: ModelsCmd) -> Result<()> {
    let hub = hub()?;
    match c.command {
        ModelsSub::List => {
            let list = hub.list().map_err(anyhow::Error::msg)?;
            if c.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "repo": m.repo.as_str(), "commit": m.commit, "files": m.files,
                            "bytes": m.bytes, "dir": m.dir,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("no models pulled in {}", hub.cache_dir().display());
                return Ok(());
            }
            println!("{:<48} {:>10}  files", "repo", "MiB");
            for m in &list {
                println!(
                    "{:<48} {:>10.1}  {}",
                    m.repo.as_str(),
                    m.bytes as f64 / (1 << 20) as f64,
                    m.files.join(", ")
                );
            }
        }
        ModelsSub::Rm { repo } => {
            let repo = repo_arg(&repo)?;
            let freed = hub.remove(&repo).map_err(anyhow::Error::msg)?;
            println!(
                "removed {repo} ({:.1} MiB freed)",
                freed as f64 / (1 << 20) as f64
            );
        }
    }
    Ok(())
}

/// A model value (`key` names the flag or config key) as a path: the path itself when it
/// exists, else the pulled repo it names (`OWNER/NAME` or `OWNER/NAME:FILE`).
pub fn resolve_model(model: &Path, key: &str) -> Result<PathBuf> {
    if model.exists() {
        return Ok(model.to_path_buf());
    }
    let Some(s) = model.to_str() else {
        return Ok(model.to_path_buf());
    };
    hub()
        .and_then(|h| h.resolve(s).map_err(anyhow::Error::msg))
        .with_context(|| key.to_string())
}

fn hub() -> Result<Hub> {
    Hub::from_env().map_err(anyhow::Error::msg)
}
