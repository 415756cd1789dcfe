//! HTML to blocks without a DOM: block-level tags end a block, `<h1>`..`<h6>` are headings,
//! `<pre>` keeps its whitespace, `<script>`, `<style>`, `<template>` and comments are dropped,
//! entities are decoded. Line spans are those of the text in the source file.

use super::{Block, BlockKind, ParsedDoc};

pub(crate) fn parse(src: &str) -> ParsedDoc {
    let mut p = Parser {
        doc: ParsedDoc::default(),
        text: String::new(),
        start: 0,
        end: 0,
        kind: BlockKind::Para,
        pre: 0,
        in_title: false,
        seen_title: false,
        title: String::new(),
    };
    let bytes = src.as_bytes();
    let mut line = 1u32;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'<' {
            if src[i..].starts_with("<!--") {
                let end = find(src, i + 4, "-->").map_or(src.len(), |e| e + 3);
                line += count_newlines(&src[i..end]);
                i = end;
                continue;
            }
            if let Some(tag) = Tag::read(src, i) {
                line += count_newlines(&src[i..tag.end]);
                i = tag.end;
                if !tag.closing && matches!(tag.name.as_str(), "script" | "style" | "template") {
                    // Raw text elements: skip to the matching close tag.
                    let close = format!("</{}", tag.name);
                    let end = find_ci(src, i, &close).unwrap_or(src.len());
                    line += count_newlines(&src[i..end]);
                    i = end;
                    continue;
                }
                p.tag(&tag, line);
                continue;
            }
        }
        if b == b'&' {
            if let Some((decoded, len)) = entity(&src[i..]) {
                p.push_char(decoded, line);
                i += len;
                continue;
            }
        }
        let ch = src[i..].chars().next().unwrap_or(' ');
        if ch == '\n' {
            if p.pre > 0 {
                p.push_char('\n', line);
            } else {
                p.push_char(' ', line);
            }
            line += 1;
        } else {
            p.push_char(ch, line);
        }
        i += ch.len_utf8();
    }
    p.flush();
    let mut doc = p.doc;
    let title = p.title.split_whitespace().collect::<Vec<_>>().join(" ");
    if !title.is_empty() {
        doc.title = Some(title);
    }
    doc
}

struct Parser {
    doc: ParsedDoc,
    text: String,
    start: u32,
    end: u32,
    kind: BlockKind,
    pre: usize,
    in_title: bool,
    seen_title: bool,
    title: String,
}

impl Parser {
    fn push_char(&mut self, ch: char, line: u32) {
        if self.in_title {
            self.title.push(ch);
            return;
        }
        if self.pre == 0 && ch.is_whitespace() {
            if !self.text.is_empty() && !self.text.ends_with([' ', '\n']) {
                self.text.push(' ');
            }
            return;
        }
        if self.text.trim().is_empty() {
            self.start = line;
        }
        if !ch.is_whitespace() {
            self.end = line;
        }
        self.text.push(ch);
    }

    fn tag(&mut self, tag: &Tag, line: u32) {
        let name = tag.name.as_str();
        match name {
            // Only the document's first <title> (an <svg> carries titles of its own), and
            // an unclosed one ends at the next block tag.
            "title" => {
                self.in_title = !tag.closing && self.title.is_empty() && !self.seen_title;
                self.seen_title = true;
                return;
            }
            "br" => {
                self.text.push('\n');
                return;
            }
            _ => {}
        }
        if self.in_title && (is_block(name) || name == "body") {
            self.in_title = false;
        }
        let heading =
            name.len() == 2 && name.starts_with('h') && (b'1'..=b'6').contains(&name.as_bytes()[1]);
        if heading {
            self.flush();
            if !tag.closing {
                self.kind = BlockKind::Heading(name.as_bytes()[1] - b'0');
            }
            return;
        }
        if name == "pre" {
            self.flush();
            if tag.closing {
                self.pre = self.pre.saturating_sub(1);
            } else {
                self.pre += 1;
                self.kind = BlockKind::Code;
            }
            return;
        }
        if is_block(name) && self.pre == 0 {
            if name == "li" && !tag.closing {
                self.flush();
                self.text.push_str("- ");
                self.start = line;
            } else if name == "td" || name == "th" {
                if !tag.closing && !self.text.is_empty() {
                    self.text.push_str(" | ");
                }
            } else if name != "li" {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        let text = self.text.trim();
        let text = if self.kind == BlockKind::Code {
            self.text.trim_matches('\n').trim_end().to_string()
        } else {
            text.to_string()
        };
        if !text.is_empty() && text != "-" {
            if let BlockKind::Heading(1) = self.kind {
                if self.doc.title.is_none() {
                    self.doc.title = Some(text.clone());
                }
            }
            self.doc.blocks.push(Block {
                kind: self.kind,
                text,
                line_start: self.start.max(1),
                line_end: self.end.max(self.start).max(1),
            });
        }
        self.text.clear();
        self.kind = BlockKind::Para;
    }
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "li"
            | "ul"
            | "ol"
            | "table"
            | "tr"
            | "td"
            | "th"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "nav"
            | "aside"
            | "main"
            | "blockquote"
            | "dl"
            | "dt"
            | "dd"
            | "hr"
            | "figure"
            | "figcaption"
            | "form"
            | "body"
            | "details"
            | "summary"
    )
}

struct Tag {
    name: String,
    closing: bool,
    end: usize,
}

impl Tag {
    /// Reads a tag at `i` (which holds `<`), or `None` when the `<` is just text.
    fn read(src: &str, i: usize) -> Option<Tag> {
        let rest = &src[i + 1..];
        let (closing, rest) = match rest.strip_prefix('/') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let first = rest.chars().next()?;
        if !first.is_ascii_alphabetic() && first != '!' && first != '?' {
            return None;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        // The tag ends at the first `>` outside quotes.
        let mut quote = None;
        for (k, c) in src[i..].char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => {
                    return Some(Tag {
                        name,
                        closing,
                        end: i + k + 1,
                    })
                }
                _ => {}
            }
        }
        None
    }
}

fn find(src: &str, from: usize, pat: &str) -> Option<usize> {
    src.get(from..)?.find(pat).map(|k| from + k)
}

fn find_ci(src: &str, from: usize, pat: &str) -> Option<usize> {
    let hay = src.get(from..)?.to_ascii_lowercase();
    hay.find(pat).map(|k| from + k)
}

fn floor_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn count_newlines(s: &str) -> u32 {
    s.bytes().filter(|&b| b == b'\n').count() as u32
}

/// Decodes `&name;`, `&#NNN;` or `&#xHH;` at the start of `s`: (char, bytes used).
fn entity(s: &str) -> Option<(char, usize)> {
    let window = &s[..floor_boundary(s, 12)];
    let end = window.find(';')?;
    let body = &s[1..end];
    let ch = if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(code).unwrap_or('\u{fffd}')
    } else {
        match body {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "ndash" => '–',
            "mdash" => '—',
            "hellip" => '…',
            "copy" => '©',
            "rsquo" => '’',
            "lsquo" => '‘',
            "rdquo" => '”',
            "ldquo" => '“',
            _ => return None,
        }
    };
    Some((ch, end + 1))
}
