//! `lfm-agent generate`.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::generate::{generate, generate_constrained};
use lfm_engine::session::Session;
use lfm_engine::text::{Message, Role};

use super::common::{ModelArgs, SamplingArgs};
use super::constraint_args::ConstraintArgs;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The user message (rendered with the model's chat template unless --raw).
    #[arg(long)]
    prompt: String,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    /// Feed the prompt as is, without the chat template.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    constraint: ConstraintArgs,
    /// Say on stderr how a constraint was adapted (formats not enforced, oneOf as anyOf).
    #[arg(long)]
    verbose: bool,
    /// Print prefill and decode speed to stderr.
    #[arg(long)]
    stats: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: GenerateArgs) -> Result<()> {
    let spec = a.constraint.spec()?;
    let m = a.model.load()?;
    let tok = m.tokenizer.as_ref().with_context(|| {
        format!(
            "{}: no tokenizer.json; `generate` needs one (use `logits --tokens` for token ids)",
            a.model.model.display()
        )
    })?;
    let text = if a.raw {
        a.prompt.clone()
    } else {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(Message::new(Role::System, s.clone()));
        }
        msgs.push(Message::new(Role::User, a.prompt.clone()));
        m.template()?.render(&msgs, &[], true)?
    };
    let ids = tok.encode(&text)?;
    if ids.is_empty() {
        anyhow::bail!("--prompt: the prompt encodes to no tokens");
    }
    let opts = a.sampling.options(&m);
    // Compile the constraint before anything is generated: unsupported specs fail here.
    let mut matcher = match &spec {
        Some(spec) => {
            let compiler = m.constraint_compiler()?;
            let matcher = compiler
                .compile(spec)
                .with_context(|| a.constraint.flag())?;
            if a.verbose {
                for note in matcher.notes() {
                    eprintln!("note: {note}");
                }
            }
            Some(matcher)
        }
        None => None,
    };
    let mut session = Session::new(m.model.clone(), a.model.context(&m)?)?;
    let stdout = std::io::stdout();
    let json = a.json;
    let mut sink = |piece: &str| {
        if !json {
            let mut lock = stdout.lock();
            // A closed pipe must not abort generation; the final result still reports.
            let _ = lock.write_all(piece.as_bytes());
            let _ = lock.flush();
        }
    };
    let out = match matcher.as_mut() {
        Some(mt) => generate_constrained(&mut session, Some(tok), &ids, &opts, mt, &mut sink)?,
        None => generate(&mut session, Some(tok), &ids, &opts, &mut sink)?,
    };
    if json {
        let mut v = serde_json::json!({
            "text": out.text,
            "finish_reason": out.finish_reason.as_str(),
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.tokens.len(),
        });
        if let Some(c) = out.constraint_complete {
            v["complete"] = serde_json::json!(c);
            v["forced_tokens"] = serde_json::json!(out.forced_tokens);
        }
        println!("{v}");
    } else {
        println!();
        if out.constraint_complete == Some(false) {
            eprintln!("warning: the output is incomplete: it was cut ({}) before the constraint was satisfied", out.finish_reason.as_str());
        }
    }
    if a.stats {
        eprintln!(
            "prefill: {} tokens in {:.3} s ({:.1} tok/s); decode: {} tokens in {} forward passes, {:.3} s ({:.1} tok/s); finish: {}",
            out.prompt_tokens,
            out.prefill_secs,
            out.prefill_tok_s(),
            out.tokens.len(),
            out.decode_steps,
            out.decode_secs,
            if out.decode_secs > 0.0 { out.tokens.len().saturating_sub(1) as f64 / out.decode_secs } else { 0.0 },
            out.finish_reason.as_str()
        );
        if out.draft_passes > 0 || opts.draft.is_some() {
            eprintln!(
                "drafts: {} passes checked {} drafted tokens, took {} ({:.2} per pass, {:.2} tokens per forward pass overall)",
                out.draft_passes,
                out.draft_proposed,
                out.draft_accepted,
                out.accepted_per_draft_pass(),
                if out.decode_steps > 0 { out.tokens.len().saturating_sub(1) as f64 / out.decode_steps as f64 } else { 0.0 },
            );
        }
    }
    Ok(())
}
