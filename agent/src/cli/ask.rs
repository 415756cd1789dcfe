//! `lfm-agent ask "QUESTION" --docs DIR`: an answer from the docs, with citations that must
//! be passages the run actually retrieved (checked after the schema; a bad citation goes
//! back to the model like a schema error).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use lfm_agent::runner::{RunObserver, RunOutcome, RunTask, Step, StopReason};
use lfm_agent::tasks::citations;
use lfm_prompts::Task;
use lfm_retrieval::SearchRequest;
use serde_json::Value;

use super::agent_args::{read_schema, Agent, AgentArgs};

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Docs folders to index (incrementally) and search; default `index.docs` of the config.
    #[arg(long, value_name = "DIR")]
    pub docs: Vec<PathBuf>,
    /// Passages put in the prompt up front.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Output schema (default: answer + citations, or `tasks.ask.schema`).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Print the answer as JSON, with the run id.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub agent: AgentArgs,
}

pub fn run(a: AskArgs) -> Result<()> {
    let agent = a.agent.build(&a.docs)?;
    let schema = a
        .schema
        .as_ref()
        .map(|p| read_schema(p, "--schema"))
        .transpose()?;
    let (out, id) = ask(&agent, &a.question, a.k, schema, None)?;
    let Some(answer) = out.answer.filter(|_| out.stop == StopReason::Answered) else {
        bail!(
            "no answer (run {id}: {}); see lfm-agent runs show {id} --traces {}",
            serde_json::to_value(&out.stop)?,
            agent.config.traces.display()
        );
    };
    if a.json {
        println!("{}", serde_json::json!({"run": id, "answer": answer}));
        return Ok(());
    }
    println!(
        "{}",
        answer["answer"].as_str().unwrap_or(&answer.to_string())
    );
    if let Some(cites) = answer["citations"].as_array() {
        for c in cites {
            println!("  cites {}", c.as_str().unwrap_or_default());
        }
    }
    println!("(run {id}; lfm-agent runs show {id})");
    Ok(())
}

pub fn ask(
    agent: &Agent,
    question: &str,
    k: usize,
    schema: Option<Value>,
    observer: Option<&dyn RunObserver>,
) -> Result<(RunOutcome, i64)> {
    if question.trim().is_empty() {
        bail!("the question is empty");
    }
    let retriever = agent
        .retriever
        .clone()
        .context("no index: pass --docs DIR (or set index.docs in lfm-agent.toml)")?;
    let prompts = agent.prompts(Task::Ask)?;
    let schema = match (schema, agent.config.ask.schema.as_ref()) {
        (Some(s), _) => s,
        (None, Some(p)) => read_schema(p, "tasks.ask.schema")?,
        (None, None) => prompts
            .default_schema()?
            .context("the ask prompts have no schema.json")?,
    };
    let mut req = SearchRequest::new(question, k.max(1));
    req.snippets = false;
    let hits = retriever.search(&req)?;
    // Up front at most a quarter of the context, so tool results and the answer fit too.
    let budget = agent.context / 4;
    let mut used = 0;
    let mut given = BTreeSet::new();
    let mut passages = Vec::new();
    for h in &hits {
        let block = format!(
            "[{}] ({}, {})\n{}",
            h.chunk.chunk_id,
            h.chunk.location(),
            h.chunk.trail.join(" > "),
            h.chunk.text
        );
        let n = (agent.counter)(&block);
        if used + n > budget {
            break;
        }
        used += n;
        given.insert(h.chunk.chunk_id.clone());
        passages.push(block);
    }
    let passages = if passages.is_empty() {
        "(none matched; use search_docs)".to_string()
    } else {
        passages.join("\n\n")
    };
    let system = prompts.render_system(&[("schema", &schema.to_string())])?;
    let user = prompts.render_user(&[("passages", &passages), ("question", question)])?;
    let registry = agent.task_tools(&agent.config.ask.tools.clone(), question)?;
    let allowed = move |steps: &[Step]| {
        let mut allowed = given.clone();
        allowed.extend(citations::retrieved_ids(steps));
        allowed
    };
    let allowed_too = allowed.clone();
    let check = move |answer: &Value, steps: &[Step]| citations::check(answer, &allowed(steps));
    // Decoding is held to the same ids, so a citation the check would refuse cannot be written.
    let narrow =
        move |schema: &Value, steps: &[Step]| citations::narrow(schema, &allowed_too(steps));
    let limits = agent.config.limits.clone();
    let task = RunTask {
        registry: &registry,
        answer_schema: Some(&schema),
        check: Some(&check),
        narrow: Some(&narrow),
        limits: &limits,
        observer,
    };
    agent.run("ask", question, &task, &system, user)
}
