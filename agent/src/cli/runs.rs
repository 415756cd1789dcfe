//! `lfm-agent runs list|show ID`: the traces of agent runs (SQLite, `--traces`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lfm_agent::trace::TraceStore;

/// Where traces live unless `--traces` says otherwise.
pub const DEFAULT_TRACES: &str = ".lfm-agent/traces.sqlite";

#[derive(Debug, Args)]
pub struct RunsCmd {
    #[command(subcommand)]
    command: RunsSub,
    /// The trace database.
    #[arg(long, global = true, default_value = DEFAULT_TRACES, value_name = "PATH")]
    traces: PathBuf,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum RunsSub {
    /// The latest runs, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One run with every step.
    Show {
        /// The run id (from `runs list`).
        id: i64,
    },
}

pub fn run(c: RunsCmd) -> Result<()> {
    if !c.traces.exists() {
        anyhow::bail!(
            "--traces {}: no trace database yet (agent runs write one)",
            c.traces.display()
        );
    }
    let store = TraceStore::open(&c.traces)
        .map_err(anyhow::Error::msg)
        .context("--traces")?;
    match c.command {
        RunsSub::List { limit } => {
            let runs = store.list(limit).map_err(anyhow::Error::msg)?;
            if c.json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(());
            }
            println!(
                "{:>5}  {:<8} {:<14} {:>5} {:>8} {:>8} {:>8}  input",
                "id", "task", "stop", "steps", "prompt", "gen", "ms"
            );
            for r in runs {
                let input: String = r.input.chars().take(40).collect();
                println!(
                    "{:>5}  {:<8} {:<14} {:>5} {:>8} {:>8} {:>8}  {input}",
                    r.id, r.task, r.stop, r.steps, r.prompt_tokens, r.completion_tokens, r.wall_ms
                );
            }
        }
        RunsSub::Show { id } => {
            let d = store
                .show(id)
                .map_err(anyhow::Error::msg)?
                .with_context(|| format!("no run {id} in {}", c.traces.display()))?;
            if c.json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(());
            }
            let s = &d.summary;
            println!(
                "run {}: task {}, model {}, input {:?}\nstop: {}\ntokens: {} prefilled, {} generated; {} ms",
                s.id, s.task, s.model, s.input, d.stop_detail, s.prompt_tokens, s.completion_tokens, s.wall_ms
            );
            if let Some(a) = &d.answer {
                println!("answer: {a}");
            }
            for (i, step) in d.steps.iter().enumerate() {
                let kind = step["kind"].as_str().unwrap_or("?");
                let body = match kind {
                    "generate" => format!(
                        "{} prompt / {} generated tokens, {} ms: {}",
                        step["prompt_tokens"],
                        step["completion_tokens"],
                        step["ms"],
                        step["text"]
                            .as_str()
                            .unwrap_or("")
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ),
                    "tool_call" => format!(
                        "{}({}) -> {} ({} ms{})",
                        step["name"].as_str().unwrap_or("?"),
                        step["arguments"],
                        step["result"]
                            .as_str()
                            .unwrap_or("")
                            .chars()
                            .take(200)
                            .collect::<String>(),
                        step["ms"],
                        if step["ok"] == true { "" } else { ", failed" }
                    ),
                    _ => step.to_string(),
                };
                println!("  {i:>3} {kind:<15} {body}");
            }
        }
    }
    Ok(())
}
