//! `lfm-agent constraint check`: walks instances through the same matcher generation uses.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lfm_engine::constraint::{CheckOutcome, ConstraintSpec};

use super::common::ModelArgs;
use super::constraint_args::ConstraintArgs;

#[derive(Debug, Args)]
pub struct ConstraintCmd {
    #[command(subcommand)]
    command: ConstraintSub,
}

#[derive(Debug, Subcommand)]
enum ConstraintSub {
    /// Check instance files against a constraint; exits non-zero if any is rejected.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    constraint: ConstraintArgs,
    /// Files holding one instance each (for --json-schema: a JSON value).
    #[arg(value_name = "INSTANCE", required = true)]
    instances: Vec<PathBuf>,
    /// Print one JSON object per instance.
    #[arg(long)]
    json: bool,
}

pub fn run(c: ConstraintCmd) -> Result<()> {
    match c.command {
        ConstraintSub::Check(a) => check(a),
    }
}

fn check(a: CheckArgs) -> Result<()> {
    let spec = a.constraint.spec()?.context(
        "give the constraint: --json-schema FILE, --regex RE, --grammar FILE.lark or --tools FILE",
    )?;
    let m = a.model.load()?;
    let tok = m
        .tokenizer
        .as_ref()
        .context("`constraint check` needs the model's tokenizer.json")?;
    let compiler = m.constraint_compiler()?;
    // Refuse an unsupported constraint once, up front.
    compiler
        .compile(&spec)
        .with_context(|| a.constraint.flag())?;
    let mut rejected = 0;
    for path in &a.instances {
        let raw = std::fs::read_to_string(path)
            .with_context(|| format!("reading instance {}", path.display()))?;
        let written = raw
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&raw);
        let mut forms: Vec<(&str, String)> = Vec::new();
        if matches!(spec, ConstraintSpec::JsonSchema(_)) {
            let v: serde_json::Value = serde_json::from_str(written)
                .with_context(|| format!("instance {}: not JSON", path.display()))?;
            forms.push(("compact", serde_json::to_string(&v)?));
        }
        forms.push(("as written", written.to_string()));
        let mut verdict: Option<(&str, CheckOutcome, String)> = None;
        for (form, text) in &forms {
            let ids = tok.encode(text)?;
            let outcome = compiler.compile(&spec)?.check(&ids)?;
            if !outcome.accepted() {
                let upto = outcome.rejected_at_token().unwrap_or(0).min(ids.len());
                verdict = Some((form, outcome, tok.decode(&ids[..upto])?));
                break;
            }
        }
        let name = path.display().to_string();
        match &verdict {
            None if a.json => println!(
                "{}",
                serde_json::json!({"instance": name, "accepted": true, "rejected_at_token": null})
            ),
            None => println!("{name}: accepted"),
            Some((form, outcome, before)) => {
                rejected += 1;
                let at = outcome.rejected_at_token();
                let incomplete = matches!(outcome, CheckOutcome::Incomplete { .. });
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"instance": name, "accepted": false, "rejected_at_token": at,
                            "form": form, "incomplete": incomplete, "text_before": before})
                    );
                } else if incomplete {
                    println!("{name}: rejected at token {} ({form}): ends before the constraint is complete: {before:?}", at.unwrap_or(0));
                } else {
                    println!(
                        "{name}: rejected at token {} ({form}) after {before:?}",
                        at.unwrap_or(0)
                    );
                }
            }
        }
    }
    if rejected > 0 {
        anyhow::bail!("{rejected} of {} instances rejected", a.instances.len());
    }
    Ok(())
}
