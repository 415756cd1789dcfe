//! Prometheus metrics of the server, as text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters and gauges, updated by the handlers and the workers.
#[derive(Default)]
pub struct Metrics {
    /// The shared forward pass of parallel sequences, for its counts.
    pub batcher: Option<lfm_engine::batch::Batcher>,
    /// Responses by HTTP status.
    pub responses: Mutex<BTreeMap<u16, u64>>,
    /// Requests waiting for the model.
    pub queue_depth: AtomicI64,
    /// Tokens prefilled.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub completion_tokens: AtomicU64,
    /// Microseconds the model spent on finished turns.
    pub generate_us: AtomicU64,
    /// Microseconds from arrival to response, summed over answered requests.
    pub latency_us: AtomicU64,
    /// Microseconds waited in the queue, summed.
    pub queue_us: AtomicU64,
    /// Answered requests (the count behind the sums).
    pub answered: AtomicU64,
    /// Microseconds from arrival to the first generated token, summed.
    pub ttft_us: AtomicU64,
    /// Turns that generated a token (the count behind `ttft_us`).
    pub ttft_count: AtomicU64,
    /// Requests dropped because the client went away or timed out.
    pub cancelled: AtomicU64,
}

impl Metrics {
    /// Counts a response with `status`.
    pub fn count(&self, status: u16) {
        if let Ok(mut m) = self.responses.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP lfm_requests_total Responses by HTTP status.\n# TYPE lfm_requests_total counter\n");
        if let Ok(m) = self.responses.lock() {
            for (code, n) in m.iter() {
                s.push_str(&format!("lfm_requests_total{{code=\"{code}\"}} {n}\n"));
            }
        }
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let secs = |a: &AtomicU64| g(a) as f64 / 1e6;
        let gen_s = secs(&self.generate_us);
        let tps = if gen_s > 0.0 {
            g(&self.completion_tokens) as f64 / gen_s
        } else {
            0.0
        };
        let lines = [
            (
                "lfm_queue_depth",
                "gauge",
                "Requests waiting for the model.",
                self.queue_depth.load(Ordering::Relaxed).max(0) as f64,
            ),
            (
                "lfm_prompt_tokens_total",
                "counter",
                "Tokens prefilled.",
                g(&self.prompt_tokens) as f64,
            ),
            (
                "lfm_completion_tokens_total",
                "counter",
                "Tokens generated.",
                g(&self.completion_tokens) as f64,
            ),
            (
                "lfm_generate_seconds_total",
                "counter",
                "Model time of finished turns.",
                gen_s,
            ),
            (
                "lfm_tokens_per_second",
                "gauge",
                "Generated tokens per second of each turn's own time, since start (with parallel sequences: about one sequence's rate, not the server's).",
                tps,
            ),
            (
                "lfm_request_seconds_sum",
                "counter",
                "Arrival to the end of the response, answered requests.",
                secs(&self.latency_us),
            ),
            (
                "lfm_request_seconds_count",
                "counter",
                "Answered requests.",
                g(&self.answered) as f64,
            ),
            (
                "lfm_time_to_first_token_seconds_sum",
                "counter",
                "Arrival to the first generated token.",
                secs(&self.ttft_us),
            ),
            (
                "lfm_time_to_first_token_seconds_count",
                "counter",
                "Turns that generated a token.",
                g(&self.ttft_count) as f64,
            ),
            (
                "lfm_queue_seconds_sum",
                "counter",
                "Time waited for the model.",
                secs(&self.queue_us),
            ),
            (
                "lfm_cancelled_total",
                "counter",
                "Requests dropped: client gone or timed out.",
                g(&self.cancelled) as f64,
            ),
        ];
        let (passes, per_pass) = self.batcher.as_ref().map_or((0, 0.0), |b| b.stats());
        let kv = self.batcher.as_ref().map(|b| b.budget_use());
        let batch = [
            (
                "lfm_batch_passes_total",
                "counter",
                "Shared forward passes of parallel sequences.",
                passes as f64,
            ),
            (
                "lfm_batch_pass_seconds_total",
                "counter",
                "Seconds spent in shared forward passes (between them the batcher waits for chunks).",
                self.batcher
                    .as_ref()
                    .map_or(0.0, |b| b.pass_time().as_secs_f64()),
            ),
            (
                "lfm_batch_sequences_per_pass",
                "gauge",
                "Mean sequences per shared pass, since start.",
                per_pass,
            ),
            (
                "lfm_kv_budget_tokens",
                "gauge",
                "Tokens of KV the batched sequences may hold together.",
                kv.map_or(0.0, |k| k.limit as f64),
            ),
            (
                "lfm_kv_held_tokens",
                "gauge",
                "Tokens of KV the batched sequences hold now, in turns and parked.",
                kv.map_or(0.0, |k| k.used as f64),
            ),
            (
                "lfm_kv_evictions_total",
                "counter",
                "Idle sequences' KV dropped to make room for a turn.",
                kv.map_or(0.0, |k| k.evictions as f64),
            ),
        ];
        for (name, kind, help, v) in lines.into_iter().chain(batch) {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        }
        s
    }
}
