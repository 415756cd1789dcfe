//! Token sampling: repetition penalty, temperature, top-k, top-p, min-p, seeded draws.
//!
//! The order is Hugging Face's: the repetition penalty first (over every token already in the
//! sequence, prompt included), then temperature, top-k, top-p and min-p, then a draw from the
//! renormalised distribution. A temperature of 0 (or below 1e-5) is greedy (argmax, first
//! index on ties).
//! Constraints mask tokens by setting their logits to `-inf` before calling [`Sampler::sample`].

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// Sampling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 or `None`: off).
    pub top_k: Option<usize>,
    /// Keep the smallest set whose probability reaches `p` (`None` or 1.0: off).
    pub top_p: Option<f32>,
    /// Drop tokens less likely than `min_p` times the most likely one (`None`: off).
    pub min_p: Option<f32>,
    /// Hugging Face's repetition penalty (1.0: off).
    pub repetition_penalty: f32,
    /// Seed of the draws.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            min_p: None,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self::default()
    }

    /// Checks every value is in range; errors name the argument.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::arg(
                "temperature",
                format!("{} must be a number >= 0", self.temperature),
            ));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::arg("top_p", format!("{p} must be in (0, 1]")));
            }
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::arg("min_p", format!("{p} must be in [0, 1]")));
            }
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::arg(
                "repetition_penalty",
                format!("{} must be a number > 0", self.repetition_penalty),
            ));
        }
        Ok(())
    }
}

/// Draws tokens according to [`SamplingParams`].
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded from `params.seed`.
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        let rng = StdRng::seed_from_u64(params.seed);
        Ok(Sampler { params, rng })
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from `logits`, given the tokens already in the sequence.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        let mut l = logits.to_vec();
        apply_repetition_penalty(&mut l, history, self.params.repetition_penalty);
        // Below 1e-5 the scaled logits overflow f32; such a temperature is greedy in effect.
        if self.params.temperature < 1e-5 {
            return argmax(&l).ok_or_else(|| Error::arg("logits", "no token has a finite logit"));
        }
        let inv_t = 1.0 / self.params.temperature;
        for x in l.iter_mut() {
            *x *= inv_t;
        }
        let mut cand: Vec<(u32, f32)> = l
            .iter()
            .enumerate()
            .filter(|(_, x)| **x > f32::NEG_INFINITY && !x.is_nan())
            .map(|(i, &x)| (i as u32, x))
            .collect();
        if cand.is_empty() {
            return Err(Error::arg("logits", "no token has a finite logit"));
        }
        // Most likely first, lower id first on ties: a total order, so the sorted list (and
        // the draw) does not depend on how it was reached.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if let Some(k) = self.params.top_k.filter(|&k| k > 0 && k < cand.len()) {
            // Only the top k (and ties with the k-th) need sorting: partition first.
            cand.select_nth_unstable_by(k - 1, order);
            let kth = cand[k - 1].1;
            cand.retain(|c| c.1 >= kth);
        }
        cand.sort_by(order);
        let mut probs = softmax(&cand);
        if let Some(p) = self.params.top_p.filter(|&p| p < 1.0) {
            let mut cum = 0.0f64;
            let mut keep = cand.len();
            for (i, &q) in probs.iter().enumerate() {
                cum += q;
                if cum >= p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep);
            probs = softmax(&cand);
        }
        if let Some(m) = self.params.min_p.filter(|&m| m > 0.0) {
            let cut = probs[0] * m as f64;
            let keep = probs.iter().take_while(|&&q| q >= cut).count().max(1);
            cand.truncate(keep);
            probs = softmax(&cand);
        }
        let u: f64 = self.rng.random();
        let mut cum = 0.0;
        for (c, q) in cand.iter().zip(&probs) {
            cum += q;
            if u < cum {
                return Ok(c.0);
            }
        }
        Ok(cand[cand.len() - 1].0)
    }
}

/// Index of the largest value, first on ties; `None` if every value is NaN or `-inf`.
pub fn argmax(xs: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in xs.iter().enumerate() {
        if x.is_nan() || x == f32::NEG_INFINITY {
            continue;
        }
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i as u32)
}

fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &t in history {
        if let Some(s) = seen.get_mut(t as usize) {
            if !*s {
                *s = true;
                let x = &mut logits[t as usize];
                *x = if *x < 0.0 { *x * penalty } else { *x / penalty };
            }
        }
    }
}

/// Probabilities of sorted candidates (f64 for stable cumulative sums).
fn softmax(cand: &[(u32, f32)]) -> Vec<f64> {
    let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = cand.iter().map(|c| (c.1 as f64 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

#[cfg(test)]
#[path = "sampling_tests.rs"]
mod tests;
