//! Percentiles and macro F1.

use std::collections::BTreeSet;

/// The `p`th percentile of `xs` (nearest rank); 0 for no values.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Macro F1 over the gold classes of `(predicted, gold)` pairs: the mean over every class
/// that occurs in the gold of that class's F1 (a predicted class that never occurs in the
/// gold lowers the precision of none, but its predictions are misses for their gold class).
pub fn macro_f1(pairs: &[(String, String)]) -> f64 {
    let classes: BTreeSet<&str> = pairs.iter().map(|(_, g)| g.as_str()).collect();
    if classes.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for c in &classes {
        let tp = pairs.iter().filter(|(p, g)| p == c && g == c).count() as f64;
        let fp = pairs.iter().filter(|(p, g)| p == c && g != c).count() as f64;
        let fn_ = pairs.iter().filter(|(p, g)| p != c && g == c).count() as f64;
        if tp > 0.0 {
            total += 2.0 * tp / (2.0 * tp + fp + fn_);
        }
    }
    total / classes.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(p, g)| (p.to_string(), g.to_string()))
            .collect()
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), 50.0);
        assert_eq!(percentile(&xs, 99.0), 99.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn macro_f1_by_hand() {
        assert_eq!(macro_f1(&pairs(&[("a", "a"), ("b", "b")])), 1.0);
        // a: tp 1, fp 1 (b->a), fn 0 -> 2/3; b: tp 0 -> 0. Mean 1/3.
        let f = macro_f1(&pairs(&[("a", "a"), ("a", "b")]));
        assert!((f - 1.0 / 3.0).abs() < 1e-12, "{f}");
        // A class only predicted (c) is not averaged, but its prediction misses gold a.
        let f = macro_f1(&pairs(&[("c", "a"), ("a", "a")]));
        // a: tp 1, fn 1, fp 0 -> 2/3.
        assert!((f - 2.0 / 3.0).abs() < 1e-12, "{f}");
    }
}
