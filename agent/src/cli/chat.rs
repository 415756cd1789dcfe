//! `lfm-agent chat`: an interactive conversation.
//!
//! The session is kept between turns. Before each turn the whole conversation is rendered
//! with the chat template (which drops past thinking); the session rolls back to the snapshot
//! taken after the previous prompt when the new prompt extends it, so only the new turn is
//! prefilled, and starts over otherwise.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use clap::Args;
use lfm_engine::generate::generate;
use lfm_engine::session::{Session, Snapshot};
use lfm_engine::text::{Message, Role};

use super::common::{ModelArgs, SamplingArgs};

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print prefill and decode speed after each answer.
    #[arg(long)]
    stats: bool,
}

pub fn run(a: ChatArgs) -> Result<()> {
    let m = a.model.load()?;
    let tok = m.tokenizer.as_ref().with_context(|| {
        format!(
            "{}: no tokenizer.json; `chat` needs one",
            a.model.model.display()
        )
    })?;
    let opts = a.sampling.options(&m);
    let mut session = Session::new(m.model.clone(), a.model.context(&m)?)?;
    // Points the session can roll back to: after the last prompt, and after the last answer.
    let mut saved: Vec<Snapshot> = Vec::new();
    let base: Vec<Message> = a
        .system
        .iter()
        .map(|s| Message::new(Role::System, s.clone()))
        .collect();
    let mut messages = base.clone();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    eprintln!("chat: type a message; /reset starts over, /exit quits");
    loop {
        write!(out, "> ")?;
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages = base.clone();
                session.reset()?;
                saved.clear();
                continue;
            }
            _ => {}
        }
        messages.push(Message::new(Role::User, line));
        let ids = tok.encode(&m.template()?.render(&messages, &[], true)?)?;
        if ids.is_empty() {
            eprintln!("error: the chat template rendered the conversation to no tokens");
            messages.pop();
            continue;
        }
        // Reuse the longest saved point whose tokens begin the new prompt.
        let reuse = saved
            .iter()
            .filter(|s| ids.len() > s.tokens().len() && ids.starts_with(s.tokens()))
            .max_by_key(|s| s.tokens().len());
        let start = match reuse {
            Some(s) => {
                session.restore(s)?;
                s.tokens().len()
            }
            None => {
                session.reset()?;
                0
            }
        };
        // Prefill all but the last prompt token, save that point, and let `generate` run the last.
        let (body, last) = ids[start..].split_at(ids.len() - start - 1);
        let result = (|| -> lfm_engine::Result<lfm_engine::generate::Generation> {
            if !body.is_empty() {
                session.prefill(body, opts.prefill_chunk)?;
            }
            let before = session.snapshot();
            let g = generate(&mut session, Some(tok), last, &opts, &mut |piece| {
                print!("{piece}");
                let _ = std::io::stdout().flush();
            })?;
            saved = vec![before, session.snapshot()];
            Ok(g)
        })();
        println!();
        let g = match result {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: {e}");
                messages.pop();
                session.reset()?;
                saved.clear();
                continue;
            }
        };
        messages.push(Message::new(Role::Assistant, g.text.clone()));
        if a.stats {
            eprintln!(
                "[prefill {:.1} tok/s, decode {:.1} tok/s, {} tokens, {}]",
                g.prefill_tok_s(),
                g.decode_tok_s(),
                g.tokens.len(),
                g.finish_reason.as_str()
            );
        }
    }
    Ok(())
}
