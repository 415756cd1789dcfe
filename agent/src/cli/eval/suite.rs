//! `lfm-agent eval SUITE`: runs a suite's cases through the task code a user runs, scores
//! them, stores the results and prints the summary beside the previous run of the suite.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use lfm_evals::report::{self, Section};
use lfm_evals::score::{score_case, summarize};
use lfm_evals::store::{ResultStore, RunMeta};
use lfm_evals::Suite;

use lfm_evals::Case;

use super::super::agent_args::{Agent, AgentArgs};
use super::super::demo::use_synthetic_if_unset;
use super::super::fanout;
use super::super::parallel::ParallelArgs;
use super::runner::Runner;
use super::ResultsArg;

/// Runs one suite.
#[derive(Debug, Parser)]
#[command(name = "lfm-agent eval")]
pub struct SuiteArgs {
    /// A bundled suite (triage, runbook-qa, extract, tool-calls) or a suite folder.
    pub suite: String,
    /// Where the bundled suites are.
    #[arg(long, default_value = "evals/suites", value_name = "DIR")]
    pub suites: PathBuf,
    /// Run only the first N cases.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Passages put in the prompt up front (runbook questions).
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Where a synthetic model and the suite's index go when none is configured.
    #[arg(long, default_value = ".lfm-agent/eval", value_name = "DIR")]
    pub work: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub results: ResultsArg,
    #[command(flatten)]
    pub parallel: ParallelArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
}

pub fn run(a: SuiteArgs) -> Result<()> {
    let dir = Suite::locate(&a.suite, &a.suites)?;
    let suite = Suite::load(&dir)?;
    if a.limit == Some(0) {
        anyhow::bail!("--limit: must be at least 1");
    }
    let mut config = a.agent.config()?;
    std::fs::create_dir_all(&a.work).with_context(|| format!("--work {}", a.work.display()))?;
    // 16K: a tool list or a few passages take three times the tokens with its tokenizer.
    use_synthetic_if_unset(&mut config, &a.agent, &a.work, 16384)?;
    if a.agent.index.is_none() && !suite.docs.is_empty() {
        config.index = a.work.join(format!("index-{}", suite.name));
    }
    let mut agent = Agent::build(config, &suite.docs)?;
    let parallel = agent.parallel(&a.parallel)?;
    agent.set_parallel(&parallel)?;
    if agent.synthetic {
        eprintln!(
            "NOTE: {} is a SYNTHETIC random-weight model: validity, steps and speed are measured, accuracy means nothing",
            agent.model_name
        );
    }
    let mut store = ResultStore::open(&a.results.results)?;
    let cases: Vec<_> = suite
        .cases
        .iter()
        .take(a.limit.unwrap_or(usize::MAX))
        .collect();
    let runner = Runner::new(&agent, &suite, a.k)?;
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let t0 = Instant::now();
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(cases.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    // In case order, whatever order they finish in.
    let mut scored = vec![None; cases.len()];
    let observe = |case: &&Case| runner.observe(&agent, case);
    fanout::each(parallel.n, &cases, observe, |i, obs| {
        let case = cases[i];
        bar.set_message(case.id.clone());
        let obs = obs.with_context(|| format!("suite {} case {}", suite.name, case.id))?;
        scored[i] = Some(score_case(&suite, case, &obs));
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let results: Vec<_> = scored.into_iter().flatten().collect();
    let summary = summarize(&results);
    let meta = RunMeta {
        suite: suite.name.clone(),
        task: suite.task.name().to_string(),
        model: agent.model_name.clone(),
        synthetic: agent.synthetic,
        started_ms,
        wall_ms: t0.elapsed().as_millis() as i64,
        settings: settings(&agent, cases.len(), suite.cases.len(), parallel.n),
    };
    let id = store.record(&meta, &summary, &results)?;
    let run = store.run(id)?;
    let previous = match store.previous(&run)? {
        Some(p) => {
            let c = store.cases(p.id)?;
            Some((p, c))
        }
        None => None,
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"run": id, "suite": suite.name, "synthetic": agent.synthetic, "summary": summary})
        );
        return Ok(());
    }
    let section = Section {
        run,
        cases: results,
        previous,
    };
    print!("{}", report::table(&section));
    println!(
        "results: {} (run {id}); report: lfm-agent eval report --results {}",
        store.path().display(),
        store.path().display()
    );
    println!(
        "traces: lfm-agent runs list --traces {}",
        agent.config.traces.display()
    );
    Ok(())
}

fn settings(agent: &Agent, ran: usize, total: usize, parallel: usize) -> String {
    let m = &agent.config.model;
    let l = &agent.config.limits;
    format!(
        "{ran} of {total} cases, {parallel} at a time; seed {}, temperature {}, think budget {}, context {}, max steps {}, max turn tokens {}",
        m.seed.unwrap_or(0),
        m.temperature.map_or("model default".to_string(), |t| t.to_string()),
        m.think_budget.unwrap_or(256),
        agent.context,
        l.max_steps,
        l.max_turn_tokens,
    )
}
