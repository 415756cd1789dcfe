//! The pieces of the tasks that are not the loop: reading tickets and finding finished ones
//! (`triage`), checking citations against what a run retrieved (`ask`), and cutting logs
//! into windows that fit the context (`extract`). The commands in `cli/` put them together
//! with the loop, the backend and the trace store.

pub mod citations;
pub mod logsplit;
pub mod tickets;

use std::path::PathBuf;

/// An input problem, naming the file and the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A file could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A bad record.
    #[error("{}:{line}: {message}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Why.
        message: String,
    },
}
