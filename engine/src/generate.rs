//! The generation loop: prefill a prompt, then sample, stream and stop.
//!
//! ```text
//! logits = session.prefill(prompt)
//! loop:
//!     token = sampler.sample(logits, session.tokens())
//!     stop token?            -> finish "stop" (the token is not part of the text)
//!     push token, stream the text that became complete
//!     stop string in text?   -> cut the text before it, finish "stop"
//!     max_tokens reached?    -> finish "length"
//!     logits = session.decode(token)
//! ```
//! Text that could be the start of a stop string is held back from the stream until it is
//! known not to be one, so a caller never sees a stop string, even partially.
//!
//! With [`GenerateOptions::draft`] and greedy sampling, the step after a token may check a
//! prompt-lookup draft ([`crate::lookup`]) instead of decoding one token: one forward pass over
//! the token and the draft gives the logits at every drafted position; each is masked by the
//! grammar and sampled as it would have been alone, and the draft is taken up to the first
//! token the sampler would not have picked. If it is not taken whole, the session is rolled
//! back to the snapshot before the pass and the taken tokens are run again, so the session
//! always holds exactly the tokens taken. The tokens are the same as without drafts, up to
//! floating-point rounding: a pass over several tokens computes each position's logits as a
//! one-token pass does to rounding, so only an exact near-tie could pick differently (the
//! tests find none on f16 and quantized models).

use std::time::Instant;

use crate::constraint::GrammarMatcher;
use crate::error::{Error, Result};
use crate::lookup::{self, DraftOptions, Verdict};
use crate::model::Logits;
use crate::sampling::{Sampler, SamplingParams};
use crate::session::Session;
use crate::text::{TextStream, Tokenizer};

/// How to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// How to pick each token.
    pub sampling: SamplingParams,
    /// Tokens that end generation (`<|im_end|>`, the model's eos ids).
    pub stop_tokens: Vec<u32>,
    /// Strings that end generation; the text is cut before them.
    pub stop_strings: Vec<String>,
    /// Prefill chunk size.
    pub prefill_chunk: usize,
    /// Check prompt-lookup drafts (greedy sampling only; ignored otherwise).
    pub draft: Option<DraftOptions>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop_tokens: vec![crate::text::special::IM_END],
            stop_strings: Vec::new(),
            prefill_chunk: 512,
            draft: None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was drawn.
    StopToken(u32),
    /// A stop string appeared in the text.
    StopString(String),
    /// `max_tokens` were generated.
    Length,
    /// The grammar was complete and admitted no further token.
    GrammarComplete,
}

impl FinishReason {
    /// `"stop"` or `"length"`, as OpenAI-style APIs report it.
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            _ => "stop",
        }
    }
}

/// What a call to [`generate`] produced.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated text (without the stop token or stop string); empty without a tokenizer.
    pub text: String,
    /// Generated token ids (without the stop token).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Seconds spent in prefill.
    pub prefill_secs: f64,
    /// Seconds spent in decode steps (forward passes after the first token).
    pub decode_secs: f64,
    /// Forward passes after the prefill (one per sampled token, one per fast-forwarded run).
    pub decode_steps: usize,
    /// Tokens the grammar forced without sampling (fast-forward).
    pub forced_tokens: usize,
    /// Forward passes that checked a draft.
    pub draft_passes: usize,
    /// Tokens proposed by drafts.
    pub draft_proposed: usize,
    /// Drafted tokens taken.
    pub draft_accepted: usize,
    /// With a constraint: microseconds spent computing each token mask.
    pub mask_micros: Vec<u32>,
    /// With a constraint: whether the output is a complete match. A generation cut by
    /// `max_tokens` or a stop string before the grammar completed reports `Some(false)`.
    pub constraint_complete: Option<bool>,
}

impl Generation {
    /// Prompt tokens per second of prefill.
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill_secs)
    }

    /// Tokens per second of decode.
    pub fn decode_tok_s(&self) -> f64 {
        rate(self.decode_steps, self.decode_secs)
    }

    /// Drafted tokens taken per pass that checked a draft (each such pass also yields the
    /// token it was run for).
    pub fn accepted_per_draft_pass(&self) -> f64 {
        if self.draft_passes == 0 {
            0.0
        } else {
            self.draft_accepted as f64 / self.draft_passes as f64
        }
    }
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Runs `prompt` through `session` and generates a continuation. Complete pieces of text are
/// passed to `on_text` as they are produced (only when a tokenizer is given).
///
/// On return the session holds the prompt and every generated token except the last one drawn
/// (a stop token, or the `max_tokens`-th token), which has not been run yet.
pub fn generate(
    session: &mut Session,
    tokenizer: Option<&Tokenizer>,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation> {
    run(session, tokenizer, prompt, opts, None, on_text)
}

/// [`generate`] under a grammar: before each draw every token the grammar forbids is masked,
/// and where the grammar allows exactly one continuation its tokens are appended without
/// sampling, in one forward pass (fast-forward). Generation ends when the grammar is complete
/// and admits nothing more, when the end token is drawn (allowed only once the grammar is
/// complete), or at `max_tokens` (then [`Generation::constraint_complete`] says whether the
/// text is a complete match).
pub fn generate_constrained(
    session: &mut Session,
    tokenizer: Option<&Tokenizer>,
    prompt: &[u32],
    opts: &GenerateOptions,
    matcher: &mut GrammarMatcher,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation> {
    run(session, tokenizer, prompt, opts, Some(matcher), on_text)
}

/// Text output with stop strings held back from the stream until they are ruled out.
struct Output<'a> {
    tokenizer: Option<&'a Tokenizer>,
    stream: TextStream,
    emitted: usize,
}

impl Output<'_> {
    /// Adds a token; returns the stop string if one appeared (the text is then cut before it).
    fn push(
        &mut self,
        out: &mut Generation,
        token: u32,
        stops: &[String],
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Option<String>> {
        out.tokens.push(token);
        let Some(tok) = self.tokenizer else {
            return Ok(None);
        };
        if let Some(piece) = self.stream.push(tok, token)? {
            out.text.push_str(&piece);
            if let Some((at, s)) = find_stop(&out.text, stops) {
                out.text.truncate(at);
                return Ok(Some(s));
            }
            let safe = out.text.len() - held_back(&out.text, stops);
            if safe > self.emitted {
                on_text(&out.text[self.emitted..safe]);
                self.emitted = safe;
            }
        }
        Ok(None)
    }

    fn finish(&mut self, out: &mut Generation, on_text: &mut dyn FnMut(&str)) -> Result<()> {
        if let Some(tok) = self.tokenizer {
            if !matches!(out.finish_reason, FinishReason::StopString(_)) {
                if let Some(rest) = self.stream.finish(tok)? {
                    out.text.push_str(&rest);
                }
            }
        }
        if out.text.len() > self.emitted {
            on_text(&out.text[self.emitted..]);
            self.emitted = out.text.len();
        }
        Ok(())
    }
}

/// Takes a chosen token: ends generation at a stop token, a stop string or `max_tokens`,
/// else records it (grammar, text, stream).
fn take(
    token: u32,
    out: &mut Generation,
    text: &mut Output<'_>,
    matcher: Option<&mut GrammarMatcher>,
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str),
) -> Result<Option<FinishReason>> {
    if opts.stop_tokens.contains(&token) {
        return Ok(Some(FinishReason::StopToken(token)));
    }
    if let Some(m) = matcher {
        m.accept(token)?;
    }
    if let Some(s) = text.push(out, token, &opts.stop_strings, on_text)? {
        return Ok(Some(FinishReason::StopString(s)));
    }
    if out.tokens.len() >= opts.max_tokens {
        return Ok(Some(FinishReason::Length));
    }
    Ok(None)
}

/// After `token` was taken: what ended generation inside the draft, or the next logits.
enum Step {
    Next(Vec<f32>),
    Finished(FinishReason),
}

/// Runs `token` and checks `draft` after it in the same pass (see the module docs).
#[allow(clippy::too_many_arguments)]
fn check_draft(
    session: &mut Session,
    token: u32,
    draft: &[u32],
    sampler: &mut Sampler,
    out: &mut Generation,
    text: &mut Output<'_>,
    mut matcher: Option<&mut GrammarMatcher>,
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str),
) -> Result<Step> {
    out.draft_passes += 1;
    out.draft_proposed += draft.len();
    let mut finish = None;
    let checked = lookup::check(session, token, draft, |j, row, history| {
        if let Some(m) = matcher.as_deref_mut() {
            // Where the grammar forces tokens, the loop fast-forwards them instead.
            if m.is_stopped() || !m.forced_tokens().is_empty() {
                return Ok(Verdict::Reject);
            }
            let t = Instant::now();
            m.mask_logits(row)?;
            out.mask_micros
                .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
        if sampler.sample(row, history)? != draft[j] {
            return Ok(Verdict::Reject);
        }
        out.draft_accepted += 1;
        Ok(
            match take(draft[j], out, text, matcher.as_deref_mut(), opts, on_text)? {
                Some(f) => {
                    finish = Some(f);
                    Verdict::Last
                }
                None => Verdict::Take,
            },
        )
    })?;
    out.decode_steps += checked.passes;
    match (finish, checked.logits) {
        (Some(f), _) => Ok(Step::Finished(f)),
        (None, Some(l)) => Ok(Step::Next(l)),
        (None, None) => Err(Error::arg("draft", "no logits after a checked draft")),
    }
}

fn run(
    session: &mut Session,
    tokenizer: Option<&Tokenizer>,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut matcher: Option<&mut GrammarMatcher>,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation> {
    if opts.max_tokens == 0 {
        return Err(Error::arg("max_tokens", "must be at least 1"));
    }
    if opts.stop_strings.iter().any(String::is_empty) {
        return Err(Error::arg("stop", "stop strings must not be empty"));
    }
    let mut sampler = Sampler::new(opts.sampling.clone())?;
    // Drafts keep the output identical only when each pick is the argmax.
    let drafts = opts.draft.filter(|_| opts.sampling.temperature <= 0.0);
    let t0 = Instant::now();
    let mut logits = session.prefill(prompt, opts.prefill_chunk)?;
    let prefill_secs = t0.elapsed().as_secs_f64();

    let mut out = Generation {
        text: String::new(),
        tokens: Vec::new(),
        finish_reason: FinishReason::Length,
        prompt_tokens: prompt.len(),
        prefill_secs,
        decode_secs: 0.0,
        decode_steps: 0,
        forced_tokens: 0,
        draft_passes: 0,
        draft_proposed: 0,
        draft_accepted: 0,
        mask_micros: Vec::new(),
        constraint_complete: None,
    };
    let mut text = Output {
        tokenizer,
        stream: TextStream::new(),
        emitted: 0,
    };
    let stops = &opts.stop_strings;
    loop {
        if let Some(m) = matcher.as_deref_mut() {
            if m.is_stopped() {
                out.finish_reason = FinishReason::GrammarComplete;
                break;
            }
            let mut forced = m.forced_tokens();
            if !forced.is_empty() {
                forced.truncate(opts.max_tokens - out.tokens.len());
                let mut cut = None;
                for &t in &forced {
                    m.accept(t)?;
                    out.forced_tokens += 1;
                    if let Some(s) = text.push(&mut out, t, stops, on_text)? {
                        cut = Some(s);
                        break;
                    }
                }
                if let Some(s) = cut {
                    out.finish_reason = FinishReason::StopString(s);
                    break;
                }
                if out.tokens.len() >= opts.max_tokens {
                    out.finish_reason = FinishReason::Length;
                    break;
                }
                if m.is_stopped() {
                    out.finish_reason = FinishReason::GrammarComplete;
                    break;
                }
                let t = Instant::now();
                let l = session.forward(&forced, Logits::Last)?;
                logits = l.flatten_all()?.to_vec1()?;
                out.decode_secs += t.elapsed().as_secs_f64();
                out.decode_steps += 1;
                continue;
            }
            let t = Instant::now();
            m.mask_logits(&mut logits)?;
            out.mask_micros
                .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
        let token = sampler.sample(&logits, session.tokens())?;
        if let Some(f) = take(
            token,
            &mut out,
            &mut text,
            matcher.as_deref_mut(),
            opts,
            on_text,
        )? {
            out.finish_reason = f;
            break;
        }
        let t = Instant::now();
        let draft = match drafts {
            // No draft where the grammar forces what comes next (the loop fast-forwards it).
            Some(d)
                if matcher
                    .as_deref_mut()
                    .is_none_or(|m| m.forced_tokens().is_empty()) =>
            {
                let room = (session.context().saturating_sub(session.len() + 1))
                    .min(opts.max_tokens.saturating_sub(out.tokens.len()));
                lookup::draft_after(session.tokens(), token, room, &d)
            }
            _ => Vec::new(),
        };
        if draft.is_empty() {
            logits = session.decode(token)?;
            out.decode_steps += 1;
        } else {
            let step = check_draft(
                session,
                token,
                &draft,
                &mut sampler,
                &mut out,
                &mut text,
                matcher.as_deref_mut(),
                opts,
                on_text,
            )?;
            match step {
                Step::Next(l) => logits = l,
                Step::Finished(f) => {
                    out.decode_secs += t.elapsed().as_secs_f64();
                    out.finish_reason = f;
                    break;
                }
            }
        }
        out.decode_secs += t.elapsed().as_secs_f64();
    }
    text.finish(&mut out, on_text)?;
    if let Some(m) = matcher {
        let complete = !matches!(out.finish_reason, FinishReason::StopString(_)) && m.is_complete();
        out.constraint_complete = Some(complete);
    }
    Ok(out)
}

fn find_stop(text: &str, stops: &[String]) -> Option<(usize, String)> {
    stops
        .iter()
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.clone())))
        .min_by_key(|(at, _)| *at)
}

/// Bytes at the end of `text` that are a proper prefix of some stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            if text.ends_with(&s[..i]) {
                hold = hold.max(i);
            }
        }
    }
    hold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_back_keeps_partial_stop_strings() {
        let stops = vec!["</answer>".to_string(), "STOP".to_string()];
        assert_eq!(held_back("the answer </ans", &stops), 5);
        assert_eq!(held_back("ST", &stops), 2);
        assert_eq!(held_back("plain", &stops), 0);
        assert_eq!(
            find_stop("a STOP b </answer>", &stops),
            Some((2, "STOP".to_string()))
        );
    }
}
