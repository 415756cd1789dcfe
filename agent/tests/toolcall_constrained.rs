//! Tool calls decoded under the call-list constraint are valid by construction: a
//! random-weight model (a good fuzzer: it walks paths no sensible model would) generates
//! under the schema built from the real built-in tools' specs, and every completed output
//! parses as calls whose arguments the registry accepts.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lfm_agent::toolcall::{call_list_schema, parse_calls};
use lfm_retrieval::{EstimateCounter, IndexOptions, Indexer, Retriever};
use lfm_tools::builtin::{CurrentTime, ReadDoc, SearchDocs, SqlQuery};
use lfm_tools::Registry;

fn lfm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
        .args(args)
        .output()
        .expect("run lfm-agent")
}

fn registry(tmp: &Path) -> Registry {
    let docs = tmp.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.md"), "# A\n\ntext\n").unwrap();
    let ix = tmp.join("ix");
    let mut w = Indexer::open(&ix, IndexOptions::default(), Arc::new(EstimateCounter)).unwrap();
    w.update(&[docs], &|_| {}).unwrap();
    w.finish().unwrap();
    let r = Arc::new(Retriever::open(&ix).unwrap());
    let db = tmp.join("t.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (a INTEGER);")
        .unwrap();
    let mut reg = Registry::new();
    reg.register(Arc::new(SearchDocs::new(r.clone()).unwrap()))
        .unwrap();
    reg.register(Arc::new(ReadDoc::new(r).unwrap())).unwrap();
    reg.register(Arc::new(
        SqlQuery::new(&db, 10, Duration::from_secs(1)).unwrap(),
    ))
    .unwrap();
    reg.register(Arc::new(CurrentTime::new().unwrap())).unwrap();
    reg
}

#[test]
fn constrained_tool_calls_always_parse_and_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path());
    let schema = call_list_schema(&reg.specs());
    let schema_path = tmp.path().join("calls.schema.json");
    std::fs::write(&schema_path, schema.to_string()).unwrap();
    let model = tmp.path().join("tiny");
    let o = lfm(&[
        "synth",
        "--preset",
        "tiny",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut complete = 0;
    let mut calls_seen = std::collections::BTreeSet::new();
    for seed in 1..=4 {
        for temp in ["0.7", "1.5"] {
            let o = lfm(&[
                "generate",
                "--model",
                model.to_str().unwrap(),
                "--prompt",
                "Find the VPN runbook",
                "--json-schema",
                schema_path.to_str().unwrap(),
                "--max-tokens",
                "300",
                "--seed",
                &seed.to_string(),
                "--temperature",
                temp,
                "--json",
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            if v["complete"] != true {
                continue;
            }
            complete += 1;
            let text = v["text"].as_str().unwrap();
            let calls = parse_calls(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!calls.is_empty() && calls.len() <= lfm_agent::toolcall::MAX_CALLS);
            for c in calls {
                let args = serde_json::Value::Object(c.arguments.clone());
                reg.validate(&c.name, &args)
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
                calls_seen.insert(c.name);
            }
        }
    }
    println!("{complete}/8 completed; tools called: {calls_seen:?}");
    assert!(
        complete >= 4,
        "only {complete} of 8 runs completed within 300 tokens"
    );
}
