//! The cache: what is pulled, removing it, and turning a model reference into a path.
//!
//! Layout (`huggingface_hub`'s): `models--OWNER--NAME/refs/REVISION` holds a commit id;
//! `snapshots/COMMIT/FILE` links to `blobs/ETAG`, the file's bytes.

use std::path::{Path, PathBuf};

use crate::error::io;
use crate::repo::{is_gguf, ModelRef, RepoId};
use crate::{Hub, HubError, Result};

/// A pulled model repo.
#[derive(Debug, Clone, PartialEq)]
pub struct PulledModel {
    /// Its repo id.
    pub repo: RepoId,
    /// Its folder in the cache.
    pub dir: PathBuf,
    /// The commit `main` points at, when the ref exists.
    pub commit: Option<String>,
    /// The files of that snapshot.
    pub files: Vec<String>,
    /// Bytes on disk (blobs, partial downloads included).
    pub bytes: u64,
}

impl Hub {
    /// The repo's cache folder.
    pub(crate) fn repo_dir(&self, repo: &RepoId) -> PathBuf {
        self.cache.join(repo.folder_name())
    }

    /// The snapshot folder `revision` points at, when it does.
    pub(crate) fn snapshot(&self, repo: &RepoId, revision: &str) -> Option<(String, PathBuf)> {
        let dir = self.repo_dir(repo);
        let commit = std::fs::read_to_string(dir.join("refs").join(revision)).ok()?;
        let commit = commit.trim().to_string();
        let snap = dir.join("snapshots").join(&commit);
        snap.is_dir().then_some((commit, snap))
    }

    /// Every pulled model repo, by repo id.
    pub fn list(&self) -> Result<Vec<PulledModel>> {
        let entries = match std::fs::read_dir(&self.cache) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.cache)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.cache))?;
            let Some(repo) = entry
                .file_name()
                .to_str()
                .and_then(RepoId::from_folder_name)
            else {
                continue;
            };
            let dir = entry.path();
            let (commit, files) = match self.snapshot(&repo, "main") {
                Some((c, snap)) => (Some(c), files_in(&snap)?),
                None => (None, Vec::new()),
            };
            let bytes = dir_bytes(&dir.join("blobs"))?;
            out.push(PulledModel {
                repo,
                dir,
                commit,
                files,
                bytes,
            });
        }
        out.sort_by(|a, b| a.repo.cmp(&b.repo));
        Ok(out)
    }

    /// Removes a pulled repo (every revision and partial download); returns the bytes freed.
    pub fn remove(&self, repo: &RepoId) -> Result<u64> {
        let dir = self.repo_dir(repo);
        if !dir.is_dir() {
            return Err(HubError::NotFound {
                reference: repo.to_string(),
                cache: self.cache.clone(),
            });
        }
        let bytes = dir_bytes(&dir.join("blobs"))?;
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        Ok(bytes)
    }

    /// A `--model` value as a path: an existing file or folder as is; otherwise a pulled repo
    /// (`OWNER/NAME` or `OWNER/NAME:FILE`) as its snapshot folder (safetensors) or its GGUF
    /// file.
    pub fn resolve(&self, reference: &str) -> Result<PathBuf> {
        let path = Path::new(reference);
        if path.exists() {
            return Ok(path.to_path_buf());
        }
        let not_found = || HubError::NotFound {
            reference: reference.to_string(),
            cache: self.cache.clone(),
        };
        let Ok(mref) = ModelRef::parse(reference) else {
            return Err(HubError::NoSuchPath(path.to_path_buf()));
        };
        self.model_path(&mref, "main")?.ok_or_else(not_found)
    }

    /// The path a pulled reference loads from, `None` when it is not pulled.
    pub(crate) fn model_path(&self, mref: &ModelRef, revision: &str) -> Result<Option<PathBuf>> {
        let Some((_, snap)) = self.snapshot(&mref.repo, revision) else {
            return Ok(None);
        };
        if let Some(file) = &mref.file {
            let p = snap.join(file);
            return Ok(p.is_file().then_some(p));
        }
        if snap.join("config.json").is_file() {
            return Ok(Some(snap));
        }
        let ggufs: Vec<String> = files_in(&snap)?
            .into_iter()
            .filter(|f| is_gguf(f))
            .collect();
        match ggufs.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(snap.join(one))),
            many => Err(HubError::Ambiguous {
                repo: mref.repo.to_string(),
                files: many.join(", "),
            }),
        }
    }
}

/// The files under a snapshot folder, relative, sorted.
fn files_in(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let p = entry.map_err(io(&d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Bytes of the plain files directly in `dir` (0 when it is missing).
fn dir_bytes(dir: &Path) -> Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut total = 0;
    for entry in entries {
        let meta = entry.and_then(|e| e.metadata()).map_err(io(dir))?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}
