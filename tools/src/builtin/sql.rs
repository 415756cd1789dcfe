//! `sql_query`: one read-only SELECT against a SQLite database the user points to (tickets,
//! inventory), with a row limit. The connection is opened read-only and `query_only`, the
//! statement must be a single read-only statement, and a progress handler stops it at the
//! deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use crate::tool::{Tool, ToolFuture, ToolSpec};
use crate::{Result, ToolError};

/// `sql_query(sql)` over one database file.
pub struct SqlQuery {
    spec: ToolSpec,
    db: Arc<PathBuf>,
    max_rows: usize,
    deadline: Duration,
}

impl SqlQuery {
    /// The tool over `db` (which must exist), returning at most `max_rows` rows and stopping
    /// a statement after `deadline`.
    pub fn new(db: &Path, max_rows: usize, deadline: Duration) -> Result<Self> {
        let spec = ToolSpec::new(
            "sql_query",
            "Run one read-only SQL SELECT on the tickets/inventory SQLite database and return the rows.",
            json!({
                "type": "object",
                "properties": {
                    "sql": {"type": "string", "minLength": 1, "description": "One SELECT statement (SQLite dialect)."}
                },
                "required": ["sql"],
                "additionalProperties": false
            }),
        )?;
        // Fail at set-up, with the path, rather than at the first call.
        open(db).map_err(|why| ToolError::BadSpec {
            tool: "sql_query".into(),
            why,
        })?;
        Ok(SqlQuery {
            spec,
            db: Arc::new(db.to_path_buf()),
            max_rows: max_rows.max(1),
            deadline,
        })
    }

    /// The tables and their `CREATE` statements, for the model's instructions.
    pub fn schema(&self) -> std::result::Result<String, String> {
        let conn = open(&self.db)?;
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_master WHERE type IN ('table','view') AND sql IS NOT NULL ORDER BY name")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(|e| e.to_string())?);
        }
        Ok(out.join(";\n"))
    }
}

impl Tool for SqlQuery {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Value) -> ToolFuture<'_> {
        Box::pin(async move {
            let sql = args["sql"].as_str().unwrap_or_default().to_string();
            let (db, max_rows, deadline) = (Arc::clone(&self.db), self.max_rows, self.deadline);
            tokio::task::spawn_blocking(move || run(&db, &sql, max_rows, deadline))
                .await
                .map_err(|e| ToolError::failed("sql_query", e))?
                .map_err(|why| ToolError::failed("sql_query", why))
        })
    }
}

fn open(db: &Path) -> std::result::Result<Connection, String> {
    if !db.is_file() {
        return Err(format!("{}: no such database file", db.display()));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", db.display()))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| format!("{}: {e}", db.display()))?;
    // ATTACH counts as read-only to SQLite, and would let a query read any database file.
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)
        .map_err(|e| format!("{}: {e}", db.display()))?;
    Ok(conn)
}

/// The first word of a statement, after whitespace and comments.
fn first_keyword(sql: &str) -> &str {
    let mut s = sql.trim_start();
    loop {
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    &s[..end]
}

fn run(
    db: &Path,
    sql: &str,
    max_rows: usize,
    deadline: Duration,
) -> std::result::Result<Value, String> {
    let conn = open(db)?;
    let sql = sql.trim().trim_end_matches(';').trim();
    // A second statement after the first is refused by `prepare` (rusqlite checks SQLite's
    // tail), so `SELECT 1; DROP TABLE t` never runs its second half.
    let first = first_keyword(sql).to_ascii_uppercase();
    if !matches!(first.as_str(), "SELECT" | "WITH" | "VALUES") {
        return Err(format!(
            "only SELECT queries are allowed (this statement starts with `{first}`)"
        ));
    }
    let mut stmt = conn.prepare(sql).map_err(|e| format!("SQL error: {e}"))?;
    if !stmt.readonly() {
        return Err("only read-only statements (SELECT, WITH ... SELECT) are allowed".into());
    }
    let started = Instant::now();
    conn.progress_handler(10_000, Some(move || started.elapsed() > deadline));
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let mut rows = stmt.query([]).map_err(|e| format!("SQL error: {e}"))?;
    let mut out = Vec::new();
    let mut truncated = false;
    loop {
        let row = match rows.next() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                return Err(format!("query stopped after {} ms", deadline.as_millis()));
            }
            Err(e) => return Err(format!("SQL error: {e}")),
        };
        if out.len() == max_rows {
            truncated = true;
            break;
        }
        let mut vals = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let v = match row.get_ref(i).map_err(|e| e.to_string())? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => json!(n),
                ValueRef::Real(f) => json!(f),
                ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => json!(format!("<{} bytes of binary data>", b.len())),
            };
            vals.push(v);
        }
        out.push(Value::Array(vals));
    }
    Ok(json!({"columns": columns, "rows": out, "truncated": truncated, "row_limit": max_rows}))
}
