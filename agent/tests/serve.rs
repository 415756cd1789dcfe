//! `lfm-agent serve` on a synthetic model, over HTTP on loopback: the OpenAI endpoints, tool
//! calls and JSON schemas enforced, streamed replies that add up to the non-streamed ones,
//! errors that name the parameter, API keys, a full queue answered 429, a stream whose reader
//! goes away, and the evals run through it with `--backend`.

mod common;

use common::serve::{get, http, model, model_with, post, post_sse, start};
use common::{bin, repo};

use std::io::{BufRead, BufReader};

use serde_json::{json, Value};

/// Sends only the headers of a POST announcing `len` bytes; the status line that comes back.
fn announce(url: &str, len: usize, key: &str) -> String {
    use std::io::Write;
    let host = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

fn tool() -> Value {
    json!({"type": "function", "function": {"name": "lookup_host", "description": "Who owns a host.",
        "parameters": {"type": "object", "properties": {"host": {"type": "string", "maxLength": 30}},
                       "required": ["host"], "additionalProperties": false}}})
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[test]
fn chat_completions_enforce_tools_and_schemas_and_name_bad_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&model(tmp.path()), &[]);
    assert_eq!(get(&s.url, "/health").0, 200);
    let (code, models) = get(&s.url, "/v1/models");
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(
        (code, models["data"][0]["id"].as_str()),
        (200, Some("tiny"))
    );
    assert_eq!(models["data"][0]["meta"]["synthetic"], true);

    // tool_choice required: the reply is a call of the tool, with arguments under its schema.
    let params = tool()["function"]["parameters"].clone();
    let v = jsonschema::validator_for(&params).unwrap();
    for seed in 0..3 {
        let (code, _, r) = post(
            &s.url,
            "/v1/chat/completions",
            &json!({"messages": user("who owns db-1?"),
            "tools": [tool()], "tool_choice": "required", "max_tokens": 1500, "seed": seed, "temperature": 0.8}),
            None,
        );
        assert_eq!(code, 200, "{r}");
        let c = &r["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls", "{r}");
        let call = &c["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "lookup_host");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(v.is_valid(&args), "{args}");
        assert!(r["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    }
    // response_format json_schema: the content parses and fits.
    let schema = json!({"type": "object", "properties": {"severity": {"enum": ["low", "high"]}, "n": {"type": "integer"}},
        "required": ["severity", "n"], "additionalProperties": false});
    let sv = jsonschema::validator_for(&schema).unwrap();
    for seed in 0..3 {
        let (code, _, r) = post(
            &s.url,
            "/v1/chat/completions",
            &json!({"messages": user("rate it"), "seed": seed,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}, "max_tokens": 200}),
            None,
        );
        assert_eq!(code, 200, "{r}");
        let content: Value =
            serde_json::from_str(r["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
        assert!(sv.is_valid(&content), "{content}");
    }
    // tool_choice none: no call comes back.
    let (code, _, r) = post(
        &s.url,
        "/v1/chat/completions",
        &json!({"messages": user("hi"), "tools": [tool()],
        "tool_choice": "none", "max_tokens": 30}),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        r["choices"][0]["message"].get("tool_calls").is_none(),
        "{r}"
    );
    // Errors name the parameter.
    for (body, param) in [
        (
            json!({"messages": user("x"), "tool_choice": "required"}),
            "tool_choice",
        ),
        (
            json!({"messages": user("x"), "response_format": {"type": "json_schema", "json_schema": {"name": "x",
            "schema": {"type": "object", "$dynamicRef": "#x"}}}}),
            "response_format",
        ),
        (json!({"messages": "hi"}), "messages"),
        (
            json!({"messages": user("x"), "max_tokens": 100000}),
            "messages",
        ),
    ] {
        let (code, _, r) = post(&s.url, "/v1/chat/completions", &body, None);
        assert_eq!(
            (code, r["error"]["param"].as_str()),
            (400, Some(param)),
            "{body}: {r}"
        );
    }
    let (code, metrics) = get(&s.url, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("lfm_requests_total{code=\"200\"}")
            && metrics.contains("lfm_completion_tokens_total"),
        "{metrics}"
    );
}

#[test]
fn keys_a_full_queue_and_a_large_body_are_refused_and_the_server_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let s = start(
        &m,
        &[
            "--api-key",
            "k1",
            "--queue",
            "1",
            "--parallel",
            "1",
            "--body-limit-mib",
            "1",
        ],
    );
    let body = json!({"messages": user("write"), "max_tokens": 2500, "temperature": 1.0});
    let (code, _, r) = post(&s.url, "/v1/chat/completions", &body, None);
    assert_eq!(code, 401, "{r}");
    let (code, _, _) = post(&s.url, "/v1/chat/completions", &body, Some("wrong"));
    assert_eq!(code, 401);
    // A body over the limit is refused from its Content-Length, before it is read (sending
    // it whole would race the server closing the connection).
    assert!(announce(&s.url, 2 << 20, "k1").starts_with("HTTP/1.1 413"));
    // One running, one waiting: the rest of six concurrent requests get 429 with Retry-After.
    let url = s.url.clone();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || post(&url, "/v1/chat/completions", &body, Some("k1")))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert!(
        ok >= 1 && !busy.is_empty() && ok + busy.len() == 6,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(
        busy.iter().all(|r| r.1.as_deref() == Some("1")),
        "Retry-After"
    );
    assert_eq!(get(&s.url, "/health").0, 200);
    let (code, _, _) = post(
        &s.url,
        "/v1/chat/completions",
        &json!({"messages": user("hi"), "max_tokens": 5}),
        Some("k1"),
    );
    assert_eq!(code, 200, "healthy after the burst");
}

#[test]
fn the_evals_run_against_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    // Nine tools take about 4,500 tokens with the synthetic tokenizer.
    let s = start(&model_with(tmp.path(), 16384), &["--ctx", "16384"]);
    let o = bin()
        .current_dir(repo())
        .args([
            "eval",
            "tool-calls",
            "--limit",
            "4",
            "--backend",
            &format!("{}/v1", s.url),
        ])
        .args(["--results", tmp.path().join("r.sqlite").to_str().unwrap()])
        .args(["--traces", tmp.path().join("t.sqlite").to_str().unwrap()])
        .args(["--work", tmp.path().join("w").to_str().unwrap()])
        .output()
        .unwrap();
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{t}");
    assert!(t.contains("schema_validity (n=4)            100.0%"), "{t}");
    assert!(
        t.contains("SYNTHETIC"),
        "the server says its model is synthetic: {t}"
    );
}

/// A streamed reply: its chunks' JSON, in order, and whether it ended with `[DONE]`.
fn post_stream(url: &str, body: &Value) -> (Vec<Value>, bool) {
    let text = post_sse(url, "/v1/chat/completions", body);
    let mut chunks = Vec::new();
    let mut done = false;
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("{event:?}"));
        if data == "[DONE]" {
            done = true;
        } else {
            chunks.push(serde_json::from_str(data).unwrap());
        }
    }
    (chunks, done)
}

/// The message that a stream's deltas add up to, as the `openai` client assembles it.
fn assemble(chunks: &[Value]) -> (Value, Option<String>, Option<Value>) {
    let (mut content, mut reasoning) = (String::new(), String::new());
    let mut calls: Vec<Value> = Vec::new();
    let (mut finish, mut usage) = (None, None);
    for c in chunks {
        if let Some(u) = c.get("usage") {
            usage = Some(u.clone());
        }
        let Some(choice) = c["choices"].get(0) else {
            continue;
        };
        let d = &choice["delta"];
        content.push_str(d["content"].as_str().unwrap_or_default());
        reasoning.push_str(d["reasoning_content"].as_str().unwrap_or_default());
        for t in d["tool_calls"].as_array().into_iter().flatten() {
            let i = t["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.push(json!({"id": t["id"], "type": "function", "function": {"name": "", "arguments": ""}}));
            }
            let f = &mut calls[i]["function"];
            let name = format!(
                "{}{}",
                f["name"].as_str().unwrap(),
                t["function"]["name"].as_str().unwrap_or_default()
            );
            let args = format!(
                "{}{}",
                f["arguments"].as_str().unwrap(),
                t["function"]["arguments"].as_str().unwrap_or_default()
            );
            *f = json!({"name": name, "arguments": args});
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    let mut m = json!({"role": "assistant", "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { content.into() }});
    if !reasoning.is_empty() {
        m["reasoning_content"] = reasoning.into();
    }
    if !calls.is_empty() {
        m["tool_calls"] = calls.into();
    }
    (m, finish, usage)
}

/// The parts of a message that a stream must reproduce (call ids carry the request id).
fn comparable(m: &Value) -> Value {
    let mut m = m.clone();
    for c in m["tool_calls"].as_array_mut().into_iter().flatten() {
        c.as_object_mut().unwrap().remove("id");
    }
    if m["reasoning_content"] == "" {
        m.as_object_mut().unwrap().remove("reasoning_content");
    }
    m
}

#[test]
fn streamed_replies_add_up_to_the_non_streamed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let schema = json!({"type": "object", "properties": {"severity": {"enum": ["low", "high"]}},
        "required": ["severity"], "additionalProperties": false});
    let requests = [
        json!({"messages": user("say something"), "max_tokens": 40}),
        json!({"messages": user("who owns db-1?"), "tools": [tool()], "tool_choice": "required", "max_tokens": 300}),
        json!({"messages": user("who owns db-1?"), "tools": [tool()], "max_tokens": 60}),
        json!({"messages": user("rate it"), "max_tokens": 100,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}}),
    ];
    for think in ["0", "12"] {
        let s = start(&m, &["--think-budget", think]);
        for (i, base) in requests.iter().enumerate() {
            for seed in 0..2 {
                let mut body = base.clone();
                body["seed"] = json!(seed);
                body["temperature"] = json!(0.9);
                let (code, _, whole) = post(&s.url, "/v1/chat/completions", &body, None);
                assert_eq!(code, 200, "{whole}");
                body["stream"] = json!(true);
                body["stream_options"] = json!({"include_usage": true});
                let (chunks, done) = post_stream(&s.url, &body);
                assert!(done, "no [DONE]: {chunks:?}");
                assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
                let (streamed, finish, usage) = assemble(&chunks);
                let want = &whole["choices"][0];
                let why = format!("request {i}, think {think}, seed {seed}: {whole} vs {chunks:?}");
                assert_eq!(comparable(&streamed), comparable(&want["message"]), "{why}");
                assert_eq!(finish.as_deref(), want["finish_reason"].as_str(), "{why}");
                let usage = usage.unwrap_or_else(|| panic!("no usage chunk: {why}"));
                assert_eq!(
                    usage["completion_tokens"], whole["usage"]["completion_tokens"],
                    "{why}"
                );
                if think != "0" {
                    assert!(streamed["reasoning_content"].is_string(), "{why}");
                }
            }
        }
    }
}

#[test]
fn a_stop_string_ends_generation_and_a_gone_reader_cancels_the_stream() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&model(tmp.path()), &[]);
    // What the model writes unconstrained, then the same request stopped at a piece of it.
    let body = json!({"messages": user("say something"), "max_tokens": 60, "seed": 1});
    let (_, _, free) = post(&s.url, "/v1/chat/completions", &body, None);
    let text = free["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let cut = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    let stop: String = text[cut..].chars().take(3).collect();
    assert!(!stop.trim().is_empty(), "{text:?}");
    let mut stopped = body.clone();
    stopped["stop"] = json!([stop]);
    let (_, _, r) = post(&s.url, "/v1/chat/completions", &stopped, None);
    let c = r["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.starts_with(c.trim_end()) && !c.contains(&stop),
        "{c:?} {stop:?} {text:?}"
    );
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    assert!(
        r["usage"]["completion_tokens"].as_u64() < free["usage"]["completion_tokens"].as_u64(),
        "generation ended at the stop string: {r} vs {free}"
    );
    // A long stream whose reader hangs up after the first bytes.
    let host = s.url.trim_start_matches("http://");
    let long = json!({"messages": user("write"), "max_tokens": 3000, "stream": true}).to_string();
    let mut c = std::net::TcpStream::connect(host).unwrap();
    write!(
        c,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{long}",
        long.len()
    )
    .unwrap();
    let mut first = [0u8; 64];
    let n = c.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(c);
    let t = std::time::Instant::now();
    let (code, _, _) = post(
        &s.url,
        "/v1/chat/completions",
        &json!({"messages": user("hi"), "max_tokens": 5}),
        None,
    );
    assert_eq!(code, 200);
    let (_, metrics) = get(&s.url, "/metrics");
    assert!(metrics.contains("lfm_cancelled_total 1"), "{metrics}");
    assert!(
        metrics.contains("lfm_time_to_first_token_seconds_count"),
        "{metrics}"
    );
    eprintln!("answered {:?} after the hang-up", t.elapsed());
}

#[test]
fn plain_completions_answer_whole_and_streamed_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&model(tmp.path()), &[]);
    let body = json!({"prompt": "The printer on floor 3", "max_tokens": 24, "seed": 4, "temperature": 0.7});
    let (code, _, whole) = post(&s.url, "/v1/completions", &body, None);
    assert_eq!(code, 200, "{whole}");
    assert_eq!(whole["object"], "text_completion");
    let text = whole["choices"][0]["text"].as_str().unwrap();
    assert!(!text.is_empty(), "{whole}");
    assert_eq!(whole["usage"]["completion_tokens"], 24);
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    // Streamed: the text pieces add up to the same text.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let mut resp = http()
        .post(format!("{}/v1/completions", s.url))
        .header("Content-Type", "application/json")
        .send(streamed.to_string().as_bytes())
        .unwrap();
    let events = resp.body_mut().read_to_string().unwrap();
    let mut joined = String::new();
    let mut finish = None;
    let mut done = false;
    for e in events.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = e.strip_prefix("data: ").unwrap();
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let c: Value = serde_json::from_str(data).unwrap();
        assert_eq!(c["object"], "text_completion");
        joined.push_str(c["choices"][0]["text"].as_str().unwrap());
        if let Some(f) = c["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    assert!(done);
    assert_eq!((joined.as_str(), finish.as_deref()), (text, Some("length")));
    for (body, param) in [
        (json!({"max_tokens": 3}), "prompt"),
        (json!({"prompt": ["a", "b"]}), "prompt"),
        (json!({"prompt": "a", "messages": user("x")}), "messages"),
        (json!({"prompt": "a", "echo": true}), "echo"),
        (json!({"prompt": "a", "max_tokens": 100000}), "prompt"),
    ] {
        let (code, _, r) = post(&s.url, "/v1/completions", &body, None);
        assert_eq!(
            (code, r["error"]["param"].as_str()),
            (400, Some(param)),
            "{body}: {r}"
        );
    }
}

#[test]
fn parallel_slots_answer_concurrent_requests_as_one_slot_does() {
    // Q8_0: the quantized kernels give each sequence the same bits batched or alone, so greedy
    // replies must match exactly.
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("tiny-q8_0.gguf");
    let o = bin()
        .args([
            "synth", "--preset", "tiny", "--format", "gguf", "--quant", "q8_0", "--out",
        ])
        .arg(&m)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bodies: Vec<Value> = (0..6)
        .map(|i| {
            let mut b = json!({"messages": user(&format!("ticket {i}: the printer is {}", "down ".repeat(i))),
                "max_tokens": 12 + 3 * i, "temperature": 0});
            if i % 2 == 1 {
                b["tools"] = json!([tool()]);
                b["tool_choice"] = json!("required");
                b["max_tokens"] = json!(200);
            }
            b
        })
        .collect();
    let answer = |url: &str, b: &Value| {
        let (code, _, r) = post(url, "/v1/chat/completions", b, None);
        assert_eq!(code, 200, "{r}");
        (
            comparable(&r["choices"][0]["message"]),
            r["usage"]["completion_tokens"].clone(),
        )
    };
    let one = start(&m, &["--parallel", "1"]);
    let want: Vec<_> = bodies.iter().map(|b| answer(&one.url, b)).collect();
    drop(one);
    let four = start(&m, &["--parallel", "4", "--queue", "8"]);
    let url = four.url.clone();
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = bodies
            .iter()
            .map(|b| {
                let url = url.clone();
                s.spawn(move || answer(&url, b))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w, g, "request {i}");
    }
    let (_, metrics) = get(&four.url, "/metrics");
    assert!(
        metrics.contains("lfm_requests_total{code=\"200\"} 6"),
        "{metrics}"
    );
    let per_pass: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lfm_batch_sequences_per_pass "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        per_pass > 1.5,
        "the sequences shared their passes: {per_pass}"
    );
}
