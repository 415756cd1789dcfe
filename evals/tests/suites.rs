//! The bundled suites load and their gold scores perfectly against itself; broken suites are
//! refused naming the file, line and case; the scorer's measures on hand-made outputs.

use std::path::{Path, PathBuf};

use lfm_evals::score::{score_case, summarize, Observation};
use lfm_evals::{Error, Suite, TaskKind};
use serde_json::{json, Value};

fn suites() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("suites")
}

fn load(name: &str) -> Suite {
    Suite::load(&suites().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn answered(output: Value) -> Observation {
    Observation {
        output: Some(output),
        stop: "answered".into(),
        steps: 1,
        ..Observation::default()
    }
}

#[test]
fn bundled_suites_load_with_the_promised_sizes() {
    let names = Suite::list(&suites()).unwrap();
    assert_eq!(names, ["extract", "runbook-qa", "tool-calls", "triage"]);
    for (name, task, at_least) in [
        ("triage", TaskKind::Triage, 100),
        ("runbook-qa", TaskKind::Ask, 40),
        ("extract", TaskKind::Extract, 30),
        ("tool-calls", TaskKind::ToolCalls, 50),
    ] {
        let s = load(name);
        assert_eq!(s.task, task);
        assert!(s.cases.len() >= at_least, "{name}: {} cases", s.cases.len());
    }
    let qa = load("runbook-qa");
    assert!(qa
        .cases
        .iter()
        .all(|c| !c.support.is_empty() && !c.key_points.is_empty()));
    assert!(
        load("triage")
            .cases
            .iter()
            .filter(|c| !c.support.is_empty())
            .count()
            >= 90
    );
}

/// Each case's gold, given as the output, scores 1 on every measure: the scorer and the data
/// agree (a gold label the scorer cannot match, or a key that pairs the wrong records, fails).
#[test]
fn gold_outputs_score_perfectly() {
    for name in ["triage", "extract", "tool-calls", "runbook-qa"] {
        let s = load(name);
        let mut results = Vec::new();
        for c in &s.cases {
            let output = match s.task {
                TaskKind::Ask => json!({"answer": c.key_points.join(". "), "citations": []}),
                _ => c.gold.clone(),
            };
            let r = score_case(&s, c, &answered(output));
            for (k, v) in &r.scores {
                assert_eq!(*v, 1.0, "{name} {}: {k} = {v}", c.id);
            }
            results.push(r);
        }
        let sum = summarize(&results);
        for (f, v) in &sum.macro_f1 {
            assert_eq!(*v, 1.0, "{name}: macro F1 of {f}");
        }
        if matches!(s.task, TaskKind::Extract | TaskKind::ToolCalls) {
            assert_eq!(sum.schema_validity, 1.0, "{name}: the gold fits the schema");
        }
    }
}

#[test]
fn triage_scores_each_field_and_the_citation() {
    let s = load("triage");
    let c = &s.cases[0];
    let support = c.support[0].path.clone();
    let mut wrong = c.gold.clone();
    let team = if c.gold["team"] == "sre" {
        "dba"
    } else {
        "sre"
    };
    wrong["team"] = json!(team);
    // Case and spaces do not matter in a label.
    wrong["category"] = json!(format!(
        " {} ",
        c.gold["category"].as_str().unwrap().to_uppercase()
    ));
    let mut obs = answered(wrong);
    obs.cited = vec![
        lfm_evals::score::Cited {
            id: "x#1".into(),
            path: Some(support),
            lines: Some((1, 3)),
        },
        lfm_evals::score::Cited {
            id: "y#1".into(),
            path: None,
            lines: None,
        },
    ];
    let r = score_case(&s, c, &obs);
    assert_eq!(r.scores["field.category"], 1.0);
    assert_eq!(r.scores["field.priority"], 1.0);
    assert_eq!(r.scores["field.team"], 0.0);
    assert_eq!(r.scores["exact"], 0.0);
    assert_eq!(r.scores["citation_precision"], 0.5);
    // The record misses the schema's other required fields.
    assert_eq!(r.valid, Some(false));
    let none = score_case(&s, c, &Observation::default());
    assert_eq!((none.answered, none.valid), (false, None));
    assert_eq!(none.scores["exact"], 0.0);
    assert_eq!(none.labels["team"].0, "(none)");
}

#[test]
fn extract_pairs_records_on_the_key_and_scores_text_loosely() {
    let s = load("extract");
    let c = s
        .cases
        .iter()
        .find(|c| c.gold.as_array().is_some_and(|g| g.len() >= 3))
        .unwrap();
    let gold = c.gold.as_array().unwrap();
    let mut pred: Vec<Value> = gold[1..].to_vec();
    pred.reverse();
    // A reworded message still matches when most tokens agree; a wrong code does not.
    let msg = pred[0]["message"].as_str().unwrap().to_string();
    pred[0]["message"] = json!(format!("{msg} (x)"));
    pred[0]["error_code"] = json!("NOPE-1");
    let r = score_case(&s, c, &answered(Value::Array(pred.clone())));
    let n = gold.len() as f64;
    assert!((r.scores["record_recall"] - (n - 1.0) / n).abs() < 1e-9);
    assert_eq!(r.scores["record_precision"], 1.0);
    assert_eq!(r.scores["field.message"], 1.0);
    assert!((r.scores["field.error_code"] - (n - 2.0) / (n - 1.0)).abs() < 1e-9);
    assert_eq!(r.scores["exact"], 0.0);
    let empty = s
        .cases
        .iter()
        .find(|c| c.gold.as_array().is_some_and(Vec::is_empty))
        .unwrap();
    let r = score_case(&s, empty, &answered(json!([])));
    assert_eq!((r.scores["record_f1"], r.scores["exact"]), (1.0, 1.0));
    let r = score_case(&s, empty, &answered(json!([gold[0]])));
    assert_eq!(
        (r.scores["record_precision"], r.scores["exact"]),
        (0.0, 0.0)
    );
}

#[test]
fn tool_calls_check_the_name_keywords_and_exact_arguments() {
    let s = load("tool-calls");
    let c = s
        .cases
        .iter()
        .find(|c| !c.keywords.is_empty() && c.gold["arguments"].as_object().unwrap().len() >= 2)
        .unwrap();
    let (kw_arg, words) = c.keywords.iter().next().unwrap();
    let mut args = c.gold["arguments"].clone();
    args[kw_arg] = json!(format!("PLEASE {} now", words.join(" ").to_uppercase()));
    args["some_extra"] = json!(1);
    let r = score_case(
        &s,
        c,
        &answered(json!({"name": c.gold["name"], "arguments": args.clone()})),
    );
    assert_eq!((r.scores["tool_name"], r.scores["arguments"]), (1.0, 1.0));
    // An extra argument the tool does not take breaks the schema, not the accuracy.
    assert_eq!(r.valid, Some(false));
    args[kw_arg] = json!("something else");
    let r = score_case(
        &s,
        c,
        &answered(json!({"name": c.gold["name"], "arguments": args})),
    );
    assert_eq!(r.scores["arguments"], 0.0);
    assert!(r.scores["argument_accuracy"] < 1.0 && r.scores["argument_accuracy"] > 0.0);
    let r = score_case(
        &s,
        c,
        &answered(json!({"name": "nope", "arguments": c.gold["arguments"]})),
    );
    assert_eq!(
        (
            r.scores["tool_name"],
            r.scores["argument_accuracy"],
            r.valid
        ),
        (0.0, 0.0, Some(false))
    );
}

fn write_suite(dir: &Path, toml: &str, cases: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("suite.toml"), toml).unwrap();
    std::fs::write(dir.join("cases.jsonl"), cases).unwrap();
}

fn refused(toml: &str, cases: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    write_suite(&dir, toml, cases);
    match Suite::load(&dir) {
        Ok(_) => panic!("loaded: {toml}\n{cases}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_suites_are_refused_naming_the_file_line_and_case() {
    let triage = "task = \"triage\"\n[scoring]\nfields = [\"priority\"]\n";
    let ok = "{\"id\": \"a\", \"input\": {\"subject\": \"s\"}, \"gold\": {\"priority\": \"P1\"}}\n";
    let e = refused(
        triage,
        &format!("{ok}{{\"id\": \"b\", \"input\": {{}}, \"gold\": {{\"priority\": \"P9\"}}}}\n"),
    );
    assert!(
        e.contains("cases.jsonl:2") && e.contains("case b") && e.contains("gold.priority"),
        "{e}"
    );
    let e = refused(triage, &format!("{ok}{ok}"));
    assert!(e.contains("cases.jsonl:2") && e.contains("repeated"), "{e}");
    let e = refused(
        triage,
        "{\"id\": \"a\", \"input\": {}, \"support\": [{\"path\": \"no/such.md\"}]}\n",
    );
    assert!(
        e.contains("cases.jsonl:1") && e.contains("no/such.md"),
        "{e}"
    );
    let e = refused(
        triage,
        "{\"id\": \"a\", \"input\": {}, \"gold\": {\"colour\": \"red\"}}\n",
    );
    assert!(e.contains("gold.colour is not a property"), "{e}");
    let e = refused("task = \"triage\"\n[scoring]\nf1 = [\"team\"]\n", ok);
    assert!(
        e.contains("suite.toml") && e.contains("scoring.fields"),
        "{e}"
    );
    let e = refused("task = \"summarize\"\n", ok);
    assert!(
        e.contains("suite.toml") && e.contains("unknown variant"),
        "{e}"
    );
    let e = refused(
        "task = \"extract\"\n[scoring]\nfields = [\"t\"]\nkey = [\"t\"]\n",
        "{\"id\": \"a\", \"input\": {\"text\": \"x\"}, \"gold\": []}\n",
    );
    assert!(e.contains("needs the schema of one record"), "{e}");
    let e = refused(
        "task = \"ask\"\n",
        "{\"id\": \"a\", \"input\": {\"q\": 1}}\n",
    );
    assert!(e.contains("input.question must be a string"), "{e}");
    let e = refused(triage, "{\"id\": \"a\", \"input\": {}\n");
    assert!(e.contains("cases.jsonl:1"), "{e}");
    let e = refused(triage, "\n");
    assert!(e.contains("no cases"), "{e}");
    let e = refused("task = \"tool-calls\"\n", ok);
    assert!(e.contains("tools file"), "{e}");
}

#[test]
fn a_missing_suite_lists_the_bundled_ones() {
    let e = Suite::locate("nosuch", &suites()).unwrap_err();
    assert!(matches!(e, Error::BadSuite { .. }));
    let e = e.to_string();
    assert!(
        e.contains("nosuch") && e.contains("extract, runbook-qa, tool-calls, triage"),
        "{e}"
    );
    assert_eq!(
        Suite::locate("triage", &suites()).unwrap(),
        suites().join("triage")
    );
}
