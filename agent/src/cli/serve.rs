//! `lfm-agent serve --model M [--addr 127.0.0.1:8080]`: the OpenAI-compatible server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use lfm_agent::backend::EngineOptions;
use lfm_agent::config::Config;
use lfm_agent::serve::{router, ServeOptions, TaskRunner};
use lfm_engine::sampling::SamplingParams;

use super::agent_args::Agent;
use super::common::ModelArgs;
use super::parallel::ParallelArgs;
use super::serve_tasks::AgentTasks;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on (loopback by default; `0.0.0.0:8080` for every interface).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// The model id clients see (default: the model's file or folder name).
    #[arg(long, value_name = "NAME")]
    pub served_model_name: Option<String>,
    /// Requests that may wait for the model; one more is answered 429.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub queue: usize,
    /// Seconds a request may take, queue included (then 504).
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout_secs: u64,
    /// An accepted API key (repeatable; also LFM_AGENT_SERVE_KEYS, comma-separated). With none,
    /// no key is asked for.
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// Largest request body in MiB (then 413).
    #[arg(long, default_value_t = 4, value_name = "MIB")]
    pub body_limit_mib: usize,
    /// `max_tokens` when a request sets none.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_tokens: usize,
    /// Thinking tokens per reply (0: none, for an Instruct model).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub think_budget: usize,
    #[command(flatten)]
    pub parallel: ParallelArgs,
    /// Offer `POST /v1/agent/tasks`: triage, ask and extract run by the agent over this
    /// model, with the tools, limits, index and traces of the config.
    #[arg(long)]
    pub tasks: bool,
    /// Config file for --tasks (default: ./lfm-agent.toml when it exists).
    #[arg(long, value_name = "FILE", requires = "tasks")]
    pub config: Option<PathBuf>,
    /// Docs folders to index (incrementally) for --tasks; default `index.docs` of the config.
    #[arg(long, value_name = "DIR", requires = "tasks")]
    pub docs: Vec<PathBuf>,
}

pub fn run(a: ServeArgs) -> Result<()> {
    if a.queue == 0 || a.max_tokens == 0 || a.timeout_secs == 0 || a.body_limit_mib == 0 {
        anyhow::bail!(
            "--queue, --max-tokens, --timeout-secs and --body-limit-mib must be at least 1"
        );
    }
    let model = Arc::new(a.model.load()?);
    let context = a.model.context(&model)?;
    let d = model.generation.sampling();
    let sampling = SamplingParams {
        temperature: d.temperature,
        top_k: d.top_k,
        top_p: d.top_p,
        min_p: d.min_p,
        repetition_penalty: d.repetition_penalty,
        seed: 0,
    };
    let parallel = a.parallel.resolve(&model, context)?;
    let backends = parallel.backends(
        &model,
        &EngineOptions {
            think_budget: a.think_budget,
            sampling: sampling.clone(),
            context,
            prefill_chunk: 512,
            draft: None,
        },
    )?;
    let mut keys = a.api_keys.clone();
    if let Ok(env) = std::env::var("LFM_AGENT_SERVE_KEYS") {
        keys.extend(
            env.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string),
        );
    }
    let name = a
        .served_model_name
        .clone()
        .unwrap_or_else(|| file_name(&a.model.model));
    let opts = ServeOptions {
        model_name: name.clone(),
        queue: a.queue,
        timeout: Duration::from_secs(a.timeout_secs),
        api_keys: keys,
        body_limit: a.body_limit_mib << 20,
        default_max_tokens: a.max_tokens,
        sampling,
        thinking: a.think_budget > 0,
        synthetic: model.model.config().synthetic,
    };
    let tasks: Option<Arc<dyn TaskRunner>> = if a.tasks {
        let mut config = Config::load(a.config.as_deref())?;
        config.model.path = Some(a.model.model.clone());
        config.model.backend = None;
        let docs = if a.docs.is_empty() {
            config.docs.clone()
        } else {
            a.docs.clone()
        };
        let mut agent = Agent::build_loaded(config, &docs, Some(model.clone()))
            .context("--tasks: building the agent")?;
        // Tasks run `--parallel` at a time, their turns in the chat completions' passes and
        // KV budget (the same batcher).
        agent
            .set_parallel(&parallel)
            .context("--tasks: --parallel")?;
        Some(Arc::new(AgentTasks::new(agent)?))
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // This clone outlives the server's runtime, so that the agent (and its own runtime) is
    // dropped outside it.
    let keep_tasks = tasks.clone();
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.addr)
            .await
            .with_context(|| format!("--addr {}: cannot listen", a.addr))?;
        let addr = listener.local_addr().context("--addr")?;
        let (app, _workers) = router(backends, opts, parallel.batcher().cloned(), keep_tasks);
        // The first line on stdout, for scripts that start the server on port 0.
        println!(
            "listening on http://{addr} (model {name}, context {context}, {})",
            parallel.describe()
        );
        use std::io::Write;
        std::io::stdout().flush().ok();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                tokio::signal::ctrl_c().await.ok();
            })
            .await
            .context("serving")
    });
    drop(tasks);
    served
}

fn file_name(p: &Path) -> String {
    p.file_stem().or(p.file_name()).map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
