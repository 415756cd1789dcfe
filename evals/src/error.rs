//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong loading a suite, storing results or writing a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A suite's `suite.toml`, cases, schema or tools are wrong; `line` is 1-based where the
    /// problem is one JSONL line, 0 otherwise.
    #[error("{}{}: {why}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
    BadSuite {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 for the whole file.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The results database failed.
    #[error("results database {}: {why}", path.display())]
    Store {
        /// The database file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// A run asked for by id does not exist.
    #[error("no eval run {id} in {}", path.display())]
    NoRun {
        /// The id.
        id: i64,
        /// The database file.
        path: PathBuf,
    },
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
