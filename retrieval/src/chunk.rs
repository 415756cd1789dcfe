//! Chunking by structure. Blocks are packed in file order into chunks of at most
//! `max_tokens`; every heading starts a new chunk (a heading directly under another stays with
//! it), so a section that fits is one chunk; a section that does not is cut between blocks,
//! and the next piece starts with the last blocks of the previous one, up to `overlap_tokens`.
//! A block larger than a chunk is cut between lines, and a line larger than a chunk between
//! characters. Line-oriented files (logs, JSONL, CSV) become windows of lines the same way.
//!
//! Each chunk keeps its heading trail (the titles of the sections it lies in, outermost
//! first) and the source line span of its first and last block.

use serde::{Deserialize, Serialize};

use crate::ingest::{Block, BlockKind, ParsedDoc};
use crate::tokens::TokenCounter;
use crate::{Error, Result};

/// How files are cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkConfig {
    /// Most tokens in a chunk (default 400).
    pub max_tokens: usize,
    /// Tokens of the previous chunk repeated at the start of the next when a section or a
    /// window is cut (default 40; 0 for none).
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 400,
            overlap_tokens: 40,
        }
    }
}

impl ChunkConfig {
    /// Checks the values: `max_tokens` at least 16, overlap below half of it.
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens < 16 {
            return Err(Error::BadConfig {
                field: "chunk max_tokens",
                why: format!("{} is too small (at least 16)", self.max_tokens),
            });
        }
        if self.overlap_tokens > self.max_tokens / 2 {
            return Err(Error::BadConfig {
                field: "chunk overlap_tokens",
                why: format!(
                    "{} is more than half of max_tokens {}",
                    self.overlap_tokens, self.max_tokens
                ),
            });
        }
        Ok(())
    }
}

/// One piece of a file, as indexed and as the model reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position of the chunk in its file, from 0.
    pub ord: u32,
    /// Titles of the enclosing sections, outermost first.
    pub trail: Vec<String>,
    /// The chunk's text (the preamble of a CSV file first).
    pub text: String,
    /// First source line, 1-based.
    pub line_start: u32,
    /// Last source line, inclusive.
    pub line_end: u32,
    /// Tokens, as the counter sees the blocks (separators count one each).
    pub tokens: u32,
}

struct Sized<'a> {
    block: std::borrow::Cow<'a, Block>,
    tokens: usize,
}

/// Cuts a parsed file into chunks.
pub fn chunk(doc: &ParsedDoc, cfg: &ChunkConfig, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let preamble_tokens = doc.preamble.as_deref().map_or(0, |p| counter.count(p) + 1);
    // Room for blocks; a huge CSV header still leaves a quarter of the chunk for rows.
    let budget = cfg
        .max_tokens
        .saturating_sub(preamble_tokens)
        .max(cfg.max_tokens / 4);
    let mut sized = Vec::with_capacity(doc.blocks.len());
    for b in &doc.blocks {
        let tokens = counter.count(&b.text);
        if tokens <= budget {
            sized.push(Sized {
                block: std::borrow::Cow::Borrowed(b),
                tokens,
            });
        } else {
            split_block(b, budget, counter, &mut sized);
        }
    }
    let mut out = Chunks {
        preamble: doc.preamble.as_deref(),
        chunks: Vec::new(),
    };
    let mut trail: Vec<(u8, String)> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut cur_tokens = 0usize;
    let mut cur_trail: Vec<String> = Vec::new();
    // True while `cur` holds headings only (or nothing).
    let mut only_headings = true;
    for (i, s) in sized.iter().enumerate() {
        if let BlockKind::Heading(level) = s.block.kind {
            let full = cur_tokens + 1 + s.tokens > budget;
            if !cur.is_empty() && (!only_headings || full) {
                // A run of headings longer than a chunk is kept, cut at the budget.
                out.push(&sized, &cur, &cur_trail, cur_tokens, only_headings);
                cur.clear();
                cur_tokens = 0;
            }
            while trail.last().is_some_and(|(l, _)| *l >= level) {
                trail.pop();
            }
            trail.push((level, s.block.text.clone()));
            if !cur.is_empty() {
                // Still only headings: the chunk lies in the deepest of them.
                cur_trail = trail.iter().map(|(_, t)| t.clone()).collect();
            }
        } else if !cur.is_empty() && cur_tokens + 1 + s.tokens > budget {
            // Headings that do not fit beside the block after them are dropped: the deepest
            // chain lives on in the next chunk's trail (a heading directly followed by
            // a sibling heading, an empty section, is lost).
            out.push(&sized, &cur, &cur_trail, cur_tokens, false);
            // Carry the last blocks, up to the overlap, but never the whole chunk (progress)
            // and never a lone heading.
            let mut carry = Vec::new();
            let mut carried = 0usize;
            for &j in cur.iter().rev() {
                let t = sized[j].tokens + 1;
                if carried + t > cfg.overlap_tokens
                    || carry.len() + 1 == cur.len()
                    || carried + t + s.tokens + 1 > budget
                {
                    break;
                }
                carried += t;
                carry.push(j);
            }
            carry.reverse();
            if carry
                .iter()
                .all(|&j| matches!(sized[j].block.kind, BlockKind::Heading(_)))
            {
                carry.clear();
                carried = 0;
            }
            cur = carry;
            cur_tokens = carried;
            only_headings = cur.is_empty();
        }
        if cur.is_empty() {
            cur_trail = trail.iter().map(|(_, t)| t.clone()).collect();
            only_headings = true;
        }
        only_headings &= matches!(s.block.kind, BlockKind::Heading(_));
        cur_tokens += s.tokens + usize::from(!cur.is_empty());
        cur.push(i);
    }
    out.push(&sized, &cur, &cur_trail, cur_tokens, false);
    out.chunks
}

struct Chunks<'p> {
    preamble: Option<&'p str>,
    chunks: Vec<Chunk>,
}

impl Chunks<'_> {
    /// Emits the chunk of blocks `idx`. A chunk of headings only is dropped (a document that
    /// ends on a title, headings that did not fit beside their section) unless `keep`, or
    /// unless the document has nothing else.
    fn push(
        &mut self,
        sized: &[Sized],
        idx: &[usize],
        trail: &[String],
        tokens: usize,
        keep: bool,
    ) {
        let Some((&first, &last)) = idx.first().zip(idx.last()) else {
            return;
        };
        if !keep
            && idx
                .iter()
                .all(|&j| matches!(sized[j].block.kind, BlockKind::Heading(_)))
            && idx.len() < sized.len()
        {
            return;
        }
        let mut text = String::new();
        if let Some(p) = self.preamble {
            text.push_str(p);
            text.push('\n');
        }
        for (k, &j) in idx.iter().enumerate() {
            let b = &sized[j].block;
            if k > 0 {
                let prev = &sized[idx[k - 1]].block;
                let tight = b.kind == BlockKind::Line && prev.kind == BlockKind::Line;
                text.push_str(if tight { "\n" } else { "\n\n" });
            }
            if let BlockKind::Heading(level) = b.kind {
                for _ in 0..level {
                    text.push('#');
                }
                text.push(' ');
            }
            text.push_str(&b.text);
        }
        let line_start = idx
            .iter()
            .map(|&j| sized[j].block.line_start)
            .min()
            .unwrap_or(sized[first].block.line_start);
        let line_end = idx
            .iter()
            .map(|&j| sized[j].block.line_end)
            .max()
            .unwrap_or(sized[last].block.line_end);
        self.chunks.push(Chunk {
            ord: self.chunks.len() as u32,
            trail: trail.to_vec(),
            text,
            line_start,
            line_end,
            tokens: tokens as u32,
        });
    }
}

/// Cuts a block that does not fit: between lines, and a line that does not fit between
/// characters (at most `budget` estimated tokens each).
fn split_block<'a>(b: &Block, budget: usize, counter: &dyn TokenCounter, out: &mut Vec<Sized<'a>>) {
    let mut piece = String::new();
    let mut piece_tokens = 0usize;
    let mut start = b.line_start;
    let lines: Vec<&str> = b.text.split('\n').collect();
    let single_line_block = b.line_start == b.line_end;
    let kind = match b.kind {
        BlockKind::Heading(_) => BlockKind::Para,
        k => k,
    };
    let emit = |text: String, tokens: usize, start: u32, end: u32, out: &mut Vec<Sized<'a>>| {
        if !text.trim().is_empty() {
            out.push(Sized {
                block: std::borrow::Cow::Owned(Block {
                    kind,
                    text,
                    line_start: start,
                    line_end: end.max(start),
                }),
                tokens,
            });
        }
    };
    for (k, line) in lines.iter().enumerate() {
        // Lines of a block map to source lines one to one, except in blocks that came from a
        // single source line (minified JSON, a PDF page) or from HTML, where spans are kept.
        let n = if single_line_block {
            b.line_start
        } else {
            (b.line_start + k as u32).min(b.line_end)
        };
        let t = counter.count(line);
        // The piece so far ends before a line that does not fit beside it (a line too long
        // for any piece included).
        if !piece.is_empty() && piece_tokens + 1 + t > budget {
            emit(
                std::mem::take(&mut piece),
                piece_tokens,
                start,
                n.saturating_sub(1).max(start),
                out,
            );
            piece_tokens = 0;
        }
        if t > budget {
            for part in split_line(line, budget, counter) {
                let pt = counter.count(&part);
                emit(part, pt, n, n, out);
            }
            continue;
        }
        if piece.is_empty() {
            start = n;
        } else {
            piece.push('\n');
            piece_tokens += 1;
        }
        piece.push_str(line);
        piece_tokens += t;
    }
    emit(piece, piece_tokens, start, b.line_end, out);
}

/// Cuts one long line into pieces of at most `budget` tokens, preferring whitespace.
fn split_line(line: &str, budget: usize, counter: &dyn TokenCounter) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        // Grow a prefix by doubling until it no longer fits, then bisect on char boundaries:
        // the work per piece is proportional to the piece, not to the rest of the line.
        let mut lo = 0usize; // fits
        let mut hi = floor_char(rest, (budget.max(1) * 8).min(rest.len()));
        loop {
            if counter.count(&rest[..hi]) > budget {
                break;
            }
            lo = hi;
            if hi == rest.len() {
                break;
            }
            hi = floor_char(rest, (hi * 2).min(rest.len()))
                .max(hi + 1)
                .min(rest.len());
            while !rest.is_char_boundary(hi) {
                hi += 1;
            }
        }
        if lo == rest.len() {
            parts.push(rest.to_string());
            break;
        }
        while hi - lo > 1 {
            let mid = floor_char(rest, (lo + hi) / 2);
            if mid <= lo {
                break;
            }
            if counter.count(&rest[..mid]) <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let mut cut = lo.max(rest.chars().next().map_or(1, char::len_utf8));
        if let Some((ws, ch)) = rest[..cut]
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
        {
            if ws > cut / 2 {
                cut = ws + ch.len_utf8();
            }
        }
        parts.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    parts
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests;
