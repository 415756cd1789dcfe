//! Pulling a repo: choose its files, download what is missing (resuming), verify each.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Repo, RepoType};

use crate::error::io;
use crate::repo::{default_gguf, is_folder_file, is_gguf, ModelRef};
use crate::verify::{self, Checked};
use crate::{Hub, HubError, RepoId, Result};

/// What to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOptions {
    /// One file (a GGUF) instead of the default choice.
    pub file: Option<String>,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            file: None,
            revision: "main".into(),
        }
    }
}

/// One file of a pull.
#[derive(Debug, Clone, PartialEq)]
pub struct PulledFile {
    /// Its name in the repo.
    pub name: String,
    /// Where it is (the snapshot's link to its blob).
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// How it was checked.
    pub checked: Checked,
    /// Whether this pull downloaded it (false: it was already in the cache).
    pub downloaded: bool,
}

/// The result of a pull.
#[derive(Debug, Clone, PartialEq)]
pub struct Pulled {
    /// The repo.
    pub repo: RepoId,
    /// The commit the files are from.
    pub commit: String,
    /// The files.
    pub files: Vec<PulledFile>,
    /// What `--model` loads: the GGUF file, or the snapshot folder.
    pub model_path: PathBuf,
}

impl Hub {
    /// Pulls `repo`: the named file, else its default GGUF, else its safetensors model
    /// folder. Files already in the cache at the repo's current commit are verified, not
    /// downloaded again; a broken download resumes (within this pull up to the retry count,
    /// and across pulls from the `.part` file). Offline, answers from the cache.
    pub fn pull(&self, repo: &RepoId, opts: &PullOptions) -> Result<Pulled> {
        if self.offline {
            return self.pull_offline(repo, opts);
        }
        let api = self.api(repo)?;
        let handle = api.repo(Repo::with_revision(
            repo.to_string(),
            RepoType::Model,
            opts.revision.clone(),
        ));
        let info = handle
            .info()
            .map_err(|e| self.api_err(repo, "listing the repo".into(), e))?;
        let names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
        let wanted = choose(repo, &names, opts.file.as_deref())?;
        let snap = self.repo_dir(repo).join("snapshots").join(&info.sha);
        let mut files = Vec::new();
        for name in &wanted {
            let cached = snap.join(name);
            let (path, downloaded) = if cached.is_file() {
                (cached, false)
            } else {
                tracing::info!(repo = %repo, file = %name, "downloading");
                let path = handle
                    .download_with_progress(name, Bar::new(self.progress))
                    .map_err(|e| self.api_err(repo, format!("downloading {name}"), e))?;
                (path, true)
            };
            files.push(checked_file(name, path, downloaded)?);
        }
        // `download_with_progress` points refs/REVISION at the commit; a pull that found
        // everything cached must still do so, so that `resolve` sees this snapshot.
        write_ref(&self.repo_dir(repo), &opts.revision, &info.sha)?;
        let model_path = model_path_of(&snap, &wanted);
        Ok(Pulled {
            repo: repo.clone(),
            commit: info.sha,
            files,
            model_path,
        })
    }

    fn pull_offline(&self, repo: &RepoId, opts: &PullOptions) -> Result<Pulled> {
        let offline = || HubError::Offline {
            reference: repo.to_string(),
            cache: self.cache.clone(),
        };
        let mref = ModelRef {
            repo: repo.clone(),
            file: opts.file.clone(),
        };
        let model_path = self
            .model_path(&mref, &opts.revision)?
            .ok_or_else(offline)?;
        let (commit, snap) = self.snapshot(repo, &opts.revision).ok_or_else(offline)?;
        let names: Vec<String> = if model_path.is_file() {
            vec![model_path
                .strip_prefix(&snap)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()]
        } else {
            let mut v: Vec<String> = std::fs::read_dir(&snap)
                .map_err(io(&snap))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            v.sort();
            v
        };
        let files = names
            .iter()
            .map(|n| checked_file(n, snap.join(n), false))
            .collect::<Result<_>>()?;
        Ok(Pulled {
            repo: repo.clone(),
            commit,
            files,
            model_path,
        })
    }

    fn api(&self, repo: &RepoId) -> Result<Api> {
        ApiBuilder::from_cache(hf_hub::Cache::new(self.cache.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_token(self.token.clone())
            .with_progress(false)
            .with_retries(self.retries)
            .with_user_agent("lfm-agent", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| self.api_err(repo, "starting the client".into(), e))
    }

    fn api_err(&self, repo: &RepoId, what: String, e: hf_hub::api::sync::ApiError) -> HubError {
        let mut why = e.to_string();
        if why.contains("status code 401") || why.contains("status code 403") {
            why.push_str(
                " (a gated or private repo: accept its terms on the hub and set HF_TOKEN)",
            );
        } else if why.contains("status code 404") {
            why.push_str(" (check the repo id, the revision and the file name)");
        }
        HubError::Api {
            repo: repo.to_string(),
            what,
            endpoint: self.endpoint.clone(),
            why,
        }
    }
}

/// The files a pull takes from a repo listing.
fn choose(repo: &RepoId, names: &[&str], file: Option<&str>) -> Result<Vec<String>> {
    let listing = |filter: &dyn Fn(&str) -> bool| {
        let v: Vec<&str> = names.iter().copied().filter(|n| filter(n)).collect();
        if v.is_empty() {
            names.join(", ")
        } else {
            v.join(", ")
        }
    };
    if let Some(f) = file {
        if names.contains(&f) {
            return Ok(vec![f.to_string()]);
        }
        return Err(HubError::NoSuchFile {
            repo: repo.to_string(),
            file: f.to_string(),
            available: listing(&|n| is_gguf(n) || n.ends_with(".safetensors")),
        });
    }
    if let Some(g) = default_gguf(names) {
        return Ok(vec![g]);
    }
    let has_config = names.contains(&"config.json");
    let has_weights = names.iter().any(|n| n.ends_with(".safetensors"));
    if has_config && has_weights {
        return Ok(names
            .iter()
            .filter(|n| is_folder_file(n))
            .map(|n| n.to_string())
            .collect());
    }
    Err(HubError::NothingToPull {
        repo: repo.to_string(),
        files: listing(&|_| true),
    })
}

fn model_path_of(snap: &Path, wanted: &[String]) -> PathBuf {
    match wanted {
        [one] if is_gguf(one) => snap.join(one),
        _ => snap.to_path_buf(),
    }
}

/// Verifies a pulled file against the ETag its blob is named by; on a mismatch removes the
/// blob and its link so that the next pull downloads it afresh.
fn checked_file(name: &str, path: PathBuf, downloaded: bool) -> Result<PulledFile> {
    let blob = std::fs::canonicalize(&path).map_err(io(&path))?;
    let etag = blob
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let checked = match verify::check(&blob, &etag)? {
        Ok(c) => c,
        Err(actual) => {
            let _ = std::fs::remove_file(&blob);
            let _ = std::fs::remove_file(&path);
            return Err(HubError::Checksum {
                file: name.to_string(),
                expected: etag,
                actual,
            });
        }
    };
    if checked == Checked::Unchecked {
        tracing::warn!(file = %name, "the hub gave no checksum for this file; not verified");
    }
    let bytes = std::fs::metadata(&blob).map_err(io(&blob))?.len();
    Ok(PulledFile {
        name: name.to_string(),
        path,
        bytes,
        checked,
        downloaded,
    })
}

fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> Result<()> {
    let p = repo_dir.join("refs").join(revision);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&p, commit).map_err(io(&p))
}

/// A download progress bar on stderr (indicatif hides it when stderr is not a terminal).
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new(show: bool) -> Bar {
        Bar(show.then(indicatif::ProgressBar::no_length))
    }
}

impl hf_hub::api::Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        if let Some(b) = &self.0 {
            b.set_length(size as u64);
            b.set_position(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
            ) {
                b.set_style(style);
            }
            b.set_message(filename.to_string());
        }
    }

    fn update(&mut self, size: usize) {
        if let Some(b) = &self.0 {
            b.inc(size as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = &self.0 {
            b.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_takes_the_named_file_or_one_gguf_or_the_folder() {
        let r = RepoId::parse("o/n").unwrap();
        let gguf = ["README.md", "m-Q8_0.gguf", "m-Q4_0.gguf"];
        assert_eq!(choose(&r, &gguf, None).unwrap(), ["m-Q4_0.gguf"]);
        assert_eq!(
            choose(&r, &gguf, Some("m-Q8_0.gguf")).unwrap(),
            ["m-Q8_0.gguf"]
        );
        let e = choose(&r, &gguf, Some("m-F16.gguf"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m-F16.gguf") && e.contains("m-Q8_0.gguf, m-Q4_0.gguf"),
            "{e}"
        );
        let folder = [
            ".gitattributes",
            "README.md",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "chat_template.jinja",
            "onnx/model.onnx",
        ];
        assert_eq!(
            choose(&r, &folder, None).unwrap(),
            [
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "chat_template.jinja"
            ]
        );
        let e = choose(&r, &["README.md"], None).unwrap_err();
        assert!(matches!(e, HubError::NothingToPull { .. }), "{e}");
    }
}
