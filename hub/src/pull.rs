//! Pulling a repo: choose its files, download what is missing (resuming), verify each.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Repo, RepoType};
use serde_json::Value;

use crate::error::io;
use crate::repo::{default_gguf, is_commit, is_folder_file, is_gguf, safe_name, ModelRef};
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
        let unsafe_value = |what, value: &str| HubError::Unsafe {
            repo: repo.to_string(),
            what,
            value: value.to_string(),
        };
        if !safe_name(&opts.revision) {
            return Err(unsafe_value("revision", &opts.revision));
        }
        if let Some(f) = opts.file.as_deref().filter(|f| !safe_name(f)) {
            return Err(unsafe_value("file name", f));
        }
        if self.offline {
            return self.pull_offline(repo, opts);
        }
        let api = self.api(repo)?;
        let listing = self.listing(&api, repo, &opts.revision)?;
        let names: Vec<&str> = listing.files.iter().map(|f| f.name.as_str()).collect();
        let wanted = choose(repo, &names, opts.file.as_deref())?;
        // Downloads name the listed commit, not the branch: a branch that moves meanwhile
        // cannot mix two commits' files.
        let handle = api.repo(Repo::with_revision(
            repo.to_string(),
            RepoType::Model,
            listing.commit.clone(),
        ));
        let snap = self.repo_dir(repo).join("snapshots").join(&listing.commit);
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
                if path != cached {
                    return Err(unsafe_value("commit", &path.display().to_string()));
                }
                (path, true)
            };
            let expected = listing
                .files
                .iter()
                .find(|f| &f.name == name)
                .and_then(|f| f.checksum.clone());
            files.push(checked_file(name, path, expected.as_deref(), downloaded)?);
        }
        // Only now, with every file checked, does the branch point at the commit: until
        // then `resolve` keeps answering with what was there before.
        write_ref(&self.repo_dir(repo), &opts.revision, &listing.commit)?;
        let model_path = model_path_of(&snap, &wanted);
        Ok(Pulled {
            repo: repo.clone(),
            commit: listing.commit,
            files,
            model_path,
        })
    }

    /// The repo's files at `revision`, with the commit and each file's checksum
    /// (`?blobs=true`: the LFS SHA-256, else the git blob id). Unsafe names are dropped.
    fn listing(&self, api: &Api, repo: &RepoId, revision: &str) -> Result<Listing> {
        let handle = api.repo(Repo::with_revision(
            repo.to_string(),
            RepoType::Model,
            revision.to_string(),
        ));
        let err = |why: String| HubError::Api {
            repo: repo.to_string(),
            what: "listing the repo".into(),
            endpoint: self.endpoint.clone(),
            why,
        };
        let v: Value = handle
            .info_request()
            .query("blobs", "true")
            .call()
            .map_err(|e| err(hint(e.to_string())))?
            .into_json()
            .map_err(|e| err(format!("not JSON: {e}")))?;
        let commit = v["sha"].as_str().unwrap_or_default().to_string();
        if !is_commit(&commit) {
            return Err(HubError::Unsafe {
                repo: repo.to_string(),
                what: "commit",
                value: commit,
            });
        }
        let mut files = Vec::new();
        for s in v["siblings"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let Some(name) = s["rfilename"].as_str() else {
                continue;
            };
            if !safe_name(name) {
                tracing::warn!(repo = %repo, file = name, "unsafe file name in the listing; ignored");
                continue;
            }
            let checksum = s["lfs"]["sha256"]
                .as_str()
                .or(s["blobId"].as_str())
                .map(str::to_string);
            files.push(ListedFile {
                name: name.to_string(),
                checksum,
            });
        }
        Ok(Listing { commit, files })
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
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_folder_file(n))
                .collect();
            v.sort();
            v
        };
        let files = names
            .iter()
            .map(|n| checked_file(n, snap.join(n), None, false))
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

/// A repo's listing at one commit.
struct Listing {
    commit: String,
    files: Vec<ListedFile>,
}

struct ListedFile {
    name: String,
    /// The LFS SHA-256 or the git blob id the listing gives.
    checksum: Option<String>,
}

/// An HTTP error with what usually causes it.
fn hint(mut why: String) -> String {
    if why.contains("status code 401") || why.contains("status code 403") {
        why.push_str(" (a gated or private repo: accept its terms on the hub and set HF_TOKEN)");
    } else if why.contains("status code 404") {
        why.push_str(" (check the repo id, the revision and the file name)");
    }
    why
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

/// Verifies a pulled file against the checksum the listing gave (else the ETag its blob is
/// named by); on a mismatch removes the blob and its link so that the next pull downloads it
/// afresh.
fn checked_file(
    name: &str,
    path: PathBuf,
    expected: Option<&str>,
    downloaded: bool,
) -> Result<PulledFile> {
    let blob = std::fs::canonicalize(&path).map_err(io(&path))?;
    let etag = match expected {
        Some(e) => e.to_string(),
        None => blob
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string(),
    };
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
