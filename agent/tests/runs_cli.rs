//! A scripted agent run is traced to SQLite and read back by `lfm-agent runs list|show`.

use std::process::Command;
use std::sync::Arc;

use lfm_agent::runner::{run, Backend, BackendError, Limits, RunTask, Turn, TurnRequest};
use lfm_agent::trace::{RunMeta, TraceStore};
use lfm_engine::text::{Message, Role};
use lfm_tools::builtin::CurrentTime;
use lfm_tools::Registry;

struct Script(Vec<&'static str>);

impl Backend for Script {
    fn complete(&mut self, _: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        let text = self.0.pop().ok_or("done")?.to_string();
        Ok(Turn {
            prompt_tokens: 50,
            completion_tokens: 12,
            text,
        })
    }
}

fn lfm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_traced_run_is_listed_and_shown() {
    let mut reg = Registry::new();
    reg.register(Arc::new(CurrentTime::new().unwrap())).unwrap();
    let mut backend = Script(vec![
        "<think>Now I know.</think>It is late.",
        "<think>Check the time.</think><|tool_call_start|>[current_time()]<|tool_call_end|>",
    ]);
    let messages = vec![Message::new(Role::User, "What time is it?")];
    let task = RunTask {
        registry: &reg,
        answer_schema: None,
        check: None,
        narrow: None,
        limits: &Limits::default(),
        observer: None,
    };
    let out = run(&mut backend, &task, messages).await;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("traces.sqlite");
    let id = TraceStore::open(&db)
        .unwrap()
        .record(
            &RunMeta {
                task: "ask".into(),
                model: "script".into(),
                input: "What time is it?".into(),
                ..RunMeta::default()
            },
            &out,
        )
        .unwrap();
    let d = db.to_str().unwrap();

    let o = lfm(&["runs", "list", "--traces", d]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        list.contains("ask") && list.contains("answered") && list.contains("What time is it?"),
        "{list}"
    );

    let o = lfm(&["runs", "show", &id.to_string(), "--traces", d]);
    let show = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(show.contains("answer: \"It is late.\""), "{show}");
    assert!(
        show.contains("tool_call") && show.contains("current_time({})"),
        "{show}"
    );

    let o = lfm(&["runs", "show", "999", "--traces", d]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run 999"));
    let o = lfm(&[
        "runs",
        "list",
        "--traces",
        tmp.path().join("none.sqlite").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no trace database yet"));
}
