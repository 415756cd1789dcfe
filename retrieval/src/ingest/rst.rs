//! reStructuredText: section titles (underlined, optionally overlined; levels in order of first
//! appearance of each adornment style), literal blocks after `::` kept whole, paragraphs.

use super::{numbered_lines, push_heading, BlockKind, ParaBuf, ParsedDoc};

pub(crate) fn parse(text: &str) -> ParsedDoc {
    let mut doc = ParsedDoc::default();
    let lines: Vec<(u32, &str)> = numbered_lines(text).collect();
    // Adornment styles, (character, overlined), in order of first appearance = level.
    let mut styles: Vec<(u8, bool)> = Vec::new();
    let mut para = ParaBuf::default();
    let mut literal_next = false;
    let mut i = 0;
    while i < lines.len() {
        let (n, line) = lines[i];
        // Overlined title: adornment, text, adornment.
        if let (Some(c), Some(&(_, t)), Some(&(m, u))) =
            (adornment(line), lines.get(i + 1), lines.get(i + 2))
        {
            if para.is_empty() && !t.trim().is_empty() && adornment(u) == Some(c) {
                let level = level_of(&mut styles, (c, true));
                push_heading(&mut doc, level, t.trim(), n, m);
                i += 3;
                continue;
            }
        }
        // Underlined title: one text line, then an adornment at least as long.
        if let Some(&(m, u)) = lines.get(i + 1) {
            if let Some(c) = adornment(u) {
                let t = line.trim();
                if para.is_empty()
                    && !t.is_empty()
                    && !line.starts_with([' ', '\t'])
                    && u.trim().chars().count() >= t.chars().count()
                {
                    let level = level_of(&mut styles, (c, false));
                    push_heading(&mut doc, level, t, n, m);
                    i += 2;
                    continue;
                }
            }
        }
        if line.trim().is_empty() {
            para.flush(BlockKind::Para, &mut doc.blocks);
            i += 1;
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if literal_next && indented && para.is_empty() {
            // The literal block: every line indented (or blank) until the text dedents.
            let mut code = ParaBuf::default();
            while i < lines.len() {
                let (m, l) = lines[i];
                if !l.trim().is_empty() && !l.starts_with([' ', '\t']) {
                    break;
                }
                code.push(m, l);
                i += 1;
            }
            code.flush(BlockKind::Code, &mut doc.blocks);
            literal_next = false;
            continue;
        }
        literal_next = line.trim_end().ends_with("::");
        para.push(n, line);
        i += 1;
    }
    para.flush(BlockKind::Para, &mut doc.blocks);
    doc
}

fn level_of(styles: &mut Vec<(u8, bool)>, style: (u8, bool)) -> u8 {
    let pos = match styles.iter().position(|s| *s == style) {
        Some(p) => p,
        None => {
            styles.push(style);
            styles.len() - 1
        }
    };
    (pos + 1).min(6) as u8
}

/// A line of one repeated punctuation character, at least 3 long (RST allows 1, but then
/// every `-` list bullet would be a title).
fn adornment(line: &str) -> Option<u8> {
    let t = line.trim_end();
    let c = *t.as_bytes().first()?;
    let ok = b"=-~^\"'`#*+:._";
    (t.len() >= 3 && ok.contains(&c) && t.bytes().all(|b| b == c)).then_some(c)
}
