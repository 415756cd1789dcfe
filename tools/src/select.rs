//! Choosing the tools to offer: small models pick far better from short lists, so a task with
//! many tools offers only those most relevant to the request. BM25 (k1 = 1.2, b = 0.75) over
//! each tool's name (split at `_`, `-` and `.`), description and parameter names and
//! descriptions, in memory.

use std::collections::HashMap;

use serde_json::Value;

use crate::tool::ToolSpec;

/// Above this many tools, [`crate::Registry::relevant`] narrows the list.
pub const SELECT_ABOVE: usize = 12;

/// Words that say nothing about which tool fits (Lucene's English stop words, pronouns and
/// question words).
const STOP: [&str; 56] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with", "its", "our", "my", "your", "you", "i", "we",
    "he", "she", "them", "from", "has", "have", "do", "does", "can", "should", "what", "how",
    "why", "when", "where", "please",
];

pub(crate) fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && !STOP.contains(&t.to_lowercase().as_str()))
        .map(|t| {
            let t = t.to_lowercase();
            // A light plural fold: "tickets" finds "ticket".
            match t.strip_suffix('s') {
                Some(stem) if stem.len() > 3 && !stem.ends_with('s') => stem.to_string(),
                _ => t,
            }
        })
        .collect()
}

fn spec_text(spec: &ToolSpec) -> String {
    let mut s = format!(
        "{} {}",
        spec.name.as_str().replace(['_', '-', '.'], " "),
        spec.description
    );
    if let Some(props) = spec.parameters.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            s.push(' ');
            s.push_str(&k.replace(['_', '-'], " "));
            if let Some(d) = v.get("description").and_then(Value::as_str) {
                s.push(' ');
                s.push_str(d);
            }
        }
    }
    s
}

/// Scores each spec against `query` with BM25; returns indices, best first (ties keep the
/// given order).
pub(crate) fn rank(specs: &[&ToolSpec], query: &str) -> Vec<(usize, f64)> {
    let docs: Vec<Vec<String>> = specs.iter().map(|s| terms(&spec_text(s))).collect();
    let n = docs.len() as f64;
    let avg = docs.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
    let mut df: HashMap<&str, usize> = HashMap::new();
    for d in &docs {
        let mut seen: Vec<&str> = d.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            *df.entry(t).or_default() += 1;
        }
    }
    let mut q = terms(query);
    q.sort_unstable();
    q.dedup();
    let mut scores: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let len = d.len() as f64;
            let score = q
                .iter()
                .map(|t| {
                    let f = d.iter().filter(|x| *x == t).count() as f64;
                    if f == 0.0 {
                        return 0.0;
                    }
                    let n_t = df.get(t.as_str()).copied().unwrap_or(0) as f64;
                    let idf = (1.0 + (n - n_t + 0.5) / (n_t + 0.5)).ln();
                    idf * f * 2.2 / (f + 1.2 * (1.0 - 0.75 + 0.75 * len / avg.max(1.0)))
                })
                .sum();
            (i, score)
        })
        .collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scores
}
