//! `lfm-agent eval` end to end on the synthetic model: `eval triage --limit 20` (the issue's
//! acceptance line) runs, every output it got validates against the triage schema, the
//! results land in SQLite, the other suites run, and the report is written; bad suite names
//! and flags are errors that name them.

mod common;

use common::{repo, text};

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `lfm-agent eval ARGS` from the repository root with its files in `tmp`.
fn eval(tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
        .current_dir(repo())
        .arg("eval")
        .args(args)
        .args(["--results", tmp.join("r.sqlite").to_str().unwrap()])
        .args(["--work", tmp.join("work").to_str().unwrap()])
        .args(["--traces", tmp.join("t.sqlite").to_str().unwrap()])
        .output()
        .unwrap()
}

fn stored(tmp: &Path, run: i64) -> Vec<Value> {
    let conn = rusqlite::Connection::open(tmp.join("r.sqlite")).unwrap();
    let mut st = conn
        .prepare("SELECT result FROM eval_cases WHERE run_id = ?1 ORDER BY rowid")
        .unwrap();
    let rows = st.query_map([run], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|r| serde_json::from_str(&r.unwrap()).unwrap())
        .collect()
}

#[test]
fn eval_triage_limit_20_runs_and_every_output_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let o = eval(tmp.path(), &["triage", "--limit", "20"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("suite triage (run 1, 20 cases") && t.contains("SYNTHETIC"),
        "{t}"
    );
    assert!(
        t.contains("schema_validity") && t.contains("macro_f1.category"),
        "{t}"
    );
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("prompts/tasks/triage/schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let cases = stored(tmp.path(), 1);
    assert_eq!(cases.len(), 20);
    let answered: Vec<&Value> = cases
        .iter()
        .filter_map(|c| {
            c["observation"]["output"]
                .as_object()
                .map(|_| &c["observation"]["output"])
        })
        .collect();
    // The constraint makes every answer valid; most runs answer within their limits.
    assert!(
        answered.len() >= 15,
        "{} of 20 answered:\n{t}",
        answered.len()
    );
    for a in &answered {
        assert!(v.is_valid(a), "invalid output {a}");
    }
    assert!(cases
        .iter()
        .all(|c| c["valid"] == Value::Bool(true) || c["valid"].is_null()));
    assert!(t.contains("100.0%"), "{t}");
    // Each case's trace is in the trace store.
    for c in &cases {
        assert!(
            c["observation"]["runs"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{c}"
        );
    }
}

#[test]
fn the_other_suites_run_and_the_report_compares_runs() {
    let tmp = tempfile::tempdir().unwrap();
    for (suite, n) in [
        ("tool-calls", "6"),
        ("extract", "4"),
        ("runbook-qa", "3"),
        ("tool-calls", "6"),
    ] {
        let o = eval(tmp.path(), &[suite, "--limit", n]);
        assert!(o.status.success(), "{suite}: {}", text(&o));
    }
    // Tool calls are constrained to a call of one of the suite's tools: all valid.
    for c in stored(tmp.path(), 1) {
        assert_eq!(c["valid"], Value::Bool(true), "{c}");
        assert!(c["scores"]["tool_name"].is_number(), "{c}");
    }
    // Extract outputs are lists of records under the suite's event schema.
    for c in stored(tmp.path(), 2) {
        assert_ne!(c["valid"], Value::Bool(false), "{c}");
    }
    let out = tmp.path().join("report.html");
    let o = Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
        .args(["eval", "report", "--print", "--out", out.to_str().unwrap()])
        .args(["--results", tmp.path().join("r.sqlite").to_str().unwrap()])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("wrote") && t.contains("3 suite runs"), "{t}");
    // The second tool-calls run (4) is compared with the first (1).
    assert!(
        t.contains("suite tool-calls (run 4") && t.contains("run 1"),
        "{t}"
    );
    let html = std::fs::read_to_string(&out).unwrap();
    for want in [
        "tool-calls",
        "extract",
        "runbook-qa",
        "Compared with run 1",
        "<svg",
        "Synthetic model.",
    ] {
        assert!(html.contains(want), "report lacks {want}");
    }
}

#[test]
fn bad_suites_and_flags_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let o = eval(tmp.path(), &["nosuch"]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("nosuch") && t.contains("tool-calls, triage"),
        "{t}"
    );
    let o = eval(tmp.path(), &["triage", "--limit", "0"]);
    assert!(
        !o.status.success() && text(&o).contains("--limit"),
        "{}",
        text(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
        .args([
            "eval",
            "report",
            "--results",
            tmp.path().join("none.sqlite").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o).contains("none.sqlite"),
        "{}",
        text(&o)
    );
}
