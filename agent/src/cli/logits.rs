//! `lfm-agent logits`: the logits at every position, for debugging and for checking the
//! engine against another implementation.

use anyhow::Result;
use clap::Args;
use lfm_engine::model::Logits;
use lfm_engine::session::Session;

use super::common::{parse_token_list, ModelArgs};

#[derive(Debug, Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Comma-separated token ids, e.g. 1,5,9.
    #[arg(long)]
    tokens: String,
    /// Print `{"tokens": [...], "logits": [[...], ...]}`.
    #[arg(long)]
    json: bool,
    /// Run the tokens in chunks of K through one session.
    #[arg(long, value_name = "K", conflicts_with = "incremental")]
    prefill_chunk: Option<usize>,
    /// Run the tokens one at a time through one session.
    #[arg(long)]
    incremental: bool,
}

pub fn run(a: LogitsArgs) -> Result<()> {
    let tokens = parse_token_list(&a.tokens)?;
    if tokens.is_empty() {
        anyhow::bail!("--tokens: give at least one token id");
    }
    if a.prefill_chunk == Some(0) {
        anyhow::bail!("--prefill-chunk: must be at least 1");
    }
    let m = a.model.load()?;
    let max = m.model.config().max_position_embeddings;
    if tokens.len() > max {
        anyhow::bail!(
            "--tokens: {} tokens exceed the model's max_position_embeddings ({max})",
            tokens.len()
        );
    }
    let chunk = if a.incremental {
        1
    } else {
        a.prefill_chunk.unwrap_or(tokens.len())
    };
    let ctx = a.model.ctx.unwrap_or(tokens.len());
    let mut session = Session::new(m.model.clone(), ctx)?;
    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(tokens.len());
    for part in tokens.chunks(chunk) {
        rows.extend(session.forward(part, Logits::All)?.to_vec2::<f32>()?);
    }
    if a.json {
        println!("{}", serde_json::json!({"tokens": tokens, "logits": rows}));
        return Ok(());
    }
    for (i, (t, row)) in tokens.iter().zip(&rows).enumerate() {
        let mut top: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let shown: Vec<String> = top
            .iter()
            .take(5)
            .map(|(id, l)| {
                let text = m
                    .tokenizer
                    .as_ref()
                    .and_then(|tk| tk.id_to_token(*id as u32));
                match text {
                    Some(s) => format!("{id} {s:?} {l:.4}"),
                    None => format!("{id} {l:.4}"),
                }
            })
            .collect();
        println!("pos {i:>4} token {t:>6} -> top5: {}", shown.join(" | "));
    }
    Ok(())
}
