//! Markdown, line by line: ATX and setext headings, fenced code blocks kept whole, paragraphs
//! (lists and tables included) between blank lines, YAML front matter read for its title.

use super::{numbered_lines, push_heading, BlockKind, ParaBuf, ParsedDoc};

pub(crate) fn parse(text: &str) -> ParsedDoc {
    let mut doc = ParsedDoc::default();
    let lines: Vec<(u32, &str)> = numbered_lines(text).collect();
    let mut i = front_matter(&lines, &mut doc.title);
    let mut para = ParaBuf::default();
    while i < lines.len() {
        let (n, line) = lines[i];
        if let Some((ch, len)) = fence_open(line) {
            para.flush(BlockKind::Para, &mut doc.blocks);
            let mut code = ParaBuf::default();
            code.push(n, line);
            i += 1;
            while i < lines.len() {
                let (m, l) = lines[i];
                code.push(m, l);
                i += 1;
                if fence_close(l, ch, len) {
                    break;
                }
            }
            code.flush(BlockKind::Code, &mut doc.blocks);
            continue;
        }
        if let Some((level, title)) = atx_heading(line) {
            para.flush(BlockKind::Para, &mut doc.blocks);
            push_heading(&mut doc, level, title, n, n);
        } else if line.trim().is_empty() {
            para.flush(BlockKind::Para, &mut doc.blocks);
        } else if let Some(level) = setext_underline(line).filter(|_| !para.is_empty()) {
            let (text_lines, start, _) = para.take();
            let title = text_lines.join(" ");
            push_heading(&mut doc, level, title.trim(), start, n);
        } else {
            para.push(n, line);
        }
        i += 1;
    }
    para.flush(BlockKind::Para, &mut doc.blocks);
    doc
}

/// Skips a leading `---` ... `---` block, taking its `title:` if any. Returns the first line
/// index after it.
fn front_matter(lines: &[(u32, &str)], title: &mut Option<String>) -> usize {
    if lines.first().map(|l| l.1.trim_end()) != Some("---") {
        return 0;
    }
    for (i, (_, l)) in lines.iter().enumerate().skip(1).take(100) {
        let l = l.trim_end();
        if l == "---" || l == "..." {
            for (_, m) in &lines[1..i] {
                if let Some(t) = m.strip_prefix("title:") {
                    let t = t.trim().trim_matches(|c| c == '"' || c == '\'');
                    if !t.is_empty() {
                        *title = Some(t.to_string());
                    }
                }
            }
            return i + 1;
        }
    }
    0
}

/// `# Title ##` with up to three leading spaces: (level, title).
fn atx_heading(line: &str) -> Option<(u8, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let after = &rest[hashes..];
    if !after.is_empty() && !after.starts_with([' ', '\t']) {
        return None;
    }
    // A closing run of `#` counts only after a space (`## Using C#` keeps its `#`).
    let title = after.trim();
    let stripped = title.trim_end_matches('#');
    let title = if stripped.is_empty() || stripped.ends_with([' ', '\t']) {
        stripped.trim_end()
    } else {
        title
    };
    Some((hashes as u8, title))
}

/// `===` (level 1) or `---` (level 2) under a paragraph line.
fn setext_underline(line: &str) -> Option<u8> {
    let t = line.trim();
    if line.len() - line.trim_start().len() > 3 || t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b == b'=') {
        Some(1)
    } else if t.bytes().all(|b| b == b'-') {
        Some(2)
    } else {
        None
    }
}

/// An opening code fence: three or more backticks or tildes.
fn fence_open(line: &str) -> Option<(u8, usize)> {
    let t = line.trim_start();
    if line.len() - t.len() > 3 {
        return None;
    }
    let ch = *t.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = t.len() - t.trim_start_matches(ch as char).len();
    // A backtick fence's info string may not contain backticks.
    if len < 3 || (ch == b'`' && t[len..].contains('`')) {
        return None;
    }
    Some((ch, len))
}

fn fence_close(line: &str, ch: u8, len: usize) -> bool {
    let t = line.trim();
    t.len() >= len && t.bytes().all(|b| b == ch)
}
