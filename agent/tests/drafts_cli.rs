//! `extract --draft K`: prompt-lookup drafts checked while the agent decodes answers under
//! the event schema give the same turns as decoding one token at a time, and are taken. The
//! model is the micro GGUF fixture (512-token vocabulary), whose random weights loop inside
//! the JSON strings it writes, so drafts have something to predict.

mod common;

use common::{bin, repo, text};

use std::path::Path;

/// Runs extract with `--draft k`; the generated text of every model turn, in order, and the
/// stderr log.
fn extract(dir: &Path, k: usize) -> (Vec<String>, String) {
    let log = dir.join("app.log");
    let lines: String = std::fs::read_to_string(repo().join("examples/logs/app.log"))
        .unwrap()
        .lines()
        .take(4)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log, lines).unwrap();
    let traces = dir.join(format!("t{k}.sqlite"));
    let o = bin()
        .env("LFM_LOG", "lfm_agent::backend=trace")
        .args(["extract", log.to_str().unwrap()])
        .args([
            "--schema",
            repo().join("examples/event.schema.json").to_str().unwrap(),
        ])
        .args(["--out", dir.join(format!("o{k}.jsonl")).to_str().unwrap()])
        .args([
            "--model",
            repo()
                .join("engine/tests/fixtures/gguf/micro-f16.gguf")
                .to_str()
                .unwrap(),
        ])
        .args([
            "--temperature",
            "0",
            "--think-budget",
            "0",
            "--max-steps",
            "1",
        ])
        .args(["--max-turn-tokens", "160", "--draft", &k.to_string()])
        .args(["--traces", traces.to_str().unwrap()])
        .args(["--index", dir.join("none").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let shown = bin()
        .args([
            "runs",
            "show",
            "1",
            "--json",
            "--traces",
            traces.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown));
    let run: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let turns = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "generate")
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    (turns, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn drafted_answers_are_the_same_tokens_and_drafts_are_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, _) = extract(tmp.path(), 0);
    let (drafted, log) = extract(tmp.path(), 8);
    assert!(!plain.is_empty() && !plain[0].is_empty());
    assert_eq!(plain, drafted);
    // Without the terminal colours the log may carry.
    let mut plain_log = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain_log.push(c);
        }
    }
    let taken: usize = plain_log
        .lines()
        .filter(|l| l.contains("draft checked"))
        .filter_map(|l| l.split("taken=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert!(taken > 0, "no draft was taken:\n{log}");
}
