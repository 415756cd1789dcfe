//! `lfm-agent extract --schema event.json app.log --out events.jsonl`: the log cut into
//! windows that fit the context, each window's events extracted under the schema, one
//! validated record per line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lfm_agent::runner::{RunObserver, RunOutcome, RunTask, StopReason};
use lfm_agent::tasks::logsplit;
use lfm_agent::tasks::tickets::Output;
use lfm_prompts::Task;
use serde_json::{json, Value};

use super::agent_args::{read_schema, stop_name, Agent, AgentArgs};
use super::fanout;
use super::parallel::ParallelArgs;

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The log file.
    pub log: PathBuf,
    /// JSON Schema of one event.
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
    /// Output JSONL (one event per line); windows already in it are skipped.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Log tokens per window (default: a quarter of the context).
    #[arg(long, value_name = "N")]
    pub window_tokens: Option<usize>,
    #[command(flatten)]
    pub parallel: ParallelArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// What an extract run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub windows: usize,
    pub skipped: usize,
    pub events: usize,
    pub failed: Vec<(String, String)>,
    pub secs: f64,
}

pub fn run(a: ExtractArgs) -> Result<()> {
    let mut agent = a.agent.build(&[])?;
    let p = agent.parallel(&a.parallel)?;
    agent.set_parallel(&p)?;
    let s = extract(&agent, &a.log, &a.schema, &a.out, a.window_tokens, p.n)?;
    println!(
        "extracted {} events from {} windows of {} ({} windows already done, {} failed) in {:.1} s -> {}",
        s.events,
        s.windows - s.skipped,
        a.log.display(),
        s.skipped,
        s.failed.len(),
        s.secs,
        a.out.display()
    );
    for (w, why) in &s.failed {
        println!("  failed lines {w}: {why} (rerun to retry)");
    }
    p.print_stats();
    Ok(())
}

/// What every window of an extract run shares.
pub struct ExtractSetup {
    prompts: lfm_prompts::Prompts,
    /// `{"events": [EVENT...]}`: the model returns a window's events as one object.
    schema: Value,
    system: String,
    registry: lfm_tools::Registry,
}

impl ExtractSetup {
    /// The setup for events under `event` (the schema of one record).
    pub fn new(agent: &Agent, event: &Value) -> Result<ExtractSetup> {
        let schema = json!({
            "type": "object",
            "properties": {"events": {"type": "array", "items": event, "maxItems": 64}},
            "required": ["events"],
            "additionalProperties": false
        });
        let prompts = agent.prompts(Task::Extract)?;
        let system = prompts.render_system(&[("schema", &event.to_string())])?;
        let registry = agent.task_tools(&agent.config.extract.tools.clone(), "")?;
        Ok(ExtractSetup {
            prompts,
            schema,
            system,
            registry,
        })
    }

    /// Runs one window of the log `name`; `input` names it in the trace. On an answer the
    /// events are `outcome.answer["events"]`.
    pub fn run(
        &self,
        agent: &Agent,
        name: &str,
        w: &logsplit::Window,
        input: &str,
        observer: Option<&dyn RunObserver>,
    ) -> Result<(RunOutcome, i64)> {
        let user = self.prompts.render_user(&[
            ("first_line", &w.first_line.to_string()),
            ("last_line", &w.last_line.to_string()),
            ("file", name),
            ("lines", &w.text),
        ])?;
        let limits = agent.config.limits.clone();
        let task = RunTask {
            registry: &self.registry,
            answer_schema: Some(&self.schema),
            check: None,
            narrow: None,
            limits: &limits,
            observer,
        };
        agent.run("extract", input, &task, &self.system, user)
    }
}

/// The log's windows for `agent`'s context (`window_tokens` of log each, default a quarter).
pub fn windows(agent: &Agent, text: &str, window_tokens: Option<usize>) -> Vec<logsplit::Window> {
    let budget = window_tokens.unwrap_or(agent.context / 4).max(16);
    let counter = agent.counter.clone();
    logsplit::split(text, budget, &|s| counter(s))
}

/// Extracts the events of the windows not yet in `out`, `parallel` windows at a time (the
/// agent's pool must hold that many backends: [`Agent::set_parallel`]).
pub fn extract(
    agent: &Agent,
    log: &Path,
    schema_path: &Path,
    out: &Path,
    window_tokens: Option<usize>,
    parallel: usize,
) -> Result<Summary> {
    let event = read_schema(schema_path, "--schema")?;
    let setup = ExtractSetup::new(agent, &event)?;
    let bytes = std::fs::read(log).with_context(|| format!("{}: cannot read", log.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let windows = windows(agent, &text, window_tokens);
    // A window is done when its marker record is in the output; events carry their window.
    let mut output = Output::open(out, &|v| {
        (v["done"] == true)
            .then(|| v["window"].as_str().map(str::to_string))
            .flatten()
    })?;
    let name = log.display().to_string();
    let started = Instant::now();
    let mut s = Summary {
        windows: windows.len(),
        ..Summary::default()
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(windows.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    // Unique even when one long line is cut into several windows.
    let key = |w: &logsplit::Window| format!("{}:{}-{}", w.index, w.first_line, w.last_line);
    let todo: Vec<_> = windows
        .iter()
        .filter(|w| !output.done.contains(&key(w)))
        .collect();
    s.skipped = windows.len() - todo.len();
    bar.inc(s.skipped as u64);
    let work =
        |w: &&logsplit::Window| setup.run(agent, &name, w, &format!("{name}:{}", key(w)), None);
    fanout::each(parallel, &todo, work, |i, result| {
        let key = key(todo[i]);
        bar.inc(1);
        let (outcome, run_id) = result?;
        match (&outcome.stop, outcome.answer) {
            (StopReason::Answered, Some(Value::Object(mut a))) => {
                let events = match a.remove("events") {
                    Some(Value::Array(e)) => e,
                    _ => Vec::new(),
                };
                let mut lines: Vec<Value> = events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| json!({"window": key, "event": i, "run": run_id, "record": e}))
                    .collect();
                // The window's end marker: only it marks the window done for a rerun.
                lines.push(
                    json!({"window": key, "done": true, "events": events.len(), "run": run_id}),
                );
                output.append(&lines)?;
                s.events += events.len();
            }
            (stop, _) => {
                let why = stop_name(stop);
                s.failed.push((key, format!("{why} (run {run_id})")));
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    s.secs = started.elapsed().as_secs_f64();
    Ok(s)
}
