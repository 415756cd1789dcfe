use lfm_engine::text::{Message, Role};
use serde_json::json;

use super::*;
use crate::runner::StopReason;

fn outcome() -> RunOutcome {
    RunOutcome {
        stop: StopReason::DoomLoop {
            call: "lookup_host({\"host\":\"db-1\"})".into(),
        },
        answer: None,
        steps: vec![
            Step::Generate {
                prompt_tokens: 120,
                completion_tokens: 30,
                ms: 900,
                text: "<think>…</think>".into(),
            },
            Step::ToolCall {
                name: "lookup_host".into(),
                arguments: json!({"host": "db-1"}),
                result: "{\"owner\":\"dba\"}".into(),
                ok: true,
                truncated: false,
                ms: 3,
            },
            Step::Redirected {
                call: "lookup_host(...)".into(),
            },
        ],
        messages: vec![Message::new(Role::User, "db-1 down")],
        completion_tokens: 30,
        prompt_tokens: 120,
    }
}

#[test]
fn runs_are_recorded_listed_and_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sub/traces.sqlite");
    let mut store = TraceStore::open(&path).unwrap();
    let meta = RunMeta {
        task: "triage".into(),
        model: "models/tiny".into(),
        input: "ticket 42".into(),
        started_ms: 1_796_083_200_000,
        wall_ms: 950,
    };
    let a = store.record(&meta, &outcome()).unwrap();
    let mut answered = outcome();
    answered.stop = StopReason::Answered;
    answered.answer = Some(json!({"team": "dba"}));
    let b = store.record(&meta, &answered).unwrap();
    assert!(b > a);

    // Another connection (a reader while the pipeline writes) sees both: WAL.
    let other = TraceStore::open(&path).unwrap();
    let list = other.list(10).unwrap();
    assert_eq!(list.iter().map(|r| r.id).collect::<Vec<_>>(), [b, a]);
    assert_eq!(list[1].stop, "doom_loop");
    assert_eq!(
        (
            list[1].steps,
            list[1].completion_tokens,
            list[1].prompt_tokens
        ),
        (3, 30, 120)
    );
    let mode: String = other
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    let d = other.show(b).unwrap().unwrap();
    assert_eq!(d.answer, Some(json!({"team": "dba"})));
    assert_eq!(d.steps[1]["kind"], "tool_call");
    assert_eq!(d.steps[1]["arguments"], json!({"host": "db-1"}));
    let d = other.show(a).unwrap().unwrap();
    assert_eq!(d.stop_detail["call"], "lookup_host({\"host\":\"db-1\"})");
    assert!(other.show(999).unwrap().is_none());
}

#[test]
fn a_database_of_another_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 7")
        .unwrap();
    let e = TraceStore::open(&path).err().unwrap();
    assert!(e.contains("version 7"), "{e}");
}
