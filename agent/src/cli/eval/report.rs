//! `lfm-agent eval report`: the HTML report of stored eval runs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lfm_evals::report::{self, Section};
use lfm_evals::store::ResultStore;

use super::ResultsArg;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where to write the page.
    #[arg(
        long,
        default_value = ".lfm-agent/eval-report.html",
        value_name = "FILE"
    )]
    pub out: PathBuf,
    /// Report these runs (repeatable; default: the newest run of each suite).
    #[arg(long = "run", value_name = "ID")]
    pub runs: Vec<i64>,
    /// Compare with this run instead of the previous run of the same suite (needs one --run).
    #[arg(long, value_name = "ID")]
    pub against: Option<i64>,
    /// Also print each section's summary table.
    #[arg(long)]
    pub print: bool,
    #[command(flatten)]
    pub results: ResultsArg,
}

pub fn run(a: ReportArgs) -> Result<()> {
    if !a.results.results.exists() {
        anyhow::bail!(
            "--results {}: no such database (run lfm-agent eval SUITE first)",
            a.results.results.display()
        );
    }
    if a.against.is_some() && a.runs.len() != 1 {
        anyhow::bail!("--against: give exactly one --run to compare");
    }
    let store = ResultStore::open(&a.results.results)?;
    let runs = if a.runs.is_empty() {
        let mut seen = BTreeSet::new();
        store
            .runs()?
            .into_iter()
            .filter(|r| seen.insert(r.meta.suite.clone()))
            .collect()
    } else {
        a.runs
            .iter()
            .map(|&id| store.run(id))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut sections = Vec::new();
    for run in runs {
        let previous = match a.against {
            Some(id) => Some(store.run(id)?),
            None => store.previous(&run)?,
        };
        let previous = match previous {
            Some(p) => {
                let c = store.cases(p.id)?;
                Some((p, c))
            }
            None => None,
        };
        sections.push(Section {
            cases: store.cases(run.id)?,
            run,
            previous,
        });
    }
    let html = report::render("lfm-agent eval report", &sections);
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
    }
    std::fs::write(&a.out, html).with_context(|| format!("--out {}", a.out.display()))?;
    if a.print {
        for s in &sections {
            println!("{}", report::table(s));
        }
    }
    println!(
        "wrote {} ({} suite runs from {})",
        a.out.display(),
        sections.len(),
        a.results.results.display()
    );
    Ok(())
}
