//! The report: one self-contained HTML page (inline CSS and SVG, no script, nothing fetched)
//! with a section per suite run: the summary beside the previous run of the same suite (what
//! improved, what regressed), a chart of the scores, the latency spread, and every case.
//! [`table`] prints the same summary as text.

mod html;
mod svg;

pub use html::render;

use std::collections::BTreeMap;

use crate::score::{CaseResult, Summary};
use crate::store::StoredRun;

/// One suite run in the report, with the run it is compared against.
#[derive(Debug, Clone)]
pub struct Section {
    /// The run.
    pub run: StoredRun,
    /// Its cases.
    pub cases: Vec<CaseResult>,
    /// The earlier run it is compared with, and its cases.
    pub previous: Option<(StoredRun, Vec<CaseResult>)>,
}

/// Which way a measure is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Better {
    /// Higher is better (accuracies, rates).
    Higher,
    /// Lower is better (latency, loops).
    Lower,
}

/// One line of the summary: name, value, whether it is a [0, 1] score, which way is better.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The measure.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Whether it is a share in [0, 1] (shown as a percentage and charted).
    pub unit_share: bool,
    /// Which way is better.
    pub better: Better,
    /// Cases it applied to (for scores).
    pub n: Option<usize>,
}

/// The summary as rows, in a fixed order: validity, scores, F1, then run measures.
pub fn rows(s: &Summary) -> Vec<Row> {
    let share = |name: &str, value: f64, n: Option<usize>| Row {
        name: name.to_string(),
        value,
        unit_share: true,
        better: Better::Higher,
        n,
    };
    let plain = |name: &str, value: f64, better: Better| Row {
        name: name.to_string(),
        value,
        unit_share: false,
        better,
        n: None,
    };
    let mut out = vec![
        share("schema_validity", s.schema_validity, Some(s.answered)),
        share(
            "answered",
            if s.cases == 0 {
                0.0
            } else {
                s.answered as f64 / s.cases as f64
            },
            Some(s.cases),
        ),
    ];
    for (k, (mean, n)) in &s.scores {
        out.push(share(k, *mean, Some(*n)));
    }
    for (k, f1) in &s.macro_f1 {
        out.push(share(&format!("macro_f1.{k}"), *f1, Some(s.cases)));
    }
    out.push(plain("steps_mean", s.steps_mean, Better::Lower));
    out.push(plain("doom_loops", s.doom_loops as f64, Better::Lower));
    out.push(plain("latency_p50_ms", s.latency_p50_ms, Better::Lower));
    out.push(plain("latency_p99_ms", s.latency_p99_ms, Better::Lower));
    out.push(plain("tokens_per_s", s.tokens_per_s, Better::Higher));
    out
}

/// How a value changed from the previous run: `+3.0 pts` or `-12%`, and whether that is an
/// improvement, a regression or neither.
pub fn change(row: &Row, before: f64) -> (String, Option<bool>) {
    let d = row.value - before;
    let (text, big) = if row.unit_share {
        (format!("{:+.1} pts", d * 100.0), d.abs() >= 0.005)
    } else if before.abs() > f64::EPSILON {
        let pct = d / before * 100.0;
        (format!("{pct:+.0}%"), pct.abs() >= 5.0)
    } else {
        (format!("{d:+.1}"), d.abs() > f64::EPSILON)
    };
    if !big {
        return (text, None);
    }
    let up = d > 0.0;
    (text, Some(up == (row.better == Better::Higher)))
}

/// The previous run's rows by name (empty without a previous run).
pub fn previous_rows(sec: &Section) -> BTreeMap<String, Row> {
    sec.previous
        .as_ref()
        .map(|(p, _)| {
            rows(&p.summary)
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect()
        })
        .unwrap_or_default()
}

/// A value as shown.
pub fn show(row: &Row) -> String {
    if row.unit_share {
        format!("{:.1}%", row.value * 100.0)
    } else if row.value >= 100.0 {
        format!("{:.0}", row.value)
    } else {
        format!("{:.2}", row.value)
    }
}

/// The summary of `sec` as a text table (measure, this run, previous, change).
pub fn table(sec: &Section) -> String {
    let before = previous_rows(sec);
    let mut out = format!(
        "suite {} (run {}, {} cases, model {}{})\n",
        sec.run.meta.suite,
        sec.run.id,
        sec.run.summary.cases,
        sec.run.meta.model,
        if sec.run.meta.synthetic {
            ", SYNTHETIC random weights: accuracy means nothing"
        } else {
            ""
        }
    );
    let prev_head = match &sec.previous {
        Some((p, _)) => format!("run {}", p.id),
        None => "previous".into(),
    };
    out.push_str(&format!(
        "{:<28} {:>10} {:>10} {:>10}\n",
        "measure", "value", prev_head, "change"
    ));
    for r in rows(&sec.run.summary) {
        let (prev, ch) = match before.get(&r.name) {
            Some(b) => {
                let (t, good) = change(&r, b.value);
                let mark = match good {
                    Some(true) => " better",
                    Some(false) => " WORSE",
                    None => "",
                };
                (show(b), format!("{t}{mark}"))
            }
            None => ("-".into(), String::new()),
        };
        let name = match r.n {
            Some(n) => format!("{} (n={n})", r.name),
            None => r.name.clone(),
        };
        out.push_str(&format!(
            "{name:<28} {:>10} {prev:>10} {ch:>10}\n",
            show(&r)
        ));
    }
    let stops: Vec<String> = sec
        .run
        .summary
        .stops
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    out.push_str(&format!("stops: {}\n", stops.join(", ")));
    out
}

/// Each case's mean score (over the scores it has), for comparing cases across runs.
pub fn case_score(c: &CaseResult) -> Option<f64> {
    (!c.scores.is_empty()).then(|| c.scores.values().sum::<f64>() / c.scores.len() as f64)
}

/// A case whose mean score changed: its id, the score before and after.
pub type CaseChange = (String, f64, f64);

/// Cases whose mean score went down and up from `previous` to `current`.
pub fn case_changes(
    current: &[CaseResult],
    previous: &[CaseResult],
) -> (Vec<CaseChange>, Vec<CaseChange>) {
    let before: BTreeMap<&str, f64> = previous
        .iter()
        .filter_map(|c| case_score(c).map(|s| (c.case_id.as_str(), s)))
        .collect();
    let (mut worse, mut better) = (Vec::new(), Vec::new());
    for c in current {
        let (Some(now), Some(&was)) = (case_score(c), before.get(c.case_id.as_str())) else {
            continue;
        };
        if now + 1e-9 < was {
            worse.push((c.case_id.clone(), was, now));
        } else if now > was + 1e-9 {
            better.push((c.case_id.clone(), was, now));
        }
    }
    (worse, better)
}
