//! `lfm-agent.toml`: models, index, traces, tools and limits.
//!
//! Read in two stages (STYLE.md #3): [`RawConfig`] mirrors the file (every key optional,
//! unknown keys refused with their line), and [`Config`] is the checked result with defaults
//! filled in and paths resolved against the file's folder. Flags override the result field
//! by field (`cli/agent_args.rs`).
//!
//! ```toml
//! [model]
//! path = "models/LFM2.5-1.2B-Thinking"     # HF folder, GGUF file or pulled repo (OWNER/NAME[:FILE]); unset: the demo synthesises one
//! writer = "models/LFM2.5-1.2B-Instruct"   # optional: writes final answers
//! # backend = "http://10.0.0.5:8000/v1"   # instead of path: an OpenAI-compatible server
//! # backend_model = "LiquidAI/LFM2.5-1.2B-Thinking"  # its model name (default: its first)
//! think_budget = 512                       # thinking tokens per turn (0: no thinking)
//! ctx = 16384
//! temperature = 0.1                        # also top_k, top_p, min_p, repetition_penalty, seed
//! draft = 4                                # prompt-lookup drafts of up to 4 tokens (temperature 0 only)
//!
//! [index]
//! path = ".lfm-agent/index"
//! docs = ["examples/docs"]
//!
//! [traces]
//! path = ".lfm-agent/traces.sqlite"
//!
//! [limits]
//! max_steps = 6
//! max_tokens = 4096
//! max_turn_tokens = 1024
//! wall_secs = 300
//! answer_retries = 2
//! tool_timeout_secs = 30
//! tool_output_chars = 6000
//! offer_tools = 12            # a task with more than 12 tools is offered this many, the most relevant
//!
//! [tools]
//! allow_programs = ["/usr/local/bin/host-owner"]
//! sql_db = "inventory.sqlite"
//! sql_max_rows = 50
//!
//! [[tools.command]]
//! name = "host_owner"
//! description = "Who owns a host."
//! program = "/usr/local/bin/host-owner"
//! args = ["--json"]
//! parameters = '{"type": "object", "properties": {"host": {"type": "string"}}, "required": ["host"]}'
//!
//! [[tools.mcp]]                # tools of a Model Context Protocol server (stdio)
//! name = "tickets"
//! program = "python3"          # a bare name is looked up on PATH; must be in allow_programs
//! args = ["mcp/tickets_server.py"]
//! env = { TICKETS_DB = "tickets.sqlite" }
//! tools = ["lookup_ticket"]    # optional: only these of its tools
//! prefix = ""                  # optional: put before its tools' names
//!
//! [tasks.triage]
//! tools = ["search_docs", "read_doc"]
//! schema = "my-triage.schema.json"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::runner::Limits;

/// The file name looked for in the working folder.
pub const FILE_NAME: &str = "lfm-agent.toml";

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[model]`
    #[serde(default)]
    pub model: RawModel,
    /// `[index]`
    #[serde(default)]
    pub index: RawIndex,
    /// `[traces]`
    #[serde(default)]
    pub traces: RawTraces,
    /// `[limits]`
    #[serde(default)]
    pub limits: RawLimits,
    /// `[tools]`
    #[serde(default)]
    pub tools: RawTools,
    /// `[tasks.*]`
    #[serde(default)]
    pub tasks: RawTasks,
    /// `prompts = "DIR"`: task prompt overrides (`DIR/<task>/system.md`, ...).
    pub prompts: Option<PathBuf>,
}

/// `[model]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // Each field is the key of the same name, documented in the module.
pub struct RawModel {
    pub path: Option<PathBuf>,
    pub backend: Option<String>,
    pub backend_model: Option<String>,
    pub writer: Option<PathBuf>,
    pub think_budget: Option<usize>,
    pub ctx: Option<usize>,
    pub dtype: Option<String>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub draft: Option<usize>,
}

/// `[index]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndex {
    /// Index folder.
    pub path: Option<PathBuf>,
    /// Default docs folders.
    pub docs: Option<Vec<PathBuf>>,
}

/// `[traces]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraces {
    /// Database file.
    pub path: Option<PathBuf>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // Keys documented in the module.
pub struct RawLimits {
    pub max_steps: Option<usize>,
    pub max_tokens: Option<usize>,
    pub max_turn_tokens: Option<usize>,
    pub wall_secs: Option<u64>,
    pub answer_retries: Option<usize>,
    pub tool_timeout_secs: Option<u64>,
    pub tool_output_chars: Option<usize>,
    pub offer_tools: Option<usize>,
}

/// `[tools]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTools {
    /// Programs command tools may run.
    #[serde(default)]
    pub allow_programs: Vec<PathBuf>,
    /// A SQLite database for `sql_query` (read-only).
    pub sql_db: Option<PathBuf>,
    /// Row limit of `sql_query`.
    pub sql_max_rows: Option<usize>,
    /// Command tools.
    #[serde(default)]
    pub command: Vec<RawCommand>,
    /// MCP servers whose tools are offered.
    #[serde(default)]
    pub mcp: Vec<RawMcp>,
}

/// `[[tools.mcp]]`: a Model Context Protocol server over stdio.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    /// Its name, in errors and logs.
    pub name: String,
    /// The program (no shell; a bare name is looked up on PATH); must be in `allow_programs`.
    pub program: PathBuf,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables added for it.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Only these of its tools (default: all).
    pub tools: Option<Vec<String>>,
    /// Put before its tools' names.
    #[serde(default)]
    pub prefix: String,
}

/// `[[tools.command]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    /// Tool name.
    pub name: String,
    /// For the model.
    pub description: String,
    /// The program (no shell).
    pub program: PathBuf,
    /// Fixed arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// JSON Schema of the parameters, as JSON text.
    pub parameters: String,
}

/// `[tasks]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTasks {
    /// `[tasks.triage]`
    #[serde(default)]
    pub triage: RawTask,
    /// `[tasks.ask]`
    #[serde(default)]
    pub ask: RawTask,
    /// `[tasks.extract]`
    #[serde(default)]
    pub extract: RawTask,
}

/// `[tasks.NAME]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    /// The tools the task may use (the only ones it is ever offered).
    pub tools: Option<Vec<String>>,
    /// The output schema (JSON file).
    pub schema: Option<PathBuf>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (`None`: defaults only).
    pub source: Option<PathBuf>,
    /// `[model]`, paths resolved.
    pub model: RawModel,
    /// Index folder.
    pub index: PathBuf,
    /// Default docs folders.
    pub docs: Vec<PathBuf>,
    /// Trace database.
    pub traces: PathBuf,
    /// Loop limits.
    pub limits: Limits,
    /// Tool call timeout.
    pub tool_timeout: Duration,
    /// Tool output cap in characters.
    pub tool_output_chars: usize,
    /// How many tools a task with more than [`lfm_tools::SELECT_ABOVE`] is offered (the most
    /// relevant to its input).
    pub offer_tools: usize,
    /// Programs command tools may run.
    pub allow_programs: Vec<PathBuf>,
    /// `sql_query` database.
    pub sql_db: Option<PathBuf>,
    /// `sql_query` row limit.
    pub sql_max_rows: usize,
    /// Command tools.
    pub commands: Vec<RawCommand>,
    /// MCP servers.
    pub mcp: Vec<lfm_tools::mcp::McpServerConfig>,
    /// Per task.
    pub triage: TaskConfig,
    /// Per task.
    pub ask: TaskConfig,
    /// Per task.
    pub extract: TaskConfig,
    /// Prompt overrides.
    pub prompts: Option<PathBuf>,
}

/// One task's settings.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    /// Its tools.
    pub tools: Vec<String>,
    /// Its schema file, if not the default.
    pub schema: Option<PathBuf>,
}

/// A configuration error, naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (the key, and for parse errors the line).
    pub message: String,
}

impl Config {
    /// Reads `path`; with `None`, `./lfm-agent.toml` if it exists, else the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(FILE_NAME), false),
        };
        if !path.exists() {
            if explicit {
                return Err(ConfigError {
                    path,
                    message: "no such file".into(),
                });
            }
            return Self::check(RawConfig::default(), None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path)
    }

    /// Parses `text` as the file at `path` (relative paths inside are resolved against its
    /// folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Self::check(raw, Some(path))
    }

    fn check(raw: RawConfig, source: Option<&Path>) -> Result<Config, ConfigError> {
        let base = source
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let at = |p: &PathBuf| -> PathBuf {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let bad = |key: &str, why: String| ConfigError {
            path: source
                .map(Path::to_path_buf)
                .unwrap_or_else(|| FILE_NAME.into()),
            message: format!("{key}: {why}"),
        };
        let mut model = raw.model.clone();
        // A model is a path relative to this file, or, when no such path exists, a pulled
        // repo (`OWNER/NAME[:FILE]`) as the path it was pulled to.
        let model_at = |p: &PathBuf| -> PathBuf {
            let joined = at(p);
            if joined.exists() {
                return joined;
            }
            let pulled = p
                .to_str()
                .filter(|s| !s.starts_with('.'))
                .and_then(|s| lfm_hub::Hub::from_env().ok()?.resolve(s).ok());
            pulled.unwrap_or(joined)
        };
        model.path = model.path.as_ref().map(model_at);
        model.writer = model.writer.as_ref().map(model_at);
        if model.ctx == Some(0) {
            return Err(bad("model.ctx", "must be at least 1".into()));
        }
        let d = Limits::default();
        let l = &raw.limits;
        let limits = Limits {
            max_steps: l.max_steps.unwrap_or(d.max_steps),
            max_tokens: l.max_tokens.unwrap_or(d.max_tokens),
            max_turn_tokens: l.max_turn_tokens.unwrap_or(d.max_turn_tokens),
            max_wall: l.wall_secs.map_or(d.max_wall, Duration::from_secs),
            answer_retries: l.answer_retries.unwrap_or(d.answer_retries),
        };
        for (key, v) in [
            ("limits.offer_tools", l.offer_tools.unwrap_or(1)),
            ("limits.max_steps", limits.max_steps),
            ("limits.max_tokens", limits.max_tokens),
            ("limits.max_turn_tokens", limits.max_turn_tokens),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        let mut names = std::collections::HashSet::new();
        for c in &raw.tools.command {
            if !names.insert(c.name.clone()) {
                return Err(bad(
                    "tools.command",
                    format!("tool `{}` is declared twice", c.name),
                ));
            }
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&c.parameters) {
                return Err(bad(
                    &format!("tools.command `{}` parameters", c.name),
                    format!("not JSON: {e}"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &raw.tools.mcp {
            if m.name.trim().is_empty() || !seen.insert(m.name.as_str()) {
                return Err(bad(
                    "tools.mcp",
                    format!("server name `{}` is empty or used twice", m.name),
                ));
            }
        }
        // A program is relative to this file; a bare name with no such file next to it is
        // looked up on PATH, as a shell does (`python3`, `npx`).
        let prog_at = |p: &PathBuf| -> PathBuf {
            let joined = at(p);
            if p.components().count() == 1 && p.is_relative() && !joined.exists() {
                p.clone()
            } else {
                joined
            }
        };
        let task = |t: &RawTask, default: &[&str]| TaskConfig {
            tools: t
                .tools
                .clone()
                .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect()),
            schema: t.schema.as_ref().map(at),
        };
        Ok(Config {
            source: source.map(Path::to_path_buf),
            model,
            index: raw
                .index
                .path
                .as_ref()
                .map_or_else(|| PathBuf::from(".lfm-agent/index"), at),
            docs: raw
                .index
                .docs
                .as_ref()
                .map(|d| d.iter().map(at).collect())
                .unwrap_or_default(),
            traces: raw
                .traces
                .path
                .as_ref()
                .map_or_else(|| PathBuf::from(".lfm-agent/traces.sqlite"), at),
            limits,
            tool_timeout: Duration::from_secs(raw.limits.tool_timeout_secs.unwrap_or(30)),
            tool_output_chars: raw.limits.tool_output_chars.unwrap_or(6000),
            offer_tools: raw.limits.offer_tools.unwrap_or(lfm_tools::SELECT_ABOVE),
            allow_programs: raw.tools.allow_programs.iter().map(prog_at).collect(),
            sql_db: raw.tools.sql_db.as_ref().map(at),
            sql_max_rows: raw.tools.sql_max_rows.unwrap_or(50),
            commands: raw
                .tools
                .command
                .iter()
                .map(|c| RawCommand {
                    program: prog_at(&c.program),
                    ..c.clone()
                })
                .collect(),
            mcp: raw
                .tools
                .mcp
                .iter()
                .map(|m| lfm_tools::mcp::McpServerConfig {
                    name: m.name.clone(),
                    program: prog_at(&m.program),
                    args: m.args.clone(),
                    env: m.env.clone(),
                    tools: m.tools.clone(),
                    prefix: m.prefix.clone(),
                })
                .collect(),
            triage: task(&raw.tasks.triage, &["search_docs", "read_doc"]),
            ask: task(&raw.tasks.ask, &["search_docs", "read_doc"]),
            extract: task(&raw.tasks.extract, &[]),
            prompts: raw.prompts.as_ref().map(at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file() {
        let c = Config::check(RawConfig::default(), None).unwrap();
        assert_eq!(c.traces, PathBuf::from(".lfm-agent/traces.sqlite"));
        assert_eq!(c.triage.tools, ["search_docs", "read_doc"]);
        assert!(c.extract.tools.is_empty());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.tool_output_chars, 6000);
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/lfm-agent.toml");
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.model.think_budget, Some(256));
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.triage.tools, ["search_docs", "read_doc"]);
    }

    #[test]
    fn paths_resolve_against_the_file_and_keys_are_checked() {
        let c = Config::parse(
            "[model]\npath = \"m\"\nthink_budget = 64\n[limits]\nmax_steps = 3\n[tasks.triage]\ntools = [\"search_docs\"]\n",
            Path::new("/etc/lfm/lfm-agent.toml"),
        )
        .unwrap();
        assert_eq!(c.model.path, Some(PathBuf::from("/etc/lfm/m")));
        assert_eq!(c.model.think_budget, Some(64));
        let pulled = Config::parse(
            "[model]\npath = \"nobody/not-pulled-xyz\"\n",
            Path::new("/etc/lfm/lfm-agent.toml"),
        )
        .unwrap();
        assert_eq!(
            pulled.model.path,
            Some(PathBuf::from("/etc/lfm/nobody/not-pulled-xyz")),
            "a repo id that is neither next to the file nor pulled stays a path"
        );
        assert_eq!(c.limits.max_steps, 3);
        assert_eq!(c.triage.tools, ["search_docs"]);

        let e = Config::parse("[model]\npaht = \"m\"\n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().starts_with("x.toml: "), "{e}");
        assert!(e.to_string().contains("paht"), "{e}");
        let e = Config::parse("[limits]\nmax_steps = 0\n", Path::new("x.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.toml: limits.max_steps: must be at least 1"
        );
        let e = Config::parse(
            "[[tools.command]]\nname = \"a\"\ndescription = \"d\"\nprogram = \"p\"\nparameters = \"{\"\n",
            Path::new("x.toml"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("tools.command `a` parameters: not JSON"),
            "{e}"
        );
    }
}
