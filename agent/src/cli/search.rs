//! `lfm-agent search "QUERY"`: BM25 search of the retrieval index, with snippets, filters,
//! score explanations and the packed context the model would read.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lfm_retrieval::{pack, DocKind, Retriever, SearchRequest};

use super::index::DEFAULT_INDEX;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Any text. Query syntax works where it parses (`"exact phrase"`, `+must`, `-not`,
    /// `headings:vpn`); anything else is searched as plain words.
    query: String,
    /// The index folder.
    #[arg(long, default_value = DEFAULT_INDEX, value_name = "PATH")]
    index: PathBuf,
    /// Number of hits.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Only files whose indexed path matches this glob (repeatable): `'**/network/*.md'`.
    #[arg(long = "path", value_name = "GLOB")]
    paths: Vec<String>,
    /// Only files of this type (repeatable): md, rst, html, txt, log, json, jsonl, csv, pdf.
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Show tantivy's explanation of each BM25 score.
    #[arg(long)]
    explain: bool,
    /// Print the context packed for the model from the hits, under this many tokens
    /// (estimated), with its numbered citations.
    #[arg(long, value_name = "TOKENS")]
    pack: Option<usize>,
    /// Print JSON (an array of hits, or the packed context with `--pack`).
    #[arg(long)]
    json: bool,
}

pub fn run(a: SearchArgs) -> Result<()> {
    let retriever =
        Retriever::open(&a.index).with_context(|| format!("--index {}", a.index.display()))?;
    let kinds = a
        .types
        .iter()
        .map(|t| DocKind::from_name(t).ok_or_else(|| lfm_retrieval::Error::UnknownKind(t.clone())))
        .collect::<Result<Vec<_>, _>>()
        .context("--type")?;
    if a.k == 0 {
        anyhow::bail!("--k 0: ask for at least one hit");
    }
    let req = SearchRequest {
        query: a.query.clone(),
        k: a.k,
        path_globs: a.paths.clone(),
        kinds,
        snippets: true,
        explain: a.explain,
    };
    let hits = retriever.search(&req).context(if a.paths.is_empty() {
        "search"
    } else {
        "--path"
    })?;
    if let Some(budget) = a.pack {
        let packed = pack(&hits, budget, &lfm_retrieval::EstimateCounter);
        if a.json {
            println!("{}", serde_json::to_string_pretty(&packed)?);
        } else {
            println!("{}", packed.text());
            eprintln!(
                "-- {} passages, {} tokens (estimated) of {budget}, {} hits left out",
                packed.citations.len(),
                packed.tokens,
                packed.dropped
            );
        }
        return Ok(());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
        return Ok(());
    }
    if hits.is_empty() {
        eprintln!(
            "no hits for {:?} in {} chunks",
            a.query,
            retriever.num_chunks()
        );
        return Ok(());
    }
    let tty = std::io::stdout().is_terminal();
    let (open, close) = if tty {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    for (i, h) in hits.iter().enumerate() {
        let c = &h.chunk;
        println!("{}. {}  score {:.3}", i + 1, c.location(), h.score);
        if !c.trail.is_empty() {
            println!("   {}", c.trail.join(" > "));
        }
        if let Some(s) = &h.snippet {
            let text = s
                .marked(open, close)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            println!("   {text}");
        }
        if let Some(e) = &h.explanation {
            for line in e.lines() {
                println!("   | {line}");
            }
        }
    }
    Ok(())
}
