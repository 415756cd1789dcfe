//! `lfm-agent index`, `search` and `eval retrieval` end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
        .args(args)
        .output()
        .expect("run lfm-agent")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs(dir: &Path) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(docs.join("net")).unwrap();
    std::fs::write(
        docs.join("net/vpn.md"),
        "# VPN\n\n## Handshake fails\n\nUDP 51820 is blocked: switch to TCP 443.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("disk.log"),
        "2026-12-01 ERROR disk /var is 98% full\n",
    )
    .unwrap();
    std::fs::write(docs.join("logo.png"), b"\x89PNG\r\n\x1a\n\x00\x00binary").unwrap();
    docs
}

#[test]
fn index_is_incremental_and_reports_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = docs(tmp.path());
    let index = tmp.path().join("ix");
    let (d, i) = (docs.to_str().unwrap(), index.to_str().unwrap());
    let o = run(&["index", d, "--index", i]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("3 files (2 new, 0 changed, 0 unchanged, 0 removed)"),
        "{out}"
    );
    assert!(out.contains("1 skipped"), "{out}");
    assert!(
        text(&o.stderr).contains("logo.png: binary file"),
        "{}",
        text(&o.stderr)
    );

    std::fs::write(
        docs.join("disk.log"),
        "2026-12-02 WARN disk /var is 80% full\n",
    )
    .unwrap();
    let o = run(&["index", d, "--index", i, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["changed"].as_u64(), v["unchanged"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["skipped"][0]["reason"], "binary file");
}

#[test]
fn search_prints_hits_json_filters_and_packed_citations() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = docs(tmp.path());
    let index = tmp.path().join("ix");
    let i = index.to_str().unwrap();
    assert!(run(&["index", docs.to_str().unwrap(), "--index", i])
        .status
        .success());

    let o = run(&["search", "handshake blocked", "--index", i]);
    let out = text(&o.stdout);
    assert!(out.starts_with("1. "), "{out}");
    assert!(out.contains("net/vpn.md#L1-L5"), "{out}");
    assert!(out.contains("**blocked**"), "{out}");

    let o = run(&[
        "search",
        "disk full",
        "--index",
        i,
        "--json",
        "--type",
        "log",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert!(v[0]["chunk"]["path"]
        .as_str()
        .unwrap()
        .ends_with("disk.log"));

    let o = run(&["search", "udp tcp", "--index", i, "--pack", "500"]);
    let out = text(&o.stdout);
    assert!(out.starts_with("[1] "), "{out}");
    assert!(
        out.contains("vpn.md#L1-L5 (VPN > Handshake fails)"),
        "{out}"
    );

    let o = run(&["search", "x", "--index", i, "--type", "docx"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--type") && text(&o.stderr).contains("docx"));

    let o = run(&[
        "search",
        "x",
        "--index",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("lfm-agent index"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn eval_retrieval_prints_ours_beside_rank_bm25() {
    let r = repo();
    let p = |s: &str| r.join(s).to_string_lossy().into_owned();
    let o = run(&[
        "eval",
        "retrieval",
        "--docs",
        &p("examples/docs"),
        "--questions",
        &p("evals/retrieval/runbook-questions.jsonl"),
        "--base",
        &p("."),
        "--baseline",
        &p("evals/retrieval/rank-bm25-rankings.json"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("92 questions"), "{out}");
    assert!(out.contains("recall@5") && out.contains("MRR@10"), "{out}");
    assert!(out.contains("rank-bm25 0.2.2 BM25Okapi"), "{out}");
}
