//! One case a JSONL line: `{"id", "input", "gold", "support", "keywords", "key_points"}`.
//! The runbook questions of `evals/retrieval/` are read as they are: `question` stands for
//! `input.question`, `relevant` for `support`, and `answer` for `gold.answer`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::bad;
use crate::error::{Error, Result};

/// A passage that supports the gold answer: a file (canonical path), and optionally its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Support {
    /// Canonical absolute path.
    pub path: PathBuf,
    /// First and last line (1-based, inclusive); `None` is the whole file.
    pub lines: Option<(u32, u32)>,
}

impl Support {
    /// Whether a passage of `path` spanning `lines` overlaps this support.
    pub fn overlaps(&self, path: &Path, lines: (u32, u32)) -> bool {
        self.path == path && self.lines.is_none_or(|(a, b)| lines.0 <= b && a <= lines.1)
    }
}

/// One case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Unique within the suite.
    pub id: String,
    /// 1-based line in the cases file.
    pub line: usize,
    /// What the task is given (a ticket, `{question}`, `{file, text}`, `{request}`).
    pub input: Value,
    /// The right output (scored fields, records, or `{name, arguments}`).
    pub gold: Value,
    /// Where the docs hold the support for the answer.
    pub support: Vec<Support>,
    /// Tool calls: words a free-text argument must contain, instead of equality.
    pub keywords: BTreeMap<String, Vec<String>>,
    /// Ask: points a good answer makes.
    pub key_points: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    id: String,
    input: Option<Value>,
    question: Option<String>,
    gold: Option<Value>,
    answer: Option<String>,
    #[serde(default, alias = "relevant")]
    support: Vec<RawSupport>,
    #[serde(default)]
    keywords: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    key_points: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupport {
    path: PathBuf,
    lines: Option<(u32, u32)>,
}

/// Reads the cases of `path`; support paths are relative to `base`.
pub(super) fn load(path: &Path, base: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawCase = serde_json::from_str(line).map_err(|e| bad(path, n, e))?;
        if raw.id.trim().is_empty() || !ids.insert(raw.id.clone()) {
            return Err(bad(
                path,
                n,
                format!("case id `{}` is empty or repeated", raw.id),
            ));
        }
        let input = match (raw.input, raw.question) {
            (Some(v), None) => v,
            (None, Some(q)) => json!({ "question": q }),
            _ => {
                return Err(bad(
                    path,
                    n,
                    format!("case {}: give exactly one of input and question", raw.id),
                ))
            }
        };
        let gold = match (raw.gold, raw.answer) {
            (Some(v), None) => v,
            (None, Some(a)) => json!({ "answer": a }),
            (None, None) => Value::Null,
            (Some(_), Some(_)) => {
                return Err(bad(
                    path,
                    n,
                    format!("case {}: give gold or answer, not both", raw.id),
                ))
            }
        };
        let mut support = Vec::new();
        for s in raw.support {
            let p = base.join(&s.path);
            let abs = std::fs::canonicalize(&p).map_err(|e| {
                bad(
                    path,
                    n,
                    format!("case {}: support {}: {e}", raw.id, p.display()),
                )
            })?;
            if let Some((a, b)) = s.lines {
                if a == 0 || b < a {
                    return Err(bad(
                        path,
                        n,
                        format!(
                            "case {}: support lines [{a}, {b}] are not a 1-based range",
                            raw.id
                        ),
                    ));
                }
            }
            support.push(Support {
                path: abs,
                lines: s.lines,
            });
        }
        out.push(Case {
            id: raw.id,
            line: n,
            input,
            gold,
            support,
            keywords: raw.keywords,
            key_points: raw.key_points,
        });
    }
    if out.is_empty() {
        return Err(bad(path, 0, "no cases"));
    }
    Ok(out)
}
