//! The agent and the evals over an OpenAI-compatible server (`--backend URL`): a small HTTP
//! server on loopback plays the server's side, answering from the suite's gold, and records
//! what it was sent.

mod common;

use common::{repo, text};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Serves `reply(path, body) -> (status, body)` on a loopback port until the test ends;
/// returns the base URL and what it saw.
fn serve(reply: impl Fn(&str, &Value) -> (u16, Value) + Send + 'static) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (status, out) = reply(&path, &body);
            log.lock().unwrap().push((path, body));
            let out = out.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                out.len()
            );
        }
    });
    (url, seen)
}

fn lfm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

fn reply_with(message: Value) -> Value {
    json!({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 11, "completion_tokens": 5}})
}

#[test]
fn eval_tool_calls_over_a_remote_server_scores_its_calls() {
    // The server answers each request with the gold call of the case whose request it is.
    let cases: Vec<Value> =
        std::fs::read_to_string(repo().join("evals/suites/tool-calls/cases.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let (url, seen) = serve(move |path, body| {
        if path.ends_with("/models") {
            return (200, json!({"data": [{"id": "listed-model"}]}));
        }
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        let Some(case) = cases.iter().find(|c| c["input"]["request"] == user) else {
            return (400, json!({"error": "unknown request"}));
        };
        let call = json!({"id": "x", "type": "function", "function": {
            "name": case["gold"]["name"], "arguments": case["gold"]["arguments"].to_string()}});
        (
            200,
            reply_with(json!({"content": null, "reasoning_content": "pick", "tool_calls": [call]})),
        )
    });
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r.sqlite");
    let o = lfm(&[
        "eval",
        "tool-calls",
        "--limit",
        "5",
        "--backend",
        &url,
        "--results",
        results.to_str().unwrap(),
        "--work",
        tmp.path().join("w").to_str().unwrap(),
        "--traces",
        tmp.path().join("t.sqlite").to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("listed-model at http://127.0.0.1"), "{t}");
    assert!(!t.contains("SYNTHETIC"), "{t}");
    for want in [
        "tool_name (n=5)                  100.0%",
        "arguments (n=5)                  100.0%",
        "schema_validity (n=5)            100.0%",
    ] {
        assert!(t.contains(want), "missing `{want}`:\n{t}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "/v1/models");
    let chats: Vec<&Value> = seen
        .iter()
        .filter(|(p, _)| p == "/v1/chat/completions")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(chats.len(), 5);
    for b in chats {
        assert_eq!(b["model"], "listed-model");
        assert_eq!(b["tool_choice"], "required");
        assert_eq!(b["tools"].as_array().map(Vec::len), Some(9));
        assert_eq!(b["messages"][0]["role"], "system");
        assert!(b.get("response_format").is_none());
    }
}

#[test]
fn a_task_over_a_remote_server_sends_the_schema_and_the_tool_results_back() {
    // Turn 1 calls current_time; turn 2 answers. Without tools the answer schema goes as
    // response_format; with tools the answer is validated by the loop.
    let (url, seen) = serve(|path, body| {
        if path.ends_with("/models") {
            return (404, json!({"error": "no listing here"}));
        }
        let msgs = body["messages"].as_array().cloned().unwrap_or_default();
        if msgs.iter().any(|m| m["role"] == "tool") {
            let record = json!({"category": "network", "priority": "P2", "team": "network",
                "summary": "VPN handshake fails", "runbook_citation": null, "confidence": 0.5});
            (200, reply_with(json!({"content": record.to_string()})))
        } else {
            let call = json!({"id": "c1", "type": "function", "function": {"name": "current_time", "arguments": "{}"}});
            (
                200,
                reply_with(json!({"content": null, "tool_calls": [call]})),
            )
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("lfm-agent.toml");
    std::fs::write(&config, "[tasks.triage]\ntools = [\"current_time\"]\n").unwrap();
    let tickets = tmp.path().join("t.jsonl");
    std::fs::write(
        &tickets,
        "{\"id\": \"INC-1\", \"subject\": \"vpn\", \"body\": \"handshake fails\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("out.jsonl");
    let o = lfm(&[
        "triage",
        tickets.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--backend",
        &url,
        "--backend-model",
        "m1",
        "--traces",
        tmp.path().join("tr.sqlite").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["record"]["team"], "network");
    let seen = seen.lock().unwrap();
    // The listing is asked once (for its `synthetic` mark); it fails here, which is fine
    // when the model is named.
    assert_eq!(seen[0].0, "/v1/models");
    let chats: Vec<&Value> = seen
        .iter()
        .filter(|(p, _)| p == "/v1/chat/completions")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(chats.len(), 2);
    let second = &chats[1]["messages"];
    let n = second.as_array().unwrap().len();
    assert_eq!(
        second[n - 2]["tool_calls"][0]["function"]["name"],
        "current_time"
    );
    assert_eq!(second[n - 1]["role"], "tool");
    assert_eq!(
        second[n - 1]["tool_call_id"],
        second[n - 2]["tool_calls"][0]["id"]
    );
    assert_eq!(chats[1]["model"], "m1");
}

#[test]
fn a_server_that_fails_is_named() {
    let (url, _) = serve(|_, _| (500, json!({"error": "boom"})));
    let tmp = tempfile::tempdir().unwrap();
    let o = lfm(&[
        "eval",
        "tool-calls",
        "--limit",
        "1",
        "--backend",
        &url,
        "--results",
        tmp.path().join("r.sqlite").to_str().unwrap(),
        "--work",
        tmp.path().join("w").to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("--backend") && t.contains("HTTP 500"),
        "{t}"
    );
    let o = lfm(&[
        "eval",
        "tool-calls",
        "--backend",
        "ftp://x",
        "--results",
        tmp.path().join("r.sqlite").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("not an http"),
        "{}",
        text(&o)
    );
    // The KV budget is the built-in engine's: asked of a server, it is refused by name.
    let (url, _) = serve(|path, _| match path.ends_with("/models") {
        true => (
            200,
            json!({"object": "list", "data": [{"id": "m1", "object": "model"}]}),
        ),
        false => (500, json!({"error": "boom"})),
    });
    let o = lfm(&[
        "eval",
        "tool-calls",
        "--limit",
        "1",
        "--backend",
        &url,
        "--kv-budget",
        "1000",
        "--results",
        tmp.path().join("r.sqlite").to_str().unwrap(),
        "--work",
        tmp.path().join("w").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--kv-budget 1000"),
        "{}",
        text(&o)
    );
}
