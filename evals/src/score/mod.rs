//! Scoring one case, and a suite's summary.
//!
//! Every task gets the run-level measures (answered, schema validity, steps, doom-loop
//! stops, latency, tokens). Then, by task:
//! - triage: each scoring field right or not (`field.NAME`), `exact` (all of them), macro F1
//!   for the `f1` fields over the suite, and `citation_precision` when the record cites a
//!   passage and the case names its support;
//! - ask: `citation_precision` (cited passages that overlap the gold support lines, over the
//!   passages cited) and `key_point_recall` (key points the answer makes, see
//!   [`text::makes_point`]);
//! - extract: records paired on the `key` fields, `record_precision`, `record_recall`,
//!   `record_f1`, `field.NAME` over the paired records, and `exact`;
//! - tool-calls: `tool_name`, `arguments` (every gold argument right; a `keywords` argument
//!   is right when it holds each keyword, case-insensitively; arguments the gold leaves out
//!   are not held against the call), `argument_accuracy` (the share of gold arguments right).
//!
//! Values are compared trimmed and case-insensitively when both are strings, numerically when
//! both are numbers; text fields by token F1 at the suite's threshold.

mod stats;
pub mod text;

pub use stats::percentile;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::suite::{compile, Case, Suite, TaskKind};

/// A passage an output cited, resolved by the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cited {
    /// The id as written.
    pub id: String,
    /// The file it belongs to (canonical), when the id names an indexed passage.
    pub path: Option<PathBuf>,
    /// Its lines.
    pub lines: Option<(u32, u32)>,
}

/// What one run of a case produced, as the runner saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The output: the record (triage), `{answer, citations}` (ask), the list of records
    /// (extract), `{name, arguments}` of the first call (tool-calls); `None` when the run
    /// gave none.
    pub output: Option<Value>,
    /// Why the run ended (`answered`, `max_steps`, `doom_loop`, ...).
    pub stop: String,
    /// An error that ended the run, if any.
    pub error: Option<String>,
    /// Model turns.
    pub steps: usize,
    /// Whether the run was stopped for looping (a repeated call or repeated thinking).
    pub doom_loop: bool,
    /// Wall time of the case.
    pub latency_ms: f64,
    /// Tokens prefilled.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Time inside model turns (prefill and decode).
    pub model_ms: f64,
    /// Cited passages, resolved.
    pub cited: Vec<Cited>,
    /// The traces' run ids.
    pub runs: Vec<i64>,
}

/// A scored case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The case.
    pub case_id: String,
    /// Whether an output came back.
    pub answered: bool,
    /// Whether the output fits the schema (`None` without an output).
    pub valid: Option<bool>,
    /// Named scores in [0, 1] (a measure that does not apply to the case is absent).
    pub scores: BTreeMap<String, f64>,
    /// Predicted and gold labels of the `f1` fields.
    pub labels: BTreeMap<String, (String, String)>,
    /// What the runner saw.
    pub observation: Observation,
}

/// Scores `obs` against `case`.
pub fn score_case(suite: &Suite, case: &Case, obs: &Observation) -> CaseResult {
    let mut r = CaseResult {
        case_id: case.id.clone(),
        answered: obs.output.is_some(),
        valid: None,
        scores: BTreeMap::new(),
        labels: BTreeMap::new(),
        observation: obs.clone(),
    };
    let out = obs.output.as_ref();
    r.valid = out.map(|o| is_valid(suite, o));
    let sc = &suite.scoring;
    match suite.task {
        TaskKind::Triage => {
            let mut all = true;
            for f in &sc.fields {
                let ok = out.is_some_and(|o| field_eq(suite, f, o.get(f), case.gold.get(f)));
                all &= ok;
                r.scores.insert(format!("field.{f}"), b(ok));
            }
            r.scores.insert("exact".into(), b(all && out.is_some()));
            for f in &sc.f1 {
                let pred = out.and_then(|o| o.get(f)).map_or("(none)".into(), label);
                r.labels.insert(f.clone(), (pred, label(&case.gold[f])));
            }
            if sc.citation.is_some() && !case.support.is_empty() && !obs.cited.is_empty() {
                r.scores.insert(
                    "citation_precision".into(),
                    citation_precision(case, &obs.cited),
                );
            }
        }
        TaskKind::Ask => {
            if let Some(o) = out {
                if !obs.cited.is_empty() && !case.support.is_empty() {
                    r.scores.insert(
                        "citation_precision".into(),
                        citation_precision(case, &obs.cited),
                    );
                }
                let answer = o["answer"].as_str().unwrap_or_default();
                if !case.key_points.is_empty() {
                    let made = case
                        .key_points
                        .iter()
                        .filter(|p| text::makes_point(answer, p, sc.key_point_threshold()))
                        .count();
                    r.scores.insert(
                        "key_point_recall".into(),
                        made as f64 / case.key_points.len() as f64,
                    );
                }
            } else if !case.key_points.is_empty() {
                r.scores.insert("key_point_recall".into(), 0.0);
            }
        }
        TaskKind::Extract => extract_scores(suite, case, out, &mut r.scores),
        TaskKind::ToolCalls => call_scores(case, out, &mut r.scores),
    }
    r
}

fn b(x: bool) -> f64 {
    if x {
        1.0
    } else {
        0.0
    }
}

/// A label's text: a string as it is, anything else as JSON.
fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        Value::Null => "(none)".into(),
        v => v.to_string(),
    }
}

/// Whether `o` fits the task's schema: the record, each extracted record, or the call's
/// arguments under its tool's parameters.
fn is_valid(suite: &Suite, o: &Value) -> bool {
    match suite.task {
        TaskKind::ToolCalls => {
            let name = o["name"].as_str().unwrap_or_default();
            suite
                .tools
                .iter()
                .find(|t| t.name == name)
                .and_then(|t| compile(&t.parameters).ok())
                .is_some_and(|v| v.is_valid(&o["arguments"]))
        }
        task => {
            let Ok(Some(schema)) = suite.output_schema() else {
                // No schema to break.
                return true;
            };
            let Ok(v) = compile(&schema) else {
                return false;
            };
            match (task, o) {
                (TaskKind::Extract, Value::Array(records)) => records.iter().all(|r| v.is_valid(r)),
                (TaskKind::Extract, _) => false,
                _ => v.is_valid(o),
            }
        }
    }
}

/// Whether two values are the same answer.
pub fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.trim().to_lowercase() == y.trim().to_lowercase(),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| value_eq(p, q))
        }
        _ => a == b,
    }
}

fn field_eq(suite: &Suite, field: &str, pred: Option<&Value>, gold: Option<&Value>) -> bool {
    let (Some(p), Some(g)) = (pred, gold) else {
        return pred.is_none() && gold.is_none();
    };
    if suite.scoring.text.iter().any(|t| t == field) {
        if let (Some(p), Some(g)) = (p.as_str(), g.as_str()) {
            return text::token_f1(p, g) >= suite.scoring.text_threshold();
        }
    }
    value_eq(p, g)
}

fn citation_precision(case: &Case, cited: &[Cited]) -> f64 {
    let good = cited
        .iter()
        .filter(|c| match (&c.path, c.lines) {
            (Some(p), Some(l)) => case.support.iter().any(|s| s.overlaps(p, l)),
            _ => false,
        })
        .count();
    good as f64 / cited.len() as f64
}

fn extract_scores(
    suite: &Suite,
    case: &Case,
    out: Option<&Value>,
    scores: &mut BTreeMap<String, f64>,
) {
    let sc = &suite.scoring;
    let gold = case.gold.as_array().cloned().unwrap_or_default();
    let pred = out.and_then(Value::as_array).cloned().unwrap_or_default();
    let mut used = vec![false; pred.len()];
    let mut pairs = Vec::new();
    for g in &gold {
        let hit = pred.iter().enumerate().find(|(i, p)| {
            !used[*i]
                && sc
                    .key
                    .iter()
                    .all(|k| field_eq(suite, k, p.get(k), g.get(k)))
        });
        if let Some((i, p)) = hit {
            used[i] = true;
            pairs.push((g, p));
        }
    }
    let m = pairs.len() as f64;
    let (precision, recall) = match (pred.len(), gold.len()) {
        (0, 0) => (1.0, 1.0),
        (p, g) => (
            if p == 0 { 0.0 } else { m / p as f64 },
            if g == 0 { 0.0 } else { m / g as f64 },
        ),
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    scores.insert("record_precision".into(), precision);
    scores.insert("record_recall".into(), recall);
    scores.insert("record_f1".into(), f1);
    let mut all = pairs.len() == gold.len() && pred.len() == gold.len() && out.is_some();
    for f in &sc.fields {
        let right = pairs
            .iter()
            .filter(|(g, p)| field_eq(suite, f, p.get(f), g.get(f)))
            .count();
        all &= right == pairs.len();
        if !pairs.is_empty() {
            scores.insert(format!("field.{f}"), right as f64 / pairs.len() as f64);
        }
    }
    scores.insert("exact".into(), b(all));
}

fn call_scores(case: &Case, out: Option<&Value>, scores: &mut BTreeMap<String, f64>) {
    let gold_args = case.gold["arguments"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let name_ok = out.is_some_and(|o| o["name"] == case.gold["name"]);
    scores.insert("tool_name".into(), b(name_ok));
    let pred_args = match out.map(|o| &o["arguments"]) {
        Some(Value::Object(m)) if name_ok => m.clone(),
        _ => {
            scores.insert("arguments".into(), 0.0);
            scores.insert("argument_accuracy".into(), 0.0);
            return;
        }
    };
    let right = gold_args
        .iter()
        .filter(|(k, g)| {
            let Some(p) = pred_args.get(*k) else {
                return false;
            };
            match (case.keywords.get(*k), p.as_str()) {
                (Some(words), Some(s)) => {
                    let have = s.to_lowercase();
                    words.iter().all(|w| have.contains(&w.to_lowercase()))
                }
                (Some(_), None) => false,
                (None, _) => value_eq(p, g),
            }
        })
        .count();
    // Arguments beyond the gold ones are not held against the call: they passed the tool's
    // schema, and the request left them open (a search's `k`, a ticket's description).
    scores.insert("arguments".into(), b(right == gold_args.len()));
    let acc = if gold_args.is_empty() {
        1.0
    } else {
        right as f64 / gold_args.len() as f64
    };
    scores.insert("argument_accuracy".into(), acc);
}

/// A suite run's summary: each score's mean and count, macro F1 per `f1` field, and the
/// run-level measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Cases run.
    pub cases: usize,
    /// Cases with an output.
    pub answered: usize,
    /// Outputs that fit the schema.
    pub valid: usize,
    /// `valid / answered` (1 when nothing was answered: nothing broke the schema).
    pub schema_validity: f64,
    /// Each score: (mean, cases it applied to).
    pub scores: BTreeMap<String, (f64, usize)>,
    /// Macro F1 per `f1` field.
    pub macro_f1: BTreeMap<String, f64>,
    /// Mean model turns per case.
    pub steps_mean: f64,
    /// Runs stopped for looping.
    pub doom_loops: usize,
    /// Latency percentiles, ms.
    pub latency_p50_ms: f64,
    /// 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// Tokens generated per second of model time.
    pub tokens_per_s: f64,
    /// Tokens generated over the suite.
    pub completion_tokens: usize,
    /// Tokens prefilled over the suite.
    pub prompt_tokens: usize,
    /// How the runs ended: stop reason, count.
    pub stops: BTreeMap<String, usize>,
}

/// Summarizes `results`.
pub fn summarize(results: &[CaseResult]) -> Summary {
    let mut s = Summary {
        cases: results.len(),
        ..Summary::default()
    };
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut lat = Vec::new();
    let (mut steps, mut model_ms) = (0usize, 0.0);
    let mut labels: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in results {
        s.answered += usize::from(r.answered);
        s.valid += usize::from(r.valid == Some(true));
        for (k, v) in &r.scores {
            let e = sums.entry(k.clone()).or_default();
            e.0 += v;
            e.1 += 1;
        }
        for (f, pair) in &r.labels {
            labels.entry(f.clone()).or_default().push(pair.clone());
        }
        let o = &r.observation;
        lat.push(o.latency_ms);
        steps += o.steps;
        s.doom_loops += usize::from(o.doom_loop);
        model_ms += o.model_ms;
        s.completion_tokens += o.completion_tokens;
        s.prompt_tokens += o.prompt_tokens;
        *s.stops.entry(o.stop.clone()).or_default() += 1;
    }
    s.schema_validity = if s.answered == 0 {
        1.0
    } else {
        s.valid as f64 / s.answered as f64
    };
    s.scores = sums
        .into_iter()
        .map(|(k, (sum, n))| (k, (sum / n as f64, n)))
        .collect();
    s.macro_f1 = labels
        .iter()
        .map(|(f, pairs)| (f.clone(), stats::macro_f1(pairs)))
        .collect();
    if !results.is_empty() {
        s.steps_mean = steps as f64 / results.len() as f64;
    }
    s.latency_p50_ms = percentile(&lat, 50.0);
    s.latency_p99_ms = percentile(&lat, 99.0);
    if model_ms > 0.0 {
        s.tokens_per_s = s.completion_tokens as f64 / (model_ms / 1000.0);
    }
    s
}
