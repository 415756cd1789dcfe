//! `lfm-agent eval`: task suites (`eval triage`, `eval runbook-qa`, `eval extract`,
//! `eval tool-calls`, or `eval PATH/TO/SUITE`), the report over their stored results
//! (`eval report`), and retrieval quality (`eval retrieval`).

mod report;
mod retrieval;
mod runner;
mod suite;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Args)]
pub struct EvalCmd {
    #[command(subcommand)]
    command: EvalSub,
}

#[derive(Debug, Subcommand)]
enum EvalSub {
    /// Retrieval quality: recall@k and MRR on a labelled question set.
    Retrieval(retrieval::RetrievalEvalArgs),
    /// Write the HTML report of the stored eval runs (each compared with the run before it).
    Report(report::ReportArgs),
    /// Run a suite: `triage`, `runbook-qa`, `extract`, `tool-calls` (bundled in
    /// evals/suites), or the path of a suite folder. `lfm-agent eval SUITE --help` for its
    /// flags (--model, --limit, --results, ...).
    #[command(external_subcommand)]
    Suite(Vec<String>),
}

pub fn run(c: EvalCmd) -> Result<()> {
    match c.command {
        EvalSub::Retrieval(a) => retrieval::run(a),
        EvalSub::Report(a) => report::run(a),
        EvalSub::Suite(words) => {
            let args = suite::SuiteArgs::try_parse_from(
                std::iter::once("lfm-agent eval".to_string()).chain(words),
            )
            .unwrap_or_else(|e| e.exit());
            suite::run(args)
        }
    }
}

/// The results database flag, shared by running and reporting.
#[derive(Debug, Clone, Args)]
pub struct ResultsArg {
    /// The eval results database (SQLite).
    #[arg(long, default_value = ".lfm-agent/evals.sqlite", value_name = "FILE")]
    pub results: std::path::PathBuf,
}
