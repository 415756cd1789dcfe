//! The task commands end to end on a synthetic model: `demo` runs the three tasks and every
//! output validates; `triage` survives a kill (a rerun skips finished tickets, none is lost
//! or written twice); bad input is an error that names the file, line, key or flag.

mod common;

use common::{bin, repo, text};

use std::collections::HashMap;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn lfm(args: &[&str]) -> Output {
    bin().args(args).output().expect("run lfm-agent")
}

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn validator(path: &Path) -> jsonschema::Validator {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&v).unwrap()
}

#[test]
fn demo_runs_every_task_and_every_output_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let examples = repo().join("examples");
    let o = lfm(&[
        "demo",
        "--examples",
        examples.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tickets",
        "3",
    ]);
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    assert!(all.contains("SYNTHETIC"), "{all}");
    assert!(all.contains("== triage") && all.contains("== ask") && all.contains("== extract"));

    let triage = validator(&repo().join("prompts/tasks/triage/schema.json"));
    let triaged = lines(&out.join("triaged.jsonl"));
    for r in &triaged {
        assert!(triage.is_valid(&r["record"]), "{r}");
        assert!(r["ticket"].is_string() && r["run"].is_i64(), "{r}");
    }
    let event = validator(&examples.join("event.schema.json"));
    for r in lines(&out.join("events.jsonl")) {
        if r.get("done").is_none() {
            assert!(event.is_valid(&r["record"]), "{r}");
        }
    }
    // Every run is traced with a stop reason, within its step limit (4 in the demo).
    let traces = out.join("traces.sqlite");
    let o = lfm(&[
        "runs",
        "list",
        "--traces",
        traces.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let runs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    // Three tickets, one question, at least one log window.
    assert!(runs.len() >= 5, "{runs:?}");
    for r in runs {
        assert!(r["stop"].is_string(), "{r}");
        let id = r["id"].to_string();
        let o = lfm(&[
            "runs",
            "show",
            &id,
            "--traces",
            traces.to_str().unwrap(),
            "--json",
        ]);
        let d: Value = serde_json::from_slice(&o.stdout).unwrap();
        let turns = d["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == "generate")
            .count();
        assert!(turns <= 4, "{d}");
        assert_ne!(r["stop"], "backend_error", "{d}");
    }
    println!("{all}");
}

#[test]
fn triage_resumes_after_a_kill_without_losing_or_repeating_a_ticket() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    let o = lfm(&[
        "synth",
        "--preset",
        "tiny",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = tmp.path().join("triaged.jsonl");
    let tickets = repo().join("examples/tickets.jsonl");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "triage",
            tickets.to_str().unwrap(),
            "--docs",
            repo().join("examples/docs").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--index",
            tmp.path().join("ix").to_str().unwrap(),
            "--traces",
            tmp.path().join("t.sqlite").to_str().unwrap(),
            "--think-budget",
            "16",
            "--max-steps",
            "3",
            "--max-turn-tokens",
            "256",
            "--temperature",
            "0.8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // Kill it once the first ticket is written.
    let mut child = bin()
        .args(args(&[]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut killed = false;
    while t.elapsed() < Duration::from_secs(300) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if !lines(&out).is_empty() {
            child.kill().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    let before = lines(&out).len();
    let o = bin().args(args(&[])).output().unwrap();
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    let mut seen = HashMap::new();
    for r in lines(&out) {
        *seen
            .entry(r["ticket"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "a ticket was written twice: {seen:?}"
    );
    // Every ticket is finished or reported as failed (to retry); none vanished.
    let failed = all.matches("  failed ").count();
    assert_eq!(seen.len() + failed, 6, "{all}");
    if killed {
        assert!(all.contains(&format!("({before} already done")), "{all}");
    }
    // A third run has nothing left but the failures.
    let o = bin().args(args(&[])).output().unwrap();
    assert!(
        text(&o).contains(&format!("({} already done", seen.len())),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_input_names_the_file_the_line_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    assert!(lfm(&[
        "synth",
        "--preset",
        "tiny",
        "--out",
        model.to_str().unwrap()
    ])
    .status
    .success());
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": \"A-1\"}\nnot json\n").unwrap();
    let traces = tmp.path().join("t.sqlite");
    let o = lfm(&[
        "triage",
        bad.to_str().unwrap(),
        "--out",
        tmp.path().join("o.jsonl").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--traces",
        traces.to_str().unwrap(),
        "--index",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("{}:2: not JSON", bad.display())),
        "{}",
        text(&o)
    );

    let o = lfm(&[
        "triage",
        bad.to_str().unwrap(),
        "--out",
        "x.jsonl",
        "--config",
        tmp.path().join("nope.toml").to_str().unwrap(),
    ]);
    assert!(text(&o).contains("nope.toml: no such file"), "{}", text(&o));

    let cfg = tmp.path().join("lfm-agent.toml");
    std::fs::write(&cfg, "[limits]\nmax_stpes = 3\n").unwrap();
    let o = lfm(&["ask", "q", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("lfm-agent.toml") && text(&o).contains("max_stpes"),
        "{}",
        text(&o)
    );

    let o = lfm(&[
        "extract",
        "--schema",
        "missing.json",
        "x.log",
        "--out",
        "o.jsonl",
        "--model",
        model.to_str().unwrap(),
        "--traces",
        traces.to_str().unwrap(),
        "--index",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--schema missing.json"), "{}", text(&o));
}

#[test]
fn a_schema_the_engine_cannot_enforce_stops_the_pipeline_before_any_token() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    assert!(lfm(&[
        "synth",
        "--preset",
        "tiny",
        "--out",
        model.to_str().unwrap()
    ])
    .status
    .success());
    // Valid JSON Schema (draft 2020-12), but llguidance does not implement `$dynamicAnchor`.
    let schema = tmp.path().join("s.json");
    std::fs::write(
        &schema,
        r##"{"$dynamicAnchor": "meta", "type": "object", "properties": {"a": {"$dynamicRef": "#meta"}}}"##,
    )
    .unwrap();
    let out = tmp.path().join("o.jsonl");
    let traces = tmp.path().join("t.sqlite");
    let tickets = repo().join("examples/tickets.jsonl");
    // `triage` of the example tickets into `out`, over `model`, and `extra`.
    let triage = |extra: &[&str]| {
        let base = [
            "triage",
            tickets.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--traces",
            traces.to_str().unwrap(),
        ];
        lfm(&base.iter().chain(extra).copied().collect::<Vec<_>>())
    };
    let docs = repo().join("examples/docs");
    let o = triage(&[
        "--schema",
        schema.to_str().unwrap(),
        "--docs",
        docs.to_str().unwrap(),
        "--index",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let all = text(&o);
    assert!(
        all.contains("the triage schema: the engine cannot enforce"),
        "{all}"
    );
    assert!(lines(&out).is_empty());

    // Without docs, a task whose tools need the index says how to give it one.
    let o = triage(&["--index", tmp.path().join("no-index").to_str().unwrap()]);
    assert!(
        text(&o).contains("needs a docs index: pass --docs DIR"),
        "{}",
        text(&o)
    );

    // No sequence at a time is refused by name.
    let o = triage(&[
        "--docs",
        docs.to_str().unwrap(),
        "--index",
        tmp.path().join("ix").to_str().unwrap(),
        "--parallel",
        "0",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--parallel 0: need at least one sequence"),
        "{}",
        text(&o)
    );
}

#[test]
fn triage_in_parallel_writes_what_one_at_a_time_writes() {
    // Q8_0 weights: batched sequences get the bits they get alone, so greedy records match.
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny-q8_0.gguf");
    let o = lfm(&[
        "synth",
        "--preset",
        "tiny",
        "--format",
        "gguf",
        "--quant",
        "q8_0",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let tickets = repo().join("examples/tickets.jsonl");
    let run = |parallel: &str, extra: &[&str]| {
        let name = format!("{parallel}{}", extra.len());
        let out = tmp.path().join(format!("triaged-{name}.jsonl"));
        let o = lfm(&[
            "triage",
            tickets.to_str().unwrap(),
            "--docs",
            repo().join("examples/docs").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--index",
            tmp.path().join("ix").to_str().unwrap(),
            "--traces",
            tmp.path()
                .join(format!("t-{name}.sqlite"))
                .to_str()
                .unwrap(),
            "--think-budget",
            "16",
            "--max-steps",
            "3",
            "--max-turn-tokens",
            "200",
            "--temperature",
            "0",
            "--parallel",
            parallel,
        ]
        .iter()
        .chain(extra)
        .copied()
        .collect::<Vec<_>>());
        assert!(o.status.success(), "{}", text(&o));
        let mut by_ticket: Vec<(String, Value)> = lines(&out)
            .into_iter()
            .map(|r| {
                (
                    r["ticket"].as_str().unwrap().to_string(),
                    r["record"].clone(),
                )
            })
            .collect();
        by_ticket.sort_by(|a, b| a.0.cmp(&b.0));
        // Tokens prefilled over all runs, from the traces.
        let runs = lfm(&[
            "runs",
            "list",
            "--limit",
            "100",
            "--json",
            "--traces",
            tmp.path()
                .join(format!("t-{name}.sqlite"))
                .to_str()
                .unwrap(),
        ]);
        let runs: Value = serde_json::from_slice(&runs.stdout).unwrap();
        let prefilled: u64 = runs
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["prompt_tokens"].as_u64().unwrap())
            .sum();
        (by_ticket, text(&o), prefilled)
    };
    let (one, _, prefilled_one) = run("1", &[]);
    let (four, log, prefilled_four) = run("4", &[]);
    assert!(!one.is_empty(), "{log}");
    assert_eq!(one, four, "{log}");
    // A budget given with one sequence at a time holds too (its turns go through a batcher
    // of one), and changes no record.
    let (budgeted, budget_log, _) = run("1", &["--kv-budget", "100000"]);
    assert_eq!(one, budgeted, "{budget_log}");
    assert!(
        budget_log.contains("KV budget 100000 tokens"),
        "{budget_log}"
    );
    // The four slots fork one prefilled system turn: together they prefill no more than one
    // slot working through the tickets alone (which reuses its own).
    assert!(
        prefilled_four <= prefilled_one,
        "{prefilled_four} tokens prefilled in parallel, {prefilled_one} one at a time"
    );
    let per_pass: f64 = log
        .split("shared forward passes, ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no batch stats: {log}"));
    assert!(per_pass > 1.5, "the tickets shared their passes: {log}");
}
