//! Retrieval quality on a labelled question set: recall@k and MRR, computed the same way for
//! our ranking and for any other ranker's (the rank-bm25 comparison feeds its rankings in).
//!
//! A question lists the spans that answer it (`path` and an inclusive line span, or no span:
//! any chunk of that file). A retrieved chunk is relevant to a span when it is from the same
//! file and its lines overlap the span.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::search::{ChunkRecord, Retriever, SearchRequest};
use crate::{Error, Result};

/// A span that answers a question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relevant {
    /// Display path of the file.
    pub path: String,
    /// Inclusive 1-based line span; `None` means any chunk of the file.
    pub lines: Option<[u32; 2]>,
}

/// One labelled question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// Identifier.
    pub id: String,
    /// The question as a user asks it.
    pub question: String,
    /// What answers it.
    pub relevant: Vec<Relevant>,
}

/// Reads a JSONL question file (other fields of each line are ignored).
pub fn load_questions(path: &Path) -> Result<Vec<Question>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: Question = serde_json::from_str(line).map_err(|e| Error::BadQuestions {
            path: path.to_path_buf(),
            line: i + 1,
            why: e.to_string(),
        })?;
        if q.relevant.is_empty() {
            return Err(Error::BadQuestions {
                path: path.to_path_buf(),
                line: i + 1,
                why: format!("question {} lists no relevant span", q.id),
            });
        }
        for r in &q.relevant {
            if let Some([a, b]) = r.lines {
                if a == 0 || b < a {
                    return Err(Error::BadQuestions {
                        path: path.to_path_buf(),
                        line: i + 1,
                        why: format!("question {}: bad line span [{a}, {b}] for {}", q.id, r.path),
                    });
                }
            }
        }
        out.push(q);
    }
    Ok(out)
}

/// Where a retrieved chunk lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retrieved {
    /// Display path.
    pub path: String,
    /// First line.
    pub line_start: u32,
    /// Last line.
    pub line_end: u32,
}

impl Relevant {
    /// Whether a chunk at `r` holds (part of) this span.
    pub fn matches(&self, r: &Retrieved) -> bool {
        self.path == r.path
            && self
                .lines
                .is_none_or(|[a, b]| r.line_start <= b && a <= r.line_end)
    }
}

/// Scores of one question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionScore {
    /// The question's id.
    pub id: String,
    /// Share of its spans covered in the top k.
    pub recall: f64,
    /// 1-based rank of the first relevant chunk, if any within the ranking.
    pub first_relevant: Option<usize>,
}

/// Aggregate scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Questions scored.
    pub questions: usize,
    /// The k of recall@k.
    pub k: usize,
    /// Mean share of relevant spans found in the top k.
    pub recall_at_k: f64,
    /// Share of questions with at least one relevant chunk in the top k.
    pub hit_at_k: f64,
    /// Mean reciprocal rank of the first relevant chunk, over the top `mrr_depth`.
    pub mrr: f64,
    /// Depth of the MRR ranking.
    pub mrr_depth: usize,
    /// Per question.
    pub per_question: Vec<QuestionScore>,
}

/// Scores rankings (`rankings[i]` for `questions[i]`, best first). Recall uses the top `k`;
/// MRR the top `mrr_depth`.
pub fn score(
    questions: &[Question],
    rankings: &[Vec<Retrieved>],
    k: usize,
    mrr_depth: usize,
) -> Metrics {
    let mut per = Vec::with_capacity(questions.len());
    for (q, ranking) in questions.iter().zip(rankings) {
        let top = &ranking[..ranking.len().min(k)];
        let covered = q
            .relevant
            .iter()
            .filter(|rel| top.iter().any(|r| rel.matches(r)))
            .count();
        let first = ranking
            .iter()
            .take(mrr_depth)
            .position(|r| q.relevant.iter().any(|rel| rel.matches(r)))
            .map(|p| p + 1);
        per.push(QuestionScore {
            id: q.id.clone(),
            recall: covered as f64 / q.relevant.len() as f64,
            first_relevant: first,
        });
    }
    let n = per.len().max(1) as f64;
    Metrics {
        questions: per.len(),
        k,
        recall_at_k: per.iter().map(|s| s.recall).sum::<f64>() / n,
        hit_at_k: per
            .iter()
            .filter(|s| s.first_relevant.is_some_and(|r| r <= k))
            .count() as f64
            / n,
        mrr: per
            .iter()
            .map(|s| s.first_relevant.map_or(0.0, |r| 1.0 / r as f64))
            .sum::<f64>()
            / n,
        mrr_depth,
        per_question: per,
    }
}

/// Resolves each relevant path against `base` (the folder the question file's paths are
/// relative to) into a canonical absolute path, so that rankings from an index built from
/// any spelling of the docs folder compare. A path that does not exist is an error.
pub fn resolve_paths(questions: &mut [Question], base: &Path) -> Result<()> {
    for q in questions.iter_mut() {
        for r in &mut q.relevant {
            let p = base.join(&r.path);
            let abs = std::fs::canonicalize(&p).map_err(|e| Error::BadQuestions {
                path: p.clone(),
                line: 0,
                why: format!("question {}: relevant file: {e}", q.id),
            })?;
            r.path = abs.to_string_lossy().into_owned();
        }
    }
    Ok(())
}

/// Every chunk of the index, with the canonical absolute path of its file.
pub fn all_chunks(retriever: &Retriever) -> Result<Vec<(String, ChunkRecord)>> {
    let mut out = Vec::new();
    for (display, abs) in retriever.files()? {
        let abs = abs.to_string_lossy().into_owned();
        for c in retriever.chunks_of(&display)? {
            out.push((abs.clone(), c));
        }
    }
    Ok(out)
}

/// Our rankings: the top `depth` chunks for each question (plain search, no filters).
pub fn rank_ours(
    retriever: &Retriever,
    questions: &[Question],
    depth: usize,
) -> Result<Vec<Vec<Retrieved>>> {
    let abs: std::collections::HashMap<String, String> = retriever
        .files()?
        .into_iter()
        .map(|(d, a)| (d, a.to_string_lossy().into_owned()))
        .collect();
    let mut out = Vec::with_capacity(questions.len());
    for q in questions {
        let mut req = SearchRequest::new(q.question.clone(), depth);
        req.snippets = false;
        let hits = retriever.search(&req)?;
        out.push(
            hits.into_iter()
                .map(|h| Retrieved {
                    path: abs.get(&h.chunk.path).cloned().unwrap_or(h.chunk.path),
                    line_start: h.chunk.line_start,
                    line_end: h.chunk.line_end,
                })
                .collect(),
        );
    }
    Ok(out)
}

/// What another ranker needs to rank the same chunks with the same tokens: each chunk's
/// analyzed title, heading trail and body, and each question's analyzed text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankerInput {
    /// [`fingerprint`] of the chunks.
    pub fingerprint: String,
    /// Chunks in a fixed order.
    pub chunks: Vec<RankerChunk>,
    /// Questions in file order.
    pub questions: Vec<RankerQuery>,
}

/// One chunk for an outside ranker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankerChunk {
    /// `path#ord`, the path relative to the questions' base folder.
    pub id: String,
    /// Tokens of title, headings and body, in that order.
    pub tokens: Vec<String>,
}

/// One question for an outside ranker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankerQuery {
    /// The question's id.
    pub id: String,
    /// Its tokens.
    pub tokens: Vec<String>,
}

/// Another ranker's output: chunk ids per question id, best first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankerOutput {
    /// Who ranked (e.g. `rank-bm25 0.2.2 BM25Okapi`).
    pub ranker: String,
    /// The fingerprint of the input it ranked.
    pub fingerprint: String,
    /// Question id -> chunk ids.
    pub rankings: std::collections::BTreeMap<String, Vec<String>>,
}

/// `base` made absolute once, for [`portable_id`].
fn canonical_base(base: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf())
}

/// A chunk id that does not depend on how the docs folder was spelled when indexing: the
/// file's path relative to `base` (the questions' base folder, made absolute), then `#ord`.
fn portable_id(abs: &str, base: &Path, ord: u32) -> String {
    let rel = Path::new(abs).strip_prefix(base).map_or_else(
        |_| abs.to_string(),
        |p| p.to_string_lossy().replace('\\', "/"),
    );
    format!("{rel}#{ord}")
}

/// The input for an outside ranker, over every chunk of the index. Chunk ids are paths
/// relative to `base` (see [`resolve_paths`]).
pub fn ranker_input(
    retriever: &Retriever,
    questions: &[Question],
    base: &Path,
) -> Result<RankerInput> {
    let base = canonical_base(base);
    let mut chunks = Vec::new();
    for (abs, c) in all_chunks(retriever)? {
        let id = portable_id(&abs, &base, c.ord);
        let mut tokens = retriever.analyze(&c.title)?;
        tokens.extend(retriever.analyze(&c.trail.join("\n"))?);
        tokens.extend(retriever.analyze(&c.text)?);
        chunks.push(RankerChunk { id, tokens });
    }
    chunks.sort_by(|a, b| a.id.cmp(&b.id));
    let questions = questions
        .iter()
        .map(|q| {
            Ok(RankerQuery {
                id: q.id.clone(),
                tokens: retriever.analyze(&q.question)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RankerInput {
        fingerprint: fingerprint(&chunks),
        chunks,
        questions,
    })
}

/// blake3 of the chunk ids and tokens: two rankers saw the same chunks iff it matches.
pub fn fingerprint(chunks: &[RankerChunk]) -> String {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c.id.as_bytes());
        h.update(&[0]);
        for t in &c.tokens {
            h.update(t.as_bytes());
            h.update(&[1]);
        }
        h.update(&[2]);
    }
    h.finalize().to_hex()[..16].to_string()
}

/// Turns another ranker's chunk ids into [`Retrieved`] rankings in question order. Fails
/// when the fingerprint differs (the chunks changed since it ranked them) or an id is unknown.
pub fn rankings_from(
    retriever: &Retriever,
    questions: &[Question],
    base: &Path,
    input: &RankerInput,
    output: &RankerOutput,
) -> Result<Vec<Vec<Retrieved>>> {
    if output.fingerprint != input.fingerprint {
        return Err(Error::BadConfig {
            field: "ranker output",
            why: format!(
                "{} ranked chunks with fingerprint {}, the index now has {}: the chunks changed; rerun scripts/retrieval/rank_bm25.sh",
                output.ranker, output.fingerprint, input.fingerprint
            ),
        });
    }
    let base = canonical_base(base);
    let by_id: std::collections::HashMap<String, Retrieved> = all_chunks(retriever)?
        .into_iter()
        .map(|(abs, c)| {
            (
                portable_id(&abs, &base, c.ord),
                Retrieved {
                    path: abs,
                    line_start: c.line_start,
                    line_end: c.line_end,
                },
            )
        })
        .collect();
    questions
        .iter()
        .map(|q| {
            let ids = output.rankings.get(&q.id).ok_or_else(|| Error::BadConfig {
                field: "ranker output",
                why: format!("no ranking for question {}", q.id),
            })?;
            ids.iter()
                .map(|id| {
                    by_id.get(id).cloned().ok_or_else(|| Error::BadConfig {
                        field: "ranker output",
                        why: format!("unknown chunk id {id}"),
                    })
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(path: &str, a: u32, b: u32) -> Retrieved {
        Retrieved {
            path: path.into(),
            line_start: a,
            line_end: b,
        }
    }

    #[test]
    fn recall_and_mrr_count_overlapping_spans_only() {
        let q = Question {
            id: "q".into(),
            question: "?".into(),
            relevant: vec![
                Relevant {
                    path: "a.md".into(),
                    lines: Some([10, 20]),
                },
                Relevant {
                    path: "b.pdf".into(),
                    lines: None,
                },
            ],
        };
        // Rank 1 misses (wrong lines), rank 2 hits a.md, b.pdf only at rank 6 (outside k=5).
        let ranking = vec![
            r("a.md", 1, 9),
            r("a.md", 20, 30),
            r("c.md", 1, 5),
            r("c.md", 6, 9),
            r("c.md", 10, 12),
            r("b.pdf", 1, 3),
        ];
        let m = score(&[q], &[ranking], 5, 10);
        assert_eq!(m.per_question[0].first_relevant, Some(2));
        assert!((m.recall_at_k - 0.5).abs() < 1e-12);
        assert!((m.mrr - 0.5).abs() < 1e-12);
        assert!((m.hit_at_k - 1.0).abs() < 1e-12);
    }
}
