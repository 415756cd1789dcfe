//! MCP tools against a small stdio MCP server (`tests/fixtures/mcp_server.py`, standard
//! library Python only): started, listed, validated and called like built-in tools.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lfm_tools::mcp::{McpServer, McpServerConfig};
use lfm_tools::{CallLimits, Registry, ToolError};
use serde_json::json;

fn server(tools: Option<&[&str]>, prefix: &str) -> McpServerConfig {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp_server.py");
    McpServerConfig {
        name: "test".into(),
        program: PathBuf::from("python3"),
        args: vec![script.display().to_string()],
        env: Default::default(),
        tools: tools.map(|t| t.iter().map(|s| s.to_string()).collect()),
        prefix: prefix.into(),
    }
}

fn allow() -> Vec<PathBuf> {
    vec![PathBuf::from("python3")]
}

const T: Duration = Duration::from_secs(20);

async fn registry(cfg: &McpServerConfig, timeout: Duration) -> (Arc<McpServer>, Registry) {
    let s = McpServer::connect(cfg, &allow(), T)
        .await
        .expect("python3 must be installed: the MCP tests run a stdlib-only Python server");
    let mut reg = Registry::new().with_limits(CallLimits {
        timeout,
        max_output_chars: 6000,
    });
    for t in s.tools(cfg).unwrap() {
        reg.register(t).unwrap();
    }
    (s, reg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_are_listed_validated_and_called_like_builtins() {
    let cfg = server(None, "");
    let (s, reg) = registry(&cfg, T).await;
    assert_eq!(
        reg.names(),
        ["add", "echo", "fail", "slow"],
        "bad.name is left out"
    );
    let echo = reg
        .specs()
        .into_iter()
        .find(|t| t.name.as_str() == "echo")
        .unwrap();
    assert_eq!(echo.description, "Echo the text back.");
    assert_eq!(echo.parameters["required"], json!(["text"]));

    let out = reg.call("echo", json!({"text": "hi there"})).await.unwrap();
    assert_eq!(out.value, json!("hi there"));
    let out = reg.call("add", json!({"a": 2, "b": 3.5})).await.unwrap();
    assert_eq!(out.value, json!({"sum": 5.5}), "structured content wins");

    let e = reg.call("echo", json!({"txt": "x"})).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { .. }), "{e}");
    let e = reg.call("fail", json!({})).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed { tool, why } if tool == "fail" && why.contains("boom")),
        "{e}"
    );
    s.close().await;
    let e = reg.call("echo", json!({"text": "x"})).await.unwrap_err();
    assert!(e.to_string().contains("MCP server `test`"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_mcp_tool_times_out_like_any_tool() {
    let cfg = server(Some(&["slow"]), "");
    let (s, reg) = registry(&cfg, Duration::from_millis(300)).await;
    let e = reg.call("slow", json!({"seconds": 5})).await.unwrap_err();
    assert!(matches!(e, ToolError::Timeout { ms: 300, .. }), "{e}");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_picks_and_prefixes_tools_and_names_what_is_wrong() {
    let cfg = server(Some(&["echo"]), "files_");
    let (s, reg) = registry(&cfg, T).await;
    assert_eq!(reg.names(), ["files_echo"]);
    let out = reg
        .call("files_echo", json!({"text": "via prefix"}))
        .await
        .unwrap();
    assert_eq!(out.value, json!("via prefix"));
    let e = s
        .tools(&server(Some(&["nope"]), ""))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("mcp server `test`") && e.contains("`nope`") && e.contains("echo"),
        "{e}"
    );
    let e = s
        .tools(&server(Some(&["bad.name"]), ""))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("bad.name") && e.contains("invalid tool name"),
        "{e}"
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_off_the_allowlist_missing_or_silent_are_refused_by_name() {
    let cfg = server(None, "");
    let e = McpServer::connect(&cfg, &[], T).await.unwrap_err();
    assert!(matches!(e, ToolError::Mcp { .. }), "{e}");
    assert!(
        e.to_string().contains("`python3` is not on the allowlist"),
        "{e}"
    );

    let missing = McpServerConfig {
        program: PathBuf::from("/nonexistent/mcp-server"),
        ..server(None, "")
    };
    let e = McpServer::connect(&missing, std::slice::from_ref(&missing.program), T)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot start /nonexistent/mcp-server"), "{e}");

    let silent = McpServerConfig {
        program: PathBuf::from("sleep"),
        args: vec!["30".into()],
        ..server(None, "")
    };
    let e = McpServer::connect(
        &silent,
        &[PathBuf::from("sleep")],
        Duration::from_millis(500),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("no answer to initialize"), "{e}");
}
