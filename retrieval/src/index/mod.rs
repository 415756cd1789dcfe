//! Building and updating the index: walk the roots, hash each file, parse and chunk the new
//! and changed ones in parallel, and write their chunks to tantivy, replacing what was there
//! for the same path; files that disappeared from a root are removed.

mod manifest;
pub(crate) mod schema;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tantivy::schema::Term;
use tantivy::{Index, IndexWriter, TantivyDocument};

pub(crate) use manifest::{chunker_id, FileEntry, Manifest};
use schema::Fields;

use crate::chunk::{chunk, Chunk, ChunkConfig};
use crate::ingest::{self, DocKind, SkipReason};
use crate::tokens::TokenCounter;
use crate::{Error, Result};

/// Settings of an [`Indexer`].
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// How files are cut.
    pub chunking: ChunkConfig,
    /// Files larger than this are skipped (default 1 GiB).
    pub max_file_bytes: u64,
    /// tantivy writer threads (default: the machine's cores, at most 4).
    pub writer_threads: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            chunking: ChunkConfig::default(),
            max_file_bytes: 1 << 30,
            writer_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4),
        }
    }
}

/// How far an update has got, for a progress bar.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    /// Files handled so far.
    pub done: usize,
    /// Files found under the roots.
    pub total: usize,
    /// The file just handled.
    pub path: &'a str,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What an update did.
#[derive(Debug, Clone, Default)]
pub struct IndexSummary {
    /// Files found under the roots.
    pub files: usize,
    /// Files indexed for the first time.
    pub added: usize,
    /// Files whose content changed, re-chunked.
    pub changed: usize,
    /// Files skipped because their content hash is unchanged.
    pub unchanged: usize,
    /// Files gone from their root, removed from the index.
    pub removed: usize,
    /// Files not indexed, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Chunks written by this update.
    pub chunks_written: usize,
    /// Chunks in the index afterwards.
    pub chunks_total: u64,
    /// Bytes read (all files found, changed or not).
    pub bytes_read: u64,
    /// Bytes of the files parsed and chunked.
    pub bytes_indexed: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for IndexSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "{} files ({} new, {} changed, {} unchanged, {} removed), {} chunks written, {} in index, {} skipped, {:.2} s ({:.1} MB/s)",
            self.files,
            self.added,
            self.changed,
            self.unchanged,
            self.removed,
            self.chunks_written,
            self.chunks_total,
            self.skipped.len(),
            secs,
            self.bytes_read as f64 / 1e6 / secs.max(1e-9),
        )
    }
}

/// Writes an index folder. One at a time per folder (tantivy's writer lock); readers
/// ([`crate::Retriever`]) may be open meanwhile and see the update once it is committed.
pub struct Indexer {
    dir: PathBuf,
    writer: IndexWriter,
    fields: Fields,
    manifest: Manifest,
    counter: Arc<dyn TokenCounter>,
    opts: IndexOptions,
    /// [`chunker_id`] of this indexer's settings.
    chunker: String,
}

struct Candidate {
    display: String,
    abs: PathBuf,
    root: String,
}

enum Outcome {
    Unchanged,
    Indexed {
        kind: DocKind,
        hash: String,
        bytes: u64,
        title: String,
        chunks: Vec<Chunk>,
    },
    Skipped(SkipReason),
}

impl Indexer {
    /// Opens the index in `dir`, creating it (and the folder) if there is none. A folder that
    /// holds other files, or an index of another schema version, is refused.
    pub fn open(dir: &Path, opts: IndexOptions, counter: Arc<dyn TokenCounter>) -> Result<Self> {
        opts.chunking.validate()?;
        let (schema, fields) = schema::build();
        let has_meta = dir.join("meta.json").exists();
        let index = if has_meta {
            let index = Index::open_in_dir(dir).map_err(|e| Error::tantivy(dir, e))?;
            if schema::fields_of(&index.schema()).is_none() {
                return Err(Error::BadIndex {
                    path: dir.to_path_buf(),
                    why: "index written by another version (schema differs); delete it to rebuild"
                        .into(),
                });
            }
            index
        } else {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let non_empty = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .next()
                .is_some();
            if non_empty {
                return Err(Error::BadIndex {
                    path: dir.to_path_buf(),
                    why: "folder is not empty and holds no index; refusing to write into it".into(),
                });
            }
            Index::create_in_dir(dir, schema).map_err(|e| Error::tantivy(dir, e))?
        };
        schema::register_analyzer(&index);
        let threads = opts.writer_threads.max(1);
        let writer = index
            .writer_with_num_threads(threads, threads * 64_000_000)
            .map_err(|e| Error::tantivy(dir, e))?;
        let fresh = Manifest {
            schema_version: schema::SCHEMA_VERSION,
            files: BTreeMap::new(),
        };
        let manifest = match Manifest::load(dir)? {
            Some(m) if m.schema_version != schema::SCHEMA_VERSION => {
                return Err(Error::BadIndex {
                    path: dir.to_path_buf(),
                    why: format!(
                        "index schema version {} (this build writes {}); delete it to rebuild",
                        m.schema_version,
                        schema::SCHEMA_VERSION
                    ),
                })
            }
            Some(m) => m,
            None => fresh,
        };
        let chunker = chunker_id(&opts.chunking, &counter.name());
        Ok(Indexer {
            dir: dir.to_path_buf(),
            writer,
            fields,
            manifest,
            counter,
            opts,
            chunker,
        })
    }

    /// Brings the index up to date with the files under `roots` (folders or single files).
    /// Files indexed earlier from other roots are left alone.
    pub fn update(
        &mut self,
        roots: &[PathBuf],
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<IndexSummary> {
        let started = Instant::now();
        let mut summary = IndexSummary::default();
        let index_dir = std::fs::canonicalize(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut candidates = Vec::new();
        let mut root_names = HashSet::new();
        for root in roots {
            let name = walk(root, &index_dir, &mut candidates, &mut summary.skipped)?;
            root_names.insert(name);
        }
        // The same file reached from two roots is indexed once.
        let mut seen = HashSet::new();
        candidates.retain(|c| seen.insert(c.display.clone()));
        summary.files = candidates.len();
        let total = candidates.len();
        let mut done = 0usize;
        let mut manifest = self.manifest.clone();
        for batch in candidates.chunks(64) {
            let outcomes: Vec<(Outcome, u64)> = batch.par_iter().map(|c| self.process(c)).collect();
            for (c, (outcome, bytes)) in batch.iter().zip(outcomes) {
                summary.bytes_read += bytes;
                let known = manifest.files.contains_key(&c.display);
                match outcome {
                    Outcome::Unchanged => {
                        summary.unchanged += 1;
                        // The file may now be reached from another root (a folder instead of
                        // the file itself): record where it was found this time.
                        if let Some(e) = manifest.files.get_mut(&c.display) {
                            e.root = c.root.clone();
                            e.abs = c.abs.clone();
                        }
                    }
                    Outcome::Skipped(reason) => {
                        if known {
                            self.delete_path(&c.display);
                            manifest.files.remove(&c.display);
                        }
                        summary
                            .skipped
                            .push((c.display.clone(), reason.to_string()));
                    }
                    Outcome::Indexed {
                        kind,
                        hash,
                        bytes,
                        title,
                        chunks,
                    } => {
                        if known {
                            summary.changed += 1;
                        } else {
                            summary.added += 1;
                        }
                        summary.bytes_indexed += bytes;
                        summary.chunks_written += chunks.len();
                        // Replaces by path always: the index may hold chunks the manifest
                        // does not know of (a crash between commit and manifest write).
                        self.add_chunks(&c.display, kind, &title, &chunks)?;
                        manifest.files.insert(
                            c.display.clone(),
                            FileEntry {
                                root: c.root.clone(),
                                abs: c.abs.clone(),
                                hash,
                                bytes,
                                kind,
                                chunks: chunks.len() as u32,
                                chunker: self.chunker.clone(),
                            },
                        );
                    }
                }
                done += 1;
                progress(Progress {
                    done,
                    total,
                    path: &c.display,
                    bytes,
                });
            }
        }
        let gone: Vec<String> = manifest
            .files
            .iter()
            .filter(|(path, e)| root_names.contains(&e.root) && !seen.contains(*path))
            .map(|(path, _)| path.clone())
            .collect();
        for path in gone {
            self.delete_path(&path);
            manifest.files.remove(&path);
            summary.removed += 1;
        }
        self.commit()?;
        manifest.save(&self.dir)?;
        self.manifest = manifest;
        summary.chunks_total = self
            .manifest
            .files
            .values()
            .map(|e| u64::from(e.chunks))
            .sum();
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// Commits what was written so far.
    pub fn commit(&mut self) -> Result<()> {
        self.writer
            .commit()
            .map(|_| ())
            .map_err(|e| Error::tantivy(&self.dir, e))
    }

    /// Reads, hashes, parses and chunks one file. Returns the outcome and the bytes read.
    fn process(&self, c: &Candidate) -> (Outcome, u64) {
        let bytes = match std::fs::metadata(&c.abs) {
            Ok(m) if m.len() > self.opts.max_file_bytes => {
                return (Outcome::Skipped(SkipReason::TooLarge(m.len())), 0)
            }
            Ok(_) => match std::fs::read(&c.abs) {
                Ok(b) => b,
                Err(e) => return (Outcome::Skipped(SkipReason::Unreadable(e.to_string())), 0),
            },
            Err(e) => return (Outcome::Skipped(SkipReason::Unreadable(e.to_string())), 0),
        };
        let n = bytes.len() as u64;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        if self
            .manifest
            .files
            .get(&c.display)
            .is_some_and(|e| e.hash == hash && e.chunker == self.chunker)
        {
            return (Outcome::Unchanged, n);
        }
        let (kind, doc) = match ingest::parse(DocKind::from_path(&c.abs), &bytes) {
            Ok(parsed) => parsed,
            Err(reason) => return (Outcome::Skipped(reason), n),
        };
        let title = doc.title.clone().unwrap_or_else(|| file_stem(&c.display));
        let chunks = chunk(&doc, &self.opts.chunking, self.counter.as_ref());
        (
            Outcome::Indexed {
                kind,
                hash,
                bytes: n,
                title,
                chunks,
            },
            n,
        )
    }

    fn delete_path(&mut self, path: &str) {
        self.writer
            .delete_term(Term::from_field_text(self.fields.path, path));
    }

    /// Writes the chunks of one document under `path`, replacing any earlier chunks under
    /// the same path. [`Indexer::update`] uses it for files; other callers (generated corpora,
    /// records from a database) are not recorded in the manifest. Visible after
    /// [`Indexer::commit`].
    pub fn add_chunks(
        &mut self,
        path: &str,
        kind: DocKind,
        title: &str,
        chunks: &[Chunk],
    ) -> Result<()> {
        self.delete_path(path);
        let f = &self.fields;
        for c in chunks {
            let mut doc = TantivyDocument::default();
            doc.add_text(f.chunk_id, format!("{path}#{}", c.ord));
            doc.add_text(f.path, path);
            doc.add_text(f.kind, kind.name());
            doc.add_text(f.title, title);
            doc.add_text(f.headings, c.trail.join("\n"));
            doc.add_text(f.body, &c.text);
            doc.add_u64(f.ord, u64::from(c.ord));
            doc.add_u64(f.line_start, u64::from(c.line_start));
            doc.add_u64(f.line_end, u64::from(c.line_end));
            doc.add_u64(f.tokens, u64::from(c.tokens));
            self.writer
                .add_document(doc)
                .map_err(|e| Error::tantivy(&self.dir, e))?;
        }
        Ok(())
    }

    /// Waits for tantivy's background segment merges and closes the writer: a static index
    /// then searches over fewer segments.
    pub fn finish(self) -> Result<()> {
        let dir = self.dir.clone();
        self.writer
            .wait_merging_threads()
            .map_err(|e| Error::tantivy(&dir, e))
    }
}

fn file_stem(display: &str) -> String {
    let name = display.rsplit('/').next().unwrap_or(display);
    name.rsplit_once('.').map_or(name, |(s, _)| s).to_string()
}

/// The display form of a root: as given, without `./` in front or `/` behind.
fn root_name(root: &Path) -> String {
    let s = root.to_string_lossy().replace('\\', "/");
    let mut s = s.as_str();
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    let t = s.trim_end_matches('/');
    if t.is_empty() {
        if s.starts_with('/') { "/" } else { "." }.to_string()
    } else {
        t.to_string()
    }
}

/// Collects the files under `root`, skipping hidden entries and the index folder itself.
/// Returns the root's display name.
fn walk(
    root: &Path,
    index_dir: &Path,
    out: &mut Vec<Candidate>,
    skipped: &mut Vec<(String, String)>,
) -> Result<String> {
    let name = root_name(root);
    let meta = std::fs::metadata(root).map_err(|e| Error::BadRoot {
        path: root.to_path_buf(),
        why: e.to_string(),
    })?;
    let abs_root = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    if meta.is_file() {
        out.push(Candidate {
            display: name.clone(),
            abs: abs_root,
            root: name.clone(),
        });
        return Ok(name);
    }
    let walker = walkdir::WalkDir::new(&abs_root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || (!e.file_name().to_string_lossy().starts_with('.') && e.path() != index_dir)
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let p = e
                    .path()
                    .map_or_else(|| name.clone(), |p| p.display().to_string());
                skipped.push((p, format!("unreadable: {e}")));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(&abs_root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .replace('\\', "/");
        let display = match name.as_str() {
            "." => rel,
            n if n.ends_with('/') => format!("{n}{rel}"),
            n => format!("{n}/{rel}"),
        };
        out.push(Candidate {
            display,
            abs: entry.path().to_path_buf(),
            root: name.clone(),
        });
    }
    Ok(name)
}

#[cfg(test)]
mod tests;
