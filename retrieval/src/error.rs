//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in ingest, indexing, search and packing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A root given to the indexer is not a readable folder or file.
    #[error("{path}: not a folder or file that can be indexed ({why})")]
    BadRoot {
        /// The root as given.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The index folder holds something we did not write, or a different schema version.
    #[error("{path}: {why}")]
    BadIndex {
        /// The index folder.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Another process holds the index writer lock.
    #[error("{path}: the index is being written by another process (tantivy writer lock held)")]
    Locked {
        /// The index folder.
        path: PathBuf,
    },
    /// A `--path` glob does not parse.
    #[error("bad path glob `{glob}`: {why}")]
    BadGlob {
        /// The glob as given.
        glob: String,
        /// The parser's message.
        why: String,
    },
    /// A file type filter names no known type.
    #[error("unknown file type `{0}`; known: md, rst, html, txt, log, json, jsonl, csv, pdf")]
    UnknownKind(String),
    /// A configuration value is out of range.
    #[error("{field}: {why}")]
    BadConfig {
        /// The field or flag.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A labelled question file is malformed.
    #[error("{path}:{line}: {why}")]
    BadQuestions {
        /// The JSONL file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// tantivy failed.
    #[error("index {path}: {source}")]
    Tantivy {
        /// The index folder.
        path: PathBuf,
        /// The underlying error.
        source: tantivy::TantivyError,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn tantivy(path: impl Into<PathBuf>, source: tantivy::TantivyError) -> Self {
        let path = path.into();
        match source {
            tantivy::TantivyError::LockFailure(..) => Error::Locked { path },
            source => Error::Tantivy { path, source },
        }
    }
}
