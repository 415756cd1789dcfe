//! Text comparison: lowercase alphanumeric tokens, token F1, and key-point recall.

use std::collections::{BTreeMap, BTreeSet};

/// Words too common to count as a key point's content.
const STOP: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "with", "that", "this", "from",
    "then", "than", "was", "were", "has", "have", "had", "its", "into", "onto", "over", "only",
    "via", "per", "any", "all", "can", "will", "should", "must", "may", "also", "when", "what",
    "which", "who", "how", "does", "did", "out", "off", "one", "there", "their", "them", "they",
    "after", "before", "about", "more", "less", "use", "used", "using", "get", "gets",
];

/// Lowercase runs of letters and digits.
pub fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Token F1 of `pred` against `gold` (multiset overlap); 1 when both are empty.
pub fn token_f1(pred: &str, gold: &str) -> f64 {
    let (p, g) = (tokens(pred), tokens(gold));
    if p.is_empty() && g.is_empty() {
        return 1.0;
    }
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for t in &g {
        *counts.entry(t).or_default() += 1;
    }
    let mut common = 0;
    for t in &p {
        if let Some(c) = counts.get_mut(t.as_str()) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / p.len() as f64;
    let recall = common as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// A key point's content words: tokens of three or more characters that are not stop
/// words, and every number.
pub fn content_words(s: &str) -> BTreeSet<String> {
    tokens(s)
        .into_iter()
        .filter(|t| {
            t.chars().all(|c| c.is_ascii_digit())
                || (t.chars().count() >= 3 && !STOP.contains(&t.as_str()))
        })
        .collect()
}

/// Whether `answer` makes `point`: at least `threshold` of the point's content words appear
/// in it. A point with no content words is made by any answer.
pub fn makes_point(answer: &str, point: &str, threshold: f64) -> bool {
    let words = content_words(point);
    if words.is_empty() {
        return true;
    }
    let have: BTreeSet<String> = tokens(answer).into_iter().collect();
    let hit = words.iter().filter(|w| have.contains(*w)).count();
    hit as f64 / words.len() as f64 >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_f1_counts_overlap_once_per_occurrence() {
        assert_eq!(token_f1("disk full", "disk full"), 1.0);
        assert_eq!(token_f1("", ""), 1.0);
        assert_eq!(token_f1("a", ""), 0.0);
        // pred "disk disk" vs gold "disk full": one common token; p = 1/2, r = 1/2.
        assert!((token_f1("disk disk", "disk full") - 0.5).abs() < 1e-12);
        assert!(
            (token_f1("Slow query 2350ms", "slow query 2350ms: SELECT") - 0.857_142_857).abs()
                < 1e-6
        );
    }

    #[test]
    fn key_points_need_most_content_words() {
        let p = "UDP 51820 is blocked on that network";
        // Content words: udp, 51820, blocked, network (is/on/that dropped).
        assert_eq!(content_words(p).len(), 4);
        assert!(makes_point(
            "The hotel network blocks UDP 51820, it is blocked.",
            p,
            0.6
        ));
        assert!(!makes_point("Restart the VPN client.", p, 0.6));
        assert!(makes_point("anything", "is it on", 0.6));
    }
}
