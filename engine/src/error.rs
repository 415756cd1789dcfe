//! The engine's one error type.
//!
//! Every variant that comes from a file names the file, and every variant about a tensor or a
//! config key names it, so a user can tell what to fix without reading the source.

use std::path::PathBuf;

/// Result alias used throughout `lfm-engine`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading a model or running it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model folder lacks a file it needs.
    #[error("{path}: missing ({what})")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
        /// What the file would have held.
        what: &'static str,
    },
    /// A JSON file does not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: serde_json::Error,
    },
    /// A config value is missing, of the wrong kind, or inconsistent with others.
    #[error("{path}: field `{field}`: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The offending key.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The config names an architecture this engine does not implement.
    #[error("{path}: unsupported architecture `{found}` (field `{field}`); this engine runs LFM2 (`model_type: \"lfm2\"`, `Lfm2ForCausalLM`)")]
    UnsupportedArchitecture {
        /// The config file.
        path: PathBuf,
        /// The key that named it.
        field: &'static str,
        /// What it said.
        found: String,
    },
    /// A weights file is damaged: truncated, bad header, offsets out of range.
    #[error("{path}: corrupt or truncated safetensors file: {message}")]
    CorruptWeights {
        /// The weights file.
        path: PathBuf,
        /// What the reader found.
        message: String,
    },
    /// A tensor the model needs is not in any weights file.
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor {
        /// The weights file (or the index) that should have held it.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor has a shape other than the config implies.
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?} from config.json")]
    TensorShape {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a type the engine does not load.
    #[error("{path}: tensor `{name}` has dtype {found}; supported: F32, BF16, F16")]
    TensorDtype {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The dtype in the file.
        found: String,
    },
    /// A GGUF file is damaged, truncated, or not one this engine reads.
    #[error("{path}: GGUF: {message}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the byte offset or key where it applies.
        message: String,
    },
    /// A tensor is stored in a ggml type the engine does not run.
    #[error("{path}: tensor `{name}` has type {found}; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K")]
    UnsupportedTensorType {
        /// The model file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The type in the file.
        found: String,
    },
    /// The tokenizer could not be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to compile or render.
    #[error("chat template ({source_name}): {message}")]
    Template {
        /// Where the template came from.
        source_name: String,
        /// The template engine's message.
        message: String,
    },
    /// A sequence would grow past the session's context.
    #[error("context full: {needed} tokens needed, the context holds {limit}")]
    ContextFull {
        /// Tokens the operation would need in total.
        needed: usize,
        /// The session's context size.
        limit: usize,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {id} is out of range for a vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A caller passed an argument the engine cannot use.
    #[error("invalid argument `{name}`: {message}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },
    /// A constraint (schema, regex, grammar) the engine cannot enforce; refused before
    /// generation. The message names the keyword or rule.
    #[error("unsupported {kind}: {message}")]
    Unsupported {
        /// "JSON schema", "regex", "grammar" or "tool calls".
        kind: &'static str,
        /// What is unsupported, as the constraint engine reports it.
        message: String,
    },
    /// The constraint engine failed while generating.
    #[error("constraint: {0}")]
    Constraint(String),
    /// Generation cannot go on without writing what the constraint forbids beyond its
    /// grammar (a key repeated in one object): it stops instead, with no valid output.
    #[error("constraint dead end: {0}")]
    DeadEnd(String),
    /// The caller's cancel flag was raised while it waited (for room in a batch).
    #[error("cancelled while waiting for {0}")]
    Cancelled(&'static str),
    /// A snapshot no longer matches the session it is restored into.
    #[error("snapshot is stale: {0}")]
    StaleSnapshot(String),
    /// A tensor operation failed (a bug, or out of memory).
    #[error("tensor operation: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn arg(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            message: message.into(),
        }
    }
}
