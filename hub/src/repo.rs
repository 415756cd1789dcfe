//! Model references: `OWNER/NAME` repo ids, optionally with `:FILE`.

use crate::{HubError, Result};

/// A checked Hugging Face model repo id, `OWNER/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RepoId(String);

impl RepoId {
    /// Checks `OWNER/NAME`: two parts of letters, digits, `-`, `_` and `.`, neither starting
    /// with `.` or `-`, neither holding `--` (the cache's separator), 96 characters at most.
    pub fn parse(s: &str) -> Result<RepoId> {
        let bad = || HubError::BadRepoId(s.to_string());
        let (owner, name) = s.split_once('/').ok_or_else(bad)?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && !p.starts_with(['.', '-'])
                && !p.contains("--")
                && !p.contains("..")
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if s.len() > 96 || !part_ok(owner) || !part_ok(name) {
            return Err(bad());
        }
        Ok(RepoId(s.to_string()))
    }

    /// `OWNER/NAME`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The repo's folder in the cache (`models--OWNER--NAME`), as `huggingface_hub` names it.
    pub fn folder_name(&self) -> String {
        format!("models--{}", self.0.replace('/', "--"))
    }

    /// The repo id of a cache folder name, if it is a model repo's.
    pub fn from_folder_name(folder: &str) -> Option<RepoId> {
        let rest = folder.strip_prefix("models--")?;
        let (owner, name) = rest.split_once("--")?;
        RepoId::parse(&format!("{owner}/{name}")).ok()
    }
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A model reference by repo: `OWNER/NAME` or `OWNER/NAME:FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The repo.
    pub repo: RepoId,
    /// One file of it (a GGUF), when named.
    pub file: Option<String>,
}

impl ModelRef {
    /// Parses `OWNER/NAME[:FILE]`.
    pub fn parse(s: &str) -> Result<ModelRef> {
        let (repo, file) = match s.split_once(':') {
            Some((r, f)) if safe_name(f) => (r, Some(f.to_string())),
            Some(_) => return Err(HubError::BadRepoId(s.to_string())),
            None => (s, None),
        };
        Ok(ModelRef {
            repo: RepoId::parse(repo)?,
            file,
        })
    }
}

/// Whether a repo file name is a plain relative path (no `..`, no root, no backslash), safe to
/// join under a snapshot folder.
pub(crate) fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && std::path::Path::new(name)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Whether a commit id is 40 hex digits.
pub(crate) fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a file name is a GGUF model file.
pub(crate) fn is_gguf(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gguf")
}

/// The GGUF a pull picks when none is named: the first present of Q4_K_M (Ollama's and
/// LM Studio's default), Q4_0, Q8_0, then the first in name order.
pub(crate) fn default_gguf(names: &[&str]) -> Option<String> {
    let mut ggufs: Vec<&str> = names.iter().copied().filter(|n| is_gguf(n)).collect();
    ggufs.sort_unstable();
    for quant in ["q4_k_m", "q4_0", "q8_0"] {
        if let Some(n) = ggufs
            .iter()
            .find(|n| n.to_ascii_lowercase().contains(quant))
        {
            return Some(n.to_string());
        }
    }
    ggufs.first().map(|n| n.to_string())
}

/// The files of a safetensors model folder: config, tokenizer, template, generation defaults
/// and the weights (shards and their index included).
pub(crate) fn is_folder_file(name: &str) -> bool {
    if name.contains('/') {
        return false;
    }
    name.ends_with(".safetensors")
        || matches!(
            name,
            "config.json"
                | "generation_config.json"
                | "tokenizer.json"
                | "tokenizer_config.json"
                | "special_tokens_map.json"
                | "chat_template.jinja"
                | "model.safetensors.index.json"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_owner_slash_name_and_nothing_else() {
        for ok in ["LiquidAI/LFM2.5-1.2B-Instruct-GGUF", "a/b", "o_1/n.x"] {
            assert_eq!(RepoId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", "a", "a/", "/b", "a/b/c", "../b", "a/..", "a b/c", "a/b--c", "-a/b", "a/.b",
        ] {
            assert!(
                matches!(RepoId::parse(bad), Err(HubError::BadRepoId(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_plain_relative_names_and_hex_commits_are_safe() {
        for ok in ["m.gguf", "sub/m.gguf", "a.b-c_d.json"] {
            assert!(safe_name(ok), "{ok}");
        }
        for bad in [
            "",
            "../m.gguf",
            "a/../../m.gguf",
            "/etc/m.gguf",
            "a\\m.gguf",
            "./m.gguf",
        ] {
            assert!(!safe_name(bad), "{bad}");
        }
        assert!(is_commit(&"a1".repeat(20)));
        assert!(!is_commit("../.."));
        assert!(!is_commit(&"g".repeat(40)));
    }

    #[test]
    fn cache_folder_names_round_trip() {
        let r = RepoId::parse("LiquidAI/LFM2.5-1.2B").unwrap();
        assert_eq!(r.folder_name(), "models--LiquidAI--LFM2.5-1.2B");
        assert_eq!(RepoId::from_folder_name(&r.folder_name()), Some(r));
        assert_eq!(RepoId::from_folder_name("datasets--a--b"), None);
    }

    #[test]
    fn model_refs_take_an_optional_file() {
        let m = ModelRef::parse("a/b:m-Q8_0.gguf").unwrap();
        assert_eq!(
            (m.repo.as_str(), m.file.as_deref()),
            ("a/b", Some("m-Q8_0.gguf"))
        );
        assert_eq!(ModelRef::parse("a/b").unwrap().file, None);
        assert!(ModelRef::parse("a/b:").is_err());
        assert!(ModelRef::parse("a/b:../x").is_err());
    }

    #[test]
    fn the_default_gguf_prefers_q4_k_m_then_q4_0_then_q8_0() {
        let names = [
            "README.md",
            "m-F16.gguf",
            "m-Q8_0.gguf",
            "m-Q4_0.gguf",
            "m-Q4_K_M.gguf",
        ];
        assert_eq!(default_gguf(&names).as_deref(), Some("m-Q4_K_M.gguf"));
        assert_eq!(default_gguf(&names[..4]).as_deref(), Some("m-Q4_0.gguf"));
        assert_eq!(default_gguf(&names[..3]).as_deref(), Some("m-Q8_0.gguf"));
        assert_eq!(default_gguf(&names[..2]).as_deref(), Some("m-F16.gguf"));
        assert_eq!(default_gguf(&names[..1]), None);
    }
}
