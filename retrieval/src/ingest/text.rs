//! Plain text (paragraphs between blank lines) and line-oriented files (one block per line).

use super::{numbered_lines, Block, BlockKind, ParaBuf, ParsedDoc};

/// Paragraphs separated by blank lines.
pub(crate) fn paragraphs(text: &str) -> ParsedDoc {
    let mut blocks = Vec::new();
    let mut para = ParaBuf::default();
    for (n, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            para.flush(BlockKind::Para, &mut blocks);
        } else {
            para.push(n, line);
        }
    }
    para.flush(BlockKind::Para, &mut blocks);
    ParsedDoc {
        blocks,
        ..ParsedDoc::default()
    }
}

/// One [`BlockKind::Line`] block per non-blank line (logs): the chunker windows them.
pub(crate) fn lines(text: &str) -> ParsedDoc {
    let blocks = numbered_lines(text)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| Block {
            kind: BlockKind::Line,
            text: l.trim_end().to_string(),
            line_start: n,
            line_end: n,
        })
        .collect();
    ParsedDoc {
        blocks,
        ..ParsedDoc::default()
    }
}
