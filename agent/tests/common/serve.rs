//! A `lfm-agent serve` child on loopback and HTTP helpers, for the server tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use serde_json::{json, Value};

use super::bin;

/// A running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A synthetic tiny model; `ctx` above its 4,096 is written into its config (random
/// weights have no trained length), for the long tool lists of the eval suites.
pub fn model_with(dir: &Path, ctx: usize) -> PathBuf {
    let m = dir.join("tiny");
    let o = bin()
        .args(["synth", "--preset", "tiny", "--out", m.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = m.join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    c["max_position_embeddings"] = json!(ctx.max(4096));
    std::fs::write(&cfg, c.to_string()).unwrap();
    m
}

pub fn model(dir: &Path) -> PathBuf {
    model_with(dir, 4096)
}

pub fn start(model: &Path, extra: &[&str]) -> Server {
    let mut child = bin()
        .args([
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Server {
        child,
        url: addr.to_string(),
    }
}

pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POST `body` to `path`; the status, the Retry-After header and the JSON reply.
pub fn post(
    url: &str,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut r = http()
        .post(format!("{url}{path}"))
        .header("Content-Type", "application/json");
    if let Some(k) = key {
        r = r.header("Authorization", format!("Bearer {k}"));
    }
    let mut resp = r.send(body.to_string().as_bytes()).unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn get(url: &str, path: &str) -> (u16, String) {
    let mut resp = http().get(format!("{url}{path}")).call().unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap(),
    )
}

/// POSTs `body` to `path` expecting a `200 text/event-stream` answer; its whole text.
pub fn post_sse(url: &str, path: &str, body: &Value) -> String {
    let mut resp = http()
        .post(format!("{url}{path}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    resp.body_mut().read_to_string().unwrap()
}
