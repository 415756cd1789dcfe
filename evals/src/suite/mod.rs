//! A suite is a folder: `suite.toml` (what task it runs and how it is scored), `cases.jsonl`
//! (one case a line: an input, the gold answer, its support), and optionally an output schema,
//! a tool list and a system prompt. The bundled suites live in `evals/suites/`; a user's
//! suite is the same kind of folder anywhere.
//!
//! ```toml
//! name = "triage"
//! task = "triage"              # triage | ask | extract | tool-calls
//! description = "..."
//! cases = "cases.jsonl"
//! schema = "schema.json"       # optional: else the task's built-in output schema
//! docs = ["../../../examples/docs"]  # folders indexed for search_docs / read_doc
//! base = "../../.."            # what the cases' support paths are relative to
//! tools = "tools.json"         # tool-calls: the tools on offer
//! system = "system.md"         # optional: the system prompt (tool-calls)
//!
//! [scoring]
//! fields = ["category", "priority", "team"]  # compared one by one (triage: in the record,
//!                                            # extract: in each matched record)
//! f1 = ["category"]            # also scored as macro F1 over the cases
//! key = ["timestamp", "level"] # extract: the fields that pair a record with a gold record
//! text = ["message"]           # compared as text (token F1 >= text_threshold), not exactly
//! citation = "runbook_citation" # triage: the field holding a cited passage id
//! ```
//!
//! Paths in `suite.toml` are relative to the suite folder. Loading checks everything a run
//! would trip on later (missing files, bad JSON, a gold record the schema rejects, a support
//! path that does not exist) and names the file and line.

mod case;

pub use case::{Case, Support};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// What a suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// `lfm-agent triage` on each case's ticket; scored per field of the record.
    Triage,
    /// `lfm-agent ask` on each case's question; scored on citations and key points.
    Ask,
    /// `lfm-agent extract` on each case's log text; scored per record and field.
    Extract,
    /// One model turn that must call a tool; scored on the tool and its arguments.
    ToolCalls,
}

impl TaskKind {
    /// The name used in `suite.toml` and reports.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Triage => "triage",
            TaskKind::Ask => "ask",
            TaskKind::Extract => "extract",
            TaskKind::ToolCalls => "tool-calls",
        }
    }
}

/// How a suite's outputs are compared with the gold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    /// Fields compared one by one.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Fields also scored as macro F1 over the cases (categorical labels).
    #[serde(default)]
    pub f1: Vec<String>,
    /// Extract: the fields that pair an output record with a gold record.
    #[serde(default)]
    pub key: Vec<String>,
    /// Fields compared as text: a match when the token F1 is at least `text_threshold`.
    #[serde(default)]
    pub text: Vec<String>,
    /// The token F1 at which a text field counts as right (default 0.5).
    #[serde(default)]
    pub text_threshold: Option<f64>,
    /// Triage: the record field holding the id of a cited passage.
    #[serde(default)]
    pub citation: Option<String>,
    /// Ask: the share of a key point's content words the answer must hold (default 0.6).
    #[serde(default)]
    pub key_point_threshold: Option<f64>,
}

impl Scoring {
    /// The text-field threshold.
    pub fn text_threshold(&self) -> f64 {
        self.text_threshold.unwrap_or(0.5)
    }

    /// The key-point threshold.
    pub fn key_point_threshold(&self) -> f64 {
        self.key_point_threshold.unwrap_or(0.6)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: Option<String>,
    task: TaskKind,
    #[serde(default)]
    description: String,
    #[serde(default = "default_cases")]
    cases: PathBuf,
    schema: Option<PathBuf>,
    #[serde(default)]
    docs: Vec<PathBuf>,
    base: Option<PathBuf>,
    tools: Option<PathBuf>,
    system: Option<PathBuf>,
    #[serde(default)]
    scoring: Scoring,
}

fn default_cases() -> PathBuf {
    PathBuf::from("cases.jsonl")
}

/// A tool on offer in a `tool-calls` suite.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolDef {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: Value,
}

/// A loaded, checked suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Its name (`suite.toml` `name`, else the folder's name).
    pub name: String,
    /// The task it runs.
    pub task: TaskKind,
    /// One line about it.
    pub description: String,
    /// The folder.
    pub dir: PathBuf,
    /// The cases, in file order.
    pub cases: Vec<Case>,
    /// The output schema, when the suite sets one (else the task's built-in one).
    pub schema: Option<Value>,
    /// Docs folders to index, absolute.
    pub docs: Vec<PathBuf>,
    /// Tool-calls: the tools on offer.
    pub tools: Vec<ToolDef>,
    /// The system prompt, when the suite sets one.
    pub system: Option<String>,
    /// How it is scored.
    pub scoring: Scoring,
}

impl Suite {
    /// Finds `name_or_path`: a folder holding `suite.toml`, else `suites/NAME`.
    pub fn locate(name_or_path: &str, suites: &Path) -> Result<PathBuf> {
        let direct = PathBuf::from(name_or_path);
        if direct.join("suite.toml").is_file() {
            return Ok(direct);
        }
        let bundled = suites.join(name_or_path);
        if bundled.join("suite.toml").is_file() {
            return Ok(bundled);
        }
        Err(Error::BadSuite {
            path: direct,
            line: 0,
            why: format!(
                "no suite: neither it nor {} holds a suite.toml (bundled suites: {})",
                bundled.display(),
                Self::list(suites).unwrap_or_default().join(", ")
            ),
        })
    }

    /// The names of the suites under `suites` (folders with a `suite.toml`), sorted.
    pub fn list(suites: &Path) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(suites).map_err(|source| Error::Io {
            path: suites.to_path_buf(),
            source,
        })?;
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("suite.toml").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Loads and checks the suite in `dir`.
    pub fn load(dir: &Path) -> Result<Suite> {
        let toml_path = dir.join("suite.toml");
        let text = read(&toml_path)?;
        let raw: RawSuite = toml::from_str(&text).map_err(|e| bad(&toml_path, 0, e))?;
        let name = raw.name.clone().unwrap_or_else(|| {
            dir.file_name()
                .map_or("suite".into(), |n| n.to_string_lossy().into_owned())
        });
        let at = |p: &Path| dir.join(p);
        let schema = match &raw.schema {
            Some(p) => Some(read_json(&at(p))?),
            None => None,
        };
        if let Some(s) = &schema {
            compile(s).map_err(|why| bad(&at(raw.schema.as_deref().unwrap_or(dir)), 0, why))?;
        }
        let mut docs = Vec::new();
        for d in &raw.docs {
            let p = at(d);
            docs.push(canonical(&p).map_err(|why| bad(&toml_path, 0, format!("docs: {why}")))?);
        }
        let base = match &raw.base {
            Some(b) => at(b),
            None => dir.to_path_buf(),
        };
        let tools = match &raw.tools {
            Some(p) => load_tools(&at(p))?,
            None => Vec::new(),
        };
        let system = match &raw.system {
            Some(p) => Some(read(&at(p))?),
            None => None,
        };
        check_scoring(&raw, &toml_path)?;
        let cases_path = at(&raw.cases);
        let cases = case::load(&cases_path, &base)?;
        let suite = Suite {
            name,
            task: raw.task,
            description: raw.description,
            dir: dir.to_path_buf(),
            cases,
            schema,
            docs,
            tools,
            system,
            scoring: raw.scoring,
        };
        suite.check_cases(&cases_path)?;
        Ok(suite)
    }

    /// The schema the task's output must satisfy: the suite's, else the task's built-in one
    /// (triage, ask); `None` for tool calls, whose schemas are the tools'. For `extract` it is
    /// the schema of one record.
    pub fn output_schema(&self) -> Result<Option<Value>> {
        if self.schema.is_some() {
            return Ok(self.schema.clone());
        }
        let task = match self.task {
            TaskKind::Triage => lfm_prompts::Task::Triage,
            TaskKind::Ask => lfm_prompts::Task::Ask,
            TaskKind::Extract | TaskKind::ToolCalls => return Ok(None),
        };
        lfm_prompts::Prompts::builtin(task)
            .default_schema()
            .map_err(|e| {
                bad(
                    &self.dir,
                    0,
                    format!("the built-in {} schema: {e}", task.name()),
                )
            })
    }

    /// Checks each case against the task: the input it needs, gold that fits the schema and
    /// the tools.
    fn check_cases(&self, path: &Path) -> Result<()> {
        let schema = self.output_schema()?;
        if self.task == TaskKind::Extract && schema.is_none() {
            return Err(bad(
                &self.dir.join("suite.toml"),
                0,
                "schema: an extract suite needs the schema of one record",
            ));
        }
        let validator = match &schema {
            Some(s) => Some(compile(s).map_err(|why| bad(path, 0, why))?),
            None => None,
        };
        for c in &self.cases {
            let fail = |why: String| bad(path, c.line, format!("case {}: {why}", c.id));
            let need = |field: &str| match c.input.get(field) {
                Some(Value::String(_)) => Ok(()),
                _ => Err(fail(format!("input.{field} must be a string"))),
            };
            match self.task {
                TaskKind::Triage => {
                    if !c.input.is_object() {
                        return Err(fail("input must be the ticket object".into()));
                    }
                    // The gold holds only the scored fields; each must be one the schema allows.
                    let props = schema.as_ref().map(|s| &s["properties"]);
                    for (k, g) in c.gold.as_object().into_iter().flatten() {
                        let Some(sub) = props.and_then(|p| p.get(k)) else {
                            return Err(fail(format!(
                                "gold.{k} is not a property of the output schema"
                            )));
                        };
                        if compile(sub).is_ok_and(|v| !v.is_valid(g)) {
                            return Err(fail(format!(
                                "gold.{k} = {g} is not allowed by the output schema"
                            )));
                        }
                    }
                }
                TaskKind::Ask => need("question")?,
                TaskKind::Extract => {
                    need("text")?;
                    let Some(records) = c.gold.as_array() else {
                        return Err(fail("gold must be the list of records".into()));
                    };
                    if let Some(v) = &validator {
                        for (i, r) in records.iter().enumerate() {
                            if let Some(e) = v.iter_errors(r).next() {
                                return Err(fail(format!("gold[{i}] fails the schema: {e}")));
                            }
                        }
                    }
                }
                TaskKind::ToolCalls => {
                    need("request")?;
                    let name = c.gold["name"].as_str().unwrap_or_default();
                    let Some(tool) = self.tools.iter().find(|t| t.name == name) else {
                        let names: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
                        return Err(fail(format!(
                            "gold.name `{name}` is not one of the suite's tools ({})",
                            names.join(", ")
                        )));
                    };
                    let v = compile(&tool.parameters)
                        .map_err(|why| fail(format!("tool {name}: {why}")))?;
                    if let Some(e) = v.iter_errors(&c.gold["arguments"]).next() {
                        return Err(fail(format!("gold.arguments fail {name}'s schema: {e}")));
                    }
                    for k in c.keywords.keys() {
                        if !c.gold["arguments"].get(k).is_some_and(Value::is_string) {
                            return Err(fail(format!(
                                "keywords.{k}: not a string argument of the gold call"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_scoring(raw: &RawSuite, path: &Path) -> Result<()> {
    let s = &raw.scoring;
    for f in s.f1.iter().chain(&s.text).chain(&s.key) {
        if !s.fields.contains(f) {
            return Err(bad(
                path,
                0,
                format!("scoring: `{f}` must also be listed in scoring.fields"),
            ));
        }
    }
    for (name, v) in [
        ("text_threshold", s.text_threshold),
        ("key_point_threshold", s.key_point_threshold),
    ] {
        if let Some(x) = v {
            if !(0.0..=1.0).contains(&x) {
                return Err(bad(
                    path,
                    0,
                    format!("scoring.{name} = {x}: must be between 0 and 1"),
                ));
            }
        }
    }
    match raw.task {
        TaskKind::Extract if s.key.is_empty() => Err(bad(
            path,
            0,
            "scoring.key: an extract suite needs the fields that pair records",
        )),
        TaskKind::ToolCalls if raw.tools.is_none() => Err(bad(
            path,
            0,
            "tools: a tool-calls suite needs its tools file",
        )),
        _ => Ok(()),
    }
}

fn load_tools(path: &Path) -> Result<Vec<ToolDef>> {
    let v = read_json(path)?;
    let tools: Vec<ToolDef> = serde_json::from_value(v).map_err(|e| {
        bad(
            path,
            0,
            format!("not a list of {{name, description, parameters}}: {e}"),
        )
    })?;
    let mut seen = BTreeSet::new();
    for t in &tools {
        if !seen.insert(t.name.as_str()) {
            return Err(bad(path, 0, format!("tool `{}` is listed twice", t.name)));
        }
        compile(&t.parameters).map_err(|why| bad(path, 0, format!("tool `{}`: {why}", t.name)))?;
    }
    Ok(tools)
}

/// Compiles a JSON Schema (draft 2020-12).
pub fn compile(schema: &Value) -> std::result::Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .map_err(|e| format!("not a valid JSON Schema: {e}"))
}

fn canonical(p: &Path) -> std::result::Result<PathBuf, String> {
    std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))
}

pub(crate) fn bad(path: &Path, line: usize, why: impl ToString) -> Error {
    Error::BadSuite {
        path: path.to_path_buf(),
        line,
        why: why.to_string(),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Value> {
    serde_json::from_str(&read(path)?).map_err(|e| bad(path, 0, format!("not JSON: {e}")))
}
