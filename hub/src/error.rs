//! The crate's error type: every variant names the repo, file or path it is about.

use std::path::PathBuf;

/// What can go wrong pulling, listing, removing or resolving a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// A repo id that is not `OWNER/NAME`.
    #[error("`{0}` is not a Hugging Face repo id: use OWNER/NAME (letters, digits, `-`, `_`, `.`), optionally OWNER/NAME:FILE")]
    BadRepoId(String),
    /// `--file` names a file the repo does not have.
    #[error("{repo}: no file `{file}` in the repo (its model files: {available})")]
    NoSuchFile {
        /// The repo.
        repo: String,
        /// The file asked for.
        file: String,
        /// What it has instead.
        available: String,
    },
    /// The repo holds neither a GGUF file nor a safetensors model folder.
    #[error("{repo}: nothing to pull: no .gguf file and no config.json with .safetensors weights (files: {files})")]
    NothingToPull {
        /// The repo.
        repo: String,
        /// Its files.
        files: String,
    },
    /// The hub answered with an error, or could not be reached.
    #[error("{repo}: {what} at {endpoint}: {why}")]
    Api {
        /// The repo.
        repo: String,
        /// What was being done (`listing the repo`, `downloading FILE`).
        what: String,
        /// The hub's address.
        endpoint: String,
        /// The underlying error.
        why: String,
    },
    /// A downloaded file does not hash to the checksum the hub gave for it.
    #[error("{file}: checksum mismatch: the hub says {expected}, the download hashes to {actual}; it was removed, pull again")]
    Checksum {
        /// The file.
        file: String,
        /// The hub's checksum.
        expected: String,
        /// The download's.
        actual: String,
    },
    /// Offline mode and the model is not in the cache.
    #[error("HF_HUB_OFFLINE is set and `{reference}` is not in the cache at {cache}: unset it to download, or pull it on a machine with a network")]
    Offline {
        /// What was asked for.
        reference: String,
        /// The cache folder.
        cache: PathBuf,
    },
    /// A model reference that is neither a path nor a pulled model.
    #[error("`{reference}`: no such file or folder, and no pulled model by that name in {cache} (get it with `lfm-agent pull {reference}`)")]
    NotFound {
        /// The reference.
        reference: String,
        /// The cache folder.
        cache: PathBuf,
    },
    /// A repo with several pulled GGUF files, named without one.
    #[error("`{repo}`: several GGUF files were pulled ({files}); name one as `{repo}:FILE`")]
    Ambiguous {
        /// The repo.
        repo: String,
        /// Its pulled GGUF files.
        files: String,
    },
    /// No cache folder can be named.
    #[error("no Hugging Face cache folder: set HF_HUB_CACHE or HF_HOME (there is no home folder)")]
    NoCache,
    /// The hub listed a file name, commit or revision that is not a plain relative name.
    #[error("{repo}: the hub gave an unsafe {what} `{value}`; refusing it")]
    Unsafe {
        /// The repo.
        repo: String,
        /// `file name`, `commit` or `revision`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// A path that does not exist and cannot be a repo id.
    #[error("{0}: no such file or folder (for a model from the hub: `lfm-agent pull OWNER/NAME`, then give OWNER/NAME)")]
    NoSuchPath(PathBuf),
    /// A filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// `Result` with [`HubError`].
pub type Result<T, E = HubError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HubError {
    let path = path.into();
    move |source| HubError::Io { path, source }
}
