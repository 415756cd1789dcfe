//! `lfm-agent demo`: the whole product on the bundled example data. Builds a synthetic
//! model when none is configured (and says so), indexes `examples/docs`, triages
//! `examples/tickets.jsonl`, answers one question and extracts events from
//! `examples/logs/app.log`, then prints where the outputs and traces are.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::synth::{write_model_folder, DiskDtype, Preset};

use lfm_agent::config::Config;

use super::agent_args::{Agent, AgentArgs};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The bundled example data.
    #[arg(long, default_value = "examples", value_name = "DIR")]
    pub examples: PathBuf,
    /// Where outputs, the index, the traces and a synthetic model go.
    #[arg(long, default_value = ".lfm-agent/demo", value_name = "DIR")]
    pub out: PathBuf,
    /// Tickets to triage (all by default).
    #[arg(long, value_name = "N")]
    pub tickets: Option<usize>,
    #[command(flatten)]
    pub agent: AgentArgs,
}

pub fn run(a: DemoArgs) -> Result<()> {
    let mut config = a.agent.config()?;
    let ex = &a.examples;
    for need in ["docs", "tickets.jsonl", "logs/app.log", "event.schema.json"] {
        let p = ex.join(need);
        if !p.exists() {
            anyhow::bail!(
                "--examples {}: {} is missing (run the demo from the repository root)",
                ex.display(),
                p.display()
            );
        }
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("--out {}", a.out.display()))?;
    use_synthetic_if_unset(&mut config, &a.agent, &a.out, 4096)?;
    if a.agent.index.is_none() {
        config.index = a.out.join("index");
    }
    if a.agent.traces.is_none() {
        config.traces = a.out.join("traces.sqlite");
    }
    let agent = Agent::build(config, &[ex.join("docs")])?;
    if agent.synthetic {
        println!(
            "NOTE: the model is SYNTHETIC (random weights, {}): the pipeline runs end to end and every\n      output is schema-valid by construction, but the text in it is meaningless. Point --model\n      (or model.path in lfm-agent.toml) at a real LFM2.5 folder or GGUF for real answers.\n",
            agent.model_name
        );
    }

    println!("== triage {}", ex.join("tickets.jsonl").display());
    let triaged = a.out.join("triaged.jsonl");
    let s = super::triage::triage(
        &agent,
        &ex.join("tickets.jsonl"),
        &triaged,
        None,
        a.tickets,
        1,
    )?;
    super::triage::print_summary(&s, &triaged, &agent);
    if let Some(first) = s.run_ids.first() {
        println!(
            "   first trace: lfm-agent runs show {first} --traces {}",
            agent.config.traces.display()
        );
    }

    let question = "What should I check when the VPN handshake fails from a hotel network?";
    println!("\n== ask {question:?}");
    let k = if agent.synthetic { 2 } else { 4 };
    let (out, id) = super::ask::ask(&agent, question, k, None, None)?;
    match &out.answer {
        Some(answer) if out.stop == lfm_agent::runner::StopReason::Answered => {
            println!("answer (run {id}): {answer}");
        }
        _ => println!(
            "no answer (run {id}): {}",
            super::agent_args::stop_name(&out.stop)
        ),
    }

    let log = ex.join("logs/app.log");
    println!("\n== extract {}", log.display());
    let events = a.out.join("events.jsonl");
    let e = super::extract::extract(
        &agent,
        &log,
        &ex.join("event.schema.json"),
        &events,
        None,
        1,
    )?;
    println!(
        "extracted {} events from {} windows ({} already done, {} failed) in {:.1} s -> {}",
        e.events,
        e.windows - e.skipped,
        e.skipped,
        e.failed.len(),
        e.secs,
        events.display()
    );

    println!("\n== outputs");
    for (what, p) in [
        ("triaged tickets", &triaged),
        ("extracted events", &events),
        ("traces (SQLite)", &agent.config.traces),
        ("index", &agent.config.index),
    ] {
        println!("  {what:<17} {}", display(p));
    }
    println!(
        "  runs: lfm-agent runs list --traces {}",
        agent.config.traces.display()
    );
    if agent.synthetic {
        println!("  (model: synthetic, {})", agent.model_name);
    }
    Ok(())
}

/// With no model (and no backend) configured, points `config` at a synthetic tiny model under `dir`
/// (written on first use, said on stderr) with short turns, and returns true.
/// `ctx` is the context it is used with: the tiny preset's own is 4,096 tokens, and a longer
/// one is written into its config (random weights have no trained length to respect).
pub fn use_synthetic_if_unset(
    config: &mut Config,
    flags: &AgentArgs,
    dir: &Path,
    ctx: usize,
) -> Result<bool> {
    if config.model.path.is_some() || config.model.backend.is_some() {
        return Ok(false);
    }
    let dir = dir.join(if ctx > 4096 {
        format!("model-tiny-{ctx}")
    } else {
        "model-tiny".into()
    });
    if !dir.join("model.safetensors").exists() {
        eprintln!(
            "no model configured; writing a synthetic random-weight model to {}",
            dir.display()
        );
        write_model_folder(Preset::Tiny, DiskDtype::F32, 0, &dir)
            .with_context(|| format!("writing a synthetic model to {}", dir.display()))?;
        if ctx > 4096 {
            let path = dir.join("config.json");
            let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("{}", path.display()))?;
            c["max_position_embeddings"] = ctx.into();
            std::fs::write(&path, serde_json::to_vec_pretty(&c)?)
                .with_context(|| format!("{}", path.display()))?;
        }
    }
    config.model.path = Some(dir);
    // A small model and meaningless text: short turns keep it quick.
    config.model.think_budget = config.model.think_budget.or(Some(24));
    config.model.ctx = config.model.ctx.or(Some(ctx));
    if flags.max_turn_tokens.is_none() {
        config.limits.max_turn_tokens = 512;
    }
    if flags.max_steps.is_none() {
        config.limits.max_steps = 4;
    }
    config.model.temperature = config.model.temperature.or(Some(0.8));
    // Its tokenizer has random merges, so text takes about three times the tokens it takes
    // with LFM2's: smaller tool results.
    config.tool_output_chars = config.tool_output_chars.min(1500);
    Ok(true)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
