//! `lfm-hub`: models the way users get them.
//!
//! - [`Hub::pull`] downloads a model repo from the Hugging Face Hub (or any server speaking
//!   its HTTP API, `HF_ENDPOINT`) into the standard cache (`HF_HUB_CACHE`, else
//!   `HF_HOME/hub`, else `~/.cache/huggingface/hub`), the same layout `huggingface_hub` and
//!   `hf-hub` use, so models pulled by either are shared. For a GGUF repo it takes one file
//!   (named, or Q4_K_M, Q4_0, Q8_0 in that order); for a safetensors repo the config,
//!   tokenizer, template and weights. Downloads resume from the partial file a broken one
//!   left. Every file is checked against the checksum the hub lists for it (the LFS SHA-256
//!   or the git blob id, [`verify`]) before the branch is pointed at the pulled commit, so
//!   `OWNER/NAME` never resolves to a file that was not checked; a file that fails is
//!   removed.
//! - [`Hub::list`] and [`Hub::remove`]: what is pulled, how big, and removing it.
//! - [`Hub::resolve`]: a `--model` value is a path (file or folder) or a pulled repo
//!   (`OWNER/NAME`, `OWNER/NAME:FILE`); this turns either into a path.
//! - `HF_HUB_OFFLINE=1` makes [`Hub::pull`] answer from the cache only, and `HF_TOKEN` (or
//!   the cache's `token` file) authenticates.
//! - [`standin`]: a local stand-in of the hub's HTTP API, for tests and for trying `pull`
//!   with no network.
//!
//! The transfer itself is the `hf-hub` crate's (sync API over `ureq`): range requests,
//! `.part` files, the cache layout. This crate adds the choice of files, the checksums,
//! offline mode, listing, removal and resolution.

#![deny(missing_docs)]

mod cache;
mod error;
mod pull;
mod repo;
pub mod standin;
pub mod verify;

use std::path::{Path, PathBuf};

pub use cache::PulledModel;
pub use error::{HubError, Result};
pub use pull::{PullOptions, Pulled, PulledFile};
pub use repo::{ModelRef, RepoId};

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where models come from and where they are kept.
#[derive(Debug, Clone)]
pub struct Hub {
    cache: PathBuf,
    endpoint: String,
    token: Option<String>,
    offline: bool,
    progress: bool,
    retries: usize,
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl Hub {
    /// A hub over the cache folder `cache` (the `hub` folder: it holds `models--*`), the
    /// public endpoint, online, with no token and no progress bar.
    pub fn new(cache: impl Into<PathBuf>) -> Hub {
        Hub {
            cache: cache.into(),
            endpoint: DEFAULT_ENDPOINT.to_string(),
            token: None,
            offline: false,
            progress: false,
            retries: 3,
        }
    }

    /// The settings `huggingface_hub` reads: `HF_HUB_CACHE`, `HF_HOME`, `HF_ENDPOINT`,
    /// `HF_HUB_OFFLINE`, `HF_TOKEN` (else the `token` file in `HF_HOME`). The progress bar is
    /// on. Empty variables count as unset; with neither `HF_HUB_CACHE`, `HF_HOME` nor a home
    /// folder there is no cache, and that is an error.
    pub fn from_env() -> Result<Hub> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let home = env("HF_HOME").map(PathBuf::from).or_else(|| {
            env("HOME")
                .or_else(|| env("USERPROFILE"))
                .map(|h| PathBuf::from(h).join(".cache").join("huggingface"))
        });
        let cache = match (env("HF_HUB_CACHE"), &home) {
            (Some(c), _) => PathBuf::from(c),
            (None, Some(h)) => h.join("hub"),
            (None, None) => return Err(HubError::NoCache),
        };
        let token = env("HF_TOKEN").or_else(|| {
            let t = std::fs::read_to_string(home.as_ref()?.join("token")).ok()?;
            Some(t.trim().to_string()).filter(|t| !t.is_empty())
        });
        Ok(Hub {
            endpoint: env("HF_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            token,
            offline: env("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
            progress: true,
            ..Hub::new(cache)
        })
    }

    /// Uses another server speaking the hub's API.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Hub {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// Answers from the cache only.
    pub fn with_offline(mut self, offline: bool) -> Hub {
        self.offline = offline;
        self
    }

    /// Shows a progress bar on stderr while downloading (hidden when stderr is not a terminal).
    pub fn with_progress(mut self, progress: bool) -> Hub {
        self.progress = progress;
        self
    }

    /// Retries of a broken download within one pull, each resuming where the last stopped
    /// (default 3).
    pub fn with_retries(mut self, retries: usize) -> Hub {
        self.retries = retries;
        self
    }

    /// The bearer token sent to the hub.
    pub fn with_token(mut self, token: Option<String>) -> Hub {
        self.token = token;
        self
    }

    /// The cache folder.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether this hub is offline.
    pub fn offline(&self) -> bool {
        self.offline
    }
}
