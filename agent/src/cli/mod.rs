//! Command-line parsing and dispatch.

mod agent_args;
mod ask;
mod bench;
mod bench_batch;
mod bench_draft;
mod bench_model;
mod bench_prefix;
mod bench_retrieval;
mod chat;
mod common;
mod constraint;
mod constraint_args;
mod demo;
mod eval;
mod extract;
mod fanout;
mod generate;
mod index;
mod logits;
mod models;
mod parallel;
mod runs;
mod search;
mod serve;
mod serve_tasks;
mod synth;
mod tools;
mod triage;

use clap::{Parser, Subcommand};

/// Local LFM2.5 inference and agents.
#[derive(Debug, Parser)]
#[command(name = "lfm-agent", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a completion for one prompt, streaming it to stdout.
    Generate(generate::GenerateArgs),
    /// Interactive chat on stdin/stdout (`/reset` starts over, `/exit` or end of input quits).
    Chat(chat::ChatArgs),
    /// Write a random-weight model folder of a published shape (meaningless output; for tests,
    /// demos and benchmarks without a download).
    Synth(synth::SynthArgs),
    /// Print the logits at every position of a token sequence.
    Logits(logits::LogitsArgs),
    /// Constraint tools (`constraint check`).
    Constraint(constraint::ConstraintCmd),
    /// Benchmarks: `bench --model M` (prefill, decode, TTFT, peak RSS), `bench constraint`,
    /// `bench retrieval`.
    Bench(bench::BenchCmd),
    /// Build or update the retrieval index over folders of docs (incremental).
    Index(index::IndexArgs),
    /// Search the retrieval index (BM25), with snippets, filters and packed citations.
    Search(search::SearchArgs),
    /// Evaluations: `eval retrieval` (recall@k and MRR on labelled questions).
    Eval(eval::EvalCmd),
    /// Traces of agent runs: `runs list`, `runs show ID`.
    Runs(runs::RunsCmd),
    /// Triage tickets (JSONL or CSV) into schema-valid records, resumably.
    Triage(triage::TriageArgs),
    /// Answer a question from the docs, with checked citations.
    Ask(ask::AskArgs),
    /// Extract schema-valid events from a log.
    Extract(extract::ExtractArgs),
    /// The whole product on the bundled example data (a synthetic model if none is set).
    Demo(demo::DemoArgs),
    /// An OpenAI-compatible HTTP server over a local model (/v1/chat/completions, /v1/models,
    /// /health, /metrics).
    Serve(serve::ServeArgs),
    /// Download a model from the Hugging Face Hub (resumable, checksum verified; HF_ENDPOINT,
    /// HF_HOME, HF_TOKEN and HF_HUB_OFFLINE honoured). `--model OWNER/NAME` then loads it.
    Pull(models::PullArgs),
    /// Pulled models: `models list`, `models rm OWNER/NAME`.
    Models(models::ModelsCmd),
    /// The tools the config declares (built-in, command, MCP): `tools list`, `tools call NAME
    /// '{"arg": 1}'`.
    Tools(tools::ToolsCmd),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Logits(a) => logits::run(a),
        Command::Constraint(a) => constraint::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Index(a) => index::run(a),
        Command::Search(a) => search::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Runs(a) => runs::run(a),
        Command::Triage(a) => triage::run(a),
        Command::Ask(a) => ask::run(a),
        Command::Extract(a) => extract::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Pull(a) => models::pull(a),
        Command::Models(a) => models::models(a),
        Command::Tools(a) => tools::run(a),
    }
}
