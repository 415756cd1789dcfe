//! `lfm-agent bench retrieval`: indexing throughput (MB/s) on a generated corpus of files,
//! and query latency (p50/p99) on an index of a million generated chunks.
//!
//! The text is generated: words drawn from a Zipf distribution over a vocabulary of 60,000
//! words (like natural text, a few words are very frequent and most are rare; the 50 most
//! frequent are English function words, the rest synthetic), laid out as Markdown sections,
//! log lines and CSV rows. The numbers measure the machinery, on
//! text with realistic term statistics; they say nothing about ranking quality.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use lfm_retrieval::{
    Chunk, DocKind, EstimateCounter, IndexOptions, Indexer, Retriever, SearchRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Args)]
pub struct RetrievalBenchArgs {
    /// Working folder for the corpus and the indexes (reused between runs when the sizes match).
    #[arg(long, default_value = "target/bench/retrieval")]
    dir: PathBuf,
    /// Size of the generated corpus of files, in MB.
    #[arg(long, default_value_t = 200)]
    corpus_mb: usize,
    /// Chunks in the latency index.
    #[arg(long, default_value_t = 1_000_000)]
    chunks: usize,
    /// Timed queries.
    #[arg(long, default_value_t = 2000)]
    queries: usize,
    /// Skip the throughput part.
    #[arg(long)]
    no_throughput: bool,
    /// Skip the latency part.
    #[arg(long)]
    no_latency: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: RetrievalBenchArgs) -> Result<()> {
    if a.queries == 0 || a.chunks == 0 || a.corpus_mb == 0 {
        anyhow::bail!("--queries, --chunks and --corpus-mb must be at least 1");
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("--dir {}", a.dir.display()))?;
    let vocab = Vocab::new(60_000, 1);
    let mut report = serde_json::Map::new();
    report.insert("threads".into(), rayon::current_num_threads().into());
    if !a.no_throughput {
        let corpus = a.dir.join(format!("corpus-{}mb", a.corpus_mb));
        let bytes = ensure_corpus(&corpus, a.corpus_mb, &vocab)?;
        let index = a.dir.join("index-throughput");
        if index.exists() {
            std::fs::remove_dir_all(&index)
                .with_context(|| format!("removing {}", index.display()))?;
        }
        let mut ix = Indexer::open(&index, IndexOptions::default(), Arc::new(EstimateCounter))?;
        let t = Instant::now();
        let s = ix.update(std::slice::from_ref(&corpus), &|_| {})?;
        let update = t.elapsed();
        ix.finish()?;
        let total = t.elapsed();
        let mbs = s.bytes_read as f64 / 1e6 / update.as_secs_f64();
        if !a.json {
            println!(
                "indexing: {:.1} MB in {} files -> {} chunks in {:.2} s: {:.1} MB/s ({:.2} s more for the final segment merges; {:.1} MB/s with them)",
                s.bytes_read as f64 / 1e6,
                s.files,
                s.chunks_total,
                update.as_secs_f64(),
                mbs,
                (total - update).as_secs_f64(),
                s.bytes_read as f64 / 1e6 / total.as_secs_f64(),
            );
        }
        report.insert(
            "indexing".into(),
            serde_json::json!({
                "corpus_bytes": bytes, "files": s.files, "chunks": s.chunks_total,
                "seconds": update.as_secs_f64(), "mb_per_s": mbs,
                "seconds_with_merges": total.as_secs_f64(),
                "index_bytes": dir_size(&index),
            }),
        );
    }
    if !a.no_latency {
        let index = a.dir.join(format!("index-{}-chunks", a.chunks));
        ensure_chunk_index(&index, a.chunks, &vocab, a.json)?;
        let r = Retriever::open(&index)?;
        let n = r.num_chunks();
        let queries = make_queries(&vocab, a.queries + 100, 7);
        let mut results = serde_json::Map::new();
        for snippets in [true, false] {
            // Warm-up: the first queries fault the index pages in.
            let mut times = Vec::with_capacity(a.queries);
            let mut phrase_times = Vec::new();
            let mut total_hits = 0usize;
            for (i, q) in queries.iter().enumerate() {
                let mut req = SearchRequest::new(q.clone(), 5);
                req.snippets = snippets;
                let t = Instant::now();
                let hits = r.search(&req)?;
                let dt = t.elapsed();
                if i >= 100 {
                    times.push(dt);
                    if q.starts_with('"') {
                        phrase_times.push(dt);
                    }
                    total_hits += hits.len();
                }
            }
            times.sort();
            phrase_times.sort();
            let p = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
            let mean =
                times.iter().map(|d| d.as_secs_f64()).sum::<f64>() / times.len() as f64 * 1e3;
            let label = if snippets {
                "k=5 with snippets"
            } else {
                "k=5, no snippets"
            };
            if !a.json {
                println!(
                    "query latency over {n} chunks, {} queries, {label}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {mean:.2} ms ({:.2} hits per query)",
                    times.len(),
                    p(0.5),
                    p(0.99),
                    ms(*times.last().unwrap_or(&Duration::ZERO)),
                    total_hits as f64 / times.len() as f64,
                );
                if let (Some(mid), Some(last)) = (
                    phrase_times.get(phrase_times.len() / 2),
                    phrase_times.last(),
                ) {
                    println!(
                        "  of which {} quoted phrases: p50 {:.2} ms, max {:.2} ms",
                        phrase_times.len(),
                        ms(*mid),
                        ms(*last)
                    );
                }
            }
            results.insert(
                if snippets { "with_snippets" } else { "no_snippets" }.into(),
                serde_json::json!({"p50_ms": p(0.5), "p99_ms": p(0.99), "mean_ms": mean, "queries": times.len()}),
            );
        }
        results.insert("chunks".into(), n.into());
        results.insert("index_bytes".into(), dir_size(&index).into());
        report.insert("latency".into(), results.into());
    }
    if a.json {
        println!("{}", serde_json::Value::Object(report));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn dir_size(dir: &Path) -> u64 {
    walk_size(dir).unwrap_or(0)
}

fn walk_size(dir: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            walk_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}

/// Roughly the most frequent English words, most frequent first.
const COMMON: [&str; 50] = [
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "i", "this", "are", "or", "his", "from", "at", "which", "but", "have",
    "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no",
];

/// A vocabulary with Zipf(1.0) word frequencies: [`COMMON`] English words at the top ranks,
/// then synthetic words.
struct Vocab {
    words: Vec<String>,
    cdf: Vec<f64>,
}

impl Vocab {
    fn new(n: usize, seed: u64) -> Self {
        const SYL: [&str; 24] = [
            "ka", "to", "ri", "pen", "lo", "mar", "vi", "sel", "du", "nor", "ta", "bel", "qui",
            "ros", "fa", "gen", "mi", "lur", "cos", "dra", "ne", "ops", "sy", "tek",
        ];
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen = std::collections::HashSet::new();
        // As in English text, the most frequent ranks are function words (some of which the
        // analyzer drops as stop words, most of which it keeps).
        let mut words: Vec<String> = COMMON.iter().map(|w| w.to_string()).collect();
        seen.extend(words.iter().cloned());
        while words.len() < n {
            let k = 1 + rng.random_range(0..4usize);
            let w: String = (0..k)
                .map(|_| SYL[rng.random_range(0..SYL.len())])
                .collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for r in 1..=n {
            acc += 1.0 / r as f64;
            cdf.push(acc);
        }
        Vocab { words, cdf }
    }

    fn word(&self, rng: &mut StdRng) -> &str {
        let total = self.cdf[self.cdf.len() - 1];
        let x = rng.random::<f64>() * total;
        let i = self
            .cdf
            .partition_point(|&c| c < x)
            .min(self.words.len() - 1);
        &self.words[i]
    }

    fn words(&self, rng: &mut StdRng, n: usize, out: &mut String) {
        for k in 0..n {
            if k > 0 {
                out.push(' ');
            }
            out.push_str(self.word(rng));
        }
    }
}

/// Writes the corpus (once; a marker file records its size). Returns its size in bytes.
fn ensure_corpus(dir: &Path, mb: usize, vocab: &Vocab) -> Result<u64> {
    let marker = dir.join(".complete");
    let target = (mb as u64) << 20;
    if let Ok(s) = std::fs::read_to_string(&marker) {
        if let Ok(n) = s.trim().parse::<u64>() {
            return Ok(n);
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    for sub in ["md", "log", "csv"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut rng = StdRng::seed_from_u64(42);
    let mut written = 0u64;
    let mut file_no = 0usize;
    while written < target {
        let mut text = String::with_capacity(300_000);
        let (sub, ext) = match file_no % 10 {
            0..=6 => ("md", "md"),
            7 | 8 => ("log", "log"),
            _ => ("csv", "csv"),
        };
        while text.len() < 256 * 1024 {
            match ext {
                "md" => {
                    let level = rng.random_range(1..=3);
                    text.push_str(&"#".repeat(level));
                    text.push(' ');
                    let n = rng.random_range(2..7);
                    vocab.words(&mut rng, n, &mut text);
                    text.push_str("\n\n");
                    for _ in 0..rng.random_range(1..5) {
                        if rng.random_range(0..8) == 0 {
                            text.push_str("```\n");
                            for _ in 0..rng.random_range(2..10) {
                                text.push_str("$ ");
                                let n = rng.random_range(2..8);
                                vocab.words(&mut rng, n, &mut text);
                                text.push('\n');
                            }
                            text.push_str("```\n\n");
                        } else {
                            let n = rng.random_range(20..140);
                            vocab.words(&mut rng, n, &mut text);
                            text.push_str(".\n\n");
                        }
                    }
                }
                "log" => {
                    let lvl =
                        ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"][rng.random_range(0..6)];
                    text.push_str(&format!(
                        "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z {lvl} svc-{} ",
                        rng.random_range(1..29),
                        rng.random_range(0..24),
                        rng.random_range(0..60),
                        rng.random_range(0..60),
                        rng.random_range(0..1000),
                        rng.random_range(0..40)
                    ));
                    let n = rng.random_range(4..20);
                    vocab.words(&mut rng, n, &mut text);
                    text.push('\n');
                }
                _ => {
                    if text.is_empty() {
                        text.push_str("host,owner,site,notes\n");
                    }
                    text.push_str(&format!("host-{},", rng.random_range(0..100_000)));
                    text.push_str(vocab.word(&mut rng));
                    text.push(',');
                    text.push_str(vocab.word(&mut rng));
                    text.push_str(",\"");
                    let n = rng.random_range(3..15);
                    vocab.words(&mut rng, n, &mut text);
                    text.push_str("\"\n");
                }
            }
        }
        let path = dir.join(sub).join(format!("{file_no:05}.{ext}"));
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        written += text.len() as u64;
        file_no += 1;
    }
    std::fs::write(&marker, written.to_string())
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(written)
}

/// Builds an index of `n` generated chunks (once; reused while it holds `n`).
fn ensure_chunk_index(dir: &Path, n: usize, vocab: &Vocab, quiet: bool) -> Result<()> {
    if dir.join("meta.json").exists() {
        if let Ok(r) = Retriever::open(dir) {
            if r.num_chunks() == n as u64 {
                return Ok(());
            }
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let t = Instant::now();
    let mut ix = Indexer::open(dir, IndexOptions::default(), Arc::new(EstimateCounter))?;
    let mut rng = StdRng::seed_from_u64(9);
    let per_doc = 10usize;
    let mut bytes = 0usize;
    let mut made = 0usize;
    let mut doc = 0usize;
    while made < n {
        let mut chunks = Vec::with_capacity(per_doc);
        let mut trail = Vec::new();
        let mut title = String::new();
        vocab.words(&mut rng, 3, &mut title);
        let mut line = 1u32;
        for ord in 0..per_doc.min(n - made) {
            if ord % 3 == 0 {
                let mut h = String::new();
                {
                    let n = rng.random_range(2..6);
                    vocab.words(&mut rng, n, &mut h)
                };
                trail = vec![title.clone(), h];
            }
            let mut text = String::new();
            // 50 to 350 words, a mean of about 200: sections of a runbook.
            {
                let n = rng.random_range(50..350);
                vocab.words(&mut rng, n, &mut text)
            };
            let lines = 1 + text.len() as u32 / 80;
            bytes += text.len();
            chunks.push(Chunk {
                ord: ord as u32,
                trail: trail.clone(),
                text,
                line_start: line,
                line_end: line + lines - 1,
                tokens: 0,
            });
            line += lines + 1;
        }
        made += chunks.len();
        ix.add_chunks(
            &format!("generated/doc{doc:06}.md"),
            DocKind::Markdown,
            &title,
            &chunks,
        )?;
        doc += 1;
    }
    ix.commit()?;
    ix.finish()?;
    if !quiet {
        println!(
            "built a latency index of {n} chunks ({:.0} MB of text) in {:.1} s",
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Queries like users type: a few words (sometimes one or two, sometimes a quoted phrase),
/// drawn from the same distribution as the text.
fn make_queries(vocab: &Vocab, n: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut q = String::new();
            match rng.random_range(0..20) {
                0..=4 => {
                    let n = rng.random_range(1..3);
                    vocab.words(&mut rng, n, &mut q)
                }
                5..=16 => {
                    let n = rng.random_range(3..9);
                    vocab.words(&mut rng, n, &mut q)
                }
                _ => {
                    q.push('"');
                    vocab.words(&mut rng, 2, &mut q);
                    q.push('"');
                }
            }
            q
        })
        .collect()
}
