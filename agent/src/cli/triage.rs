//! `lfm-agent triage TICKETS --docs DIR --out triaged.jsonl`: one record per ticket, under
//! the triage schema (or the user's), resumable.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lfm_agent::runner::{RunObserver, RunOutcome, RunTask, Step, StopReason};
use lfm_agent::tasks::citations;
use lfm_agent::tasks::tickets::{self, Output};
use lfm_prompts::Task;
use serde_json::{json, Value};

use super::agent_args::{read_schema, stop_name, Agent, AgentArgs};
use super::fanout;
use super::parallel::ParallelArgs;

#[derive(Debug, Args)]
pub struct TriageArgs {
    /// Tickets: JSONL (one object per line) or CSV/TSV with a header row.
    pub tickets: PathBuf,
    /// Docs folders to index (incrementally) and search; default `index.docs` of the config.
    #[arg(long, value_name = "DIR")]
    pub docs: Vec<PathBuf>,
    /// Output JSONL; tickets already in it are skipped.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Output schema (default: the built-in triage schema, or `tasks.triage.schema`).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Triage at most this many tickets in this run.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub parallel: ParallelArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// What a triage run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub total: usize,
    pub skipped: usize,
    pub done: usize,
    pub failed: Vec<(String, String)>,
    pub secs: f64,
    pub run_ids: Vec<i64>,
}

pub fn run(a: TriageArgs) -> Result<()> {
    let mut agent = a.agent.build(&a.docs)?;
    let p = agent.parallel(&a.parallel)?;
    agent.set_parallel(&p)?;
    let s = triage(&agent, &a.tickets, &a.out, a.schema.as_ref(), a.limit, p.n)?;
    print_summary(&s, &a.out, &agent);
    p.print_stats();
    Ok(())
}

pub fn print_summary(s: &Summary, out: &std::path::Path, agent: &Agent) {
    println!(
        "triaged {} of {} tickets ({} already done, {} failed) in {:.1} s{} -> {}",
        s.done,
        s.total,
        s.skipped,
        s.failed.len(),
        s.secs,
        if s.done > 0 {
            format!(", {:.1} s per ticket", s.secs / s.done as f64)
        } else {
            String::new()
        },
        out.display()
    );
    for (id, why) in &s.failed {
        println!("  failed {id}: {why} (rerun to retry)");
    }
    println!(
        "traces: {} (lfm-agent runs list --traces {})",
        agent.config.traces.display(),
        agent.config.traces.display()
    );
}

/// What every ticket of a triage run shares: the prompts, the output schema and the
/// rendered system turn.
pub struct TriageSetup {
    prompts: lfm_prompts::Prompts,
    schema: Value,
    system: String,
}

impl TriageSetup {
    /// The setup for `agent`, under `schema` (else `tasks.triage.schema`, else the built-in).
    pub fn new(agent: &Agent, schema: Option<Value>) -> Result<TriageSetup> {
        let prompts = agent.prompts(Task::Triage)?;
        let schema = match (schema, agent.config.triage.schema.as_ref()) {
            (Some(s), _) => s,
            (None, Some(p)) => read_schema(p, "tasks.triage.schema")?,
            (None, None) => prompts
                .default_schema()?
                .context("the triage prompts have no schema.json")?,
        };
        let system = prompts.render_system(&[("schema", &schema.to_string())])?;
        Ok(TriageSetup {
            prompts,
            schema,
            system,
        })
    }

    /// Runs one ticket (its fields as a JSON object) through the loop: the outcome and the
    /// trace's run id.
    pub fn run(
        &self,
        agent: &Agent,
        id: &str,
        ticket: &Value,
        observer: Option<&dyn RunObserver>,
    ) -> Result<(RunOutcome, i64)> {
        let ticket = ticket.to_string();
        let user = self.prompts.render_user(&[("ticket", &ticket)])?;
        let registry = agent.task_tools(&agent.config.triage.tools.clone(), &ticket)?;
        let limits = agent.config.limits.clone();
        // `runbook_citation` may only name a passage this run retrieved: decoding is held to
        // those ids (and null), and the check catches a backend that does not constrain.
        let field = "runbook_citation";
        let check = |answer: &Value, steps: &[Step]| {
            citations::check_field(answer, field, &citations::retrieved_ids(steps))
        };
        let narrow = |schema: &Value, steps: &[Step]| {
            citations::narrow_field(schema, field, &citations::retrieved_ids(steps))
        };
        let cites = self.schema["properties"].get(field).is_some();
        let task = RunTask {
            registry: &registry,
            answer_schema: Some(&self.schema),
            check: if cites { Some(&check) } else { None },
            narrow: if cites { Some(&narrow) } else { None },
            limits: &limits,
            observer,
        };
        agent.run("triage", id, &task, &self.system, user)
    }
}

/// Triages the tickets not yet in `out_path`, `parallel` at a time (the agent's pool must
/// hold that many backends: [`Agent::set_parallel`]).
pub fn triage(
    agent: &Agent,
    tickets_path: &std::path::Path,
    out_path: &std::path::Path,
    schema_flag: Option<&PathBuf>,
    limit: Option<usize>,
    parallel: usize,
) -> Result<Summary> {
    let schema = schema_flag
        .map(|p| read_schema(p, "--schema"))
        .transpose()?;
    let setup = TriageSetup::new(agent, schema)?;
    let all = tickets::read(tickets_path)?;
    let mut output = Output::open(out_path, &|v| v["ticket"].as_str().map(str::to_string))?;
    let todo: Vec<_> = all
        .iter()
        .filter(|t| !output.done.contains(&t.id))
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let mut s = Summary {
        total: all.len(),
        skipped: all.len() - all.iter().filter(|t| !output.done.contains(&t.id)).count(),
        ..Summary::default()
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(todo.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} tickets {elapsed} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let work =
        |t: &&tickets::Ticket| setup.run(agent, &t.id, &Value::Object(t.fields.clone()), None);
    fanout::each(parallel, &todo, work, |i, result| {
        let t = todo[i];
        bar.set_message(t.id.clone());
        let (outcome, run_id) = result?;
        s.run_ids.push(run_id);
        match (&outcome.stop, outcome.answer) {
            (StopReason::Answered, Some(record)) => {
                output.append(&[json!({"ticket": t.id, "run": run_id, "record": record})])?;
                s.done += 1;
            }
            (stop, _) => {
                let why = stop_name(stop);
                s.failed
                    .push((t.id.clone(), format!("{why} (run {run_id})")));
            }
        }
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    s.secs = started.elapsed().as_secs_f64();
    Ok(s)
}
