//! A turn's text as a client sees it: thinking, answer text and tool calls, finished or in
//! the middle of generation.
//!
//! [`reply`] splits a finished turn. [`partial`] splits a turn still being generated into
//! the parts that can no longer change: each of its fields is a prefix of the same field of
//! the finished turn's [`reply`], whatever the rest of the text turns out to be. That is what
//! lets a stream send deltas that add up exactly to the non-streamed reply:
//!
//! - thinking is `<think>…</think>` at the start (or, when the prompt opened it, everything
//!   before `</think>`); thinking that never closed is all thinking;
//! - the answer is the rest, cut at the first stop string, with its call regions
//!   (`<|tool_call_start|>…<|tool_call_end|>`) taken out, and trimmed;
//! - held back while generating: a tail that may be the start of `</think>`, of a stop string
//!   or of a call region, an unfinished call region, trailing whitespace, a trailing U+FFFD
//!   (a character cut between tokens), and, with tools on offer and no call region yet, an
//!   answer that may still turn out to be a bare call list.

use serde_json::Value;

use super::openai::ChatJob;
use crate::runner::Turn;
use crate::toolcall::{parse_body, parse_calls, CALL_END, CALL_START};

const THINK: &str = "<think>";
const THINK_END: &str = "</think>";

/// The pieces of a turn, as a client sees them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Thinking, apart from the answer.
    pub reasoning: Option<String>,
    /// The answer text.
    pub content: String,
    /// Calls of offered tools: name and arguments.
    pub calls: Vec<(String, Value)>,
    /// `stop`, `length` or `tool_calls` (empty in a partial reply).
    pub finish_reason: &'static str,
}

/// Thinking and the rest. `body` is `None` while the text may still be thinking.
struct Parts<'a> {
    reasoning: Option<&'a str>,
    closed: bool,
    body: Option<&'a str>,
}

/// `may_think`: the turn may think without writing `<think>` (the prompt opened it).
fn parts(text: &str, may_think: bool, finished: bool) -> Parts<'_> {
    let t = text.trim_start();
    if let Some(inner) = t.strip_prefix(THINK) {
        return match inner.find(THINK_END) {
            Some(i) => Parts {
                reasoning: Some(&inner[..i]),
                closed: true,
                body: Some(&inner[i + THINK_END.len()..]),
            },
            None => Parts {
                reasoning: Some(inner),
                closed: false,
                body: finished.then_some(""),
            },
        };
    }
    let undecided = THINK.starts_with(t) || may_think;
    if may_think {
        if let Some(i) = text.find(THINK_END) {
            return Parts {
                reasoning: Some(&text[..i]),
                closed: true,
                body: Some(&text[i + THINK_END.len()..]),
            };
        }
    }
    Parts {
        reasoning: None,
        closed: false,
        body: (finished || !undecided).then_some(text),
    }
}

/// `s` less its longest tail that is a proper beginning of one of `marks`.
fn hold<'a>(s: &'a str, marks: &[&str]) -> &'a str {
    let mut cut = s.len();
    for m in marks {
        for (i, _) in m.char_indices().skip(1) {
            if s.ends_with(&m[..i]) {
                cut = cut.min(s.len() - i);
            }
        }
    }
    &s[..cut]
}

/// The body up to its first stop string, and whether one was found.
fn cut_at_stop<'a>(body: &'a str, stops: &[String]) -> (&'a str, bool) {
    match stops.iter().filter_map(|s| body.find(s.as_str())).min() {
        Some(i) => (&body[..i], true),
        None => (body, false),
    }
}

/// Whether an answer with no call region could still become a bare call list of `tools`.
fn may_be_bare_calls(content: &str, job: &ChatJob) -> bool {
    if job.tools.is_empty() {
        return false;
    }
    let t = content.trim_start();
    if t.is_empty() || t.starts_with('[') || t.starts_with('{') {
        return true;
    }
    let ident = t
        .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map_or(t, |i| &t[..i]);
    !ident.is_empty()
        && job.tools.iter().any(|n| {
            let n = n.name.as_str();
            n.starts_with(ident) || ident.starts_with(n)
        })
}

/// Splits a finished turn.
pub fn reply(turn: &Turn, job: &ChatJob, max_tokens: usize, may_think: bool) -> Reply {
    let p = parts(&turn.text, may_think, true);
    let (body, stopped) = cut_at_stop(p.body.unwrap_or_default(), &job.stop);
    let parsed = parse_body(body, &|n| job.tools.iter().any(|t| t.name.as_str() == n));
    let calls: Vec<(String, Value)> = parsed
        .calls
        .into_iter()
        .map(|c| (c.name, Value::Object(c.arguments)))
        .collect();
    let finish_reason = if !calls.is_empty() {
        "tool_calls"
    } else if !stopped && turn.completion_tokens >= max_tokens {
        "length"
    } else {
        "stop"
    };
    Reply {
        reasoning: p.reasoning.map(|r| r.trim().to_string()),
        content: parsed.content,
        calls,
        finish_reason,
    }
}

/// A plain completion's text: cut at the first stop string (and whether one was found). While
/// generating (`finished` false), a tail that may begin a stop string and a trailing U+FFFD
/// are held back.
pub fn raw(text: &str, job: &ChatJob, finished: bool) -> (String, bool) {
    let text = if finished {
        text
    } else {
        text.trim_end_matches('\u{FFFD}')
    };
    match cut_at_stop(text, &job.stop) {
        (t, true) => (t.to_string(), true),
        (t, false) if finished => (t.to_string(), false),
        (t, false) => {
            let marks: Vec<&str> = job.stop.iter().map(String::as_str).collect();
            (hold(t, &marks).to_string(), false)
        }
    }
}

/// A plain completion's finish reason.
pub fn raw_finish(turn: &Turn, job: &ChatJob, max_tokens: usize) -> &'static str {
    match raw(&turn.text, job, true) {
        (_, true) => "stop",
        _ if turn.completion_tokens >= max_tokens => "length",
        _ => "stop",
    }
}

/// What of a turn being generated can no longer change, and whether its answer reached a
/// stop string (generation should end there).
pub fn partial(text: &str, job: &ChatJob, may_think: bool) -> (Reply, bool) {
    let text = text.trim_end_matches('\u{FFFD}');
    let mut out = Reply::default();
    let p = parts(text, may_think, false);
    out.reasoning = p.reasoning.map(|r| {
        let r = if p.closed { r } else { hold(r, &[THINK_END]) };
        r.trim().to_string()
    });
    let Some(body) = p.body else {
        return (out, false);
    };
    let stop_marks: Vec<&str> = job.stop.iter().map(String::as_str).collect();
    let (body, stopped) = match cut_at_stop(body, &job.stop) {
        (b, true) => (b, true),
        (b, false) => (hold(b, &stop_marks), false),
    };
    let mut content = String::new();
    let mut rest = body;
    let mut wrapped = false;
    loop {
        let Some(start) = rest.find(CALL_START) else {
            content.push_str(hold(rest, &[CALL_START]));
            break;
        };
        wrapped = true;
        content.push_str(&rest[..start]);
        let region = &rest[start + CALL_START.len()..];
        let Some(end) = region.find(CALL_END) else {
            break;
        };
        if let Ok(calls) = parse_calls(&region[..end]) {
            out.calls.extend(
                calls
                    .into_iter()
                    .map(|c| (c.name, Value::Object(c.arguments))),
            );
        }
        rest = &region[end + CALL_END.len()..];
    }
    // The finished reply's calls are those of every region; a bare list counts only without
    // regions and only when it names known tools.
    if !wrapped && may_be_bare_calls(&content, job) {
        content.clear();
    }
    out.content = content.trim().to_string();
    (out, stopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::openai::parse_chat;
    use crate::serve::stream::Streamer;
    use serde_json::json;

    fn job(tools: &[&str], stop: &[&str]) -> ChatJob {
        let tools: Vec<Value> = tools
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}))
            .collect();
        let mut body = json!({"messages": [{"role": "user", "content": "x"}], "stop": stop});
        if !tools.is_empty() {
            body["tools"] = tools.into();
        }
        parse_chat(&body).unwrap()
    }

    const TEXTS: &[&str] = &[
        "plain answer, no thinking",
        "  <think> plan a\n then b </think>\n\nThe answer is 42.  ",
        "<think>unfinished thinking that never clo",
        "<think></think>",
        "thinking opened by the prompt</think>answer after",
        "<think>x</think>Before <|tool_call_start|>[search(q=\"vpn\")]<|tool_call_end|> after",
        "<|tool_call_start|>[search(q=\"a\"), search(q=\"b\")]<|tool_call_end|><|tool_call_start|>[{\"name\": \"search\", \"arguments\": {\"q\": \"c\"}}]<|tool_call_end|>",
        "[search(q=\"bare list\")]",
        "search(q=\"bare single\")",
        "searching is what I would do",
        "[not a call] but prose",
        "<|tool_call_start|>[search(q=\"never closed\")",
        "<|tool_call_start|>[broken((]<|tool_call_end|>text",
        "an answer with a STOP in it and more after STOP",
        "stop inside a call <|tool_call_start|>[search(q=\"ST\")]<|tool_call_end|> END here",
        "ends in a half stop ST",
        "<think>a < b </thin and more</think> done",
        "café ☕ naïve 日本語 \u{FFFD}",
        "<thin not thinking",
        "\n\n  \n",
        "</think>stray end",
    ];

    /// Every text, cut at every character, streamed: the deltas add up to the finished reply.
    #[test]
    fn partial_replies_are_prefixes_of_the_finished_one() {
        for tools in [&[][..], &["search"][..]] {
            for stop in [&[][..], &["STOP", "END"][..]] {
                for may_think in [false, true] {
                    let j = job(tools, stop);
                    for text in TEXTS {
                        let turn = Turn {
                            text: text.to_string(),
                            prompt_tokens: 1,
                            completion_tokens: 1,
                        };
                        let done = reply(&turn, &j, 100, may_think);
                        let mut s = Streamer::default();
                        let mut deltas = Vec::new();
                        let ends: Vec<usize> = text
                            .char_indices()
                            .map(|(i, _)| i)
                            .chain([text.len()])
                            .collect();
                        for &e in &ends {
                            let (p, stopped) = partial(&text[..e], &j, may_think);
                            let why = format!("{text:?} cut at {e}, tools {tools:?}, stop {stop:?}, may_think {may_think}");
                            let r = p.reasoning.clone().unwrap_or_default();
                            assert!(
                                done.reasoning.clone().unwrap_or_default().starts_with(&r),
                                "reasoning {r:?}: {why}"
                            );
                            assert!(
                                done.content.starts_with(&p.content),
                                "content {:?} vs {:?}: {why}",
                                p.content,
                                done.content
                            );
                            assert!(done.calls.starts_with(&p.calls), "calls: {why}");
                            deltas.extend(s.advance(&p));
                            if stopped {
                                break;
                            }
                        }
                        deltas.extend(s.advance(&done));
                        assert!(!s.diverged(), "{text:?}");
                        let (r, c, calls) = crate::serve::stream::sum(&deltas);
                        assert_eq!(r, done.reasoning.clone().unwrap_or_default(), "{text:?}");
                        assert_eq!(c, done.content, "{text:?}");
                        assert_eq!(calls, done.calls, "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn finished_replies_split_thinking_answer_and_calls() {
        let j = job(&["search"], &["STOP"]);
        let t = |text: &str| Turn {
            text: text.into(),
            prompt_tokens: 1,
            completion_tokens: 5,
        };
        let r = reply(
            &t("<think> plan </think> hi <|tool_call_start|>[search(q=\"v\")]<|tool_call_end|>"),
            &j,
            100,
            false,
        );
        assert_eq!(r.reasoning.as_deref(), Some("plan"));
        assert_eq!(r.content, "hi");
        assert_eq!(r.calls, vec![("search".to_string(), json!({"q": "v"}))]);
        assert_eq!(r.finish_reason, "tool_calls");
        let r = reply(&t("abc STOP def"), &j, 5, false);
        assert_eq!((r.content.as_str(), r.finish_reason), ("abc", "stop"));
        assert_eq!(reply(&t("abc"), &j, 5, false).finish_reason, "length");
        let r = reply(&t("opened by the prompt</think>answer"), &j, 100, true);
        assert_eq!(
            (r.reasoning.as_deref(), r.content.as_str()),
            (Some("opened by the prompt"), "answer")
        );
        let r = reply(&t("no thinking</think>answer"), &j, 100, false);
        assert_eq!(
            (r.reasoning, r.content.as_str()),
            (None, "no thinking</think>answer")
        );
        let r = reply(&t("<think>cut off"), &j, 100, false);
        assert_eq!(
            (r.reasoning.as_deref(), r.content.as_str()),
            (Some("cut off"), "")
        );
    }
}
