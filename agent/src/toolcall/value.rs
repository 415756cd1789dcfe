//! A recursive-descent reader of Python-like call lists and literals:
//! `[f(a="x", b=[1, 2.5, True, None], c={'k': 'v'}), g()]`.

use serde_json::{Map, Number, Value};

use super::ToolCall;

/// Most nesting of lists and dicts (a guard against pathological input).
const MAX_DEPTH: usize = 64;

pub(super) struct Parser<'a> {
    s: &'a str,
    i: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(s: &'a str) -> Self {
        Parser { s, i: 0, depth: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn ws(&mut self) {
        let r = self.rest();
        self.i += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.rest().starts_with(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{c}`")))
        }
    }

    fn error(&self, what: &str) -> String {
        let near: String = self.rest().chars().take(20).collect();
        format!(
            "{what} at character {} (near `{near}`)",
            self.s[..self.i].chars().count()
        )
    }

    pub(super) fn end(&mut self) -> Result<(), String> {
        self.ws();
        if self.rest().is_empty() {
            Ok(())
        } else {
            Err(self.error("unexpected text after the calls"))
        }
    }

    /// `[call, call, ...]` or a single `call`.
    pub(super) fn call_list(&mut self) -> Result<Vec<ToolCall>, String> {
        if !self.eat('[') {
            return Ok(vec![self.call()?]);
        }
        let mut calls = Vec::new();
        loop {
            if self.eat(']') {
                return Ok(calls);
            }
            calls.push(self.call()?);
            if !self.eat(',') {
                self.expect(']')?;
                return Ok(calls);
            }
        }
    }

    /// `name(key=value, ...)`.
    fn call(&mut self) -> Result<ToolCall, String> {
        self.ws();
        let name = self
            .ident()
            .ok_or_else(|| self.error("expected a tool name"))?;
        self.expect('(')?;
        let mut arguments = Map::new();
        loop {
            if self.eat(')') {
                break;
            }
            self.ws();
            let key = self
                .ident()
                .ok_or_else(|| self.error("expected an argument name (arguments are key=value)"))?;
            if !self.eat('=') {
                return Err(self.error(&format!("expected `=` after `{key}`")));
            }
            let v = self.value()?;
            if arguments.insert(key.clone(), v).is_some() {
                return Err(format!("argument `{key}` given twice"));
            }
            if !self.eat(',') {
                self.expect(')')?;
                break;
            }
        }
        Ok(ToolCall { name, arguments })
    }

    /// A name: letters, digits, `_`, `-` and `.` (dotted names like `functions.search`).
    fn ident(&mut self) -> Option<String> {
        let r = self.rest();
        let first = r.chars().next()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let len = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(r.len());
        self.i += len;
        Some(r[..len].to_string())
    }

    /// A literal: string, number, True/False/None (or JSON's), list, dict.
    pub(super) fn value(&mut self) -> Result<Value, String> {
        self.ws();
        let r = self.rest();
        let c = r
            .chars()
            .next()
            .ok_or_else(|| self.error("expected a value"))?;
        match c {
            '"' | '\'' => self.string(c).map(Value::String),
            '[' | '(' => {
                let close = if c == '[' { ']' } else { ')' };
                self.nest()?;
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value()?);
                    if !self.eat(',') {
                        self.expect(close)?;
                        break;
                    }
                }
                self.depth -= 1;
                Ok(Value::Array(items))
            }
            '{' => {
                self.nest()?;
                self.i += 1;
                let mut m = Map::new();
                loop {
                    if self.eat('}') {
                        break;
                    }
                    self.ws();
                    let key = match self.value()? {
                        Value::String(k) => k,
                        Value::Number(n) => n.to_string(),
                        _ => return Err(self.error("dict keys must be strings")),
                    };
                    self.expect(':')?;
                    let v = self.value()?;
                    m.insert(key, v);
                    if !self.eat(',') {
                        self.expect('}')?;
                        break;
                    }
                }
                self.depth -= 1;
                Ok(Value::Object(m))
            }
            _ => {
                let len = r
                    .find(|c: char| {
                        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
                    })
                    .unwrap_or(r.len());
                let word = &r[..len];
                let v = match word {
                    "True" | "true" => Value::Bool(true),
                    "False" | "false" => Value::Bool(false),
                    "None" | "null" | "none" => Value::Null,
                    _ => number(word).ok_or_else(|| self.error("expected a value"))?,
                };
                self.i += len;
                Ok(v)
            }
        }
    }

    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        Ok(())
    }

    /// A quoted string with Python/JSON escapes.
    fn string(&mut self, quote: char) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((k, c)) = chars.next() {
            if c == quote {
                self.i += k + 1;
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                    let code =
                        u32::from_str_radix(&hex, 16).map_err(|_| self.error("bad \\u escape"))?;
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            }
        }
        Err(self.error("unterminated string"))
    }
}

fn number(word: &str) -> Option<Value> {
    if let Ok(n) = word.parse::<i64>() {
        return Some(Value::Number(n.into()));
    }
    let f: f64 = word.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}
