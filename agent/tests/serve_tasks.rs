//! `POST /v1/agent/tasks` (`serve --tasks`) on a synthetic model: a triage task answered
//! whole and streamed step by step (the streamed steps are the result's steps), traces
//! recorded, and bad requests refused by name. Random weights: the answers mean nothing;
//! what is checked is the protocol and that every answer fits its schema.

mod common;

use common::repo;
use common::serve::{get, model_with, post, post_sse, start};

use serde_json::{json, Value};

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("lfm-agent.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\nthink_budget = 8\n[limits]\nmax_steps = 3\nmax_turn_tokens = 96\n[traces]\npath = {:?}\n[index]\npath = {:?}\n[tasks.triage]\ntools = []\n",
            dir.join("traces.sqlite").display().to_string(),
            dir.join("index").display().to_string(),
        ),
    )
    .unwrap();
    p
}

fn ticket() -> Value {
    json!({"id": "INC-1", "subject": "VPN handshake fails", "body": "The client says handshake timed out."})
}

/// The events of a streamed task: `(event, data)` in order.
fn post_stream(url: &str, body: &Value) -> Vec<(String, Value)> {
    let text = post_sse(url, "/v1/agent/tasks", body);
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let (ev, data) = e.split_once('\n').unwrap_or_else(|| panic!("{e:?}"));
            let ev = ev
                .strip_prefix("event: ")
                .unwrap_or_else(|| panic!("{e:?}"));
            let data = data
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("{e:?}"));
            (ev.to_string(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[test]
fn agent_tasks_answer_whole_and_stream_their_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_with(tmp.path(), 16384);
    let cfg = config(tmp.path());
    let s = start(&m, &["--tasks", "--config", cfg.to_str().unwrap()]);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("prompts/tasks/triage/schema.json")).unwrap(),
    )
    .unwrap();
    let valid = jsonschema::validator_for(&schema).unwrap();

    let (status, _, whole) = post(
        &s.url,
        "/v1/agent/tasks",
        &json!({"task": "triage", "input": ticket()}),
        None,
    );
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["task"], "triage");
    assert!(whole["run"].as_i64().is_some(), "{whole}");
    let steps = whole["steps"].as_array().unwrap();
    assert!(
        !steps.is_empty() && steps[0]["kind"] == "generate",
        "{whole}"
    );
    assert!(whole["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    // An answer is only ever given valid (random weights may give none).
    if whole["stop"] == "answered" || !whole["answer"].is_null() {
        assert!(valid.is_valid(&whole["answer"]), "{whole}");
    }

    let events = post_stream(
        &s.url,
        &json!({"task": "triage", "input": ticket(), "stream": true}),
    );
    let (last, result) = events.last().unwrap();
    assert_eq!(last, "result", "{events:?}");
    let streamed: Vec<Value> = events
        .iter()
        .filter(|(e, _)| e == "step")
        .map(|(_, d)| d.clone())
        .collect();
    assert!(!streamed.is_empty());
    assert_eq!(
        &Value::Array(streamed),
        &result["steps"],
        "the stream is the result's steps"
    );
    assert!(result["run"].as_i64().unwrap() > whole["run"].as_i64().unwrap());
    if result["stop"] == "answered" || !result["answer"].is_null() {
        assert!(valid.is_valid(&result["answer"]), "{result}");
    }
    assert!(
        tmp.path().join("traces.sqlite").exists(),
        "tasks are traced"
    );
}

#[test]
fn bad_task_requests_name_the_field_and_tasks_need_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_with(tmp.path(), 16384);
    let cfg = config(tmp.path());
    let s = start(&m, &["--tasks", "--config", cfg.to_str().unwrap()]);
    for (body, param) in [
        (json!({"task": "summarize", "input": "x"}), "task"),
        (json!({"task": "triage", "input": 3}), "input"),
        (json!({"task": "extract", "input": "a log line"}), "schema"),
        (
            json!({"task": "extract", "input": "a log line", "schema": {"type": 5}}),
            "schema",
        ),
        (json!({"task": "ask", "input": ""}), "input"),
        (json!({"task": "triage", "input": {}, "bogus": 1}), "body"),
    ] {
        let (status, _, r) = post(&s.url, "/v1/agent/tasks", &body, None);
        assert_eq!(status, 400, "{body}: {r}");
        assert_eq!(r["error"]["param"], param, "{body}: {r}");
    }
    let (status, _, r) = post(
        &s.url,
        "/v1/agent/tasks",
        &json!({"task": "ask", "input": "why is the disk full?"}),
        None,
    );
    assert_eq!(status, 400, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("--docs"),
        "{r}"
    );

    let plain = start(&m, &[]);
    let (status, _, r) = post(
        &plain.url,
        "/v1/agent/tasks",
        &json!({"task": "triage", "input": ticket()}),
        None,
    );
    assert_eq!(status, 404, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("--tasks"),
        "{r}"
    );
}

#[test]
fn a_task_past_the_slots_is_answered_429_while_one_streams() {
    use std::io::{BufRead, BufReader, Write};
    let tmp = tempfile::tempdir().unwrap();
    let m = model_with(tmp.path(), 16384);
    let cfg = config(tmp.path());
    let s = start(
        &m,
        &["--tasks", "--config", cfg.to_str().unwrap(), "--queue", "1"],
    );
    // A streamed task holds the one slot while its response is open: read its first event,
    // then ask for another.
    let host = s.url.trim_start_matches("http://").to_string();
    let body = json!({"task": "triage", "input": ticket(), "stream": true}).to_string();
    let mut conn = std::net::TcpStream::connect(&host).unwrap();
    write!(
        conn,
        "POST /v1/agent/tasks HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    let (status, retry, r) = post(
        &s.url,
        "/v1/agent/tasks",
        &json!({"task": "triage", "input": ticket()}),
        None,
    );
    assert_eq!(status, 429, "{r}");
    assert_eq!(retry.as_deref(), Some("1"));
    drop(reader);
    // The server stays up and frees the slot once the streamed task has stopped.
    let mut ok = false;
    for _ in 0..100 {
        let (status, _, _) = post(
            &s.url,
            "/v1/agent/tasks",
            &json!({"task": "triage", "input": ticket()}),
            None,
        );
        if status == 200 {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok, "the slot was never freed");
}

#[test]
fn parallel_tasks_share_the_servers_batched_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_with(tmp.path(), 16384);
    let cfg = config(tmp.path());
    let s = start(
        &m,
        &[
            "--tasks",
            "--config",
            cfg.to_str().unwrap(),
            "--parallel",
            "2",
        ],
    );
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let url = s.url.clone();
            std::thread::spawn(move || {
                post(
                    &url,
                    "/v1/agent/tasks",
                    &json!({"task": "triage", "input": ticket()}),
                    None,
                )
            })
        })
        .collect();
    for h in handles {
        let (status, _, r) = h.join().unwrap();
        assert_eq!(status, 200, "{r}");
    }
    // No chat completion was asked for: every pass the batcher made was a task's.
    let (_, metrics) = get(&s.url, "/metrics");
    let passes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lfm_batch_passes_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        passes > 0.0,
        "the tasks' turns did not go through the batcher: {metrics}"
    );
    let secs: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lfm_batch_pass_seconds_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(secs > 0.0, "{metrics}");
}
