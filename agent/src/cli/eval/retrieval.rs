//! `lfm-agent eval retrieval`: retrieval quality on the labelled runbook questions (recall@k,
//! hit@k, MRR), beside the Python package rank-bm25 ranking the same chunks with the same
//! tokens (its rankings are a committed fixture made by `scripts/retrieval/rank_bm25.sh`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lfm_retrieval::eval::{self, Metrics, RankerOutput};
use lfm_retrieval::{Indexer, Retriever};

use super::super::index::ChunkArgs;

#[derive(Debug, Args)]
pub struct RetrievalEvalArgs {
    /// The docs folder to index (into a temporary index).
    #[arg(long, default_value = "examples/docs")]
    docs: PathBuf,
    /// Labelled questions (JSONL: id, question, relevant: [{path, lines}]).
    #[arg(long, default_value = "evals/retrieval/runbook-questions.jsonl")]
    questions: PathBuf,
    /// Folder the questions' paths are relative to.
    #[arg(long, default_value = ".")]
    base: PathBuf,
    /// The k of recall@k and hit@k.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Depth of the MRR ranking.
    #[arg(long, default_value_t = 10)]
    mrr_depth: usize,
    /// Another ranker's rankings of the same chunks, shown beside ours when present.
    #[arg(long, default_value = "evals/retrieval/rank-bm25-rankings.json")]
    baseline: PathBuf,
    /// Write the chunks' and questions' tokens for an outside ranker to this file.
    #[arg(long, value_name = "FILE")]
    dump_ranker_input: Option<PathBuf>,
    /// List the questions our ranking misses at k.
    #[arg(long)]
    verbose: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chunking: ChunkArgs,
}

pub fn run(a: RetrievalEvalArgs) -> Result<()> {
    if a.k == 0 || a.mrr_depth < a.k {
        anyhow::bail!("--k must be at least 1 and --mrr-depth at least --k");
    }
    let tmp = tempfile::tempdir().context("creating a temporary index folder")?;
    let index_dir = tmp.path().join("index");
    let mut indexer = Indexer::open(&index_dir, a.chunking.options()?, a.chunking.counter()?)?;
    let summary = indexer
        .update(std::slice::from_ref(&a.docs), &|_| {})
        .with_context(|| format!("--docs {}", a.docs.display()))?;
    indexer.finish()?;
    let retriever = Retriever::open(&index_dir)?;
    let mut questions = eval::load_questions(&a.questions).context("--questions")?;
    eval::resolve_paths(&mut questions, &a.base).context("--base: question paths")?;
    let ours = eval::rank_ours(&retriever, &questions, a.mrr_depth)?;
    let m_ours = eval::score(&questions, &ours, a.k, a.mrr_depth);
    let input = eval::ranker_input(&retriever, &questions, &a.base)?;
    if let Some(path) = &a.dump_ranker_input {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_vec(&input)?)
            .with_context(|| format!("--dump-ranker-input {}", path.display()))?;
        eprintln!(
            "wrote {} chunks and {} questions to {}",
            input.chunks.len(),
            input.questions.len(),
            path.display()
        );
    }
    let baseline = match std::fs::read(&a.baseline) {
        Ok(bytes) => {
            let out: RankerOutput = serde_json::from_slice(&bytes)
                .with_context(|| format!("--baseline {}", a.baseline.display()))?;
            match eval::rankings_from(&retriever, &questions, &a.base, &input, &out) {
                Ok(r) => Some((
                    out.ranker.clone(),
                    eval::score(&questions, &r, a.k, a.mrr_depth),
                )),
                Err(e) => {
                    eprintln!("warning: --baseline {}: {e}", a.baseline.display());
                    None
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("--baseline {}", a.baseline.display())),
    };
    if a.json {
        let v = serde_json::json!({
            "docs": a.docs,
            "chunks": summary.chunks_total,
            "fingerprint": input.fingerprint,
            "ours": m_ours,
            "baseline": baseline.as_ref().map(|(name, m)| serde_json::json!({"ranker": name, "metrics": m})),
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "retrieval eval: {} questions, {} over {} files, {} chunks (max {} tokens, overlap {}, counter {}), fingerprint {}",
        m_ours.questions,
        a.docs.display(),
        summary.files.saturating_sub(summary.skipped.len()),
        summary.chunks_total,
        a.chunking.chunk_tokens,
        a.chunking.overlap_tokens,
        a.chunking.tokenizer.as_ref().map_or("estimate".to_string(), |p| p.display().to_string()),
        input.fingerprint,
    );
    println!(
        "{:<34} {:>9} {:>7} {:>8}",
        "ranker",
        format!("recall@{}", a.k),
        format!("hit@{}", a.k),
        format!("MRR@{}", a.mrr_depth)
    );
    row("lfm-retrieval (tantivy BM25, boosts)", &m_ours);
    match &baseline {
        Some((name, m)) => row(name, m),
        None => println!(
            "(no baseline: {} missing or stale; scripts/retrieval/rank_bm25.sh makes it)",
            a.baseline.display()
        ),
    }
    if a.verbose {
        for (q, s) in questions.iter().zip(&m_ours.per_question) {
            if s.recall < 1.0 {
                println!(
                    "miss {} (recall {:.2}, first relevant at {}): {}",
                    q.id,
                    s.recall,
                    s.first_relevant.map_or("-".to_string(), |r| r.to_string()),
                    q.question
                );
            }
        }
    }
    Ok(())
}

fn row(name: &str, m: &Metrics) {
    println!(
        "{:<34} {:>9.3} {:>7.3} {:>8.3}",
        name, m.recall_at_k, m.hit_at_k, m.mrr
    );
}
