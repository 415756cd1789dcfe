//! Cutting a long log into windows that fit the context, without splitting an event.
//!
//! A line that starts with whitespace (a stack frame, a wrapped message) or is empty belongs
//! to the entry above it; any other line starts an entry. Windows are runs of whole entries
//! under the token budget. An entry larger than the budget is cut between lines, and a line
//! larger than the budget between characters, so every window fits and no text is lost.

/// A window of a log.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Its place among the windows (0-based). Windows are cut greedily from the start, so a
    /// log that only grew at its end keeps the same indices for its earlier windows.
    pub index: usize,
    /// 1-based first line.
    pub first_line: usize,
    /// 1-based last line.
    pub last_line: usize,
    /// The lines, joined with `\n`.
    pub text: String,
}

/// Splits `text` into windows of at most `budget` tokens as `count` counts them.
pub fn split(text: &str, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Window> {
    let budget = budget.max(1);
    // Entries: (first line, lines).
    let mut entries: Vec<(usize, Vec<&str>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let continues = line.is_empty() || line.starts_with([' ', '\t']);
        match entries.last_mut() {
            Some((_, lines)) if continues => lines.push(line),
            _ => entries.push((i + 1, vec![line])),
        }
    }
    // Pieces that each fit: whole entries, or entries cut between lines or inside a line.
    // The flag says the piece continues the line of the piece before it.
    let mut pieces: Vec<(usize, usize, String, bool)> = Vec::new();
    for (first, lines) in entries {
        let whole = lines.join("\n");
        if count(&whole) <= budget {
            pieces.push((first, first + lines.len() - 1, whole, false));
            continue;
        }
        for (j, line) in lines.iter().enumerate() {
            let n = first + j;
            if count(line) <= budget {
                pieces.push((n, n, line.to_string(), false));
                continue;
            }
            // Cut inside the line: `budget` characters at a time, halved until it fits.
            let chars: Vec<char> = line.chars().collect();
            let mut at = 0;
            while at < chars.len() {
                let mut len = budget.min(chars.len() - at);
                loop {
                    let part: String = chars[at..at + len].iter().collect();
                    if len == 1 || count(&part) <= budget {
                        pieces.push((n, n, part, at > 0));
                        break;
                    }
                    len /= 2;
                }
                at += len;
            }
        }
    }
    let mut out: Vec<Window> = Vec::new();
    let mut cur: Option<Window> = None;
    for (first, last, text, continues) in pieces {
        if let Some(w) = &mut cur {
            let sep = if continues { "" } else { "\n" };
            let joined = format!("{}{sep}{text}", w.text);
            if count(&joined) <= budget {
                w.text = joined;
                w.last_line = last;
                continue;
            }
        }
        if let Some(w) = cur.take() {
            out.push(w);
        }
        cur = Some(Window {
            index: out.len(),
            first_line: first,
            last_line: last,
            text,
        });
    }
    out.extend(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn events_stay_whole_and_windows_fit() {
        let log = "2026-01-01 ERROR boom one\n  at a.b(c)\n  at d.e(f)\n2026-01-01 INFO ok\n2026-01-01 WARN slow disk now\n";
        let w = split(log, 8, &words);
        assert_eq!(w.len(), 2, "{w:#?}");
        assert_eq!((w[0].first_line, w[0].last_line), (1, 3));
        assert!(w[0].text.ends_with("at d.e(f)"));
        assert_eq!((w[1].first_line, w[1].last_line), (4, 5));
        for x in &w {
            assert!(words(&x.text) <= 8);
        }
        // Too big for one window: cut between lines, then inside a line; nothing lost.
        let w = split("a b c d e f g h i j\n  k l\n", 4, &words);
        let all: Vec<&str> = w.iter().flat_map(|x| x.text.split_whitespace()).collect();
        assert_eq!(
            all,
            "a b c d e f g h i j k l".split(' ').collect::<Vec<_>>()
        );
        assert!(w.iter().all(|x| words(&x.text) <= 4));
        assert!(split("", 4, &words).is_empty());
    }
}
