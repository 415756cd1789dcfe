//! Traces in SQLite (WAL): every run, with its steps (each model turn's token counts and
//! text, each tool call with arguments and result), timings and stop reason. Written in one
//! transaction per run, so a crash loses at most the run in flight; readable while a
//! pipeline writes (WAL).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::runner::{RunOutcome, Step};

/// Schema version in `PRAGMA user_version`.
const VERSION: i64 = 1;

/// A trace database.
pub struct TraceStore {
    path: PathBuf,
    conn: Connection,
}

/// What a run was, besides its outcome.
#[derive(Debug, Clone, Default)]
pub struct RunMeta {
    /// The task (`triage`, `ask`, `extract`, ...).
    pub task: String,
    /// The model reference.
    pub model: String,
    /// The input (a ticket id, a question, a log file).
    pub input: String,
    /// Unix milliseconds when it started.
    pub started_ms: i64,
    /// Wall milliseconds it took.
    pub wall_ms: i64,
}

/// One row of `runs list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub id: i64,
    /// Task.
    pub task: String,
    /// Model.
    pub model: String,
    /// Input.
    pub input: String,
    /// Stop reason (`answered`, `max_steps`, ...).
    pub stop: String,
    /// Steps recorded.
    pub steps: i64,
    /// Generated tokens.
    pub completion_tokens: i64,
    /// Prefilled tokens.
    pub prompt_tokens: i64,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// Wall ms.
    pub wall_ms: i64,
}

/// A whole run, for `runs show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// The stop reason with its details.
    pub stop_detail: Value,
    /// The answer, if any.
    pub answer: Option<Value>,
    /// The steps, in order (as recorded: kind plus fields).
    pub steps: Vec<Value>,
}

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

impl TraceStore {
    /// Opens (creating) the database at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| err(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err(path, e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| err(path, e))?;
        match version {
            0 => conn
                .execute_batch(
                    "BEGIN;
                     CREATE TABLE runs (
                        id INTEGER PRIMARY KEY, task TEXT NOT NULL, model TEXT NOT NULL,
                        input TEXT NOT NULL, stop TEXT NOT NULL, stop_detail TEXT NOT NULL,
                        answer TEXT, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
                        started_ms INTEGER NOT NULL, wall_ms INTEGER NOT NULL);
                     CREATE TABLE steps (
                        run_id INTEGER NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL,
                        kind TEXT NOT NULL, tool TEXT, ms INTEGER, prompt_tokens INTEGER,
                        completion_tokens INTEGER, detail TEXT NOT NULL,
                        PRIMARY KEY (run_id, idx));
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(|e| err(path, e))?,
            VERSION => {}
            v => return Err(err(path, format!("trace schema version {v}; this build reads {VERSION}"))),
        }
        Ok(TraceStore {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// Records a run and its steps in one transaction; returns its id.
    pub fn record(&mut self, meta: &RunMeta, out: &RunOutcome) -> Result<i64, String> {
        let p = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| err(&p, e))?;
        let stop_detail = serde_json::to_value(&out.stop).map_err(|e| err(&p, e))?;
        let stop = stop_detail["reason"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        tx.execute(
            "INSERT INTO runs (task, model, input, stop, stop_detail, answer, prompt_tokens, completion_tokens, started_ms, wall_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                meta.task,
                meta.model,
                meta.input,
                stop,
                stop_detail.to_string(),
                out.answer.as_ref().map(Value::to_string),
                out.prompt_tokens as i64,
                out.completion_tokens as i64,
                meta.started_ms,
                meta.wall_ms
            ],
        )
        .map_err(|e| err(&p, e))?;
        let id = tx.last_insert_rowid();
        for (i, step) in out.steps.iter().enumerate() {
            let detail = serde_json::to_value(step).map_err(|e| err(&p, e))?;
            let kind = detail["kind"].as_str().unwrap_or("unknown").to_string();
            let (tool, ms, pt, ct) = match step {
                Step::Generate {
                    prompt_tokens,
                    completion_tokens,
                    ms,
                    ..
                } => (
                    None,
                    Some(*ms as i64),
                    Some(*prompt_tokens as i64),
                    Some(*completion_tokens as i64),
                ),
                Step::ToolCall { name, ms, .. } => {
                    (Some(name.clone()), Some(*ms as i64), None, None)
                }
                _ => (None, None, None, None),
            };
            tx.execute(
                "INSERT INTO steps (run_id, idx, kind, tool, ms, prompt_tokens, completion_tokens, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, i as i64, kind, tool, ms, pt, ct, detail.to_string()],
            )
            .map_err(|e| err(&p, e))?;
        }
        tx.commit().map_err(|e| err(&p, e))?;
        Ok(id)
    }

    /// The latest runs, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<RunSummary>, String> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.id, r.task, r.model, r.input, r.stop, (SELECT count(*) FROM steps s WHERE s.run_id = r.id),
                        r.completion_tokens, r.prompt_tokens, r.started_ms, r.wall_ms
                 FROM runs r ORDER BY r.id DESC LIMIT ?1",
            )
            .map_err(|e| err(&self.path, e))?;
        let rows = stmt
            .query_map([limit as i64], summary_row)
            .map_err(|e| err(&self.path, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(&self.path, e))
    }

    /// One run with its steps, or `None` when there is no such id.
    pub fn show(&self, id: i64) -> Result<Option<RunDetail>, String> {
        let row = self
            .conn
            .query_row(
                "SELECT r.id, r.task, r.model, r.input, r.stop, (SELECT count(*) FROM steps s WHERE s.run_id = r.id),
                        r.completion_tokens, r.prompt_tokens, r.started_ms, r.wall_ms, r.stop_detail, r.answer
                 FROM runs r WHERE r.id = ?1",
                [id],
                |r| Ok((summary_row(r)?, r.get::<_, String>(10)?, r.get::<_, Option<String>>(11)?)),
            )
            .optional()
            .map_err(|e| err(&self.path, e))?;
        let Some((summary, stop_detail, answer)) = row else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare("SELECT detail FROM steps WHERE run_id = ?1 ORDER BY idx")
            .map_err(|e| err(&self.path, e))?;
        let steps = stmt
            .query_map([id], |r| r.get::<_, String>(0))
            .map_err(|e| err(&self.path, e))?
            .map(|s| {
                s.map_err(|e| err(&self.path, e))
                    .and_then(|s| serde_json::from_str(&s).map_err(|e| err(&self.path, e)))
            })
            .collect::<Result<Vec<Value>, String>>()?;
        let parse = |s: &str| serde_json::from_str::<Value>(s).map_err(|e| err(&self.path, e));
        Ok(Some(RunDetail {
            summary,
            stop_detail: parse(&stop_detail)?,
            answer: answer.as_deref().map(parse).transpose()?,
            steps,
        }))
    }
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        id: r.get(0)?,
        task: r.get(1)?,
        model: r.get(2)?,
        input: r.get(3)?,
        stop: r.get(4)?,
        steps: r.get(5)?,
        completion_tokens: r.get(6)?,
        prompt_tokens: r.get(7)?,
        started_ms: r.get(8)?,
        wall_ms: r.get(9)?,
    })
}

#[cfg(test)]
mod tests;
