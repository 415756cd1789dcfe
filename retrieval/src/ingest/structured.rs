//! JSON, JSON lines and CSV: one block per record, so the chunker windows them like log lines.

use super::{numbered_lines, text, Block, BlockKind, ParsedDoc};

/// A JSON document. Written over several lines, it is read line by line (pretty-printed JSON
/// reads well in windows); on one line, a top-level array gives one block per element. Text
/// that is not JSON is read as plain text.
pub(crate) fn json(src: &str) -> ParsedDoc {
    let value: serde_json::Value = match serde_json::from_str(src) {
        Ok(v) => v,
        Err(_) => return text::paragraphs(src),
    };
    if src.trim().lines().nth(1).is_some() {
        return text::lines(src);
    }
    let items: Vec<serde_json::Value> = match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    let blocks = items
        .iter()
        .map(|v| Block {
            kind: BlockKind::Line,
            text: v.to_string(),
            line_start: 1,
            line_end: 1,
        })
        .collect();
    ParsedDoc {
        blocks,
        ..ParsedDoc::default()
    }
}

/// JSON lines: one block per non-blank line, parsed or not (a bad line is still text).
pub(crate) fn jsonl(src: &str) -> ParsedDoc {
    text::lines(src)
}

/// CSV or TSV (the delimiter is whichever of `,`, `\t`, `;` the header row has most of).
/// The header row becomes the preamble of every chunk; each record is a block holding its
/// source text (a quoted field may span lines). Text the CSV reader rejects is read as lines.
pub(crate) fn csv(src: &str) -> ParsedDoc {
    let first = src.lines().next().unwrap_or("");
    let delimiter = [b',', b'\t', b';']
        .into_iter()
        .max_by_key(|d| first.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(src.as_bytes());
    // (byte offset, line) where each record starts.
    let mut starts: Vec<(usize, u32)> = Vec::new();
    let mut record = ::csv::ByteRecord::new();
    loop {
        let pos = reader.position().clone();
        match reader.read_byte_record(&mut record) {
            Ok(true) => starts.push((pos.byte() as usize, pos.line() as u32)),
            Ok(false) => break,
            Err(_) => return text::lines(src),
        }
    }
    let mut doc = ParsedDoc::default();
    for (k, &(start, line)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(src.len(), |s| s.0);
        let Some(raw) = src.get(start..end) else {
            return text::lines(src);
        };
        // The reader's position can sit on the line break that ended the previous record
        // (CRLF files, blank lines): skip it, and count the lines skipped.
        let trimmed = raw.trim_start_matches(['\r', '\n']);
        let line = line
            + raw[..raw.len() - trimmed.len()]
                .bytes()
                .filter(|&b| b == b'\n')
                .count() as u32;
        let raw = trimmed.trim_end_matches(['\r', '\n']);
        if raw.trim().is_empty() {
            continue;
        }
        if k == 0 {
            doc.preamble = Some(raw.to_string());
            continue;
        }
        doc.blocks.push(Block {
            kind: BlockKind::Line,
            text: raw.to_string(),
            line_start: line,
            // A quoted field may hold line breaks.
            line_end: line + raw.bytes().filter(|&b| b == b'\n').count() as u32,
        });
    }
    // The header's own line is part of the file too: keep line numbers honest for a file
    // that is only a header.
    if doc.blocks.is_empty() {
        if let Some(h) = doc.preamble.take() {
            doc.blocks = numbered_lines(&h)
                .map(|(n, l)| Block {
                    kind: BlockKind::Line,
                    text: l.to_string(),
                    line_start: n,
                    line_end: n,
                })
                .collect();
        }
    }
    doc
}
