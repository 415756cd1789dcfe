//! `search_docs` and `read_doc` over a retrieval index. `read_doc` reads only files the
//! index was built from (by their indexed path), so no argument can reach a file outside the
//! indexed roots.

use std::sync::Arc;

use lfm_retrieval::{DocKind, Retriever, SearchRequest};
use serde_json::{json, Value};

use crate::tool::{Tool, ToolFuture, ToolSpec};
use crate::{Result, ToolError};

/// Most lines `read_doc` returns from one call.
pub const MAX_READ_LINES: usize = 400;

/// `search_docs(query, k?, path?, type?)`: the best chunks, with their citation locations.
pub struct SearchDocs {
    spec: ToolSpec,
    retriever: Arc<Retriever>,
}

impl SearchDocs {
    /// The tool over an opened index.
    pub fn new(retriever: Arc<Retriever>) -> Result<Self> {
        let kinds: Vec<&str> = DocKind::ALL.iter().map(|k| k.name()).collect();
        Ok(SearchDocs {
            spec: ToolSpec::new(
                "search_docs",
                "Search the internal documentation (runbooks, policies, logs, inventories) and return the most relevant passages with their source.",
                json!({
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "maxLength": 300, "description": "What to look for, in plain words."},
                        "k": {"type": "integer", "minimum": 1, "maximum": 20, "description": "How many passages (default 5)."},
                        "path": {"type": "string", "description": "Only files whose path matches this glob, e.g. **/network/*.md"},
                        "type": {"type": "string", "enum": kinds, "description": "Only files of this type."}
                    },
                    "required": ["query"],
                    "additionalProperties": false
                }),
            )?,
            retriever,
        })
    }
}

impl Tool for SearchDocs {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Value) -> ToolFuture<'_> {
        Box::pin(async move {
            let name = self.spec.name.as_str();
            let mut req = SearchRequest::new(
                args["query"].as_str().unwrap_or_default(),
                args["k"].as_u64().unwrap_or(5) as usize,
            );
            req.snippets = false;
            if let Some(p) = args["path"].as_str() {
                req.path_globs = vec![p.to_string()];
            }
            if let Some(t) = args["type"].as_str() {
                req.kinds = DocKind::from_name(t).into_iter().collect();
            }
            let r = Arc::clone(&self.retriever);
            let hits = tokio::task::spawn_blocking(move || r.search(&req))
                .await
                .map_err(|e| ToolError::failed(name, e))?
                .map_err(|e| ToolError::failed(name, e))?;
            let results: Vec<Value> = hits
                .into_iter()
                .map(|h| {
                    json!({
                        "id": h.chunk.chunk_id,
                        "source": h.chunk.location(),
                        "section": h.chunk.trail.join(" > "),
                        "text": h.chunk.text,
                    })
                })
                .collect();
            Ok(json!({ "results": results }))
        })
    }
}

/// `read_doc(id)` or `read_doc(path, start_line, end_line)`: one indexed chunk, or a line
/// range of an indexed file.
pub struct ReadDoc {
    spec: ToolSpec,
    retriever: Arc<Retriever>,
}

impl ReadDoc {
    /// The tool over an opened index.
    pub fn new(retriever: Arc<Retriever>) -> Result<Self> {
        Ok(ReadDoc {
            spec: ToolSpec::new(
                "read_doc",
                "Read a passage of the internal documentation: a search result by its id, or lines of an indexed file by its path.",
                json!({
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "maxLength": 400, "description": "A passage id from search_docs, e.g. docs/vpn.md#3"},
                        "path": {"type": "string", "maxLength": 400, "description": "An indexed file's path, as search_docs reports it."},
                        "start_line": {"type": "integer", "minimum": 1, "maximum": 100000000},
                        "end_line": {"type": "integer", "minimum": 1, "maximum": 100000000}
                    },
                    "additionalProperties": false
                }),
            )?,
            retriever,
        })
    }
}

impl Tool for ReadDoc {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Value) -> ToolFuture<'_> {
        Box::pin(async move {
            let name = self.spec.name.as_str();
            let r = Arc::clone(&self.retriever);
            tokio::task::spawn_blocking(move || read(&r, &args))
                .await
                .map_err(|e| ToolError::failed(name, e))?
                .map_err(|why| ToolError::failed(name, why))
        })
    }
}

fn read(r: &Retriever, args: &Value) -> std::result::Result<Value, String> {
    // The schema has no `oneOf` (constrained decoding cannot enforce `not`): check here.
    if args.get("id").is_some() == args.get("path").is_some() {
        return Err("give either `id` (from search_docs) or `path`, not both or neither".into());
    }
    if let Some(id) = args["id"].as_str() {
        let c = r.chunk(id).map_err(|e| e.to_string())?.ok_or_else(|| {
            format!("no passage with id `{id}`; use an id that search_docs returned")
        })?;
        return Ok(
            json!({"id": c.chunk_id, "source": c.location(), "section": c.trail.join(" > "), "text": c.text}),
        );
    }
    let path = args["path"].as_str().unwrap_or_default();
    let files = r.files().map_err(|e| e.to_string())?;
    let Some((_, abs)) = files.iter().find(|(p, _)| p == path) else {
        return Err(format!(
            "`{path}` is not an indexed file; use a path that search_docs returned"
        ));
    };
    // The file must still be the one indexed (not replaced by a link to somewhere else).
    let real = std::fs::canonicalize(abs).map_err(|e| format!("{path}: {e}"))?;
    if &real != abs {
        return Err(format!("{path}: the file moved since it was indexed"));
    }
    let bytes = std::fs::read(&real).map_err(|e| format!("{path}: {e}"))?;
    if bytes.contains(&0) {
        return Err(format!(
            "{path}: not a text file (read PDFs through search_docs ids)"
        ));
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = args["start_line"].as_u64().unwrap_or(1).max(1) as usize;
    let end = args["end_line"]
        .as_u64()
        .map_or(start + 79, |e| e as usize)
        .min(lines.len())
        .min(start + MAX_READ_LINES - 1);
    if start > lines.len() {
        return Err(format!(
            "{path} has {} lines; start_line {start} is past the end",
            lines.len()
        ));
    }
    if end < start {
        return Err(format!("end_line {end} is before start_line {start}"));
    }
    let body: Vec<String> = (start..=end)
        .map(|n| format!("{n}: {}", lines[n - 1]))
        .collect();
    Ok(json!({
        "source": format!("{path}#L{start}-L{end}"),
        "lines": lines.len(),
        "text": body.join("\n"),
    }))
}
