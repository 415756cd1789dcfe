//! The registry's call path and the built-in tools.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lfm_retrieval::{EstimateCounter, IndexOptions, Indexer, Retriever};
use lfm_tools::builtin::{CommandTool, CurrentTime, ReadDoc, SearchDocs, SqlQuery};
use lfm_tools::{CallLimits, Registry, Tool, ToolError, ToolFuture, ToolSpec};
use serde_json::{json, Value};

struct Echo {
    spec: ToolSpec,
    delay: Duration,
}

impl Echo {
    fn new(name: &str, delay: Duration) -> Arc<Self> {
        Arc::new(Echo {
            spec: ToolSpec::new(
                name,
                "echo",
                json!({"type": "object", "properties": {"text": {"type": "string"}, "n": {"type": "integer", "minimum": 1}}, "required": ["text"], "additionalProperties": false}),
            )
            .unwrap(),
            delay,
        })
    }
}

impl Tool for Echo {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call(&self, args: Value) -> ToolFuture<'_> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let n = args["n"].as_u64().unwrap_or(1) as usize;
            Ok(json!({"echo": args["text"].as_str().unwrap().repeat(n)}))
        })
    }
}

fn limits(ms: u64, chars: usize) -> CallLimits {
    CallLimits {
        timeout: Duration::from_millis(ms),
        max_output_chars: chars,
    }
}

#[tokio::test]
async fn calls_are_validated_timed_out_and_capped() {
    let mut reg = Registry::new().with_limits(limits(300, 40));
    reg.register(Echo::new("echo", Duration::ZERO)).unwrap();
    reg.register(Echo::new("slow", Duration::from_secs(5)))
        .unwrap();

    let out = reg.call("echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(out.value, json!({"echo": "hi"}));
    assert_eq!(out.text, r#"{"echo":"hi"}"#);
    assert!(!out.truncated);

    let out = reg
        .call("echo", json!({"text": "abcdefghij", "n": 10}))
        .await
        .unwrap();
    assert!(out.truncated);
    assert!(
        out.text
            .ends_with("[... truncated: 40 of 111 characters shown]"),
        "{}",
        out.text
    );

    match reg.call("echo", json!({"text": 3, "extra": true})).await {
        Err(ToolError::InvalidArguments { tool, errors }) => {
            assert_eq!(tool, "echo");
            assert_eq!(errors.len(), 2, "{errors:?}");
            assert!(errors.iter().any(|e| e.starts_with("/text")), "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        reg.call("slow", json!({"text": "x"})).await,
        Err(ToolError::Timeout { ms: 300, .. })
    ));
    let err = reg.call("nope", json!({})).await.unwrap_err().to_string();
    assert_eq!(err, "unknown tool `nope`; available: echo, slow");
}

#[test]
fn registration_checks_names_schemas_and_duplicates() {
    let mut reg = Registry::new();
    reg.register(Echo::new("echo", Duration::ZERO)).unwrap();
    assert!(matches!(
        reg.register(Echo::new("echo", Duration::ZERO)),
        Err(ToolError::Duplicate(_))
    ));
    assert!(matches!(
        ToolSpec::new("9lives", "", json!({})),
        Err(ToolError::BadName(_))
    ));
    assert!(matches!(
        ToolSpec::new("has space", "", json!({})),
        Err(ToolError::BadName(_))
    ));
    struct Bad(ToolSpec);
    impl Tool for Bad {
        fn spec(&self) -> &ToolSpec {
            &self.0
        }
        fn call(&self, _: Value) -> ToolFuture<'_> {
            Box::pin(async { Ok(Value::Null) })
        }
    }
    let not_object = Bad(ToolSpec::new("a", "", json!({"type": "string"})).unwrap());
    assert!(matches!(
        reg.register(Arc::new(not_object)),
        Err(ToolError::BadSpec { .. })
    ));
    let broken = Bad(ToolSpec::new(
        "b",
        "",
        json!({"type": "object", "properties": {"x": {"type": 12}}}),
    )
    .unwrap());
    assert!(matches!(
        reg.register(Arc::new(broken)),
        Err(ToolError::BadSpec { .. })
    ));
}

#[tokio::test]
async fn a_task_sees_only_its_declared_tools() {
    let mut reg = Registry::new();
    reg.register(Echo::new("echo", Duration::ZERO)).unwrap();
    reg.register(Arc::new(CurrentTime::new().unwrap())).unwrap();
    let task = reg.only(&["current_time"]).unwrap();
    assert_eq!(task.names(), ["current_time"]);
    assert!(matches!(
        task.call("echo", json!({"text": "x"})).await,
        Err(ToolError::UnknownTool { .. })
    ));
    assert!(reg.only(&["delete_tickets"]).is_err());
    let t = task.call("current_time", json!({})).await.unwrap();
    let utc = t.value["utc"].as_str().unwrap();
    assert_eq!(utc.len(), 20, "{utc}");
    assert!(utc.ends_with('Z'));
}

fn index_docs(tmp: &Path) -> Arc<Retriever> {
    let docs = tmp.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("vpn.md"),
        "# VPN\n\n## Handshake\n\nUDP 51820 blocked: use TCP 443.\n\n## MTU\n\nSet MTU 1380.\n",
    )
    .unwrap();
    std::fs::write(tmp.join("secret.txt"), "not indexed\n").unwrap();
    let dir = tmp.join("ix");
    let mut ix = Indexer::open(&dir, IndexOptions::default(), Arc::new(EstimateCounter)).unwrap();
    ix.update(&[docs], &|_| {}).unwrap();
    ix.finish().unwrap();
    Arc::new(Retriever::open(&dir).unwrap())
}

#[tokio::test]
async fn search_docs_and_read_doc_stay_inside_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let r = index_docs(tmp.path());
    let mut reg = Registry::new();
    reg.register(Arc::new(SearchDocs::new(r.clone()).unwrap()))
        .unwrap();
    reg.register(Arc::new(ReadDoc::new(r).unwrap())).unwrap();

    let out = reg
        .call("search_docs", json!({"query": "handshake udp", "k": 2}))
        .await
        .unwrap();
    let first = &out.value["results"][0];
    assert!(
        first["source"].as_str().unwrap().ends_with("vpn.md#L1-L5"),
        "{first}"
    );
    assert_eq!(first["section"], "VPN > Handshake");
    let id = first["id"].as_str().unwrap().to_string();
    let path = id.rsplit_once('#').unwrap().0.to_string();

    let out = reg.call("read_doc", json!({"id": id})).await.unwrap();
    assert!(out.value["text"].as_str().unwrap().contains("TCP 443"));
    let out = reg
        .call(
            "read_doc",
            json!({"path": path, "start_line": 7, "end_line": 9}),
        )
        .await
        .unwrap();
    assert_eq!(out.value["text"], "7: ## MTU\n8: \n9: Set MTU 1380.");

    for bad in [
        json!({"path": tmp.path().join("secret.txt").to_string_lossy()}),
        json!({"path": format!("{path}/../../secret.txt")}),
        json!({"path": "/etc/passwd"}),
        json!({"id": "nope#0"}),
    ] {
        let err = reg.call("read_doc", bad.clone()).await.unwrap_err();
        assert!(matches!(err, ToolError::Failed { .. }), "{bad}: {err}");
    }
    // Both or neither of id and path: refused.
    for bad in [json!({"id": "a#0", "path": "x"}), json!({})] {
        let err = reg.call("read_doc", bad).await.unwrap_err().to_string();
        assert!(err.contains("either `id`"), "{err}");
    }
    assert!(matches!(
        reg.call("search_docs", json!({"query": "x", "k": 99}))
            .await,
        Err(ToolError::InvalidArguments { .. })
    ));
}

fn tickets_db(dir: &Path) -> PathBuf {
    let db = dir.join("tickets.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT, priority TEXT);
         INSERT INTO tickets (title, priority) VALUES ('VPN down', 'P1'), ('Printer jam', 'P4'), ('Disk full', 'P2');",
    )
    .unwrap();
    db
}

#[tokio::test]
async fn sql_query_is_read_only_and_row_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tickets_db(tmp.path());
    let tool = SqlQuery::new(&db, 2, Duration::from_millis(300)).unwrap();
    assert!(tool.schema().unwrap().contains("CREATE TABLE tickets"));
    let mut reg = Registry::new();
    reg.register(Arc::new(tool)).unwrap();

    let out = reg
        .call(
            "sql_query",
            json!({"sql": "-- newest first\nSELECT id, title FROM tickets ORDER BY id;"}),
        )
        .await
        .unwrap();
    assert_eq!(out.value["columns"], json!(["id", "title"]));
    assert_eq!(
        out.value["rows"],
        json!([[1, "VPN down"], [2, "Printer jam"]])
    );
    assert_eq!(out.value["truncated"], true);

    for sql in [
        "DELETE FROM tickets",
        "INSERT INTO tickets (title) VALUES ('x')",
        "SELECT 1; DROP TABLE tickets",
        "ATTACH DATABASE 'x.db' AS x",
        "PRAGMA query_only = OFF",
        "/* hi */ -- there\n  pragma table_info(tickets)",
        "WITH x AS (SELECT 1) DELETE FROM tickets",
    ] {
        let err = reg
            .call("sql_query", json!({"sql": sql}))
            .await
            .unwrap_err();
        assert!(matches!(err, ToolError::Failed { .. }), "{sql}: {err}");
    }
    let count: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 3, "nothing was written");

    let err = reg
        .call("sql_query", json!({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("stopped after 300 ms"), "{err}");
    assert!(SqlQuery::new(&tmp.path().join("missing.db"), 10, Duration::from_secs(1)).is_err());
}

#[tokio::test]
async fn command_tools_run_allowlisted_programs_without_a_shell() {
    let spec = |name: &str| {
        ToolSpec::new(
            name,
            "cmd",
            json!({"type": "object", "properties": {"host": {"type": "string"}}}),
        )
        .unwrap()
    };
    let allow: Vec<PathBuf> = ["/bin/cat", "/bin/false", "/bin/sleep", "/bin/echo"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert!(matches!(
        CommandTool::new(spec("rm"), Path::new("/bin/rm"), vec![], &allow),
        Err(ToolError::NotAllowed { .. })
    ));
    let mut reg = Registry::new().with_limits(limits(500, 6000));
    reg.register(Arc::new(
        CommandTool::new(spec("cat"), Path::new("/bin/cat"), vec![], &allow).unwrap(),
    ))
    .unwrap();
    reg.register(Arc::new(
        CommandTool::new(spec("fail"), Path::new("/bin/false"), vec![], &allow).unwrap(),
    ))
    .unwrap();
    reg.register(Arc::new(
        CommandTool::new(
            spec("nap"),
            Path::new("/bin/sleep"),
            vec!["5".into()],
            &allow,
        )
        .unwrap(),
    ))
    .unwrap();
    // The argument is passed as one argv entry, not through a shell.
    reg.register(Arc::new(
        CommandTool::new(
            spec("say"),
            Path::new("/bin/echo"),
            vec!["$(id) ; ls".into()],
            &allow,
        )
        .unwrap(),
    ))
    .unwrap();

    let out = reg.call("cat", json!({"host": "db-1"})).await.unwrap();
    assert_eq!(out.value, json!({"host": "db-1"}));
    assert!(reg
        .call("fail", json!({}))
        .await
        .unwrap_err()
        .to_string()
        .contains("exit status: 1"));
    let t = std::time::Instant::now();
    assert!(matches!(
        reg.call("nap", json!({})).await,
        Err(ToolError::Timeout { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(3));
    let err = reg.call("say", json!({})).await.unwrap_err().to_string();
    assert!(
        err.contains("stdout is not JSON") && err.contains("$(id) ; ls"),
        "{err}"
    );
}

#[test]
fn long_tool_lists_are_narrowed_to_the_relevant_tools() {
    struct Named(ToolSpec);
    impl Tool for Named {
        fn spec(&self) -> &ToolSpec {
            &self.0
        }
        fn call(&self, _: Value) -> ToolFuture<'_> {
            Box::pin(async { Ok(Value::Null) })
        }
    }
    let defs = [
        ("restart_service", "Restart a systemd service on a host."),
        ("get_ticket", "Fetch a helpdesk ticket by its id."),
        (
            "close_ticket",
            "Close a helpdesk ticket with a resolution note.",
        ),
        ("page_oncall", "Page the on-call engineer of a team."),
        ("dns_lookup", "Resolve a hostname through the internal DNS."),
        ("disk_usage", "Report disk usage of a server's filesystems."),
        ("list_pods", "List Kubernetes pods in a namespace."),
        ("rotate_certificate", "Renew and rotate a TLS certificate."),
        ("vpn_sessions", "Show active VPN sessions of a user."),
        ("reset_mfa", "Reset a user's MFA enrolment."),
        ("query_metrics", "Query Prometheus metrics."),
        ("backup_status", "Status of the last Postgres backups."),
        ("printer_queue", "Show a printer's job queue."),
        ("current_weather", "Weather at an office location."),
    ];
    let mut reg = Registry::new();
    for (name, desc) in defs {
        let spec = ToolSpec::new(name, desc, json!({"type": "object", "properties": {"id": {"type": "string", "description": "identifier"}}})).unwrap();
        reg.register(Arc::new(Named(spec))).unwrap();
    }
    let picked = reg.relevant(
        "customer says the VPN drops; check their sessions and the tickets",
        3,
        &["page_oncall"],
    );
    assert_eq!(
        picked.names(),
        ["close_ticket", "get_ticket", "page_oncall", "vpn_sessions"]
    );
    // Nothing matches: the first k by name, never an empty list.
    assert_eq!(reg.relevant("zzzz", 2, &[]).names().len(), 2);
    // Short lists are offered whole.
    assert_eq!(
        reg.only(&["get_ticket", "dns_lookup"])
            .unwrap()
            .relevant("vpn", 1, &[])
            .names()
            .len(),
        2
    );
}
