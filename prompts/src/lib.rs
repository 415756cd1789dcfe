//! `lfm-prompts`: the task prompts and their default output schemas.
//!
//! Each task has a folder under `prompts/tasks/`: `system.md` (the system turn),
//! `user.md` (the user turn), and for triage and ask a default `schema.json` (a user can pass
//! their own). The files are compiled in, so the binary needs no data folder, and can be
//! replaced at run time from a folder of the same layout ([`Prompts::from_dir`]).
//!
//! Templates use `{{name}}` placeholders and nothing else: [`render`] fills them and refuses a
//! template with a placeholder it was not given, or a variable the template does not use, so
//! a renamed placeholder is an error, not a silently empty prompt. Values are inserted as
//! they are; they are never scanned for placeholders themselves (a ticket that contains
//! `{{schema}}` stays text).

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A prompt error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// A placeholder without a value.
    #[error("{template}: placeholder {{{{{name}}}}} has no value")]
    Missing {
        /// Which template.
        template: String,
        /// The placeholder.
        name: String,
    },
    /// A value for a placeholder the template does not have.
    #[error("{template}: has no placeholder {{{{{name}}}}}")]
    Unused {
        /// Which template.
        template: String,
        /// The variable.
        name: String,
    },
    /// An unclosed `{{`.
    #[error("{template}: unclosed `{{{{` at byte {at}")]
    Unclosed {
        /// Which template.
        template: String,
        /// Byte offset.
        at: usize,
    },
    /// A prompt file could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A schema file is not JSON.
    #[error("{name}: not a JSON schema: {message}")]
    Schema {
        /// Which schema.
        name: String,
        /// The parser's message.
        message: String,
    },
}

/// A `Result` with [`PromptError`].
pub type Result<T> = std::result::Result<T, PromptError>;

/// The tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Ticket triage.
    Triage,
    /// Questions over the docs.
    Ask,
    /// Events from logs.
    Extract,
}

impl Task {
    /// The folder name.
    pub fn name(self) -> &'static str {
        match self {
            Task::Triage => "triage",
            Task::Ask => "ask",
            Task::Extract => "extract",
        }
    }
}

/// One task's prompt texts.
#[derive(Debug, Clone)]
pub struct Prompts {
    /// Which task.
    pub task: Task,
    /// `system.md`.
    pub system: String,
    /// `user.md`.
    pub user: String,
    /// `schema.json`, for the tasks that have a default.
    pub schema: Option<String>,
}

impl Prompts {
    /// The built-in prompts of `task`.
    pub fn builtin(task: Task) -> Self {
        let (system, user, schema) = match task {
            Task::Triage => (
                include_str!("../tasks/triage/system.md"),
                include_str!("../tasks/triage/user.md"),
                Some(include_str!("../tasks/triage/schema.json")),
            ),
            Task::Ask => (
                include_str!("../tasks/ask/system.md"),
                include_str!("../tasks/ask/user.md"),
                Some(include_str!("../tasks/ask/schema.json")),
            ),
            Task::Extract => (
                include_str!("../tasks/extract/system.md"),
                include_str!("../tasks/extract/user.md"),
                None,
            ),
        };
        Prompts {
            task,
            system: system.to_string(),
            user: user.to_string(),
            schema: schema.map(str::to_string),
        }
    }

    /// The prompts of `task` from `dir/<task>/`, each file that is missing taken from the
    /// built-in set.
    pub fn from_dir(dir: &Path, task: Task) -> Result<Self> {
        let mut p = Self::builtin(task);
        let folder = dir.join(task.name());
        let read = |name: &str| -> Result<Option<String>> {
            let path = folder.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(PromptError::Io {
                    path,
                    message: e.to_string(),
                }),
            }
        };
        if let Some(s) = read("system.md")? {
            p.system = s;
        }
        if let Some(s) = read("user.md")? {
            p.user = s;
        }
        if let Some(s) = read("schema.json")? {
            p.schema = Some(s);
        }
        Ok(p)
    }

    /// The default output schema, parsed.
    pub fn default_schema(&self) -> Result<Option<Value>> {
        self.schema
            .as_deref()
            .map(|s| {
                serde_json::from_str(s).map_err(|e| PromptError::Schema {
                    name: format!("{}/schema.json", self.task.name()),
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// The system turn.
    pub fn render_system(&self, vars: &[(&str, &str)]) -> Result<String> {
        render(
            &format!("{}/system.md", self.task.name()),
            &self.system,
            vars,
        )
    }

    /// The user turn.
    pub fn render_user(&self, vars: &[(&str, &str)]) -> Result<String> {
        render(&format!("{}/user.md", self.task.name()), &self.user, vars)
    }
}

/// Fills the `{{name}}` placeholders of `template` (named `what` in errors) from `vars`.
pub fn render(what: &str, template: &str, vars: &[(&str, &str)]) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut used = vec![false; vars.len()];
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(PromptError::Unclosed {
                template: what.to_string(),
                at: offset + open,
            });
        };
        let name = after[..close].trim();
        let Some(i) = vars.iter().position(|(k, _)| *k == name) else {
            return Err(PromptError::Missing {
                template: what.to_string(),
                name: name.to_string(),
            });
        };
        used[i] = true;
        out.push_str(vars[i].1);
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(PromptError::Unused {
            template: what.to_string(),
            name: vars[i].0.to_string(),
        });
    }
    Ok(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once_and_values_stay_text() {
        let s = render("t", "a {{x}} b {{ y }}", &[("x", "{{y}}"), ("y", "2")]).unwrap();
        assert_eq!(s, "a {{y}} b 2");
        assert!(matches!(
            render("t", "{{x}}", &[]),
            Err(PromptError::Missing { name, .. }) if name == "x"
        ));
        assert!(matches!(
            render("t", "none", &[("x", "1")]),
            Err(PromptError::Unused { name, .. }) if name == "x"
        ));
        assert!(matches!(
            render("t", "ab {{x", &[("x", "1")]),
            Err(PromptError::Unclosed { at: 3, .. })
        ));
    }

    #[test]
    fn every_builtin_prompt_renders_and_every_schema_parses() {
        for task in [Task::Triage, Task::Ask, Task::Extract] {
            let p = Prompts::builtin(task);
            p.render_system(&[("schema", "{}")]).unwrap();
            let user: &[(&str, &str)] = match task {
                Task::Triage => &[("ticket", "{}")],
                Task::Ask => &[("passages", "[a#1] text"), ("question", "q")],
                Task::Extract => &[
                    ("first_line", "1"),
                    ("last_line", "2"),
                    ("file", "app.log"),
                    ("lines", "x"),
                ],
            };
            p.render_user(user).unwrap();
            let schema = p.default_schema().unwrap();
            assert_eq!(schema.is_some(), task != Task::Extract);
        }
    }

    #[test]
    fn a_prompt_folder_overrides_file_by_file() {
        let tmp = std::env::temp_dir().join(format!("lfm-prompts-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("triage")).unwrap();
        std::fs::write(tmp.join("triage/system.md"), "Mine. {{schema}}").unwrap();
        let p = Prompts::from_dir(&tmp, Task::Triage).unwrap();
        assert_eq!(p.render_system(&[("schema", "S")]).unwrap(), "Mine. S");
        assert_eq!(p.user, Prompts::builtin(Task::Triage).user);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
