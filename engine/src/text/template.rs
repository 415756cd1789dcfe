//! Chat templates: the model's own Jinja template, run with `minijinja` the way Hugging Face
//! runs it (Python string methods, a Python-style `tojson`, `raise_exception`), or a built-in
//! LFM2.5 template when the model ships none.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The built-in LFM2.5 chat template.
pub const BUILTIN_LFM2_TEMPLATE: &str = include_str!("lfm2_chat_template.jinja");

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the whole conversation.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A message of `role` saying `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    origin: String,
    bos_token: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// The built-in LFM2.5 template.
    pub fn builtin() -> Self {
        // The built-in template is tested to compile; failing here would be a build defect.
        Self::new(
            BUILTIN_LFM2_TEMPLATE,
            "built-in LFM2.5 template",
            "<|startoftext|>",
        )
        .unwrap_or_else(|e| panic!("built-in template must compile: {e}"))
    }

    /// Compiles `source`; `origin` names where it came from in errors.
    pub fn new(source: &str, origin: &str, bos_token: &str) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson_filter);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_function("strftime_now", |_fmt: String| -> String { String::new() });
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_template_owned(NAME.to_string(), source.to_string())
            .map_err(|e| Error::Template {
                source_name: origin.to_string(),
                message: describe(&e),
            })?;
        Ok(ChatTemplate {
            env,
            origin: origin.to_string(),
            bos_token: bos_token.to_string(),
        })
    }

    /// Where the template came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Renders a conversation. `tools` are JSON tool definitions listed in the system turn.
    pub fn render(
        &self,
        messages: &[Message],
        tools: &[Value],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self.env.get_template(NAME).map_err(|e| self.err(&e))?;
        let ctx = minijinja::context! {
            messages => messages,
            tools => if tools.is_empty() { None } else { Some(tools) },
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => "<|im_end|>",
            keep_past_thinking => false,
        };
        tmpl.render(ctx).map_err(|e| self.err(&e))
    }

    fn err(&self, e: &minijinja::Error) -> Error {
        Error::Template {
            source_name: self.origin.clone(),
            message: describe(e),
        }
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

/// `tojson` as Hugging Face's template environment defines it: Python's `json.dumps` with
/// `ensure_ascii=False`, separators `", "` and `": "`, keys in insertion order, optional
/// `indent`.
fn tojson_filter(
    value: minijinja::Value,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    let mut out = String::new();
    write_py_json(&json, indent, 0, &mut out);
    Ok(out)
}

fn write_py_json(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                write_py_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_py_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
