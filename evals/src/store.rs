//! Eval results in SQLite: one row per suite run (its summary as JSON), one per scored case.
//! A run is written in one transaction, so a crash leaves either all of it or none.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::score::{CaseResult, Summary};

/// Schema version in `PRAGMA user_version`.
const VERSION: i64 = 1;

/// What a suite run was run on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The suite's name.
    pub suite: String,
    /// Its task.
    pub task: String,
    /// The model (path or reference).
    pub model: String,
    /// Whether the model is a synthetic random-weight one (its accuracy means nothing).
    pub synthetic: bool,
    /// Unix ms at the start.
    pub started_ms: i64,
    /// Wall ms of the whole run.
    pub wall_ms: i64,
    /// Settings worth showing beside the numbers (seed, limits, case limit).
    pub settings: String,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    /// Its id.
    pub id: i64,
    /// What it was run on.
    pub meta: RunMeta,
    /// Its summary.
    pub summary: Summary,
}

/// The results database.
pub struct ResultStore {
    path: PathBuf,
    conn: Connection,
}

impl ResultStore {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<ResultStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let err = |e: rusqlite::Error| store_err(path, e);
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version > VERSION {
            return Err(Error::Store {
                path: path.to_path_buf(),
                why: format!(
                    "written by a newer lfm-agent (schema {version}, this one reads {VERSION})"
                ),
            });
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS eval_runs (
                 id INTEGER PRIMARY KEY,
                 suite TEXT NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL,
                 synthetic INTEGER NOT NULL, started_ms INTEGER NOT NULL, wall_ms INTEGER NOT NULL,
                 settings TEXT NOT NULL, summary TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS eval_cases (
                 run_id INTEGER NOT NULL REFERENCES eval_runs(id),
                 case_id TEXT NOT NULL, result TEXT NOT NULL,
                 PRIMARY KEY (run_id, case_id));
             PRAGMA user_version = 1;",
        )
        .map_err(err)?;
        Ok(ResultStore {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a run and its cases; returns the run's id.
    pub fn record(
        &mut self,
        meta: &RunMeta,
        summary: &Summary,
        cases: &[CaseResult],
    ) -> Result<i64> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| store_err(&path, e);
        let json = |v: &dyn erased::Ser| {
            v.json().map_err(|why| Error::Store {
                path: path.clone(),
                why,
            })
        };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO eval_runs (suite, task, model, synthetic, started_ms, wall_ms, settings, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![meta.suite, meta.task, meta.model, meta.synthetic, meta.started_ms, meta.wall_ms, meta.settings, json(summary)?],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        for c in cases {
            tx.execute(
                "INSERT INTO eval_cases (run_id, case_id, result) VALUES (?1, ?2, ?3)",
                params![id, c.case_id, json(c)?],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<StoredRun>> {
        let err = |e: rusqlite::Error| store_err(&self.path, e);
        let mut st = self
            .conn
            .prepare(
                "SELECT id, suite, task, model, synthetic, started_ms, wall_ms, settings, summary
                 FROM eval_runs ORDER BY id DESC",
            )
            .map_err(err)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    RunMeta {
                        suite: r.get(1)?,
                        task: r.get(2)?,
                        model: r.get(3)?,
                        synthetic: r.get(4)?,
                        started_ms: r.get(5)?,
                        wall_ms: r.get(6)?,
                        settings: r.get(7)?,
                    },
                    r.get::<_, String>(8)?,
                ))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, meta, summary) = row.map_err(err)?;
            let summary = serde_json::from_str(&summary).map_err(|e| Error::Store {
                path: self.path.clone(),
                why: format!("run {id}: summary: {e}"),
            })?;
            out.push(StoredRun { id, meta, summary });
        }
        Ok(out)
    }

    /// Run `id`.
    pub fn run(&self, id: i64) -> Result<StoredRun> {
        self.runs()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(Error::NoRun {
                id,
                path: self.path.clone(),
            })
    }

    /// The run of the same suite just before `run`, if any.
    pub fn previous(&self, run: &StoredRun) -> Result<Option<StoredRun>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM eval_runs WHERE suite = ?1 AND id < ?2 ORDER BY id DESC LIMIT 1",
                params![run.meta.suite, run.id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| store_err(&self.path, e))?;
        id.map(|id| self.run(id)).transpose()
    }

    /// The scored cases of run `id`, in the order they were run.
    pub fn cases(&self, id: i64) -> Result<Vec<CaseResult>> {
        let err = |e: rusqlite::Error| store_err(&self.path, e);
        let mut st = self
            .conn
            .prepare("SELECT result FROM eval_cases WHERE run_id = ?1 ORDER BY rowid")
            .map_err(err)?;
        let rows = st.query_map([id], |r| r.get::<_, String>(0)).map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let text = row.map_err(err)?;
            out.push(serde_json::from_str(&text).map_err(|e| Error::Store {
                path: self.path.clone(),
                why: format!("run {id}: a case: {e}"),
            })?);
        }
        Ok(out)
    }
}

fn store_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// JSON of the stored types, one signature for the closure above.
mod erased {
    pub trait Ser {
        fn json(&self) -> Result<String, String>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> Result<String, String> {
            serde_json::to_string(self).map_err(|e| e.to_string())
        }
    }
}
