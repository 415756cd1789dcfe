//! Grammar-constrained decoding: JSON Schema, regular expressions and Lark grammars, enforced
//! token by token with `llguidance` over a token trie built from the model's own tokenizer.
//!
//! Staging follows the spec → compiled → cursor pattern:
//!
//! ```text
//! ConstraintSpec            what the caller asks for (a schema, a regex, a grammar)
//!   └ ConstraintCompiler    built once per tokenizer (token trie, parser factory, limits)
//!       └ GrammarMatcher    one per request: mask, commit, forced tokens, completion
//! ```
//!
//! A spec the engine cannot enforce is refused by [`ConstraintCompiler::compile`] before any
//! token is generated, with llguidance's message, which names the keyword or rule.
//! [`schema`] adds sound coverage beyond llguidance's defaults (see there).

mod keys;
mod numbers;
pub mod schema;
mod toolcalls;

pub use keys::KeyGuard;
pub use numbers::NumberGuard;
pub use toolcalls::{ToolCallSpec, ToolDef, CALL_END, CALL_START, DEFAULT_MAX_CALLS};

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::text::Tokenizer;

/// What a generation must conform to.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintSpec {
    /// A JSON Schema (draft 2020-12); the output is one JSON value that validates.
    JsonSchema(Value),
    /// A regular expression the whole output must match.
    Regex(String),
    /// A Lark-style context-free grammar (llguidance's dialect, `start` rule first).
    Lark(String),
    /// One to several calls of the listed tools in LFM2's format, each call's arguments
    /// valid under its tool's schema, or (if the spec has one) a final answer.
    ToolCalls(ToolCallSpec),
}

impl ConstraintSpec {
    /// Short name of the kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ConstraintSpec::JsonSchema(_) => "JSON schema",
            ConstraintSpec::Regex(_) => "regex",
            ConstraintSpec::Lark(_) => "grammar",
            ConstraintSpec::ToolCalls(_) => "tool calls",
        }
    }

    /// Whether the output is JSON (plus the call tokens): the number and key guards apply.
    fn is_json(&self) -> bool {
        matches!(
            self,
            ConstraintSpec::JsonSchema(_) | ConstraintSpec::ToolCalls(_)
        )
    }
}

/// Compiles constraints for one tokenizer. Cheap to clone; build it once per model.
#[derive(Clone)]
pub struct ConstraintCompiler {
    factory: Arc<ParserFactory>,
    env: toktrie::TokEnv,
    vocab_size: usize,
    /// The number of `"` bytes in each token, for the key guard.
    quotes: Arc<Vec<u8>>,
    /// The tokens with two or more.
    multi_quote: Arc<Vec<u32>>,
}

impl std::fmt::Debug for ConstraintCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintCompiler")
            .field("vocab_size", &self.vocab_size)
            .finish()
    }
}

impl ConstraintCompiler {
    /// Builds the token trie of `tokenizer` for a model of `vocab_size` logits; `end` is the
    /// token that ends a turn (`<|im_end|>`), allowed once the grammar is complete.
    pub fn new(tokenizer: &Tokenizer, vocab_size: usize, end: u32) -> Result<Self> {
        let err = |e: String| Error::Constraint(format!("building the token trie: {e}"));
        let mut bt = toktrie_hf_tokenizers::ByteTokenizer::from_tokenizer(tokenizer.hf().clone())
            .map_err(|e| err(e.to_string()))?;
        bt.set_eos_token(end);
        let env = bt
            .into_tok_env(Some(vocab_size))
            .map_err(|e| err(e.to_string()))?;
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| err(e.to_string()))?;
        factory.quiet();
        // Schemas come from outside: bound the work one of them can cause.
        let limits = factory.limits_mut();
        limits.step_lexer_fuel = 2_000_000;
        limits.max_grammar_size = 2_000_000;
        let trie = env.tok_trie();
        let quotes = (0..trie.vocab_size() as u32)
            .map(|t| keys::count_quotes(trie.token(t)))
            .collect::<Vec<u8>>();
        let multi_quote = (0..quotes.len() as u32)
            .filter(|&t| quotes[t as usize] > 1)
            .collect();
        Ok(ConstraintCompiler {
            factory: Arc::new(factory),
            env,
            vocab_size,
            quotes: Arc::new(quotes),
            multi_quote: Arc::new(multi_quote),
        })
    }

    /// Compiles `spec` into a matcher, or refuses it with a message naming what is unsupported.
    pub fn compile(&self, spec: &ConstraintSpec) -> Result<GrammarMatcher> {
        self.compile_with(spec, schema::Adaptations::default())
    }

    /// [`Self::compile`], taking only the schema adaptations `steps` selects (for measuring
    /// what each adds; tool-call specs always take all of them).
    pub fn compile_with(
        &self,
        spec: &ConstraintSpec,
        steps: schema::Adaptations,
    ) -> Result<GrammarMatcher> {
        let (grammar, notes) = match spec {
            ConstraintSpec::JsonSchema(v) => {
                let prepared = schema::prepare_with(v, steps)?;
                (
                    TopLevelGrammar::from_json_schema(prepared.schema),
                    prepared.notes,
                )
            }
            ConstraintSpec::Regex(r) => (TopLevelGrammar::from_regex(r), Vec::new()),
            ConstraintSpec::Lark(g) => (TopLevelGrammar::from_lark(g.clone()), Vec::new()),
            ConstraintSpec::ToolCalls(t) => (TopLevelGrammar::from_lark(t.to_lark()?), Vec::new()),
        };
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::Unsupported {
                kind: spec.kind(),
                message: e.to_string(),
            })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::Unsupported {
                kind: spec.kind(),
                message: e,
            });
        }
        Ok(GrammarMatcher {
            inner: matcher,
            env: self.env.clone(),
            vocab_size: self.vocab_size,
            notes,
            numbers: spec.is_json().then(NumberGuard::default),
            keys: spec.is_json().then(KeyGuard::default),
            quotes: self.quotes.clone(),
            multi_quote: self.multi_quote.clone(),
        })
    }
}

/// One request's position in a grammar.
pub struct GrammarMatcher {
    inner: Matcher,
    env: toktrie::TokEnv,
    vocab_size: usize,
    notes: Vec<String>,
    /// JSON only: keeps generated numbers representable (see [`NumberGuard`]).
    numbers: Option<NumberGuard>,
    /// JSON only: no key twice in one object (see [`KeyGuard`]).
    keys: Option<KeyGuard>,
    quotes: Arc<Vec<u8>>,
    multi_quote: Arc<Vec<u32>>,
}

impl std::fmt::Debug for GrammarMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrammarMatcher")
            .field("stopped", &self.inner.is_stopped())
            .finish()
    }
}

impl GrammarMatcher {
    /// Notes about how the spec was adapted (formats treated as plain strings, `oneOf`
    /// handled as `anyOf`), for `--verbose`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn fail(&self, what: &str) -> Error {
        Error::Constraint(format!(
            "{what}: {}",
            self.inner
                .get_error()
                .unwrap_or_else(|| "the grammar is in an error state".into())
        ))
    }

    /// Sets the logits of every token the grammar forbids to `-inf`.
    pub fn mask_logits(&mut self, logits: &mut [f32]) -> Result<()> {
        let mask = self
            .inner
            .compute_mask()
            .map_err(|_| self.fail("computing the token mask"))?;
        clear_forbidden(mask.as_slice(), logits);
        // The guards look at the allowed tokens one by one only where they may veto some.
        let n = logits.len().min(self.vocab_size);
        let in_key = self.keys.as_ref().is_some_and(KeyGuard::in_key);
        let in_number = self.numbers.as_ref().is_some_and(NumberGuard::active);
        let mut allowed = Vec::new();
        if in_key || in_number {
            allowed.reserve(mask.num_set());
            mask.iter_set_entries(|i| {
                if i < n {
                    allowed.push(i);
                }
            });
        }
        self.veto_repeated_keys(&allowed, logits)?;
        if let Some(g) = self.numbers.clone().filter(|g| g.active()) {
            let env = self.env.clone();
            let trie = env.tok_trie();
            let vetoed: Vec<usize> = allowed
                .iter()
                .copied()
                .filter(|&i| logits[i] > f32::NEG_INFINITY && !g.allows(trie.token(i as u32)))
                .collect();
            let remaining = allowed
                .iter()
                .filter(|&&i| logits[i] > f32::NEG_INFINITY)
                .count();
            let kill: Vec<usize> = if vetoed.len() < remaining {
                vetoed
            } else if g.over_limit() {
                // Only number-extending tokens fit (a `multipleOf` not yet satisfied, say):
                // keep those after which the number may end, if there are any.
                let mut closing = Vec::new();
                for &i in &vetoed {
                    if self.inner.consume_token(i as u32).is_err() {
                        continue;
                    }
                    let mut after = g.clone();
                    after.push(trie.token(i as u32));
                    let mut can_end = false;
                    if let Ok(mask) = self.inner.compute_mask() {
                        mask.iter_set_entries(|j| {
                            can_end |= j < n && after.allows(trie.token(j as u32))
                        });
                    }
                    if can_end {
                        closing.push(i);
                    }
                    self.inner
                        .rollback(1)
                        .map_err(|_| self.fail("rolling back a probe token"))?;
                }
                // Of those, the shortest: end the number as soon as possible.
                let shortest = closing.iter().map(|&i| trie.token(i as u32).len()).min();
                closing.retain(|&i| Some(trie.token(i as u32).len()) == shortest);
                if closing.is_empty() {
                    Vec::new()
                } else {
                    vetoed
                        .into_iter()
                        .filter(|i| !closing.contains(i))
                        .collect()
                }
            } else {
                Vec::new()
            };
            for i in kill {
                logits[i] = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Forbids every allowed token that would close a key already used in its object. Unlike
    /// the number guard's, this veto is not waived when nothing else is left: then
    /// generation stops with an error instead of writing the repeat.
    /// `allowed` lists the allowed tokens when the text is inside a key (else it may be empty).
    fn veto_repeated_keys(&self, allowed: &[usize], logits: &mut [f32]) -> Result<()> {
        let Some(k) = self.keys.as_ref() else {
            return Ok(());
        };
        let trie = self.env.tok_trie();
        let mut vetoed = 0;
        let len = logits.len();
        let mut veto = |i: usize, q: u8| {
            if i < len && logits[i] > f32::NEG_INFINITY && !k.allows(trie.token(i as u32), q) {
                logits[i] = f32::NEG_INFINITY;
                vetoed += 1;
            }
        };
        // Without a quote, or with one outside a key, a token cannot close a key: outside
        // keys only the few tokens with two or more quotes need a look.
        if k.in_key() {
            for &i in allowed {
                let q = self.quotes.get(i).copied().unwrap_or(0);
                if q > 0 {
                    veto(i, q);
                }
            }
        } else {
            for &i in self.multi_quote.iter() {
                veto(i as usize, self.quotes[i as usize]);
            }
        }
        if vetoed > 0 && logits.iter().all(|&l| l == f32::NEG_INFINITY) {
            return Err(Error::DeadEnd(
                "the grammar allows no continuation that does not repeat a key in one object"
                    .into(),
            ));
        }
        Ok(())
    }

    fn keys_allow(&self, token: u32) -> bool {
        self.keys.as_ref().is_none_or(|k| {
            let q = self.quotes.get(token as usize).copied().unwrap_or(0);
            k.allows(self.env.tok_trie().token(token), q)
        })
    }

    /// Whether `token` may come next.
    pub fn allows(&mut self, token: u32) -> Result<bool> {
        let n = self
            .inner
            .validate_tokens(&[token])
            .map_err(|_| self.fail("validating a token"))?;
        Ok(n == 1 && self.keys_allow(token))
    }

    /// Advances past `token`, which must be allowed. A token that would repeat a key in one
    /// object is an error ([`Error::DeadEnd`]); after [`Self::mask_logits`] only a token the
    /// grammar forces (fast-forward) can be one.
    pub fn accept(&mut self, token: u32) -> Result<()> {
        if !self.keys_allow(token) {
            return Err(Error::DeadEnd(format!(
                "token {token} would repeat a key in one object"
            )));
        }
        self.inner
            .consume_token(token)
            .map_err(|_| self.fail(&format!("token {token} does not fit the grammar")))?;
        let bytes = self.env.tok_trie().token(token);
        if let Some(g) = self.numbers.as_mut() {
            g.push(bytes);
        }
        if let Some(k) = self.keys.as_mut() {
            k.push(bytes);
        }
        Ok(())
    }

    /// Tokens the grammar forces next (fast-forward), possibly none.
    pub fn forced_tokens(&mut self) -> Vec<u32> {
        if self.inner.is_stopped() || self.inner.is_error() {
            return Vec::new();
        }
        self.inner.compute_ff_tokens()
    }

    /// Whether the text so far is a complete match (the end token may follow).
    pub fn is_complete(&mut self) -> bool {
        self.inner.is_stopped() || self.inner.is_accepting().unwrap_or(false)
    }

    /// Whether nothing may follow (the grammar is complete and admits no continuation).
    pub fn is_stopped(&self) -> bool {
        self.inner.is_stopped()
    }
}

/// Sets to `-inf` every logit whose bit in `words` (token `i` is bit `i % 32` of word
/// `i / 32`) is clear, and every logit past the mask: a word at a time, so an all-allowed or
/// all-forbidden word costs one comparison (and a fill).
fn clear_forbidden(words: &[u32], logits: &mut [f32]) {
    for (w, chunk) in logits.chunks_mut(32).enumerate() {
        let bits = words.get(w).copied().unwrap_or(0);
        if bits == u32::MAX && chunk.len() == 32 {
            continue;
        }
        if bits == 0 {
            // Most words under a grammar: one fill, not 32 scattered stores.
            chunk.fill(f32::NEG_INFINITY);
            continue;
        }
        let mut off = !bits;
        while off != 0 {
            let b = off.trailing_zeros() as usize;
            if let Some(l) = chunk.get_mut(b) {
                *l = f32::NEG_INFINITY;
            }
            off &= off - 1;
        }
    }
}

/// The outcome of walking a text through a grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Every token was allowed and the grammar is complete at the end.
    Accepted,
    /// Token `at` (0-based) was not allowed.
    RejectedAt {
        /// Index of the first refused token.
        at: usize,
    },
    /// Every token was allowed but the text stops before the grammar is complete.
    Incomplete {
        /// Number of tokens (the rejection point is the end).
        tokens: usize,
    },
}

impl CheckOutcome {
    /// Whether the text was accepted.
    pub fn accepted(&self) -> bool {
        matches!(self, CheckOutcome::Accepted)
    }

    /// The token index at which the text was refused (the end, if incomplete).
    pub fn rejected_at_token(&self) -> Option<usize> {
        match self {
            CheckOutcome::Accepted => None,
            CheckOutcome::RejectedAt { at } => Some(*at),
            CheckOutcome::Incomplete { tokens } => Some(*tokens),
        }
    }
}

impl GrammarMatcher {
    /// Walks `tokens` through the grammar, exactly as generation would consume them.
    pub fn check(&mut self, tokens: &[u32]) -> Result<CheckOutcome> {
        for (i, &t) in tokens.iter().enumerate() {
            if self.is_stopped() || !self.allows(t)? {
                return Ok(CheckOutcome::RejectedAt { at: i });
            }
            self.accept(t)?;
        }
        Ok(if self.is_complete() {
            CheckOutcome::Accepted
        } else {
            CheckOutcome::Incomplete {
                tokens: tokens.len(),
            }
        })
    }
}

#[cfg(test)]
mod tests;
