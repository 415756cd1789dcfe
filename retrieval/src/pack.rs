//! Packing hits into the model's context: the best chunks that fit a token budget, in rank
//! order, with chunks of the same file that overlap or touch merged into one passage (the
//! overlap kept once), each passage numbered as a citation (`[1] docs/vpn.md#L10-L42`).
//! [`Packed`] keeps the mapping from citation number back to the source, which the agent uses
//! to quote and to check that a cited number is one the model was actually given.

use serde::Serialize;

use crate::search::Hit;
use crate::tokens::TokenCounter;

/// One numbered passage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Citation {
    /// The number shown to the model, from 1.
    pub n: usize,
    /// The file's display path.
    pub path: String,
    /// First source line.
    pub line_start: u32,
    /// Last source line (inclusive).
    pub line_end: u32,
    /// Enclosing section titles of the first chunk.
    pub trail: Vec<String>,
    /// The chunks merged into this passage, in file order.
    pub chunk_ids: Vec<String>,
    /// The passage text.
    pub text: String,
    /// Best score among its chunks.
    pub score: f32,
    /// Tokens of the rendered passage (header included).
    pub tokens: usize,
}

impl Citation {
    /// `path#L10-L42`.
    pub fn location(&self) -> String {
        format!("{}#L{}-L{}", self.path, self.line_start, self.line_end)
    }

    /// The passage as the model reads it: `[n] path#La-Lb (Section > Sub)` then the text.
    pub fn render(&self) -> String {
        let mut s = format!("[{}] {}", self.n, self.location());
        if !self.trail.is_empty() {
            s.push_str(" (");
            s.push_str(&self.trail.join(" > "));
            s.push(')');
        }
        s.push('\n');
        s.push_str(&self.text);
        s
    }
}

/// The packed context.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Packed {
    /// The passages, numbered from 1, in rank order.
    pub citations: Vec<Citation>,
    /// Tokens of [`Packed::text`].
    pub tokens: usize,
    /// Hits left out because they did not fit.
    pub dropped: usize,
}

impl Packed {
    /// All passages, separated by blank lines.
    pub fn text(&self) -> String {
        self.citations
            .iter()
            .map(Citation::render)
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// The passage behind a citation number.
    pub fn resolve(&self, n: usize) -> Option<&Citation> {
        n.checked_sub(1).and_then(|i| self.citations.get(i))
    }

    /// True when `quote` (whitespace-insensitive) occurs in passage `n`.
    pub fn verify_quote(&self, n: usize, quote: &str) -> bool {
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let q = norm(quote);
        !q.is_empty() && self.resolve(n).is_some_and(|c| norm(&c.text).contains(&q))
    }

    /// The citation numbers `[n]` (also `[1, 3]` and `[2][4]`) found in `answer`, split into
    /// those this context holds and those it does not (which the caller must not trust).
    pub fn check_citations(&self, answer: &str) -> (Vec<usize>, Vec<usize>) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        for n in citation_numbers(answer) {
            let list = if self.resolve(n).is_some() {
                &mut ok
            } else {
                &mut bad
            };
            if !list.contains(&n) {
                list.push(n);
            }
        }
        (ok, bad)
    }
}

/// Numbers inside square brackets: `[3]`, `[1, 2]`, `[1,2]`.
pub fn citation_numbers(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inner = &rest[..close];
        let nums: Option<Vec<usize>> = inner
            .split(',')
            .map(|p| p.trim().parse::<usize>().ok())
            .collect();
        if let Some(nums) = nums {
            out.extend(nums.into_iter().filter(|&n| n > 0));
        }
        rest = &rest[close..];
    }
    out
}

/// Packs `hits` (best first) under `budget` tokens. A hit whose file already has a passage
/// that overlaps or touches it is merged into that passage; a hit that does not fit is
/// skipped, and smaller hits after it may still go in.
pub fn pack(hits: &[Hit], budget: usize, counter: &dyn TokenCounter) -> Packed {
    let mut out = Packed::default();
    for hit in hits {
        let c = &hit.chunk;
        if out
            .citations
            .iter()
            .any(|p| p.chunk_ids.contains(&c.chunk_id))
        {
            continue;
        }
        let mut cit = Citation {
            n: out.citations.len() + 1,
            path: c.path.clone(),
            line_start: c.line_start,
            line_end: c.line_end,
            trail: c.trail.clone(),
            chunk_ids: vec![c.chunk_id.clone()],
            text: c.text.clone(),
            score: hit.score,
            tokens: 0,
        };
        let candidate = match out.citations.iter().position(|p| reaches(p, &cit)) {
            Some(i) => {
                let mut merged = out.citations[i].clone();
                merge_into(&mut merged, &cit);
                // The merged passage may now reach other passages of the file: absorb them.
                let mut absorbed = Vec::new();
                while let Some(j) = (0..out.citations.len()).find(|&j| {
                    j != i && !absorbed.contains(&j) && reaches(&merged, &out.citations[j])
                }) {
                    merge_into(&mut merged, &out.citations[j]);
                    absorbed.push(j);
                }
                merged.tokens = counter.count(&merged.render());
                out.citations
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| !absorbed.contains(j))
                    .map(|(j, p)| if j == i { merged.clone() } else { p.clone() })
                    .collect()
            }
            None => {
                cit.tokens = counter.count(&cit.render());
                let mut all = out.citations.clone();
                all.push(cit);
                all
            }
        };
        let total = total_tokens(&candidate);
        if total <= budget {
            out.tokens = total;
            out.citations = candidate;
            for (k, c) in out.citations.iter_mut().enumerate() {
                c.n = k + 1;
            }
        } else {
            out.dropped += 1;
        }
    }
    out
}

/// Tokens of the packed text: each passage and a blank line between passages.
fn total_tokens(citations: &[Citation]) -> usize {
    citations.iter().map(|c| c.tokens).sum::<usize>() + citations.len().saturating_sub(1)
}

/// Whether passage `q` overlaps or touches passage `p` (same file).
fn reaches(p: &Citation, q: &Citation) -> bool {
    p.path == q.path
        && q.line_start <= p.line_end.saturating_add(1)
        && p.line_start <= q.line_end.saturating_add(1)
}

/// Joins passage `q` (a new chunk, or another passage) to passage `p` of the same file, in
/// line order, keeping the lines they share once (chunk overlap repeats whole trailing lines
/// of the previous chunk), with its chunk ids and score.
fn merge_into(p: &mut Citation, q: &Citation) {
    let (start, end) = (q.line_start, q.line_end);
    let (first, second) = if start < p.line_start {
        p.trail = q.trail.clone();
        (q.text.as_str(), p.text.as_str())
    } else {
        (p.text.as_str(), q.text.as_str())
    };
    let overlaps = start <= p.line_end && p.line_start <= end;
    let inside = p.line_start <= start && end <= p.line_end;
    // Shared lines are dropped only where the spans really overlap; passages that only touch
    // are joined whole (the same text on both sides of a boundary is two lines).
    p.text = if inside && first.contains(second) {
        first.to_string()
    } else if overlaps {
        join_overlapping(first, second)
    } else {
        format!("{first}\n\n{second}")
    };
    p.line_start = p.line_start.min(start);
    p.line_end = p.line_end.max(end);
    for id in &q.chunk_ids {
        if !p.chunk_ids.contains(id) {
            p.chunk_ids.push(id.clone());
        }
    }
    sort_ids(&mut p.chunk_ids);
    p.score = p.score.max(q.score);
}
/// Chunk ids in file order (by ord, the number after '#').
fn sort_ids(ids: &mut [String]) {
    ids.sort_by_key(|c| {
        c.rsplit_once('#')
            .and_then(|(_, o)| o.parse::<u64>().ok())
            .unwrap_or(0)
    });
}

/// `a` then `b`, dropping the longest run of `b`'s leading lines that ends `a`.
fn join_overlapping(a: &str, b: &str) -> String {
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    let max = al.len().min(bl.len());
    let shared = (1..=max)
        .rev()
        .find(|&k| al[al.len() - k..] == bl[..k])
        .unwrap_or(0);
    let rest = bl[shared..].join("\n");
    if shared > 0 {
        if rest.is_empty() {
            a.to_string()
        } else {
            format!("{a}\n{rest}")
        }
    } else {
        format!("{a}\n\n{b}")
    }
}

#[cfg(test)]
mod tests;
