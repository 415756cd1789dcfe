//! End-to-end tests of the `lfm-agent` binary: synth, generate, logits, and the errors a user
//! sees for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("lfm-agent runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures/parity")
        .join(case)
}

/// Copies a fixture model folder (weights and config only) into a temp dir to damage it.
fn copy_fixture(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture(case)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

/// Writes `text` to `dir/name` and returns the path as a string.
fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn synth_tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(&["synth", "--preset", "tiny", "--out", out]);
    assert!(o.status.success(), "synth failed: {}", stderr(&o));
    dir
}

fn logits_json(args: &[&str]) -> serde_json::Value {
    let o = run(args);
    assert!(o.status.success(), "logits failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("logits --json prints JSON")
}

fn max_diff(a: &serde_json::Value, b: &serde_json::Value) -> f64 {
    let rows = |v: &serde_json::Value| -> Vec<f64> {
        v["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (a, b) = (rows(a), rows(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn synth_tiny_then_generate_json_reports_tokens_and_finish_reason() {
    let dir = synth_tiny();
    let model = dir.path().to_str().unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
    ] {
        assert!(dir.path().join(f).is_file(), "synth wrote no {f}");
    }
    let o = run(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "Disk full on db-1",
        "--max-tokens",
        "12",
        "--seed",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("synthetic random-weight model"),
        "no synthetic warning: {}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let completion = v["completion_tokens"].as_u64().unwrap();
    assert!(completion <= 12);
    match v["finish_reason"].as_str().unwrap() {
        "length" => assert_eq!(completion, 12),
        "stop" => assert!(completion < 12),
        other => panic!("finish_reason {other}"),
    }
    assert!(v["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(v["text"].is_string());
}

#[test]
fn generate_is_reproducible_for_a_seed_and_streams_with_stats() {
    let dir = synth_tiny();
    let model = dir.path().to_str().unwrap();
    let args = [
        "generate",
        "--model",
        model,
        "--prompt",
        "hello",
        "--max-tokens",
        "16",
        "--temperature",
        "0.9",
        "--seed",
        "5",
        "--stats",
    ];
    let a = run(&args);
    let b = run(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b));
    let err = stderr(&a);
    assert!(
        err.contains("prefill:") && err.contains("tok/s") && err.contains("decode:"),
        "{err}"
    );
}

/// `prefill_logits_f64` of a parity fixture, as rows.
fn reference_rows(case: &str) -> (Vec<u32>, serde_json::Value) {
    let bytes = std::fs::read(fixture(case).join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids: Vec<u32> = st
        .tensor("prompt_tokens")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let t = st.tensor("prefill_logits_f64").unwrap();
    let flat: Vec<f64> = t
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let rows: Vec<Vec<f64>> = flat.chunks(t.shape()[1]).map(<[f64]>::to_vec).collect();
    (ids, serde_json::json!({ "logits": rows }))
}

#[test]
fn logits_command_matches_transformers_in_every_mode() {
    let case = "new_style_untied_mqa_f32";
    let (ids, want) = reference_rows(case);
    let tokens: Vec<String> = ids.iter().map(u32::to_string).collect();
    let tokens = tokens.join(",");
    let model = fixture(case);
    let model = model.to_str().unwrap();
    for extra in [
        &[][..],
        &["--prefill-chunk", "5"][..],
        &["--incremental"][..],
    ] {
        let mut args = vec!["logits", "--model", model, "--tokens", &tokens, "--json"];
        args.extend_from_slice(extra);
        let got = logits_json(&args);
        let d = max_diff(&got, &want);
        assert!(d <= 1e-4, "{extra:?}: {d}");
    }
}

#[test]
fn logits_one_pass_chunked_and_incremental_agree_and_match_transformers() {
    let case = fixture("new_style_untied_mqa_f32");
    let model = case.to_str().unwrap();
    let tokens = "1,90,14,201,66,133,250,8,41";
    let whole = logits_json(&["logits", "--model", model, "--tokens", tokens, "--json"]);
    let chunked = logits_json(&[
        "logits",
        "--model",
        model,
        "--tokens",
        tokens,
        "--json",
        "--prefill-chunk",
        "4",
    ]);
    let inc = logits_json(&[
        "logits",
        "--model",
        model,
        "--tokens",
        tokens,
        "--json",
        "--incremental",
    ]);
    assert_eq!(
        whole["tokens"],
        serde_json::json!([1, 90, 14, 201, 66, 133, 250, 8, 41])
    );
    assert_eq!(whole["logits"].as_array().unwrap().len(), 9);
    assert_eq!(whole["logits"][0].as_array().unwrap().len(), 320);
    assert!(max_diff(&whole, &chunked) < 1e-4);
    assert!(max_diff(&whole, &inc) < 1e-4);
}

#[test]
fn token_commands_work_without_a_tokenizer_and_text_commands_say_what_is_missing() {
    let model = fixture("old_style_tied_f32");
    let model = model.to_str().unwrap();
    let v = logits_json(&["logits", "--model", model, "--tokens", "1, 2, 3", "--json"]);
    assert_eq!(v["logits"].as_array().unwrap().len(), 3);
    let o = run(&["generate", "--model", model, "--prompt", "hi"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tokenizer.json"), "{}", stderr(&o));
}

#[test]
fn bad_token_ids_are_reported() {
    let model = fixture("old_style_tied_f32");
    let model = model.to_str().unwrap();
    let o = run(&["logits", "--model", model, "--tokens", "1,x"]);
    assert!(
        stderr(&o).contains("--tokens") && stderr(&o).contains("`x`"),
        "{}",
        stderr(&o)
    );
    let o = run(&["logits", "--model", model, "--tokens", "1,99999"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("99999") && stderr(&o).contains("out of range"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_model_folder_and_missing_config_are_named() {
    let o = run(&["logits", "--model", "/nonexistent/model", "--tokens", "1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/model"), "{}", stderr(&o));
    let dir = copy_fixture("old_style_tied_f32");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let o = run(&[
        "logits",
        "--model",
        dir.path().to_str().unwrap(),
        "--tokens",
        "1",
    ]);
    assert!(
        stderr(&o).contains("config.json") && stderr(&o).contains("missing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn wrong_tensor_shape_names_file_and_tensor() {
    let dir = copy_fixture("old_style_tied_f32");
    let cfg_path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["vocab_size"] = serde_json::json!(321);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let o = run(&[
        "logits",
        "--model",
        dir.path().to_str().unwrap(),
        "--tokens",
        "1",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("model.safetensors")
            && err.contains("model.embed_tokens.weight")
            && err.contains("[321, 48]"),
        "{err}"
    );
}

#[test]
fn unknown_architecture_is_refused_by_name() {
    let dir = copy_fixture("old_style_tied_f32");
    let cfg_path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["model_type"] = serde_json::json!("mamba");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = stderr(&run(&[
        "logits",
        "--model",
        dir.path().to_str().unwrap(),
        "--tokens",
        "1",
    ]));
    assert!(
        err.contains("config.json") && err.contains("mamba") && err.contains("model_type"),
        "{err}"
    );
}

#[test]
fn truncated_safetensors_is_reported_with_its_path() {
    let dir = copy_fixture("old_style_tied_f32");
    let w = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let err = stderr(&run(&[
        "logits",
        "--model",
        dir.path().to_str().unwrap(),
        "--tokens",
        "1",
    ]));
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn invalid_config_json_gives_line_and_field_errors() {
    let dir = copy_fixture("old_style_tied_f32");
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, "{\"model_type\": \"lfm2\",,}").unwrap();
    let err = stderr(&run(&[
        "logits",
        "--model",
        dir.path().to_str().unwrap(),
        "--tokens",
        "1",
    ]));
    assert!(
        err.contains("config.json") && err.contains("invalid JSON") && err.contains("line 1"),
        "{err}"
    );

    let orig = std::fs::read_to_string(fixture("old_style_tied_f32").join("config.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&orig).unwrap();
    cfg["num_key_value_heads"] = serde_json::json!(3);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = stderr(&run(&[
        "logits",
        "--model",
        dir.path().to_str().unwrap(),
        "--tokens",
        "1",
    ]));
    assert!(
        err.contains("config.json") && err.contains("num_key_value_heads"),
        "{err}"
    );
}

#[test]
fn context_overflow_is_a_clear_error() {
    let model = fixture("old_style_tied_f32");
    let o = run(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "1,2,3,4",
        "--ctx",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("context full: 4 tokens needed, the context holds 2"),
        "{}",
        stderr(&o)
    );
    let dir = synth_tiny();
    let o = run(&[
        "generate",
        "--model",
        dir.path().to_str().unwrap(),
        "--prompt",
        "a long enough prompt",
        "--ctx",
        "8",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("context full"), "{}", stderr(&o));
}

/// Runs `lfm-agent chat ARGS` with `input` on stdin.
fn chat(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = bin()
        .arg("chat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn chat_answers_each_line_and_keeps_going() {
    let dir = synth_tiny();
    let model = dir.path().to_str().unwrap();
    let o = chat(
        &["--model", model, "--max-tokens", "6", "--stats"],
        b"hello\nand again\n/reset\nthird\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let answers = stderr(&o).matches("[prefill").count();
    assert_eq!(answers, 3, "{}", stderr(&o));
}

#[test]
fn chat_reuses_the_cached_prefix_without_changing_the_answer() {
    let dir = synth_tiny();
    let model = dir.path().to_str().unwrap();
    let o = chat(
        &["--model", model, "--max-tokens", "8", "--temperature", "0"],
        b"first question\nsecond question\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let answers: Vec<&str> = out
        .split("> ")
        .map(|a| a.trim_end_matches('\n'))
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(answers.len(), 2, "{out:?}");
    // The second turn, generated from scratch on the fully rendered conversation:
    let prompt = format!(
        "<|startoftext|><|im_start|>user\nfirst question<|im_end|>\n<|im_start|>assistant\n{}<|im_end|>\n<|im_start|>user\nsecond question<|im_end|>\n<|im_start|>assistant\n",
        answers[0]
    );
    let o = run(&[
        "generate",
        "--model",
        model,
        "--raw",
        "--prompt",
        &prompt,
        "--max-tokens",
        "8",
        "--temperature",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end_matches('\n'), answers[1]);
}

#[test]
fn constrained_generation_is_valid_json_and_reports_completion() {
    let dir = synth_tiny();
    let model = dir.path().to_str().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"type":"object","properties":{"severity":{"enum":["low","high"]},"n":{"type":"integer","minimum":0,"maximum":9}},"required":["severity","n"],"additionalProperties":false}"#,
    )
    .unwrap();
    let mut complete = 0;
    for seed in ["1", "2", "3", "4"] {
        let o = run(&[
            "generate",
            "--model",
            model,
            "--prompt",
            "triage",
            "--json-schema",
            schema.to_str().unwrap(),
            "--max-tokens",
            "256",
            "--temperature",
            "0.7",
            "--seed",
            seed,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if v["complete"] == true {
            complete += 1;
            let out: serde_json::Value =
                serde_json::from_str(v["text"].as_str().unwrap()).expect("complete output parses");
            assert!(
                out["severity"] == "low" || out["severity"] == "high",
                "{out}"
            );
            assert!((0..=9).contains(&out["n"].as_i64().unwrap()), "{out}");
        } else {
            assert_eq!(v["finish_reason"], "length", "{v}");
        }
    }
    assert!(complete >= 2, "only {complete} of 4 completed");
    let o = run(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "x",
        "--regex",
        "INC-[0-9]{4}",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["complete"], true);
    let text = v["text"].as_str().unwrap();
    assert!(
        text.len() == 8
            && text.starts_with("INC-")
            && text[4..].chars().all(|c| c.is_ascii_digit()),
        "{text}"
    );
}

#[test]
fn unsupported_constraints_are_refused_before_generation() {
    let dir = synth_tiny();
    let model = dir.path().to_str().unwrap();
    let schema = dir.path().join("s.json");
    std::fs::write(&schema, r##"{"$dynamicRef": "#node"}"##).unwrap();
    let o = run(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "x",
        "--json-schema",
        schema.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("$dynamicRef") && stderr(&o).contains("--json-schema"),
        "{}",
        stderr(&o)
    );
    let grammar = dir.path().join("g.lark");
    std::fs::write(&grammar, "start: item+\n").unwrap();
    let o = run(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "x",
        "--grammar",
        grammar.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("item"), "{}", stderr(&o));
}

#[test]
fn constraint_check_accepts_valid_and_rejects_invalid_instances() {
    let dir = synth_tiny();
    let model = dir.path().to_str().unwrap();
    let p = |name: &str, text: &str| write_file(dir.path(), name, text);
    let schema = p(
        "s.json",
        r#"{"type":"object","properties":{"level":{"enum":["INFO","ERROR"]}},"required":["level"],"additionalProperties":false}"#,
    );
    let good = p("good.json", "{\n  \"level\": \"ERROR\"\n}\n");
    let bad = p("bad.json", r#"{"level": "TRACE"}"#);
    let short = p("short.json", r#"{}"#);
    let o = run(&[
        "constraint",
        "check",
        "--model",
        model,
        "--json-schema",
        &schema,
        &good,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("accepted"));
    let o = run(&[
        "constraint",
        "check",
        "--model",
        model,
        "--json-schema",
        &schema,
        &good,
        &bad,
        &short,
        "--json",
    ]);
    assert!(!o.status.success());
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["accepted"], true);
    assert_eq!(lines[1]["accepted"], false);
    assert!(lines[1]["rejected_at_token"].as_u64().unwrap() > 0);
    assert_eq!(lines[2]["accepted"], false);
}

#[test]
fn generate_and_check_tool_calls_from_a_tools_file() {
    let dir = synth_tiny();
    let model = dir.path().to_str().unwrap();
    let p = |name: &str, text: &str| write_file(dir.path(), name, text);
    let tools = p(
        "tools.json",
        r#"[{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
             "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                            "required": ["city"], "additionalProperties": false}}}]"#,
    );
    let o = run(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "Weather in Oslo?",
        "--tools",
        &tools,
        "--max-tokens",
        "120",
        "--seed",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = g["text"].as_str().unwrap();
    if g["finish_reason"] == "stop" {
        let body = text
            .trim_start()
            .strip_prefix("<|tool_call_start|>")
            .and_then(|t| t.strip_suffix("<|tool_call_end|>"))
            .unwrap_or_else(|| panic!("not a call: {text:?}"));
        let calls: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(calls[0]["name"], "get_weather", "{text}");
        assert!(calls[0]["arguments"]["city"].is_string(), "{text}");
    }
    let good = p(
        "good.txt",
        r#"<|tool_call_start|>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]<|tool_call_end|>"#,
    );
    let unknown = p(
        "unknown.txt",
        r#"<|tool_call_start|>[{"name": "delete_all", "arguments": {}}]<|tool_call_end|>"#,
    );
    let o = run(&[
        "constraint",
        "check",
        "--model",
        model,
        "--tools",
        &tools,
        &good,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "constraint",
        "check",
        "--model",
        model,
        "--tools",
        &tools,
        &good,
        &unknown,
        "--json",
    ]);
    assert!(!o.status.success());
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["accepted"], true);
    assert_eq!(lines[1]["accepted"], false);
    // A tools file that is not a list of tools is named.
    let broken = p("broken.json", r#"{"name": "x"}"#);
    let o = run(&[
        "generate", "--model", model, "--prompt", "x", "--tools", &broken,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--tools") && stderr(&o).contains("array"),
        "{}",
        stderr(&o)
    );
    // --tools and --regex do not combine.
    let o = run(&[
        "generate", "--model", model, "--prompt", "x", "--tools", &tools, "--regex", "a",
    ]);
    assert!(!o.status.success());
}

#[test]
fn synth_gguf_then_generate_and_bench_report_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("micro-q8_0.gguf");
    let fs = f.to_str().unwrap();
    let o = run(&[
        "synth", "--preset", "micro", "--format", "gguf", "--quant", "q8_0", "--out", fs,
    ]);
    assert!(o.status.success(), "synth gguf: {}", stderr(&o));
    let o = run(&[
        "generate",
        "--model",
        fs,
        "--prompt",
        "hi",
        "--max-tokens",
        "4",
        "--json",
    ]);
    assert!(o.status.success(), "generate on gguf: {}", stderr(&o));
    let g: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(g["completion_tokens"], 4);
    let o = run(&[
        "bench",
        "--model",
        fs,
        "--threads",
        "1",
        "--prompt-tokens",
        "16",
        "--gen-tokens",
        "4",
        "--repetitions",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "bench: {}", stderr(&o));
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "prefill_tok_s",
        "decode_tok_s",
        "ttft_ms",
        "peak_rss_mib",
        "decode_gb_s",
    ] {
        assert!(
            b[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {}",
            b[key]
        );
    }
    assert_eq!(b["threads"], 1);
}

#[test]
fn bad_gguf_files_and_flags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.gguf");
    let fs = f.to_str().unwrap();
    let o = run(&[
        "synth", "--preset", "micro", "--format", "gguf", "--quant", "q5_1", "--out", fs,
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--quant `q5_1`"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "synth", "--preset", "micro", "--format", "gguf", "--quant", "q4_0", "--out", fs,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Truncated download: the last tensor's data is cut off.
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&["logits", "--model", fs, "--tokens", "1,2"]);
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains("m.gguf") && e.contains("past the end"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    let o = run(&["bench"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--model"),
        "{}",
        stderr(&o)
    );
}
