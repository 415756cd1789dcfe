//! Tickets in and triaged records out, resumable.
//!
//! Input is JSONL (one object per line) or CSV/TSV (a header row; every cell a string). A
//! ticket's id is its `id`, `ticket_id`, `key` or `number` field, else `line-N`; two tickets
//! with one id are an error, since the id is what makes a rerun skip finished work.
//!
//! The output file is the record of what is finished ([`Output`]): a ticket is done when its
//! line is in it. Each ticket's lines are written at once and synced before the next ticket
//! starts, so a crash loses at most the ticket in flight; a torn last line (a crash inside
//! the write) is cut off when the file is reopened, and that ticket is triaged again.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::TaskError;

/// One ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// Its id.
    pub id: String,
    /// Its fields, as given.
    pub fields: Map<String, Value>,
    /// 1-based line of the input (the data row for CSV).
    pub line: usize,
}

const ID_FIELDS: [&str; 4] = ["id", "ticket_id", "key", "number"];

fn io(path: &Path, e: impl std::fmt::Display) -> TaskError {
    TaskError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads `path` (`.csv` / `.tsv` as CSV, anything else as JSONL).
pub fn read(path: &Path) -> Result<Vec<Ticket>, TaskError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let tickets = match ext.as_str() {
        "csv" | "tsv" => read_csv(path, if ext == "tsv" { b'\t' } else { b',' })?,
        _ => read_jsonl(path)?,
    };
    let mut seen = HashSet::new();
    for t in &tickets {
        if !seen.insert(t.id.clone()) {
            return Err(TaskError::Input {
                path: path.to_path_buf(),
                line: t.line,
                message: format!("ticket id `{}` appears twice", t.id),
            });
        }
    }
    Ok(tickets)
}

fn ticket(fields: Map<String, Value>, line: usize) -> Ticket {
    let id = ID_FIELDS
        .iter()
        .find_map(|k| match fields.get(*k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| format!("line-{line}"));
    Ticket { id, fields, line }
}

fn read_jsonl(path: &Path) -> Result<Vec<Ticket>, TaskError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TaskError::Input {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => out.push(ticket(m, i + 1)),
            Ok(_) => return Err(bad("a ticket must be a JSON object".into())),
            Err(e) => return Err(bad(format!("not JSON: {e}"))),
        }
    }
    Ok(out)
}

fn read_csv(path: &Path, delimiter: u8) -> Result<Vec<Ticket>, TaskError> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_path(path)
        .map_err(|e| io(path, e))?;
    let headers = r.headers().map_err(|e| io(path, e))?.clone();
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| TaskError::Input {
            path: path.to_path_buf(),
            line: e.position().map_or(0, |p| p.line() as usize),
            message: e.to_string(),
        })?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let fields: Map<String, Value> = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
            .collect();
        out.push(ticket(fields, line));
    }
    Ok(out)
}

/// The output file, opened for appending after its finished work was read.
pub struct Output {
    path: PathBuf,
    file: std::fs::File,
    /// Keys of the work already in it.
    pub done: HashSet<String>,
}

/// Which key a record line marks as finished, if any.
pub type DoneKey<'a> = &'a dyn Fn(&Value) -> Option<String>;

impl Output {
    /// Opens (creating) `path` and reads which work is finished: `done_key` says which key a
    /// line marks done. Whatever follows the last such line (a torn write, or lines of work
    /// whose end marker never came) is cut off, so that work is redone without duplicates.
    pub fn open(path: &Path, done_key: DoneKey<'_>) -> Result<Output, TaskError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let mut done = HashSet::new();
        let text = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(path, e)),
        };
        let mut keep = 0;
        let mut at = 0;
        for (i, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            at += line.len();
            if !line.ends_with(b"\n") {
                break; // torn
            }
            let line = String::from_utf8_lossy(line);
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).map_err(|e| TaskError::Input {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!(
                    "not a record this command wrote ({e}); move the file away or pick another --out"
                ),
            })?;
            if let Some(key) = done_key(&v) {
                done.insert(key);
                keep = at;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        if keep < text.len() {
            tracing::warn!(path = %path.display(), bytes = text.len() - keep, "cutting unfinished records left by an interrupted run");
            file.set_len(keep as u64).map_err(|e| io(path, e))?;
        }
        Ok(Output {
            path: path.to_path_buf(),
            file,
            done,
        })
    }

    /// Appends records, one per line, in one write, and syncs them to disk.
    pub fn append(&mut self, records: &[Value]) -> Result<(), TaskError> {
        let mut text = String::new();
        for r in records {
            text.push_str(&r.to_string());
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tickets_read_from_jsonl_and_csv_with_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let j = tmp.path().join("t.jsonl");
        std::fs::write(
            &j,
            "{\"id\": \"INC-1\", \"body\": \"a\"}\n\n{\"number\": 7}\n{\"body\": \"x\"}\n",
        )
        .unwrap();
        let t = read(&j).unwrap();
        let ids: Vec<&str> = t.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["INC-1", "7", "line-4"]);

        let c = tmp.path().join("t.csv");
        std::fs::write(&c, "id,subject\nA-1,\"disk, full\"\nA-2,vpn\n").unwrap();
        let t = read(&c).unwrap();
        assert_eq!(t[0].fields["subject"], json!("disk, full"));
        assert_eq!((t[1].id.as_str(), t[1].line), ("A-2", 3));

        std::fs::write(&j, "{\"id\": 1}\n[1]\n").unwrap();
        assert_eq!(
            read(&j).unwrap_err().to_string(),
            format!("{}:2: a ticket must be a JSON object", j.display())
        );
        std::fs::write(&j, "{\"id\": 1}\n{\"id\": \"1\"}\n").unwrap();
        assert!(read(&j)
            .unwrap_err()
            .to_string()
            .ends_with(":2: ticket id `1` appears twice"));
    }

    #[test]
    fn the_output_resumes_and_cuts_a_torn_line() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("out/triaged.jsonl");
        let key = |v: &Value| v["ticket"].as_str().map(str::to_string);
        let mut o = Output::open(&p, &key).unwrap();
        assert!(o.done.is_empty());
        o.append(&[json!({"ticket": "A-1"})]).unwrap();
        drop(o);
        // A crash in the middle of the second write.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"ticket\": \"A-2\", \"rec").unwrap();
        drop(f);
        let mut o = Output::open(&p, &key).unwrap();
        assert_eq!(o.done, HashSet::from(["A-1".to_string()]));
        o.append(&[json!({"ticket": "A-2"})]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "{\"ticket\":\"A-1\"}\n{\"ticket\":\"A-2\"}\n");

        std::fs::write(&p, "hello\n").unwrap();
        assert!(Output::open(&p, &key).is_err());

        // Lines of unfinished work (no end marker after them) are cut too.
        std::fs::write(&p, "{\"w\":1,\"done\":true}\n{\"w\":2,\"event\":0}\n").unwrap();
        let marker = |v: &Value| (v["done"] == true).then(|| v["w"].to_string());
        let o = Output::open(&p, &marker).unwrap();
        assert_eq!(o.done, HashSet::from(["1".to_string()]));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"w\":1,\"done\":true}\n"
        );
    }
}
