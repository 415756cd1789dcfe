//! [`EngineBackend`]: the embedded engine as the loop's [`Backend`].
//!
//! One turn:
//!
//! ```text
//! render messages + tools with the model's chat template -> ids
//! restore the longest saved point whose tokens begin ids; prefill only the rest
//! thinking (budget > 0): "<think>" if the model did not write it, free sampling with the
//!     end tokens masked, until "</think>" or the budget (then "</think>" is appended)
//! body: under a schema, the engine's tool-call constraint "tool call | answer";
//!       without one, free text until "<|tool_call_start|>", then the call-list grammar
//! ```
//!
//! The session is kept across turns and runs. Points saved: the end of the system turn (the
//! task's instructions and tool list, shared by every run of a task: prefix caching), and the
//! end of each turn's prompt and generation. A saved point is used only when its tokens are
//! a prefix of the new prompt's, so reuse never changes what the model sees. A prompt that
//! extends the previous prompt and its generation keeps the generated tokens as they were
//! drawn (not re-tokenized), so the second turn of a run prefills only the tool results. The
//! LFM2.5 template drops the thinking of every assistant turn but the last, so from the third
//! turn on the conversation diverges at the start of the previous assistant message: the
//! prefill saves a point there, and the turn after re-prefills from it (that message without
//! its thinking, and what followed it), not from the system turn.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lfm_engine::batch::{BatchedSession, Batcher, Claim, Prefix, SharedPrefixes};
use lfm_engine::constraint::{ConstraintCompiler, ConstraintSpec, GrammarMatcher};
use lfm_engine::folder::LoadedModel;
use lfm_engine::lookup::{self, DraftOptions, Verdict};
use lfm_engine::model::Logits;
use lfm_engine::sampling::{Sampler, SamplingParams};
use lfm_engine::session::{Session, Snapshot};
use lfm_engine::text::{Message, Role, Tokenizer};
use lfm_tools::ToolSpec;
use serde_json::Value;

use crate::runner::{Backend, BackendError, Turn, TurnRequest};
use crate::toolcall::{turn_spec, CALL_START};

/// Saved points kept besides the system turn's.
const KEEP_POINTS: usize = 6;

/// How the engine backend decodes.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Most thinking tokens per turn; 0 skips thinking (an Instruct model).
    pub think_budget: usize,
    /// Sampling.
    pub sampling: SamplingParams,
    /// Session context in tokens.
    pub context: usize,
    /// Prefill chunk.
    pub prefill_chunk: usize,
    /// Check prompt-lookup drafts while decoding under a grammar (greedy sampling only; the
    /// output is the same, faster where it copies the prompt, as extraction does).
    pub draft: Option<DraftOptions>,
}

/// The embedded engine.
pub struct EngineBackend {
    model: Arc<LoadedModel>,
    compiler: ConstraintCompiler,
    session: BatchedSession,
    opts: EngineOptions,
    stop_tokens: Vec<u32>,
    /// The last system turn's tokens and, once prefilled, the point after them.
    system: Option<(Vec<u32>, Option<Snapshot>)>,
    points: Vec<Snapshot>,
    /// The last turn's prompt text with its generated text, and their exact tokens: a next
    /// prompt that extends that text is tokenized as those tokens plus its new text, so the
    /// session's state for them is reused even where re-tokenizing the generated text would
    /// split it differently.
    last: Option<(String, Vec<u32>)>,
    sampler: Sampler,
    /// Set by the caller to stop a turn at the next token (a server's client went away).
    cancel: Option<Arc<AtomicBool>>,
    /// Shown the turn's text after every token; returning `false` ends the turn there.
    observer: Option<Observer>,
    /// System-turn states shared with the other backends of a pool.
    shared: Option<SharedPrefixes>,
}

/// Sees a turn after each token; `false` ends the turn with what it has (a stop string was
/// written, a stream's reader went away).
pub type Observer = Box<dyn FnMut(&Generated<'_>) -> bool + Send>;

/// What a turn has generated so far, thinking included.
pub struct Generated<'a> {
    tokens: &'a [u32],
    tok: &'a Tokenizer,
}

impl Generated<'_> {
    /// Tokens so far.
    pub fn tokens(&self) -> &[u32] {
        self.tokens
    }

    /// The text so far, decoded on request (an observer that only counts pays nothing). A
    /// token that ends inside a character decodes to U+FFFD; readers hold a trailing one back
    /// until the character is whole.
    pub fn text(&self) -> String {
        self.tok.decode(self.tokens).unwrap_or_default()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(format!("{what}: {e}"))
}

impl EngineBackend {
    /// A backend over a loaded model (which needs a tokenizer).
    pub fn new(model: Arc<LoadedModel>, opts: EngineOptions) -> Result<Self, String> {
        if model.tokenizer.is_none() {
            return Err(format!(
                "{}: no tokenizer; the agent needs tokenizer.json or a GGUF with tokenizer.ggml.* keys",
                model.dir.display()
            ));
        }
        model.template().map_err(|e| e.to_string())?;
        let compiler = model.constraint_compiler().map_err(|e| e.to_string())?;
        let session = Session::new(model.model.clone(), opts.context).map_err(|e| e.to_string())?;
        let session = BatchedSession::new(session, None).map_err(|e| e.to_string())?;
        let sampler = Sampler::new(opts.sampling.clone()).map_err(|e| e.to_string())?;
        Ok(EngineBackend {
            stop_tokens: model.stop_tokens(),
            model,
            compiler,
            session,
            opts,
            system: None,
            points: Vec::new(),
            last: None,
            sampler,
            cancel: None,
            observer: None,
            shared: None,
        })
    }

    /// Sampling for the turns from now on (a server's per-request temperature, top_p, seed).
    pub fn set_sampling(&mut self, p: SamplingParams) -> Result<(), String> {
        self.sampler = Sampler::new(p.clone()).map_err(|e| e.to_string())?;
        self.opts.sampling = p;
        Ok(())
    }

    /// The sampling in force.
    pub fn sampling(&self) -> &SamplingParams {
        &self.opts.sampling
    }

    /// Thinking tokens per turn from now on.
    pub fn set_think_budget(&mut self, n: usize) {
        self.opts.think_budget = n;
    }

    /// A flag that, once set, ends the turn in progress with an error at its next token.
    pub fn set_cancel(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.cancel = flag;
    }

    /// Shows every turn from now on to `observer` as it is generated.
    pub fn set_observer(&mut self, observer: Option<Observer>) {
        self.observer = observer;
    }

    /// Runs this backend's forward passes through `batcher`, shared with other backends on
    /// other threads (continuous batching). The session's KV lives in the batcher's budget:
    /// each turn holds room for its prompt and `max_tokens`; between turns the session is
    /// parked, and may be evicted for another turn's room (the next turn then prefills its
    /// conversation again).
    pub fn with_batcher(mut self, batcher: Batcher) -> Result<Self, String> {
        let m = self.model.model.clone();
        let kv = m.default_kv_dtype();
        let session =
            Session::with_capacity(m, self.opts.context, kv, 0).map_err(|e| e.to_string())?;
        self.session = BatchedSession::new(session, Some(batcher)).map_err(|e| e.to_string())?;
        self.system = None;
        self.points.clear();
        self.last = None;
        Ok(self)
    }

    /// Shares system-turn states with the other backends given the same `prefixes`: a system
    /// turn one of them has prefilled is forked, not prefilled again (several starting at once
    /// wait for the first).
    pub fn with_shared_prefixes(mut self, prefixes: SharedPrefixes) -> Self {
        self.shared = Some(prefixes);
        self
    }

    /// Makes the session a fork of the shared state at the end of the system turn `prefix`
    /// when there is one (waiting while another backend prefills it), or gives the claim to
    /// prefill it. Only when the session holds no usable state of that system turn.
    fn adopt_system(&mut self, prefix_len: usize) -> Result<Option<Claim>, BackendError> {
        let (Some(shared), Some((tokens, point))) = (&self.shared, &self.system) else {
            return Ok(None);
        };
        if prefix_len == 0 || point.as_ref().is_some_and(|p| self.session.can_restore(p)) {
            return Ok(None);
        }
        match shared
            .get(tokens, &mut self.session)
            .map_err(|e| failed("sharing the system turn", e))?
        {
            Prefix::Claimed(c) => Ok(Some(c)),
            Prefix::Forked => {
                self.points.clear();
                let snap = self.session.snapshot().map_err(|e| failed("snapshot", e))?;
                if let Some((_, s)) = &mut self.system {
                    *s = Some(snap);
                }
                Ok(None)
            }
        }
    }

    /// The session's context in tokens.
    pub fn context(&self) -> usize {
        self.session.context()
    }

    fn tokenizer(&self) -> &Tokenizer {
        // Checked in `new`.
        self.model
            .tokenizer
            .as_ref()
            .unwrap_or_else(|| unreachable!("checked when the backend was built"))
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, BackendError> {
        self.tokenizer()
            .encode(text)
            .map_err(|e| failed("tokenizing", e))
    }

    /// Brings the session to the end of `ids`: restores the best saved point and prefills
    /// the rest. Returns the logits after the last token and how many tokens were prefilled.
    /// `claim`: this backend prefills the system turn for the pool, and hands it over when it
    /// gets there (dropped unfulfilled on an error, which lets another backend claim it).
    fn prefill(
        &mut self,
        ids: &[u32],
        system_len: usize,
        assistant_at: usize,
        mut claim: Option<Claim>,
    ) -> Result<(Vec<f32>, usize), BackendError> {
        let mut candidates: Vec<&Snapshot> = self
            .points
            .iter()
            .chain(self.system.as_ref().and_then(|(_, s)| s.as_ref()))
            .filter(|s| s.tokens().len() < ids.len() && ids.starts_with(s.tokens()))
            .collect();
        candidates.sort_by_key(|s| std::cmp::Reverse(s.tokens().len()));
        let mut start = None;
        for s in candidates {
            if self.session.restore(s).is_ok() {
                start = Some(s.tokens().len());
                break;
            }
        }
        let start = match start {
            Some(n) => n,
            None => {
                self.session
                    .reset()
                    .map_err(|e| failed("resetting the session", e))?;
                0
            }
        };
        let chunk = self.opts.prefill_chunk;
        // Save points where this prefill crosses them: the end of the system turn, and the
        // start of the last assistant message (where the next turns' prompts will diverge
        // once the template drops that message's thinking).
        let mut at = start;
        for mark in [system_len, assistant_at] {
            if mark <= at || mark >= ids.len() {
                continue;
            }
            self.session
                .prefill(&ids[at..mark], chunk)
                .map_err(|e| failed("prefill", e))?;
            let snap = self.session.snapshot().map_err(|e| failed("snapshot", e))?;
            match &mut self.system {
                Some((_, s)) if mark == system_len => {
                    *s = Some(snap);
                    if let Some(c) = claim.take().filter(|c| c.tokens() == &ids[..mark]) {
                        // A failed hand-over only costs the others a prefill of their own
                        // (the dropped claim wakes them); this turn goes on.
                        let handed = c.fulfil(&self.session);
                        if let Err(e) = handed {
                            tracing::warn!(error = %e, "could not share the system turn");
                        }
                    }
                }
                _ => self.points.push(snap),
            }
            at = mark;
        }
        let logits = self
            .session
            .prefill(&ids[at..], chunk)
            .map_err(|e| failed("prefill", e))?;
        Ok((logits, ids.len() - start))
    }

    /// Where the content of the last assistant message of `messages` starts in `ids` (0 when
    /// there is none, or when its rendering is not a token prefix of `ids`). The conversation
    /// up to that message is rendered twice with the message's content replaced by two
    /// different texts; the common prefix is the text before the content, whatever the
    /// template writes around it, with earlier messages rendered exactly as in the prompt.
    fn last_assistant_start(
        &self,
        messages: &[Message],
        tools: &[Value],
        ids: &[u32],
    ) -> Result<usize, BackendError> {
        let Some(i) = messages.iter().rposition(|m| m.role == Role::Assistant) else {
            return Ok(0);
        };
        let template = self
            .model
            .template()
            .map_err(|e| failed("rendering the conversation", e))?;
        let mut upto = messages[..=i].to_vec();
        let mut render = |content: &str| {
            upto[i].content = content.to_string();
            template
                .render(&upto, tools, false)
                .map_err(|e| failed("rendering the conversation", e))
        };
        let (a, b) = (render("A")?, render("B")?);
        let common = a
            .char_indices()
            .zip(b.chars())
            .find(|((_, x), y)| x != y)
            .map_or(a.len(), |((at, _), _)| at);
        let prefix = self.encode(&a[..common])?;
        Ok(if ids.starts_with(&prefix) {
            prefix.len()
        } else {
            0
        })
    }

    /// Tokens of the system turn alone (instructions and tool list), when they begin `ids`.
    fn system_prefix(
        &mut self,
        messages: &[Message],
        tools: &[Value],
        ids: &[u32],
    ) -> Result<usize, BackendError> {
        if messages.first().map(|m| m.role) != Some(Role::System) {
            return Ok(0);
        }
        let text = self
            .model
            .template()
            .and_then(|t| t.render(&messages[..1], tools, false))
            .map_err(|e| failed("rendering the system turn", e))?;
        let prefix = self.encode(&text)?;
        if !ids.starts_with(&prefix) {
            return Ok(0);
        }
        if self.system.as_ref().map(|(t, _)| t) != Some(&prefix) {
            // A new system turn: its point is saved by the prefill that crosses it.
            self.system = Some((prefix.clone(), None));
        }
        Ok(prefix.len())
    }
}

impl EngineBackend {
    /// A plain completion of `prompt` (no chat template, no tools): the model's beginning
    /// token unless the prompt starts with it, then free sampling until an end token or
    /// `max_tokens`. Saved points are used and kept as for chat turns.
    pub fn complete_raw(&mut self, prompt: &str, max_tokens: usize) -> Result<Turn, BackendError> {
        let out = self.raw_turn(prompt, max_tokens);
        self.session.end();
        out
    }

    fn raw_turn(&mut self, prompt: &str, max_tokens: usize) -> Result<Turn, BackendError> {
        let mut ids = self.prompt_ids(prompt)?;
        if let Some(bos) = self.model.model.config().bos_token_id {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        let cancel = self.cancel.clone();
        self.room(ids.len(), max_tokens, cancel.as_deref())?;
        let (logits, prefilled) = self.prefill(&ids, 0, 0, None)?;
        let prompt_point = self.session.snapshot().map_err(|e| failed("snapshot", e))?;
        let tok = self.tokenizer().clone();
        let mut d = Decoder {
            session: &mut self.session,
            sampler: &mut self.sampler,
            stop_tokens: &self.stop_tokens,
            cancel: cancel.as_deref(),
            observer: self.observer.as_mut().map(|f| (f, &tok)),
            stopped: false,
            logits,
            out: Vec::new(),
            budget: max_tokens,
            times: Times::default(),
            draft: None,
        };
        while d.left() > 0 {
            let t = d.draw(false)?;
            if d.stop_tokens.contains(&t) {
                break;
            }
            d.push(t)?;
        }
        let out = std::mem::take(&mut d.out);
        let text = tok.decode(&out).map_err(|e| failed("decoding", e))?;
        self.keep_points(prompt_point)?;
        let mut all = ids;
        all.extend_from_slice(&out);
        self.last = Some((format!("{prompt}{text}"), all));
        Ok(Turn {
            text,
            prompt_tokens: prefilled,
            completion_tokens: out.len(),
        })
    }

    /// The tokens of `prompt`: the last turn's exact tokens where the prompt extends its text
    /// (so the session's state for them is reused), then the new text's.
    fn prompt_ids(&self, prompt: &str) -> Result<Vec<u32>, BackendError> {
        match &self.last {
            Some((text, ids)) if prompt.starts_with(text.as_str()) => {
                let mut ids = ids.clone();
                ids.extend(self.encode(&prompt[text.len()..])?);
                Ok(ids)
            }
            _ => self.encode(prompt),
        }
    }

    /// The tokens a turn needs (`prompt_len` + `max_tokens`), when they fit the context.
    fn fits(&self, prompt_len: usize, max_tokens: usize) -> Result<usize, BackendError> {
        let needed = prompt_len.saturating_add(max_tokens);
        let limit = self.session.context();
        if needed > limit {
            return Err(BackendError::ContextFull { needed, limit });
        }
        Ok(needed)
    }

    /// [`Self::fits`], and begins the session's turn: when batched, that holds KV room for
    /// them in the batcher's budget (waiting while it is taken) until the turn ends.
    fn room(
        &mut self,
        prompt_len: usize,
        max_tokens: usize,
        cancel: Option<&AtomicBool>,
    ) -> Result<(), BackendError> {
        let needed = self.fits(prompt_len, max_tokens)?;
        self.session.begin(needed, cancel).map_err(|e| match e {
            lfm_engine::Error::ContextFull { needed, limit } => {
                BackendError::ContextFull { needed, limit }
            }
            e => failed("joining the batch", e),
        })
    }

    /// Keeps the point after the prompt and the one after the generation.
    fn keep_points(&mut self, prompt_point: Snapshot) -> Result<(), BackendError> {
        let after = self.session.snapshot().map_err(|e| failed("snapshot", e))?;
        self.points.push(prompt_point);
        self.points.push(after);
        let excess = self.points.len().saturating_sub(KEEP_POINTS);
        self.points.drain(..excess);
        Ok(())
    }
}

/// Where a turn's decoding is.
struct Decoder<'a> {
    session: &'a mut BatchedSession,
    sampler: &'a mut Sampler,
    stop_tokens: &'a [u32],
    cancel: Option<&'a AtomicBool>,
    observer: Option<(&'a mut Observer, &'a Tokenizer)>,
    /// The observer ended the turn.
    stopped: bool,
    logits: Vec<f32>,
    out: Vec<u32>,
    budget: usize,
    /// Where the time went, for the debug log.
    times: Times,
    /// Prompt-lookup drafts, when on and sampling is greedy.
    draft: Option<DraftOptions>,
}

/// Seconds spent per phase of a turn.
#[derive(Debug, Default)]
struct Times {
    forward: f64,
    mask: f64,
    sample: f64,
    grammar: f64,
}

fn timed<T>(acc: &mut f64, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    *acc += t.elapsed().as_secs_f64();
    out
}

impl Decoder<'_> {
    fn left(&self) -> usize {
        if self.stopped {
            return 0;
        }
        self.budget.saturating_sub(self.out.len())
    }

    /// Shows the turn so far to the observer, after tokens were appended.
    fn observe(&mut self) {
        if let Some((f, tok)) = &mut self.observer {
            if !f(&Generated {
                tokens: &self.out,
                tok,
            }) {
                self.stopped = true;
            }
        }
    }

    /// Appends tokens the turn must contain (one forward pass).
    fn force(&mut self, tokens: &[u32]) -> Result<(), BackendError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let session = &mut *self.session;
        let l = timed(&mut self.times.forward, || {
            session.forward(tokens, Logits::Last)
        })
        .map_err(|e| failed("decode", e))?;
        self.logits = l
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(|e| failed("decode", e))?;
        self.out.extend_from_slice(tokens);
        self.observe();
        Ok(())
    }

    /// Draws a token (the end tokens masked when `no_end`); does not run it.
    fn draw(&mut self, no_end: bool) -> Result<u32, BackendError> {
        if no_end {
            for &t in self.stop_tokens {
                if let Some(l) = self.logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        let (sampler, logits, history) = (&mut *self.sampler, &self.logits, self.session.tokens());
        timed(&mut self.times.sample, || sampler.sample(logits, history))
            .map_err(|e| failed("sampling", e))
    }

    /// Keeps a drawn token (a cancelled turn ends first); false when the observer ended the
    /// turn with it, which then is kept but not run.
    fn keep(&mut self, token: u32) -> Result<bool, BackendError> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(BackendError::Failed("cancelled".into()));
        }
        self.out.push(token);
        self.observe();
        Ok(!self.stopped)
    }

    /// Runs a drawn token.
    fn push(&mut self, token: u32) -> Result<(), BackendError> {
        if !self.keep(token)? {
            return Ok(());
        }
        let session = &mut *self.session;
        self.logits = timed(&mut self.times.forward, || session.decode(token))
            .map_err(|e| failed("decode", e))?;
        Ok(())
    }

    /// Runs a drawn token the grammar accepted; with drafts on, checks a prompt-lookup draft
    /// after it in the same pass (`lfm_engine::lookup`): each drafted token is masked, drawn
    /// and accepted as it would have been alone, and taken only if it is what was drawn.
    fn push_drafted(&mut self, token: u32, m: &mut GrammarMatcher) -> Result<(), BackendError> {
        let Some(opts) = self.draft else {
            return self.push(token);
        };
        // Where the grammar forces what comes next, the loop fast-forwards it instead.
        if !timed(&mut self.times.grammar, || m.forced_tokens()).is_empty() {
            return self.push(token);
        }
        let tokens = self.session.tokens();
        let room = (self.session.context().saturating_sub(tokens.len() + 1))
            .min(self.left().saturating_sub(1));
        let draft = lookup::draft_after(tokens, token, room, &opts);
        if draft.is_empty() {
            return self.push(token);
        }
        if !self.keep(token)? {
            return Ok(());
        }
        let Decoder {
            session,
            sampler,
            stop_tokens,
            observer,
            stopped,
            out,
            budget,
            times,
            ..
        } = self;
        let t0 = Instant::now();
        let checked = lookup::check(&mut **session, token, &draft, |j, row, history| {
            if m.is_stopped() || !m.forced_tokens().is_empty() {
                return Ok(Verdict::Reject);
            }
            m.mask_logits(row)?;
            let pick = sampler.sample(row, history)?;
            // An end token is left to the loop, which draws it again and ends the turn.
            if pick != draft[j] || stop_tokens.contains(&pick) {
                return Ok(Verdict::Reject);
            }
            m.accept(pick)?;
            out.push(pick);
            if let Some((f, tok)) = observer {
                if !f(&Generated { tokens: out, tok }) {
                    *stopped = true;
                }
            }
            Ok(if *stopped || m.is_stopped() || out.len() >= *budget {
                Verdict::Last
            } else {
                Verdict::Take
            })
        })
        .map_err(|e| failed("decode", e))?;
        times.forward += t0.elapsed().as_secs_f64();
        tracing::trace!(
            drafted = draft.len(),
            taken = checked.taken,
            "draft checked"
        );
        if let Some(l) = checked.logits {
            self.logits = l;
        }
        Ok(())
    }

    /// Decodes under `m` until it completes, an end token, or the budget.
    fn constrained(&mut self, m: &mut GrammarMatcher) -> Result<(), BackendError> {
        let gf = |e: lfm_engine::Error| failed("constraint", e);
        while self.left() > 0 && !m.is_stopped() {
            let mut forced = timed(&mut self.times.grammar, || m.forced_tokens());
            if !forced.is_empty() {
                forced.truncate(self.left());
                let t0 = Instant::now();
                for &t in &forced {
                    m.accept(t).map_err(gf)?;
                }
                self.times.grammar += t0.elapsed().as_secs_f64();
                self.force(&forced)?;
                continue;
            }
            let logits = &mut self.logits;
            timed(&mut self.times.mask, || m.mask_logits(logits)).map_err(gf)?;
            let t = self.draw(false)?;
            if self.stop_tokens.contains(&t) {
                break;
            }
            timed(&mut self.times.grammar, || m.accept(t)).map_err(gf)?;
            if m.is_stopped() || self.left() == 1 {
                self.out.push(t);
                self.observe();
                break;
            }
            self.push_drafted(t, m)?;
        }
        Ok(())
    }
}

impl Backend for EngineBackend {
    fn prepare(
        &mut self,
        tools: &[&ToolSpec],
        answer_schema: Option<&Value>,
    ) -> Result<(), String> {
        let spec = match answer_schema {
            Some(_) => turn_spec(tools, answer_schema, false),
            None if tools.is_empty() => return Ok(()),
            None => turn_spec(tools, None, true),
        };
        self.compiler
            .compile(&ConstraintSpec::ToolCalls(spec))
            .map_err(|e| {
                format!("the engine cannot enforce the answer schema or the tool schemas: {e}")
            })?;
        Ok(())
    }

    fn complete(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        let out = self.turn(req);
        // Batched, the session goes back to the park with what it holds, whatever happened.
        self.session.end();
        out
    }
}

impl EngineBackend {
    /// One chat turn ([`Backend::complete`]) inside the session's turn.
    fn turn(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|s| serde_json::to_value(s).map_err(|e| failed("tool spec", e)))
            .collect::<Result<_, _>>()?;
        let prompt = self
            .model
            .template()
            .and_then(|t| t.render(req.messages, &tools, true))
            .map_err(|e| failed("rendering the conversation", e))?;
        let ids = self.prompt_ids(&prompt)?;
        if ids.is_empty() {
            return Err(failed("rendering the conversation", "no tokens"));
        }
        self.fits(ids.len(), req.max_tokens)?;
        let system_len = self.system_prefix(req.messages, &tools, &ids)?;
        // Room in the batcher's budget for the turn (waits while it is taken), then the
        // shared system turn (this may wait for another backend's prefill, which holds its
        // own room already).
        // The request's flag, else the backend's.
        let own = self.cancel.clone();
        let cancel = req.cancel.or(own.as_deref());
        self.room(ids.len(), req.max_tokens, cancel)?;
        let claim = self.adopt_system(system_len)?;
        let t0 = Instant::now();
        let assistant_at = self.last_assistant_start(req.messages, &tools, &ids)?;
        let (logits, prefilled) = self.prefill(&ids, system_len, assistant_at, claim)?;
        let prefill_secs = t0.elapsed().as_secs_f64();
        let prompt_point = self.session.snapshot().map_err(|e| failed("snapshot", e))?;

        let think = self.opts.think_budget;
        let think_start = self.encode("<think>")?;
        let think_end = self.encode("</think>")?;
        let body_spec = if req.require_call && !req.tools.is_empty() {
            Some(ConstraintSpec::ToolCalls(turn_spec(req.tools, None, false)))
        } else {
            req.answer_schema
                .map(|a| ConstraintSpec::ToolCalls(turn_spec(req.tools, Some(a), false)))
        };
        let tok = self.tokenizer().clone();
        let mut d = Decoder {
            session: &mut self.session,
            sampler: &mut self.sampler,
            stop_tokens: &self.stop_tokens,
            cancel,
            observer: self.observer.as_mut().map(|f| (f, &tok)),
            stopped: false,
            logits,
            out: Vec::new(),
            budget: req.max_tokens,
            times: Times::default(),
            draft: self
                .opts
                .draft
                .filter(|_| self.opts.sampling.temperature <= 0.0),
        };
        // Thinking takes at most half of what the turn has left, so the call or the answer
        // always has room.
        let think = think.min((d.left() / 2).saturating_sub(think_start.len() + think_end.len()));
        if think > 0 {
            if !prompt.trim_end().ends_with("<think>") {
                d.force(&think_start)?;
            }
            let opened = d.out.len();
            while !d.stopped {
                if d.out.len() - opened >= think {
                    d.force(&think_end)?;
                    break;
                }
                let t = d.draw(true)?;
                d.push(t)?;
                let tail = &d.out[opened..];
                if tail.ends_with(&think_end) {
                    break;
                }
                let recent = &tail[tail.len().saturating_sub(8)..];
                if tok.decode(recent).is_ok_and(|s| s.contains("</think>")) {
                    break;
                }
            }
        }
        match body_spec {
            Some(spec) => {
                let mut m = self
                    .compiler
                    .compile(&spec)
                    .map_err(|e| failed("compiling the turn grammar", e))?;
                d.constrained(&mut m)?;
            }
            None => {
                // Free text; a call, once opened, is constrained.
                let call_start = tok
                    .encode(CALL_START)
                    .map_err(|e| failed("tokenizing", e))?;
                let from = d.out.len();
                while d.left() > 0 {
                    let t = d.draw(false)?;
                    if d.stop_tokens.contains(&t) {
                        break;
                    }
                    d.push(t)?;
                    // Only the end of the text can hold the marker, and a token decodes to
                    // at least one byte: twice its length in tokens is ample (decoding the
                    // whole turn at every token was quadratic).
                    let tail = d.out.len().saturating_sub(2 * CALL_START.len()).max(from);
                    let body = tok.decode(&d.out[tail..]).unwrap_or_default();
                    if !req.tools.is_empty()
                        && (d.out.ends_with(&call_start) || body.ends_with(CALL_START))
                    {
                        let spec = ConstraintSpec::ToolCalls(turn_spec(req.tools, None, true));
                        let mut m = self
                            .compiler
                            .compile(&spec)
                            .map_err(|e| failed("compiling the call grammar", e))?;
                        d.constrained(&mut m)?;
                        break;
                    }
                }
            }
        }
        let out = std::mem::take(&mut d.out);
        tracing::debug!(
            prefilled,
            generated = out.len(),
            prefill_s = prefill_secs,
            forward_s = d.times.forward,
            mask_s = d.times.mask,
            sample_s = d.times.sample,
            grammar_s = d.times.grammar,
            "turn"
        );
        let text = tok.decode(&out).map_err(|e| failed("decoding", e))?;
        self.keep_points(prompt_point)?;
        let mut all = ids;
        all.extend_from_slice(&out);
        self.last = Some((format!("{prompt}{text}"), all));
        Ok(Turn {
            text,
            prompt_tokens: prefilled,
            completion_tokens: out.len(),
        })
    }
}
