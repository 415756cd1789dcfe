//! Doom-loop detection: repeated calls and repeating thinking.

use std::collections::HashMap;

/// How often a call has been seen, this one included.
pub(super) enum Repeat {
    First,
    Second,
    Third,
}

#[derive(Default)]
pub(super) struct LoopGuard {
    calls: HashMap<String, usize>,
    thoughts: Vec<String>,
}

impl LoopGuard {
    /// Counts a call (`name(canonical args)`).
    pub(super) fn seen_call(&mut self, key: &str) -> Repeat {
        let n = self.calls.entry(key.to_string()).or_default();
        *n += 1;
        match *n {
            1 => Repeat::First,
            2 => Repeat::Second,
            _ => Repeat::Third,
        }
    }

    /// True when this turn's thinking repeats an earlier turn's, or repeats a stretch of
    /// itself: a line of at least 24 characters three times or more.
    pub(super) fn thinking_repeats(&mut self, text: &str) -> bool {
        let Some(start) = text.find("<think>") else {
            return false;
        };
        let body = &text[start + "<think>".len()..];
        let body = body.split("</think>").next().unwrap_or(body).trim();
        if body.is_empty() {
            return false;
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for piece in body
            .split(['\n', '.', '!', '?'])
            .map(str::trim)
            .filter(|p| p.len() >= 24)
        {
            let n = counts.entry(piece).or_default();
            *n += 1;
            if *n >= 3 {
                return true;
            }
        }
        if self.thoughts.iter().any(|t| t == body) {
            return true;
        }
        self.thoughts.push(body.to_string());
        false
    }
}
