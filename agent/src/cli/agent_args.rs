//! What the task commands share: the config file and the flags that override it, and the
//! [`Agent`] they build from both (models, tools, traces).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use lfm_agent::backend::{EngineOptions, PlannerWriter, RemoteBackend, RemoteOptions};
use lfm_agent::config::Config;
use lfm_agent::runner::{run, Backend, RunOutcome, RunTask, StopReason};
use lfm_agent::trace::{RunMeta, TraceStore};
use lfm_engine::batch::{Batcher, SharedPrefixes};
use lfm_engine::folder::{ComputeDtype, LoadOptions, LoadedModel};
use lfm_engine::sampling::SamplingParams;
use lfm_engine::text::{Message, Role};
use lfm_prompts::{Prompts, Task};
use lfm_retrieval::{EstimateCounter, IndexOptions, Indexer, Retriever};
use lfm_tools::builtin::{CommandTool, CurrentTime, ReadDoc, SearchDocs, SqlQuery};
use lfm_tools::mcp::McpServer;
use lfm_tools::{CallLimits, Registry, ToolSpec};
use serde_json::Value;

use super::parallel::{engine_backend, Parallel, ParallelArgs};

/// Config and overrides.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Config file (default: ./lfm-agent.toml when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The model (HF folder, GGUF file, or a pulled repo `OWNER/NAME[:FILE]`); overrides
    /// `model.path`.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// An OpenAI-compatible server (`http://HOST:PORT/v1`: vLLM, llama.cpp's server, another
    /// lfm-agent) instead of a local model; overrides `model.backend`. Its API key, if any,
    /// is read from LFM_AGENT_API_KEY.
    #[arg(long, value_name = "URL")]
    pub backend: Option<String>,
    /// The model name to send to --backend (default: the first the server lists).
    #[arg(long, value_name = "NAME")]
    pub backend_model: Option<String>,
    /// A second model that writes final answers; overrides `model.writer`.
    #[arg(long, value_name = "DIR")]
    pub writer: Option<PathBuf>,
    /// Thinking tokens per turn (0: none); overrides `model.think_budget`.
    #[arg(long, value_name = "N")]
    pub think_budget: Option<usize>,
    /// Session context in tokens; overrides `model.ctx`.
    #[arg(long, value_name = "N")]
    pub ctx: Option<usize>,
    /// Sampling seed; overrides `model.seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sampling temperature; overrides `model.temperature`.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Check prompt-lookup drafts of up to K tokens in one pass while decoding answers (at
    /// temperature 0 only: the output is the same, faster where it copies the input, as
    /// extraction does); overrides `model.draft`. 0: off.
    #[arg(long, value_name = "K")]
    pub draft: Option<usize>,
    /// Index folder; overrides `index.path`.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Trace database; overrides `traces.path`.
    #[arg(long, value_name = "FILE")]
    pub traces: Option<PathBuf>,
    /// Most model turns per run; overrides `limits.max_steps`.
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// Most generated tokens per run; overrides `limits.max_tokens`.
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Most tokens per model turn; overrides `limits.max_turn_tokens`.
    #[arg(long, value_name = "N")]
    pub max_turn_tokens: Option<usize>,
}

impl AgentArgs {
    /// Builds the agent: `docs` if given, else the config's `index.docs`, are indexed first.
    pub fn build(&self, docs: &[PathBuf]) -> Result<Agent> {
        let config = self.config()?;
        let docs = if docs.is_empty() {
            config.docs.clone()
        } else {
            docs.to_vec()
        };
        Agent::build(config, &docs)
    }

    /// The config with the flags applied.
    pub fn config(&self) -> Result<Config> {
        let mut c = Config::load(self.config.as_deref())?;
        if let Some(m) = &self.model {
            c.model.path = Some(m.clone());
        }
        if let Some(w) = &self.writer {
            c.model.writer = Some(w.clone());
        }
        if let Some(b) = &self.backend {
            c.model.backend = Some(b.clone());
        }
        if let Some(m) = &self.backend_model {
            c.model.backend_model = Some(m.clone());
        }
        macro_rules! over {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = &self.$flag { c.$($field).+ = v.clone().into(); })*
            };
        }
        over!(think_budget => model.think_budget, ctx => model.ctx, seed => model.seed,
              draft => model.draft,
              temperature => model.temperature, index => index, traces => traces,
              max_steps => limits.max_steps, max_tokens => limits.max_tokens,
              max_turn_tokens => limits.max_turn_tokens);
        for (flag, v) in [
            ("--max-steps", c.limits.max_steps),
            ("--max-tokens", c.limits.max_tokens),
            ("--max-turn-tokens", c.limits.max_turn_tokens),
            ("--ctx", c.model.ctx.unwrap_or(1)),
        ] {
            if v == 0 {
                bail!("{flag}: must be at least 1");
            }
        }
        Ok(c)
    }
}

/// Everything a task run needs. Runs may go on from several threads at once (a `--parallel`
/// pipeline): each takes a free backend from the agent's pool for its duration.
pub struct Agent {
    pub config: Config,
    /// Free backends; a run takes one and puts it back.
    pool: Mutex<Vec<Box<dyn Backend + Send>>>,
    freed: Condvar,
    /// What more backends are made of.
    source: Source,
    /// `path` of the model, for traces.
    pub model_name: String,
    pub synthetic: bool,
    traces: Mutex<TraceStore>,
    /// Every tool available (a task gets its own view).
    pub tools: Registry,
    pub retriever: Option<Arc<Retriever>>,
    /// Token counting with the planner's tokenizer.
    pub counter: Arc<dyn Fn(&str) -> usize + Send + Sync>,
    pub context: usize,
    /// MCP servers behind some of `tools`; closed when the agent is dropped.
    mcp: Vec<Arc<McpServer>>,
    /// Runs the loop (tools are async); `None` only while the agent is dropped.
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            shut_down(rt, std::mem::take(&mut self.mcp));
        }
    }
}

/// Closes `servers` inside `rt`, the runtime that started them (a server's stdin is closed,
/// then it is signalled, then killed), then drops `rt`; from a thread of its own, so that this
/// works wherever it is called, a runtime's worker included.
pub fn shut_down(rt: tokio::runtime::Runtime, servers: Vec<Arc<McpServer>>) {
    std::thread::scope(|scope| {
        scope.spawn(move || {
            rt.block_on(async {
                for s in servers {
                    s.close().await;
                }
            });
            drop(rt);
        });
    });
}

/// Where the agent's backends come from.
enum Source {
    /// The embedded engine: the planner, the writer if any, and their options.
    Engine {
        planner: Arc<LoadedModel>,
        writer: Option<Arc<LoadedModel>>,
        planner_opts: EngineOptions,
        writer_opts: EngineOptions,
    },
    /// An OpenAI-compatible server.
    Remote(RemoteOptions),
}

/// A backend and what the agent needs to know of its model.
struct Backed {
    backend: Box<dyn Backend + Send>,
    source: Source,
    model_name: String,
    synthetic: bool,
    counter: Arc<dyn Fn(&str) -> usize + Send + Sync>,
    max_context: usize,
}

fn load_model(path: &Path, dtype: &str, key: &str) -> Result<Arc<LoadedModel>> {
    let dtype: ComputeDtype = dtype.parse().context("model.dtype")?;
    let path = &super::models::resolve_model(path, key)?;
    let m = LoadedModel::load(path, &LoadOptions { dtype })
        .with_context(|| format!("loading model from {}", path.display()))?;
    Ok(Arc::new(m))
}

impl Agent {
    /// Loads the models, opens the index (when `docs` are given they are indexed first,
    /// incrementally), builds the tools and opens the trace store.
    pub fn build(config: Config, docs: &[PathBuf]) -> Result<Agent> {
        Self::build_loaded(config, docs, None)
    }

    /// [`Agent::build`] over a planner already loaded (the server's model), when given.
    pub fn build_loaded(
        config: Config,
        docs: &[PathBuf],
        planner: Option<Arc<LoadedModel>>,
    ) -> Result<Agent> {
        let mc = &config.model;
        if let Some(url) = &mc.backend {
            if mc.path.is_some() || mc.writer.is_some() {
                bail!("model.backend (--backend) and model.path/model.writer (--model/--writer) both set: use one");
            }
            let ropts = RemoteOptions {
                url: url.clone(),
                model: mc.backend_model.clone(),
                api_key: std::env::var("LFM_AGENT_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                temperature: mc.temperature,
                top_p: mc.top_p,
                seed: mc.seed,
                timeout: config.limits.max_wall,
            };
            let remote = RemoteBackend::new(ropts.clone())
                .map_err(anyhow::Error::msg)
                .context("--backend (model.backend)")?;
            let model_name = format!("{} at {url}", remote.model());
            let synthetic = remote.synthetic();
            let counter: Arc<dyn Fn(&str) -> usize + Send + Sync> =
                Arc::new(|s: &str| s.len() / 3 + 1);
            let backed = Backed {
                backend: Box::new(remote),
                source: Source::Remote(ropts),
                model_name,
                synthetic,
                counter,
                max_context: 32768,
            };
            return Self::assemble(config, docs, backed);
        }
        let Some(path) = &mc.path else {
            bail!("no model: pass --model DIR or set model.path in lfm-agent.toml (`lfm-agent demo` makes a synthetic one)");
        };
        let dtype = mc.dtype.clone().unwrap_or_else(|| "auto".into());
        let planner = match planner {
            Some(m) => m,
            None => load_model(path, &dtype, "model.path (--model)")?,
        };
        let synthetic = planner.model.config().synthetic;
        let max = planner.model.config().max_position_embeddings;
        let context = mc.ctx.unwrap_or(16384).min(max);
        let sampling = |m: &LoadedModel| {
            let d = m.generation.sampling();
            SamplingParams {
                temperature: mc.temperature.unwrap_or(d.temperature),
                top_k: mc.top_k.or(d.top_k),
                top_p: mc.top_p.or(d.top_p),
                min_p: mc.min_p.or(d.min_p),
                repetition_penalty: mc.repetition_penalty.unwrap_or(d.repetition_penalty),
                seed: mc.seed.unwrap_or(0),
            }
        };
        let opts = |m: &LoadedModel, think| EngineOptions {
            think_budget: think,
            sampling: sampling(m),
            context,
            prefill_chunk: 512,
            draft: mc
                .draft
                .filter(|&k| k > 0)
                .map(|k| lfm_engine::lookup::DraftOptions {
                    max_tokens: k,
                    ..Default::default()
                }),
        };
        let think = mc.think_budget.unwrap_or(256);
        if mc.draft.is_some_and(|k| k > 0) && sampling(&planner).temperature > 0.0 {
            eprintln!("warning: --draft (model.draft) checks drafts only at temperature 0; it is off for this run");
        }
        let tok = planner.tokenizer.clone();
        let counter: Arc<dyn Fn(&str) -> usize + Send + Sync> = match tok {
            Some(t) => Arc::new(move |s: &str| t.encode(s).map_or(s.len() / 3 + 1, |v| v.len())),
            None => Arc::new(|s: &str| s.len() / 3 + 1),
        };
        let writer = mc
            .writer
            .as_ref()
            .map(|w| load_model(w, &dtype, "model.writer (--writer)"))
            .transpose()?;
        let source = Source::Engine {
            planner_opts: opts(&planner, think),
            writer_opts: opts(writer.as_deref().unwrap_or(&planner), 0),
            planner,
            writer,
        };
        let backend = source
            .backends(1, &[None, None])?
            .pop()
            .context("no backend was made")?;
        let backed = Backed {
            backend,
            source,
            model_name: path.display().to_string(),
            synthetic,
            counter,
            max_context: max,
        };
        Self::assemble(config, docs, backed)
    }

    /// The rest of the agent around its backend: index, tools, traces, runtime.
    fn assemble(config: Config, docs: &[PathBuf], b: Backed) -> Result<Agent> {
        let Backed {
            backend,
            source,
            model_name,
            synthetic,
            counter,
            max_context,
        } = b;
        let context = config.model.ctx.unwrap_or(16384).min(max_context);
        let retriever = open_index(&config.index, docs)?;
        let traces = TraceStore::open(&config.traces)
            .map_err(anyhow::Error::msg)
            .context("opening the trace database")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let (tools, mcp) = build_tools(&config, retriever.clone(), &rt)?;
        Ok(Agent {
            mcp,
            rt: Some(rt),
            model_name,
            synthetic,
            pool: Mutex::new(vec![backend]),
            freed: Condvar::new(),
            source,
            traces: Mutex::new(traces),
            tools,
            retriever,
            counter,
            context,
            config,
        })
    }

    /// The prompts of `task` (the config's override folder, else built in).
    pub fn prompts(&self, task: Task) -> Result<Prompts> {
        Ok(match &self.config.prompts {
            Some(dir) => Prompts::from_dir(dir, task)?,
            None => Prompts::builtin(task),
        })
    }

    /// The registry a task may use: exactly its declared tools (narrowed further to the most
    /// relevant for `request` when there are many). Nothing a run reads can widen it.
    pub fn task_tools(&self, names: &[String], request: &str) -> Result<Registry> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        if let Some(n) = names
            .iter()
            .find(|n| self.retriever.is_none() && matches!(**n, "search_docs" | "read_doc"))
        {
            bail!(
                "the task's tool `{n}` needs a docs index: pass --docs DIR (or set index.docs in lfm-agent.toml); no index at {}",
                self.config.index.display()
            );
        }
        let own = self
            .tools
            .only(&names)
            .context("the task's tools (tasks.NAME.tools in lfm-agent.toml)")?;
        Ok(own.relevant(request, self.config.offer_tools, &[]))
    }

    /// Runs one task input through the loop and records its trace; returns the outcome and
    /// the run id.
    /// `system` and `user` are the task's two opening turns. A schema the backend cannot
    /// enforce is an error here (it would fail every input the same way).
    pub fn run(
        &self,
        task: &str,
        input: &str,
        run_task: &RunTask<'_>,
        system: &str,
        user: String,
    ) -> Result<(RunOutcome, i64)> {
        let mut lease = self.lease()?;
        let backend = lease.backend()?;
        let messages = vec![
            Message::new(Role::System, system.to_string()),
            Message::new(Role::User, user),
        ];
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let t = Instant::now();
        let rt = self.rt.as_ref().context("the agent's runtime is gone")?;
        let out = rt.block_on(run(backend, run_task, messages));
        let meta = RunMeta {
            task: task.to_string(),
            model: self.model_name.clone(),
            input: input.to_string(),
            started_ms,
            wall_ms: t.elapsed().as_millis() as i64,
        };
        let id = self.record(&meta, &out)?;
        if let StopReason::BadAnswerSchema { message } = &out.stop {
            bail!("the {task} schema: {message}");
        }
        Ok((out, id))
    }
}

impl Agent {
    /// Records a run's trace; its id.
    pub fn record(&self, meta: &RunMeta, out: &RunOutcome) -> Result<i64> {
        self.traces
            .lock()
            .map_err(|_| anyhow::anyhow!("the trace store lock is poisoned"))?
            .record(meta, out)
            .map_err(anyhow::Error::msg)
            .context("recording the trace")
    }

    /// Calls `f` with a backend from the pool.
    pub fn with_backend<T>(&self, f: impl FnOnce(&mut (dyn Backend + Send)) -> T) -> Result<T> {
        let mut lease = self.lease()?;
        Ok(f(lease.backend()?))
    }

    /// A free backend, waiting for one while all are in use.
    fn lease(&self) -> Result<Lease<'_>> {
        let poisoned = || anyhow::anyhow!("the backend pool lock is poisoned");
        let mut pool = self.pool.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(b) = pool.pop() {
                return Ok(Lease {
                    agent: self,
                    backend: Some(b),
                });
            }
            pool = self.freed.wait(pool).map_err(|_| poisoned())?;
        }
    }

    /// Runs up to `p.n` tasks at once from now on: the pool becomes `p.n` backends of their
    /// own, over the agent's models with their passes batched (one batcher per model), or
    /// clients of its server. Call it before any run is in flight.
    pub fn set_parallel(&mut self, p: &Parallel) -> Result<()> {
        if p.n == 1 && p.batcher().is_none() {
            return Ok(());
        }
        let writer_batcher = match &self.source {
            Source::Engine {
                writer: Some(_), ..
            } => p.another_batcher()?,
            _ => None,
        };
        let backends = self
            .source
            .backends(p.n, &[p.batcher().cloned(), writer_batcher])?;
        *self
            .pool
            .get_mut()
            .map_err(|_| anyhow::anyhow!("the backend pool lock is poisoned"))? = backends;
        Ok(())
    }

    /// What `--parallel` resolves to for this agent's model (for a server backend: that many
    /// requests in flight, 1 unless given).
    pub fn parallel(&self, args: &ParallelArgs) -> Result<Parallel> {
        match &self.source {
            Source::Engine {
                planner,
                planner_opts,
                ..
            } => args.resolve(planner, planner_opts.context),
            Source::Remote(_) => args.resolve_remote(),
        }
    }
}

/// A backend taken from the pool, put back on drop.
struct Lease<'a> {
    agent: &'a Agent,
    backend: Option<Box<dyn Backend + Send>>,
}

impl Lease<'_> {
    fn backend(&mut self) -> Result<&mut (dyn Backend + Send)> {
        match self.backend.as_mut() {
            Some(b) => Ok(b.as_mut()),
            None => bail!("no backend in the lease"),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut pool)) = (self.backend.take(), self.agent.pool.lock()) {
            pool.push(b);
            self.agent.freed.notify_one();
        }
    }
}

impl Source {
    /// `n` backends; `batchers` are the planner's and the writer's (none: alone).
    fn backends(
        &self,
        n: usize,
        batchers: &[Option<Batcher>; 2],
    ) -> Result<Vec<Box<dyn Backend + Send>>> {
        // One store of system-turn states per model, shared by its backends.
        let prefixes = [SharedPrefixes::default(), SharedPrefixes::default()];
        let engine = |m: &Arc<LoadedModel>, o: &EngineOptions, which: usize| {
            engine_backend(m, o, batchers[which].as_ref(), &prefixes[which])
        };
        (0..n)
            .map(|_| -> Result<Box<dyn Backend + Send>> {
                Ok(match self {
                    Source::Remote(o) => Box::new(
                        RemoteBackend::new(o.clone())
                            .map_err(anyhow::Error::msg)
                            .context("--backend (model.backend)")?,
                    ),
                    Source::Engine {
                        planner,
                        writer: None,
                        planner_opts,
                        ..
                    } => Box::new(engine(planner, planner_opts, 0)?),
                    Source::Engine {
                        planner,
                        writer: Some(w),
                        planner_opts,
                        writer_opts,
                    } => Box::new(PlannerWriter {
                        planner: engine(planner, planner_opts, 0)?,
                        writer: engine(w, writer_opts, 1)?,
                    }),
                })
            })
            .collect()
    }
}

/// A stop reason's name (`answered`, `max_steps`, ...).
pub fn stop_name(stop: &StopReason) -> String {
    serde_json::to_value(stop)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Opens the index at `dir`, indexing `docs` into it first when given.
pub fn open_index(dir: &Path, docs: &[PathBuf]) -> Result<Option<Arc<Retriever>>> {
    if !docs.is_empty() {
        let mut w = Indexer::open(dir, IndexOptions::default(), Arc::new(EstimateCounter))
            .with_context(|| format!("index {}", dir.display()))?;
        let summary = w.update(docs, &|_| {})?;
        w.finish()?;
        eprintln!("indexed {}: {summary}", dir.display());
    }
    if !dir.join("meta.json").exists() {
        return Ok(None);
    }
    let r = Retriever::open(dir).with_context(|| format!("index {}", dir.display()))?;
    Ok(Some(Arc::new(r)))
}

/// Every tool the config declares: built-ins, command tools and the tools of its MCP servers
/// (started on `rt`, which must outlive them; the servers are returned to be closed).
pub fn build_tools(
    c: &Config,
    retriever: Option<Arc<Retriever>>,
    rt: &tokio::runtime::Runtime,
) -> Result<(Registry, Vec<Arc<McpServer>>)> {
    let mut reg = Registry::new().with_limits(CallLimits {
        timeout: c.tool_timeout,
        max_output_chars: c.tool_output_chars,
    });
    reg.register(Arc::new(CurrentTime::new()?))?;
    if let Some(r) = retriever {
        reg.register(Arc::new(SearchDocs::new(r.clone())?))?;
        reg.register(Arc::new(ReadDoc::new(r)?))?;
    }
    if let Some(db) = &c.sql_db {
        let tool = SqlQuery::new(db, c.sql_max_rows, c.tool_timeout)
            .with_context(|| format!("tools.sql_db {}", db.display()))?;
        reg.register(Arc::new(tool))?;
    }
    for cmd in &c.commands {
        let params: Value = serde_json::from_str(&cmd.parameters)
            .with_context(|| format!("tools.command `{}` parameters", cmd.name))?;
        let spec = ToolSpec::new(&cmd.name, cmd.description.clone(), params)
            .with_context(|| format!("tools.command `{}`", cmd.name))?;
        let tool = CommandTool::new(spec, &cmd.program, cmd.args.clone(), &c.allow_programs)
            .with_context(|| format!("tools.command `{}`", cmd.name))?;
        reg.register(Arc::new(tool))
            .with_context(|| format!("tools.command `{}`", cmd.name))?;
    }
    let mut servers = Vec::new();
    for m in &c.mcp {
        let what = || format!("tools.mcp `{}`", m.name);
        let added = rt
            .block_on(McpServer::connect(m, &c.allow_programs, c.tool_timeout))
            .and_then(|server| {
                servers.push(Arc::clone(&server));
                server
                    .tools(m)?
                    .into_iter()
                    .try_for_each(|tool| reg.register(tool))
            });
        if let Err(e) = added {
            // The servers started so far go before the error does.
            rt.block_on(async {
                for s in &servers {
                    s.close().await;
                }
            });
            return Err(anyhow::Error::from(e).context(what()));
        }
    }
    Ok((reg, servers))
}

/// Reads a JSON schema file, naming it in errors.
pub fn read_schema(path: &Path, flag: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{flag} {}: cannot read", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{flag} {}: not JSON", path.display()))?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&v)
        .map_err(|e| anyhow::anyhow!("{flag} {}: not a valid JSON Schema: {e}", path.display()))?;
    Ok(v)
}
