//! "One of these tool calls" ([`ToolCallSpec`]): every completed generation of the tiny
//! random-weight model is either `<|tool_call_start|>` + a list of calls of listed tools,
//! each with arguments valid under that tool's schema, + `<|tool_call_end|>`, or (when the
//! spec offers one) a final answer valid under its schema; no object repeats a key. The
//! checker takes well-formed calls and refuses unknown tools, bad arguments and repeated keys.
//!
//! The tools' parameter schemas are schemas of the project's corpus (`tests/fixtures/schemas/`),
//! chosen for keys the grammar cannot bound by itself (`additionalProperties`,
//! `patternProperties`), formats, enums and nesting. `LFM_TOOLCALL_SEEDS=N` runs N seeds per
//! variant and temperature (default 3).

mod common;

use std::path::Path;

use lfm_engine::constraint::{ConstraintSpec, ToolCallSpec, ToolDef, CALL_END, CALL_START};
use serde_json::{json, Value};

fn corpus_schema(prefix: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no corpus schema {prefix}_*"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    doc["schema"].clone()
}

fn tools() -> Vec<ToolDef> {
    ["01", "53", "57", "72", "80", "84"]
        .iter()
        .map(|n| ToolDef {
            name: format!("tool_{n}"),
            parameters: corpus_schema(n),
        })
        .collect()
}

/// Checks a completed output; `Err` says what is wrong with it.
fn verify(spec: &ToolCallSpec, text: &str) -> Result<&'static str, String> {
    let body = if spec.opened {
        text.strip_suffix(CALL_END).ok_or("no call end")?
    } else {
        let t = text.trim_start_matches([' ', '\n']);
        match t.strip_prefix(CALL_START) {
            Some(rest) => rest.strip_suffix(CALL_END).ok_or("no call end")?,
            None => {
                let schema = spec
                    .answer
                    .as_ref()
                    .ok_or("no call, and no answer is offered")?;
                let v = common::parse_unique(t)?;
                let (loose, _) = common::validators(schema);
                return if loose.is_valid(&v) {
                    Ok("answer")
                } else {
                    Err("the answer does not validate".into())
                };
            }
        }
    };
    let calls = common::parse_unique(body)?;
    let calls = calls.as_array().ok_or("the calls are not a list")?;
    if calls.is_empty() || calls.len() > spec.max_calls {
        return Err(format!("{} calls", calls.len()));
    }
    for call in calls {
        let o = call.as_object().ok_or("a call is not an object")?;
        if o.len() != 2 {
            return Err(format!("a call has {} fields", o.len()));
        }
        let name = o.get("name").and_then(Value::as_str).ok_or("no name")?;
        let tool = spec
            .tools
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("unknown tool {name}"))?;
        let args = o.get("arguments").ok_or("no arguments")?;
        let (loose, _) = common::validators(&tool.parameters);
        if !loose.is_valid(args) {
            return Err(format!("arguments of {name} do not validate: {args}"));
        }
    }
    Ok("call")
}

#[test]
fn tool_calls_are_valid_by_construction() {
    let (m, c) = common::tiny();
    let tok = m.tokenizer.as_ref().unwrap();
    let seeds: u64 = std::env::var("LFM_TOOLCALL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let required = ToolCallSpec::new(tools());
    let with_answer = ToolCallSpec {
        answer: Some(corpus_schema("71")),
        ..required.clone()
    };
    let opened = ToolCallSpec {
        opened: true,
        ..required.clone()
    };
    let (mut runs, mut completed, mut stopped) = (0, 0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    let mut bad = Vec::new();
    for (label, spec) in [
        ("required", &required),
        ("with answer", &with_answer),
        ("opened", &opened),
    ] {
        let mut prompt =
            "<|startoftext|><|im_start|>user\nCall a tool.<|im_end|>\n<|im_start|>assistant\n"
                .to_string();
        if spec.opened {
            prompt.push_str(CALL_START);
        }
        let prompt = tok.encode(&prompt).unwrap();
        for seed in 0..seeds {
            for temperature in [0.7f32, 1.5] {
                runs += 1;
                let spec_c = ConstraintSpec::ToolCalls(spec.clone());
                let g = match common::generate_under(
                    c,
                    m,
                    &spec_c,
                    &prompt,
                    (seed, temperature, 400),
                ) {
                    Ok(g) => g,
                    Err(lfm_engine::Error::DeadEnd(_)) => {
                        stopped += 1;
                        continue;
                    }
                    Err(e) => panic!("{label} seed {seed}: {e}"),
                };
                if g.constraint_complete != Some(true) {
                    continue;
                }
                completed += 1;
                match verify(spec, &g.text) {
                    Ok(kind) => *kinds.entry(format!("{label}: {kind}")).or_insert(0) += 1,
                    Err(e) => bad.push(format!(
                        "{label} seed {seed} T {temperature}: {e}: {}",
                        g.text
                    )),
                }
            }
        }
    }
    eprintln!(
        "tool calls: {runs} runs, {completed} completed, {} invalid, {stopped} stopped before a repeated key; {kinds:?}",
        bad.len()
    );
    for b in &bad {
        eprintln!("  {b}");
    }
    assert!(bad.is_empty(), "{} invalid outputs", bad.len());
    assert!(
        completed * 2 >= runs,
        "only {completed} of {runs} runs completed within 400 tokens"
    );
}

#[test]
fn the_checker_takes_good_calls_and_refuses_bad_ones() {
    let (m, c) = common::tiny();
    let tok = m.tokenizer.as_ref().unwrap();
    let spec = ConstraintSpec::ToolCalls(ToolCallSpec {
        answer: Some(
            json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false}),
        ),
        ..ToolCallSpec::new(tools())
    });
    let check = |text: &str| {
        let ids = tok.encode(text).unwrap();
        c.compile(&spec).unwrap().check(&ids).unwrap()
    };
    let call = |body: &str| format!("{CALL_START}[{body}]{CALL_END}");
    let good = [
        call(r#"{"name": "tool_53", "arguments": {"a": 1, "b": 2}}"#),
        call(
            r#"{"name": "tool_53", "arguments": {}}, {"name": "tool_57", "arguments": {"name": "svc", "x-owner": "sre"}}"#,
        ),
        format!(" {}", call(r#"{"name": "tool_53", "arguments": {"a": 1}}"#)),
        r#"{"ok": true}"#.to_string(),
    ];
    for g in &good {
        assert!(check(g).accepted(), "refused: {g}");
    }
    let bad = [
        // A tool that is not listed.
        call(r#"{"name": "rm_rf", "arguments": {}}"#),
        // Arguments outside the tool's schema.
        call(r#"{"name": "tool_53", "arguments": {"a": -1}}"#),
        call(r#"{"name": "tool_57", "arguments": {"owner": "sre"}}"#),
        // A key twice in one object, where the schema's grammar alone would allow it.
        call(r#"{"name": "tool_53", "arguments": {"a": 1, "a": 2}}"#),
        call(r#"{"name": "tool_57", "arguments": {"name": "svc", "x-a": "1", "x-a": "2"}}"#),
        // No end token, or an empty list.
        format!(r#"{CALL_START}[{{"name": "tool_53", "arguments": {{}}}}]"#),
        call(""),
        // An answer outside its schema, or prose.
        r#"{"ok": 1}"#.to_string(),
        "Sure, calling the tool now.".to_string(),
    ];
    for b in &bad {
        assert!(!check(b).accepted(), "accepted: {b}");
    }
    // The test helper that the generation tests rely on refuses repeated keys too.
    assert!(common::parse_unique(r#"{"a": 1, "a": 2}"#).is_err());
    assert!(common::parse_unique(r#"{"a": {"a": 1}}"#).is_ok());
}
