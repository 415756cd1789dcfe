//! `manifest.json` beside the tantivy files: what was indexed from which file, so that a rerun
//! skips unchanged files, re-chunks changed ones and removes deleted ones.
//!
//! Written after each tantivy commit, atomically (temporary file, then rename). If a crash
//! falls between the two, the next run sees the old manifest and re-indexes the files it does
//! not know, deleting their old chunks by path first: the index converges either way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chunk::ChunkConfig;
use crate::ingest::DocKind;
use crate::{Error, Result};

pub(crate) const FILE_NAME: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub schema_version: u32,
    /// Display path -> what was indexed.
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// The root (as given, normalised) it was found under.
    pub root: String,
    /// Absolute path when indexed (for `read_doc` and for checking roots).
    pub abs: PathBuf,
    /// blake3 of the content, hex.
    pub hash: String,
    pub bytes: u64,
    pub kind: DocKind,
    pub chunks: u32,
    /// The chunking and counter the chunks were made with ([`chunker_id`]); a file made
    /// with other settings is re-chunked even when its content is unchanged.
    #[serde(default)]
    pub chunker: String,
}

/// Identifies the chunking settings and token counter.
pub(crate) fn chunker_id(cfg: &ChunkConfig, counter: &str) -> String {
    format!("{}/{}/{}", cfg.max_tokens, cfg.overlap_tokens, counter)
}

impl Manifest {
    pub(crate) fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::BadIndex {
                path: path.clone(),
                why: format!("manifest does not parse ({e}); delete the index folder to rebuild"),
            })
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let bytes = serde_json::to_vec(self).map_err(|e| Error::BadIndex {
            path: path.clone(),
            why: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }
}
