//! MCP servers declared in `lfm-agent.toml` (`[[tools.mcp]]`): `tools list|call` show and
//! call their tools through the registry, a task offered one runs end to end, and the server
//! process is gone when the command ends. The server is
//! `tools/tests/fixtures/mcp_server.py` (standard library Python only).

mod common;

use common::{bin, repo, text};

use std::path::Path;

fn config(dir: &Path, allow: &str) -> std::path::PathBuf {
    let script = repo().join("tools/tests/fixtures/mcp_server.py");
    let cfg = dir.join("lfm-agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tools]\nallow_programs = [{allow}]\n\n[[tools.mcp]]\nname = \"test\"\nprogram = \"python3\"\nargs = [{script:?}]\nprefix = \"t_\"\nenv = {{ MCP_PID_FILE = {pid:?}, MCP_IGNORE_EOF = \"1\" }}\n\n[tasks.triage]\ntools = [\"t_echo\", \"t_add\"]\n",
            script = script.display().to_string(),
            pid = dir.join("mcp.pid").display().to_string(),
        ),
    )
    .unwrap();
    cfg
}

/// Whether the server (which ignores the end of its input) is gone within 10 s.
fn server_exited(dir: &Path) -> bool {
    let pid = std::fs::read_to_string(dir.join("mcp.pid")).expect("the server wrote its pid");
    let proc_dir = format!("/proc/{}", pid.trim());
    let gone = || {
        // A zombie still has its folder: read its state.
        std::fs::read_to_string(format!("{proc_dir}/stat"))
            .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    };
    for _ in 0..100 {
        if gone() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

#[test]
fn mcp_tools_are_listed_and_called_like_builtins_and_the_server_is_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "\"python3\"");
    let cfg = cfg.to_str().unwrap();

    let o = bin()
        .args(["tools", "list", "--json", "--config", cfg])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let specs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = specs
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["current_time", "t_add", "t_echo", "t_fail", "t_slow"]
    );
    assert!(server_exited(tmp.path()));

    let o = bin()
        .args([
            "tools",
            "call",
            "t_add",
            r#"{"a": 40, "b": 2}"#,
            "--config",
            cfg,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), r#"{"sum":42}"#);

    let o = bin()
        .args(["tools", "call", "t_echo", r#"{"text": 7}"#, "--config", cfg])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("invalid arguments for `t_echo`"),
        "{}",
        text(&o)
    );
    let o = bin()
        .args(["tools", "call", "t_fail", "--config", cfg])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("tool `t_fail` failed: boom"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_server_off_the_allowlist_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let o = bin()
        .args(["tools", "list", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let all = text(&o);
    assert!(
        all.contains("tools.mcp `test`") && all.contains("`python3` is not on the allowlist"),
        "{all}"
    );
}

#[test]
fn a_task_offered_mcp_tools_runs_and_leaves_no_server_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "\"python3\"");
    let model = tmp.path().join("m");
    let o = bin()
        .args([
            "synth",
            "--preset",
            "tiny",
            "--out",
            model.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let tickets = tmp.path().join("t.jsonl");
    std::fs::write(
        &tickets,
        "{\"id\": \"A-1\", \"subject\": \"disk full\", \"body\": \"/var is at 100%\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("o.jsonl");
    let o = bin()
        .args([
            "triage",
            tickets.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args([
            "--model",
            model.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .args(["--traces", tmp.path().join("t.sqlite").to_str().unwrap()])
        .args(["--index", tmp.path().join("none").to_str().unwrap()])
        .output()
        .unwrap();
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
    assert!(
        server_exited(tmp.path()),
        "the MCP server outlived the agent"
    );
}

#[test]
fn a_failed_second_server_stops_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let script = repo().join("tools/tests/fixtures/mcp_server.py");
    let server = |name: &str| {
        format!(
            "[[tools.mcp]]\nname = \"{name}\"\nprogram = \"python3\"\nargs = [{script:?}]\nenv = {{ MCP_PID_FILE = {pid:?}, MCP_IGNORE_EOF = \"1\" }}\n",
            script = script.display().to_string(),
            pid = tmp.path().join(format!("{name}.pid")).display().to_string(),
        )
    };
    // Two servers with the same tools and no prefix: the second one's tools collide.
    let cfg = tmp.path().join("lfm-agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tools]\nallow_programs = [\"python3\"]\n\n{}\n{}",
            server("a"),
            server("b")
        ),
    )
    .unwrap();
    let o = bin()
        .args(["tools", "list", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("tools.mcp `b`") && text(&o).contains("registered twice"),
        "{}",
        text(&o)
    );
    for name in ["a", "b"] {
        let pid = std::fs::read_to_string(tmp.path().join(format!("{name}.pid"))).unwrap();
        std::fs::write(tmp.path().join("mcp.pid"), pid).unwrap();
        assert!(
            server_exited(tmp.path()),
            "server {name} outlived the failed command"
        );
    }
}
