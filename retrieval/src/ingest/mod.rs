//! Reading files into blocks: one parser per format, each keeping the source line span of
//! every block so that a citation can point back into the file.
//!
//! A parser never fails on content: text that does not parse as its format falls back to
//! plain paragraphs or lines. Only unreadable files (I/O errors, binary data, a PDF without a
//! text layer) are skipped, with the reason.

mod html;
mod markdown;
mod pdf;
mod rst;
mod structured;
mod text;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file formats the indexer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// Markdown (`.md`, `.markdown`, `.mdx`).
    Markdown,
    /// reStructuredText (`.rst`).
    Rst,
    /// HTML (`.html`, `.htm`, `.xhtml`).
    Html,
    /// Plain text (`.txt`, or any unknown extension whose content is text).
    Text,
    /// Log files (`.log`, `.out`, `.log.1`, ...): windows of lines.
    Log,
    /// A JSON document (`.json`).
    Json,
    /// JSON lines (`.jsonl`, `.ndjson`).
    Jsonl,
    /// Comma- or tab-separated values (`.csv`, `.tsv`).
    Csv,
    /// PDF, its text layer (`.pdf`).
    Pdf,
}

impl DocKind {
    /// All kinds, for help texts.
    pub const ALL: [DocKind; 9] = [
        DocKind::Markdown,
        DocKind::Rst,
        DocKind::Html,
        DocKind::Text,
        DocKind::Log,
        DocKind::Json,
        DocKind::Jsonl,
        DocKind::Csv,
        DocKind::Pdf,
    ];

    /// The short name stored in the index and accepted by `--type`.
    pub fn name(self) -> &'static str {
        match self {
            DocKind::Markdown => "md",
            DocKind::Rst => "rst",
            DocKind::Html => "html",
            DocKind::Text => "txt",
            DocKind::Log => "log",
            DocKind::Json => "json",
            DocKind::Jsonl => "jsonl",
            DocKind::Csv => "csv",
            DocKind::Pdf => "pdf",
        }
    }

    /// Parses a `--type` value: the short name or a common extension.
    pub fn from_name(name: &str) -> Option<DocKind> {
        Some(
            match name.trim_start_matches('.').to_ascii_lowercase().as_str() {
                "md" | "markdown" | "mdx" => DocKind::Markdown,
                "rst" | "rest" => DocKind::Rst,
                "html" | "htm" | "xhtml" => DocKind::Html,
                "txt" | "text" => DocKind::Text,
                "log" | "out" => DocKind::Log,
                "json" => DocKind::Json,
                "jsonl" | "ndjson" => DocKind::Jsonl,
                "csv" | "tsv" => DocKind::Csv,
                "pdf" => DocKind::Pdf,
                _ => return None,
            },
        )
    }

    /// The kind a path's name implies, or `None` for an unknown extension (then the content
    /// decides: text is read as [`DocKind::Text`], binary data is skipped).
    pub fn from_path(path: &Path) -> Option<DocKind> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        // Rotated logs: app.log.1, app.log.2.gz is binary and caught by the content check.
        if name.contains(".log.") {
            return Some(DocKind::Log);
        }
        let ext = name.rsplit_once('.')?.1;
        DocKind::from_name(ext)
    }
}

/// What a block is, which decides how the chunker joins and splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// A section title of the given depth (1 = top).
    Heading(u8),
    /// A paragraph, list or table: kept whole where it fits.
    Para,
    /// A code or literal block: kept whole where it fits.
    Code,
    /// One record of a line-oriented file (log line, JSONL object, CSV row).
    Line,
}

/// One structural unit of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// What it is.
    pub kind: BlockKind,
    /// Its text, as the model will read it.
    pub text: String,
    /// First source line, 1-based.
    pub line_start: u32,
    /// Last source line, inclusive.
    pub line_end: u32,
}

/// A parsed file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedDoc {
    /// The document's title (first top-level heading, `<title>`, front matter), if any.
    pub title: Option<String>,
    /// The blocks in file order.
    pub blocks: Vec<Block>,
    /// Text repeated at the top of every chunk (a CSV header row).
    pub preamble: Option<String>,
}

/// Why a file was not indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Reading it failed.
    Unreadable(String),
    /// It holds binary data (a NUL byte near the start) and is not a PDF.
    Binary,
    /// A PDF whose text layer could not be read, or that has none.
    NoText(String),
    /// Larger than the configured limit.
    TooLarge(u64),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Unreadable(why) => write!(f, "unreadable: {why}"),
            SkipReason::Binary => write!(f, "binary file"),
            SkipReason::NoText(why) => write!(f, "no text layer: {why}"),
            SkipReason::TooLarge(n) => write!(f, "too large ({n} bytes)"),
        }
    }
}

/// Parses a file's bytes. `kind` is `None` for an unknown extension.
/// Returns the kind it was read as, or why it was skipped.
pub fn parse(kind: Option<DocKind>, bytes: &[u8]) -> Result<(DocKind, ParsedDoc), SkipReason> {
    if kind == Some(DocKind::Pdf) {
        return pdf::parse(bytes).map(|d| (DocKind::Pdf, d));
    }
    if looks_binary(bytes) {
        return Err(SkipReason::Binary);
    }
    let text = String::from_utf8_lossy(bytes);
    // A byte-order mark is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let kind = kind.unwrap_or(DocKind::Text);
    let doc = match kind {
        DocKind::Markdown => markdown::parse(text),
        DocKind::Rst => rst::parse(text),
        DocKind::Html => html::parse(text),
        DocKind::Text => text::paragraphs(text),
        DocKind::Log => text::lines(text),
        DocKind::Json => structured::json(text),
        DocKind::Jsonl => structured::jsonl(text),
        DocKind::Csv => structured::csv(text),
        DocKind::Pdf => unreachable!("handled above"),
    };
    Ok((kind, doc))
}

/// A NUL byte in the first 8 KiB: what git and ripgrep take as binary.
fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

/// Lines of `text` with their 1-based numbers, without line terminators (`\n`, `\r\n`).
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i as u32 + 1, l.strip_suffix('\r').unwrap_or(l)))
}

/// Adds a heading block (none for an empty title); the first level-1 heading is the title.
pub(crate) fn push_heading(doc: &mut ParsedDoc, level: u8, title: &str, start: u32, end: u32) {
    if title.is_empty() {
        return;
    }
    if level == 1 && doc.title.is_none() {
        doc.title = Some(title.to_string());
    }
    doc.blocks.push(Block {
        kind: BlockKind::Heading(level),
        text: title.to_string(),
        line_start: start,
        line_end: end,
    });
}

/// Collects consecutive non-blank lines into blocks; the shared paragraph logic.
#[derive(Default)]
pub(crate) struct ParaBuf {
    lines: Vec<String>,
    start: u32,
    end: u32,
}

impl ParaBuf {
    pub(crate) fn push(&mut self, n: u32, line: &str) {
        if self.lines.is_empty() {
            self.start = n;
        }
        let line = line.trim_end();
        if !line.is_empty() {
            self.end = n;
        }
        self.lines.push(line.to_string());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub(crate) fn flush(&mut self, kind: BlockKind, out: &mut Vec<Block>) {
        if self.lines.is_empty() {
            return;
        }
        let text = self.lines.join("\n").trim_end().to_string();
        self.lines.clear();
        if text.trim().is_empty() {
            return;
        }
        out.push(Block {
            kind,
            text,
            line_start: self.start,
            line_end: self.end,
        });
    }

    /// Takes the buffered lines out (for a paragraph that turns out to be a heading).
    pub(crate) fn take(&mut self) -> (Vec<String>, u32, u32) {
        (std::mem::take(&mut self.lines), self.start, self.end)
    }
}

#[cfg(test)]
mod tests;
