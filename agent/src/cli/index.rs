//! `lfm-agent index DIR... [--index PATH]`: build or update the retrieval index.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lfm_retrieval::{ChunkConfig, EstimateCounter, IndexOptions, Indexer, TokenCounter};

/// Where the index lives unless `--index` says otherwise.
pub const DEFAULT_INDEX: &str = ".lfm-agent/index";

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Folders (or single files) to index: Markdown, reStructuredText, HTML, text, logs,
    /// JSON/JSONL, CSV and PDF. Hidden files and folders are skipped.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// The index folder (created if missing).
    #[arg(long, default_value = DEFAULT_INDEX, value_name = "PATH")]
    index: PathBuf,
    #[command(flatten)]
    chunking: ChunkArgs,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Chunk sizing flags, shared with `eval retrieval`.
#[derive(Debug, Clone, Args)]
pub struct ChunkArgs {
    /// Most tokens per chunk.
    #[arg(long, default_value_t = 400, value_name = "N")]
    pub chunk_tokens: usize,
    /// Tokens repeated from the previous chunk where a section or log window is cut.
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub overlap_tokens: usize,
    /// Count tokens with this tokenizer (a `tokenizer.json`, or a model folder holding one)
    /// instead of the built-in estimate.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
}

impl ChunkArgs {
    pub fn options(&self) -> Result<IndexOptions> {
        let chunking = ChunkConfig {
            max_tokens: self.chunk_tokens,
            overlap_tokens: self.overlap_tokens,
        };
        chunking.validate().with_context(|| {
            format!(
                "--chunk-tokens {} --overlap-tokens {}",
                self.chunk_tokens, self.overlap_tokens
            )
        })?;
        Ok(IndexOptions {
            chunking,
            ..IndexOptions::default()
        })
    }

    pub fn counter(&self) -> Result<Arc<dyn TokenCounter>> {
        match &self.tokenizer {
            None => Ok(Arc::new(EstimateCounter)),
            Some(p) => Ok(Arc::new(ModelCounter::load(p)?)),
        }
    }
}

/// Counts tokens with the model's own tokenizer.
pub struct ModelCounter {
    tokenizer: lfm_engine::text::Tokenizer,
    name: String,
}

impl ModelCounter {
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file)
            .with_context(|| format!("--tokenizer: reading {}", file.display()))?;
        let tokenizer = lfm_engine::text::Tokenizer::from_bytes(&bytes)
            .with_context(|| format!("--tokenizer: {} is not a tokenizer.json", file.display()))?;
        let name = format!("tokenizer-{}", &blake3::hash(&bytes).to_hex()[..16]);
        Ok(ModelCounter { tokenizer, name })
    }
}

impl TokenCounter for ModelCounter {
    fn count(&self, text: &str) -> usize {
        // A text the tokenizer cannot encode still takes room: fall back to the estimate.
        self.tokenizer
            .encode(text)
            .map_or_else(|_| EstimateCounter.count(text), |ids| ids.len())
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

pub fn run(a: IndexArgs) -> Result<()> {
    let counter = a.chunking.counter()?;
    let mut indexer = Indexer::open(&a.index, a.chunking.options()?, counter)
        .with_context(|| format!("--index {}", a.index.display()))?;
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} files {binary_bytes_per_sec} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let summary = indexer.update(&a.dirs, &|p| {
        if bar.length() != Some(p.total as u64) {
            bar.set_length(p.total as u64);
        }
        bar.set_position(p.done as u64);
        bar.set_message(p.path.to_string());
    })?;
    bar.finish_and_clear();
    indexer.finish()?;
    if a.json {
        let skipped: Vec<serde_json::Value> = summary
            .skipped
            .iter()
            .map(|(p, why)| serde_json::json!({"path": p, "reason": why}))
            .collect();
        let v = serde_json::json!({
            "index": a.index,
            "files": summary.files,
            "added": summary.added,
            "changed": summary.changed,
            "unchanged": summary.unchanged,
            "removed": summary.removed,
            "skipped": skipped,
            "chunks_written": summary.chunks_written,
            "chunks_total": summary.chunks_total,
            "bytes_read": summary.bytes_read,
            "seconds": summary.elapsed.as_secs_f64(),
        });
        println!("{v}");
        return Ok(());
    }
    const SHOWN: usize = 20;
    for (path, why) in summary.skipped.iter().take(SHOWN) {
        eprintln!("skipped {path}: {why}");
    }
    if summary.skipped.len() > SHOWN {
        eprintln!("... and {} more skipped", summary.skipped.len() - SHOWN);
    }
    println!("indexed {}: {summary}", a.index.display());
    Ok(())
}
