//! Searching the index: BM25 over the body, heading trail and title (each field weighted),
//! natural text as a bag of words, the query parser's syntax (phrases, `+must`, `-not`,
//! `field:term`) when the text uses it, with a fallback to plain terms for any it rejects, filters by path glob and file type, highlighted snippets and,
//! on request, tantivy's explanation of each score.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, TermQuery, TermSetQuery,
};
use tantivy::schema::{IndexRecordOption, Term, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TokenStream;
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, Searcher, TantivyDocument};

use crate::index::schema::{self, Fields};
use crate::index::{FileEntry, Manifest};
use crate::ingest::DocKind;
use crate::{Error, Result};

/// Boost of a match in the heading trail, against 1 for the body. Below 1 because the body
/// already holds the chunk's own heading line: the trail adds the enclosing sections' words.
pub const HEADINGS_BOOST: f32 = 0.5;
/// Boost of a match in the document title (repeated on every chunk of the file).
pub const TITLE_BOOST: f32 = 0.5;

/// One search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Any text: query syntax where it parses, plain terms where it does not.
    pub query: String,
    /// Most hits (default 5).
    pub k: usize,
    /// Only files whose display path matches one of these globs (`**/*.md`, `docs/net/*`).
    pub path_globs: Vec<String>,
    /// Only these file types.
    pub kinds: Vec<DocKind>,
    /// Compute highlighted snippets.
    pub snippets: bool,
    /// Attach tantivy's score explanation to each hit.
    pub explain: bool,
}

impl SearchRequest {
    /// A request for the top `k` hits of `query`, with snippets.
    pub fn new(query: impl Into<String>, k: usize) -> Self {
        SearchRequest {
            query: query.into(),
            k,
            path_globs: Vec::new(),
            kinds: Vec::new(),
            snippets: true,
            explain: false,
        }
    }
}

/// An indexed chunk, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkRecord {
    /// `path#ord`.
    pub chunk_id: String,
    /// The file's display path.
    pub path: String,
    /// The file type.
    pub kind: DocKind,
    /// The document's title.
    pub title: String,
    /// Enclosing section titles, outermost first.
    pub trail: Vec<String>,
    /// The chunk's text.
    pub text: String,
    /// Position in the file.
    pub ord: u32,
    /// First source line (1-based).
    pub line_start: u32,
    /// Last source line (inclusive).
    pub line_end: u32,
    /// Tokens as counted at indexing.
    pub tokens: u32,
}

impl ChunkRecord {
    /// `path#L10-L42`, the form citations use.
    pub fn location(&self) -> String {
        format!("{}#L{}-L{}", self.path, self.line_start, self.line_end)
    }
}

/// A highlighted excerpt of a hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snippet {
    /// The excerpt.
    pub text: String,
    /// Byte ranges of `text` that matched the query.
    pub highlights: Vec<(usize, usize)>,
}

impl Snippet {
    /// The excerpt with each match wrapped in `open`/`close`.
    pub fn marked(&self, open: &str, close: &str) -> String {
        let mut out = String::new();
        let mut at = 0;
        for &(s, e) in &self.highlights {
            if s < at || e > self.text.len() {
                continue;
            }
            out.push_str(&self.text[at..s]);
            out.push_str(open);
            out.push_str(&self.text[s..e]);
            out.push_str(close);
            at = e;
        }
        out.push_str(&self.text[at..]);
        out
    }
}

/// One result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// BM25 score (with boosts).
    pub score: f32,
    /// The chunk.
    pub chunk: ChunkRecord,
    /// The excerpt, when asked for.
    pub snippet: Option<Snippet>,
    /// tantivy's explanation of the score (JSON), when asked for.
    pub explanation: Option<String>,
}

/// Searches an index. Opened once and shared (`Send + Sync`; searches run concurrently).
pub struct Retriever {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    parser: QueryParser,
}

impl std::fmt::Debug for Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retriever").field("dir", &self.dir).finish()
    }
}

impl Retriever {
    /// Opens the index in `dir`, written by [`crate::Indexer`].
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.join("meta.json").exists() {
            return Err(Error::BadIndex {
                path: dir.to_path_buf(),
                why: "no index here; build one with `lfm-agent index DIR... --index PATH`".into(),
            });
        }
        let index = Index::open_in_dir(dir).map_err(|e| Error::tantivy(dir, e))?;
        schema::register_analyzer(&index);
        let fields = schema::fields_of(&index.schema()).ok_or_else(|| Error::BadIndex {
            path: dir.to_path_buf(),
            why: "index written by another version (schema differs); rebuild it".into(),
        })?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(|e| Error::tantivy(dir, e))?;
        let mut parser =
            QueryParser::for_index(&index, vec![fields.body, fields.headings, fields.title]);
        parser.set_field_boost(fields.headings, HEADINGS_BOOST);
        parser.set_field_boost(fields.title, TITLE_BOOST);
        Ok(Retriever {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            parser,
        })
    }

    /// Sees the latest commit now, instead of within a second or so.
    pub fn reload(&self) -> Result<()> {
        self.reader
            .reload()
            .map_err(|e| Error::tantivy(&self.dir, e))
    }

    /// Chunks in the index.
    pub fn num_chunks(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The files the index was built from (display path -> absolute path), from the manifest.
    pub fn files(&self) -> Result<Vec<(String, PathBuf)>> {
        let manifest = Manifest::load(&self.dir)?;
        Ok(manifest
            .map(|m| {
                m.files
                    .into_iter()
                    .map(|(p, FileEntry { abs, .. })| (p, abs))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Runs a search.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Hit>> {
        let searcher = self.reader.searcher();
        let Some(query) = self.build_query(&searcher, req)? else {
            return Ok(Vec::new());
        };
        if req.k == 0 {
            return Ok(Vec::new());
        }
        // Never ask tantivy for more slots than there are chunks (it preallocates them).
        let k = req.k.min(searcher.num_docs().max(1) as usize);
        let top = searcher
            .search(&query, &TopDocs::with_limit(k).order_by_score())
            .map_err(|e| Error::tantivy(&self.dir, e))?;
        let snippets = if req.snippets {
            let mut g = SnippetGenerator::create(&searcher, &*query, self.fields.body)
                .map_err(|e| Error::tantivy(&self.dir, e))?;
            g.set_max_num_chars(240);
            Some(g)
        } else {
            None
        };
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher
                .doc(addr)
                .map_err(|e| Error::tantivy(&self.dir, e))?;
            let chunk = self.record(&doc)?;
            let snippet = snippets.as_ref().map(|g| {
                let s = g.snippet_from_doc(&doc);
                let mut text = s.fragment().to_string();
                let mut highlights: Vec<(usize, usize)> =
                    s.highlighted().iter().map(|r| (r.start, r.end)).collect();
                if text.is_empty() {
                    // No body term matched (a title or heading hit): show the chunk's start.
                    text = chunk.text.chars().take(240).collect();
                    highlights.clear();
                }
                Snippet { text, highlights }
            });
            let explanation = if req.explain {
                Some(explain(&*query, &searcher, addr).map_err(|e| Error::tantivy(&self.dir, e))?)
            } else {
                None
            };
            hits.push(Hit {
                score,
                chunk,
                snippet,
                explanation,
            });
        }
        Ok(hits)
    }

    /// The stored chunk with this id (`path#ord`), if any.
    pub fn chunk(&self, chunk_id: &str) -> Result<Option<ChunkRecord>> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.chunk_id, chunk_id),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(&q, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| Error::tantivy(&self.dir, e))?;
        match top.first() {
            Some(&(_, addr)) => {
                let doc: TantivyDocument = searcher
                    .doc(addr)
                    .map_err(|e| Error::tantivy(&self.dir, e))?;
                self.record(&doc).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Every chunk of one file, in order (for `read_doc` and for evaluation dumps).
    pub fn chunks_of(&self, path: &str) -> Result<Vec<ChunkRecord>> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.path, path),
            IndexRecordOption::Basic,
        );
        let n = searcher
            .doc_freq(&Term::from_field_text(self.fields.path, path))
            .map_err(|e| Error::tantivy(&self.dir, e))? as usize;
        if n == 0 {
            return Ok(Vec::new());
        }
        let top = searcher
            .search(&q, &TopDocs::with_limit(n).order_by_score())
            .map_err(|e| Error::tantivy(&self.dir, e))?;
        let mut out = Vec::with_capacity(top.len());
        for (_, addr) in top {
            let doc: TantivyDocument = searcher
                .doc(addr)
                .map_err(|e| Error::tantivy(&self.dir, e))?;
            out.push(self.record(&doc)?);
        }
        out.sort_by_key(|c| c.ord);
        Ok(out)
    }

    /// The analyzer's tokens for `text` (what BM25 sees), for comparisons with other rankers.
    pub fn analyze(&self, text: &str) -> Result<Vec<String>> {
        let mut tok = self
            .index
            .tokenizers()
            .get(schema::ANALYZER)
            .ok_or_else(|| Error::BadIndex {
                path: self.dir.clone(),
                why: format!("analyzer {} missing", schema::ANALYZER),
            })?;
        let mut out = Vec::new();
        let mut stream = tok.token_stream(text);
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        Ok(out)
    }

    fn build_query(
        &self,
        searcher: &Searcher,
        req: &SearchRequest,
    ) -> Result<Option<Box<dyn Query>>> {
        let text = req.query.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let parsed = if uses_syntax(text) {
            self.parser.parse_query(text).map_err(|e| {
                tracing::debug!(query = text, error = %e, "query syntax rejected; using plain terms");
            })
        } else {
            Err(())
        };
        let main: Box<dyn Query> = match parsed {
            Ok(q) => q,
            Err(()) => {
                let terms = self.common_terms_dropped(searcher, self.analyze(text)?)?;
                if terms.is_empty() {
                    return Ok(None);
                }
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                for t in &terms {
                    for (field, boost) in [
                        (self.fields.body, 1.0),
                        (self.fields.headings, HEADINGS_BOOST),
                        (self.fields.title, TITLE_BOOST),
                    ] {
                        let q = TermQuery::new(
                            Term::from_field_text(field, t),
                            IndexRecordOption::WithFreqs,
                        );
                        clauses.push((
                            Occur::Should,
                            Box::new(tantivy::query::BoostQuery::new(Box::new(q), boost)),
                        ));
                    }
                }
                Box::new(BooleanQuery::new(clauses))
            }
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, main)];
        if !req.kinds.is_empty() {
            let terms = req
                .kinds
                .iter()
                .map(|k| Term::from_field_text(self.fields.kind, k.name()));
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(TermSetQuery::new(terms)),
                    0.0,
                )),
            ));
        }
        if !req.path_globs.is_empty() {
            let paths = self.paths_matching(searcher, &req.path_globs)?;
            if paths.is_empty() {
                let example = self.paths_matching(searcher, &["**".to_string()])?;
                return Err(Error::BadGlob {
                    glob: req.path_globs.join(" "),
                    why: match example.first() {
                        Some(p) => format!(
                            "matches none of the {} indexed files (paths look like `{p}`)",
                            example.len()
                        ),
                        None => "the index holds no files".to_string(),
                    },
                });
            }
            let terms = paths
                .iter()
                .map(|p| Term::from_field_text(self.fields.path, p));
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(TermSetQuery::new(terms)),
                    0.0,
                )),
            ));
        }
        if clauses.len() == 1 {
            return Ok(clauses.pop().map(|(_, q)| q));
        }
        Ok(Some(Box::new(BooleanQuery::new(clauses))))
    }

    /// Drops the query terms found in more than half of the chunks, unless every term is:
    /// their BM25 weight is below ln 2 (against ln(N/df) for the rare terms that decide the
    /// ranking), but each costs a pass over most of the index, and no top-k pruning can skip
    /// them (the common-terms cutoff of Lucene and Elasticsearch).
    fn common_terms_dropped(&self, searcher: &Searcher, terms: Vec<String>) -> Result<Vec<String>> {
        let n = searcher.num_docs();
        let mut kept = Vec::with_capacity(terms.len());
        let mut kept_found = false;
        for t in &terms {
            let df = searcher
                .doc_freq(&Term::from_field_text(self.fields.body, t))
                .map_err(|e| Error::tantivy(&self.dir, e))?;
            if df.saturating_mul(2) <= n {
                kept_found |= df > 0;
                kept.push(t.clone());
            }
        }
        // Only when some kept term occurs at all: a typo must not leave a query that matches
        // nothing in place of the real (common) words.
        Ok(if kept_found { kept } else { terms })
    }

    /// Display paths in the index matching any of the globs (read from the term dictionary of
    /// the path field, so always what this searcher sees).
    fn paths_matching(&self, searcher: &Searcher, globs: &[String]) -> Result<Vec<String>> {
        let mut b = globset::GlobSetBuilder::new();
        for g in globs {
            let glob = globset::GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::BadGlob {
                    glob: g.clone(),
                    why: e.kind().to_string(),
                })?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| Error::BadGlob {
            glob: globs.join(" "),
            why: e.to_string(),
        })?;
        let mut out = Vec::new();
        for seg in searcher.segment_readers() {
            let inv = seg
                .inverted_index(self.fields.path)
                .map_err(|e| Error::tantivy(&self.dir, e))?;
            let mut terms = inv
                .terms()
                .stream()
                .map_err(|e| Error::tantivy(&self.dir, e.into()))?;
            while terms.advance() {
                if let Ok(p) = std::str::from_utf8(terms.key()) {
                    if set.is_match(p) {
                        out.push(p.to_string());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn record(&self, doc: &TantivyDocument) -> Result<ChunkRecord> {
        let f = &self.fields;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let num = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        let kind_name = text(f.kind);
        let kind = DocKind::from_name(&kind_name).ok_or_else(|| Error::BadIndex {
            path: self.dir.clone(),
            why: format!("chunk of unknown type `{kind_name}`"),
        })?;
        let headings = text(f.headings);
        let trail = if headings.is_empty() {
            Vec::new()
        } else {
            headings.split('\n').map(str::to_string).collect()
        };
        Ok(ChunkRecord {
            chunk_id: text(f.chunk_id),
            path: text(f.path),
            kind,
            title: text(f.title),
            trail,
            text: text(f.body),
            ord: num(f.ord),
            line_start: num(f.line_start),
            line_end: num(f.line_end),
            tokens: num(f.tokens),
        })
    }
}

/// Whether the text asks for query syntax: a quoted phrase or a `field:` prefix (then
/// `+must` and `-not` work too). Anything else (questions, ticket text, log lines, pasted
/// commands) is a bag of words: the parser would turn `pg-main-01` into a phrase, `- what` or
/// `kubectl get pods -n x` into an exclusion and `AND` into an operator.
fn uses_syntax(text: &str) -> bool {
    if text.contains('"') {
        return true;
    }
    text.split_whitespace().any(|w| {
        ["body:", "headings:", "title:"]
            .iter()
            .any(|f| w.starts_with(f) && w.len() > f.len())
    })
}

fn explain(query: &dyn Query, searcher: &Searcher, addr: DocAddress) -> tantivy::Result<String> {
    Ok(query.explain(searcher, addr)?.to_pretty_json())
}
