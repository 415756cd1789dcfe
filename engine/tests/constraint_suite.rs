//! The official JSON-Schema-Test-Suite (draft 2020-12, `../shared/json-schema-test-suite`)
//! through the constraint engine.
//!
//! Every schema is either refused up front with a message, or:
//! - the checker walks each test instance (compact JSON) through the matcher, and its verdict
//!   is compared with the suite's valid/invalid label;
//! - the tiny random-weight model generates under the schema (random weights walk paths no
//!   trained model would), and every completed output must validate with the `jsonschema`
//!   crate.
//!
//! Results are compared with `tests/fixtures/constraint_suite_baseline.json`: fewer supported
//! schemas or more wrong acceptances than the baseline fail the test; an improvement passes
//! (record it with `LFM_UPDATE_BASELINE=1`). `LFM_SUITE_SEEDS=N` generates with N seeds per
//! schema and temperature (CI uses 1).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use lfm_engine::constraint::schema::Adaptations;
use lfm_engine::constraint::ConstraintSpec;
use serde_json::{json, Value};

#[test]
fn official_suite_is_refused_clearly_or_enforced_soundly() {
    let Some(dir) = common::suite_dir() else {
        // In CI the suite must be there unless .ci/run found it missing and said so.
        assert!(
            std::env::var("CI").is_err() || std::env::var("LFM_SKIP_SCHEMA_SUITE").is_ok(),
            "the JSON-Schema-Test-Suite must be beside the repo in CI (../shared/json-schema-test-suite or LFM_JSON_SCHEMA_SUITE)"
        );
        eprintln!("SKIPPED: the JSON-Schema-Test-Suite was not found (../shared/json-schema-test-suite or LFM_JSON_SCHEMA_SUITE)");
        return;
    };
    let (m, c) = common::tiny();
    let seeds: u64 = std::env::var("LFM_SUITE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();

    let (mut schemas, mut supported) = (0, 0);
    // Schemas supported with each combination of the coverage steps, measured by compiling
    // with the others switched off: [none, disjoint oneOf only, unknown formats only, both].
    let steps = [
        Adaptations::none(),
        Adaptations {
            disjoint_one_of: true,
            unknown_formats: false,
        },
        Adaptations {
            disjoint_one_of: false,
            unknown_formats: true,
        },
        Adaptations::default(),
    ];
    let mut by_steps = [0usize; 4];
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    let (mut valid_total, mut valid_accepted, mut invalid_total, mut invalid_rejected) =
        (0, 0, 0, 0);
    let mut wrong_accepts = Vec::new();
    let mut over_strict = Vec::new();
    let (mut generated, mut completed, mut completed_valid, mut format_strict) = (0, 0, 0, 0);
    let mut bad_outputs = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let groups: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let fname = file.file_name().unwrap().to_string_lossy().to_string();
        for g in groups {
            schemas += 1;
            let schema = &g["schema"];
            let what = format!("{fname}: {}", g["description"].as_str().unwrap_or(""));
            let spec = ConstraintSpec::JsonSchema(schema.clone());
            for (n, &st) in by_steps.iter_mut().zip(&steps) {
                *n += usize::from(c.compile_with(&spec, st).is_ok());
            }
            match c.compile(&spec) {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.len() > "unsupported JSON schema: ".len(),
                        "{what}: empty refusal"
                    );
                    let key: String = msg.chars().take(70).collect();
                    *refusals.entry(key).or_default() += 1;
                    continue;
                }
                Ok(_) => supported += 1,
            }
            for t in g["tests"].as_array().unwrap() {
                let accepted = common::check(c, m, schema, &t["data"]).accepted();
                if t["valid"] == true {
                    valid_total += 1;
                    valid_accepted += usize::from(accepted);
                    if !accepted {
                        over_strict.push(format!("{what} / {}: {}", t["description"], t["data"]));
                    }
                } else {
                    invalid_total += 1;
                    invalid_rejected += usize::from(!accepted);
                    if accepted {
                        wrong_accepts.push(format!("{what} / {}: {}", t["description"], t["data"]));
                    }
                }
            }
            let (validator, strict) = common::validators(schema);
            for seed in 0..seeds {
                for temperature in [0.7f32, 1.5] {
                    generated += 1;
                    if let Some(text) = common::generate_json(c, m, schema, seed, temperature, 96) {
                        completed += 1;
                        match common::parse_unique(&text) {
                            Ok(v) if validator.is_valid(&v) => {
                                completed_valid += 1;
                                format_strict += usize::from(!strict.is_valid(&v));
                            }
                            _ => bad_outputs.push(format!("{what}: {text}")),
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "suite: {schemas} schemas, {supported} supported, {} refused up front",
        schemas - supported
    );
    let [none, one_of, formats, both] = by_steps;
    eprintln!(
        "  supported by llguidance alone: {none} ({:.1}%); + disjoint oneOf as anyOf: {one_of} (+{}); + unknown formats as plain strings: {formats} (+{}); both: {both} (+{}, {:.1}%)",
        100.0 * none as f64 / schemas as f64,
        one_of - none,
        formats - none,
        both - none,
        100.0 * both as f64 / schemas as f64,
    );
    assert_eq!(both, supported);
    for (reason, n) in &refusals {
        eprintln!("  refused x{n}: {reason}");
    }
    eprintln!(
        "checker vs suite labels: valid accepted {valid_accepted}/{valid_total}, invalid rejected {invalid_rejected}/{invalid_total}"
    );
    for o in &over_strict {
        eprintln!("  valid but refused (over-strict): {o}");
    }
    for w in &wrong_accepts {
        eprintln!("  accepted although invalid: {w}");
    }
    eprintln!(
        "generation: {generated} runs, {completed} completed, {completed_valid} of them valid ({format_strict} would fail a strict format check)"
    );
    for b in &bad_outputs {
        eprintln!("  INVALID OUTPUT: {b}");
    }
    assert!(
        bad_outputs.is_empty(),
        "{} completed outputs do not validate",
        bad_outputs.len()
    );
    assert!(completed > 0);

    let now = json!({
        "schemas": schemas, "supported": supported,
        "valid_accepted": valid_accepted, "valid_total": valid_total,
        "invalid_rejected": invalid_rejected, "invalid_total": invalid_total,
        "wrong_accepts": wrong_accepts.len(),
    });
    let baseline_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/constraint_suite_baseline.json");
    if std::env::var("LFM_UPDATE_BASELINE").is_ok() {
        std::fs::write(
            &baseline_path,
            serde_json::to_string_pretty(&now).unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    let base: Value =
        serde_json::from_str(&std::fs::read_to_string(&baseline_path).unwrap()).unwrap();
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert!(
        n(&now, "supported") >= n(&base, "supported"),
        "fewer supported schemas than the baseline: {now} vs {base}"
    );
    assert!(
        n(&now, "valid_accepted") >= n(&base, "valid_accepted"),
        "more valid instances rejected: {now} vs {base}"
    );
    assert!(
        n(&now, "wrong_accepts") <= n(&base, "wrong_accepts"),
        "more invalid instances accepted: {now} vs {base}"
    );
}
