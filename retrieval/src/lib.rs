//! `lfm-retrieval`: BM25 retrieval over internal docs, packed into the model's context with
//! citations a person can check.
//!
//! The stages follow tantivy's own split of spec, compiled form and cursor:
//!
//! - [`ingest`] reads a file (Markdown, reStructuredText, HTML, text, logs, JSON, JSONL, CSV,
//!   PDF text layers) into [`ingest::Block`]s that keep their source line spans;
//! - [`chunk`] packs blocks into [`Chunk`]s by structure, sized in model tokens by a
//!   [`TokenCounter`] (the model's tokenizer when the caller has one; the crate never depends
//!   on the engine);
//! - [`Indexer`] keeps a tantivy index of chunks up to date with folders, incrementally
//!   (content hashes in a manifest beside the index);
//! - [`Retriever`] opens the index once and serves searches from any number of threads;
//! - [`pack()`] fits the best hits into a token budget as numbered citations, and
//!   [`Packed`] maps each number back to its source;
//! - [`eval`] scores rankings against a labelled question set (recall@k, MRR).
//!
//! ```no_run
//! use std::sync::Arc;
//! use lfm_retrieval::{EstimateCounter, IndexOptions, Indexer, Retriever, SearchRequest, pack};
//!
//! # fn main() -> lfm_retrieval::Result<()> {
//! let counter = Arc::new(EstimateCounter);
//! let dir = std::path::Path::new(".lfm-agent/index");
//! let mut indexer = Indexer::open(dir, IndexOptions::default(), counter.clone())?;
//! let summary = indexer.update(&["examples/docs".into()], &|_| {})?;
//! println!("{summary}");
//! let retriever = Retriever::open(dir)?;
//! let hits = retriever.search(&SearchRequest::new("vpn keeps disconnecting", 20))?;
//! let packed = pack(&hits, 2000, counter.as_ref());
//! println!("{}", packed.text());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod chunk;
mod error;
pub mod eval;
mod index;
pub mod ingest;
mod pack;
mod search;
mod tokens;

pub use chunk::{Chunk, ChunkConfig};
pub use error::{Error, Result};
pub use index::{IndexOptions, IndexSummary, Indexer, Progress};
pub use ingest::DocKind;
pub use pack::{citation_numbers, pack, Citation, Packed};
pub use search::{
    ChunkRecord, Hit, Retriever, SearchRequest, Snippet, HEADINGS_BOOST, TITLE_BOOST,
};
pub use tokens::{EstimateCounter, TokenCounter};
