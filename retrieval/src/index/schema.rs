//! The tantivy schema: one document per chunk.

use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, INDEXED, STORED, STRING,
};

/// Bumped whenever the schema or the chunk layout changes; an index of another version is
/// refused with a message to rebuild it.
pub(crate) const SCHEMA_VERSION: u32 = 2;

/// The analyzer of the text fields: split on non-alphanumerics, drop tokens over 40 bytes,
/// lowercase, drop Lucene's 33 English stop words, Snowball English stemmer. Registered on
/// every opened index by [`register_analyzer`] (tantivy does not store analyzers).
pub(crate) const ANALYZER: &str = "lfm_en";

pub(crate) fn register_analyzer(index: &tantivy::Index) {
    use tantivy::tokenizer::{
        Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter,
        TextAnalyzer,
    };
    let stop = StopWordFilter::new(Language::English)
        .unwrap_or_else(|| StopWordFilter::remove(Vec::<String>::new()));
    let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(stop)
        .filter(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register(ANALYZER, analyzer);
}

/// Fields of a chunk document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// `path#ord`, unique.
    pub chunk_id: Field,
    /// The file's display path (raw term: filters, deletes).
    pub path: Field,
    /// The [`crate::DocKind`] short name (raw term).
    pub kind: Field,
    /// Document title (analyzed, boosted).
    pub title: Field,
    /// Heading trail, one title per line (analyzed, boosted).
    pub headings: Field,
    /// The chunk text (analyzed with positions: phrase queries, snippets).
    pub body: Field,
    pub ord: Field,
    pub line_start: Field,
    pub line_end: Field,
    pub tokens: Field,
}

pub(crate) fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |positions: bool| {
        let opt = if positions {
            IndexRecordOption::WithFreqsAndPositions
        } else {
            IndexRecordOption::WithFreqs
        };
        TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(ANALYZER)
                    .set_index_option(opt),
            )
            .set_stored()
    };
    let fields = Fields {
        chunk_id: b.add_text_field("chunk_id", STRING | STORED),
        path: b.add_text_field("path", STRING | STORED),
        kind: b.add_text_field("kind", STRING | STORED),
        title: b.add_text_field("title", text(true)),
        headings: b.add_text_field("headings", text(true)),
        body: b.add_text_field("body", text(true)),
        ord: b.add_u64_field("ord", STORED),
        line_start: b.add_u64_field("line_start", STORED | INDEXED),
        line_end: b.add_u64_field("line_end", STORED | INDEXED),
        tokens: b.add_u64_field("tokens", STORED),
    };
    (b.build(), fields)
}

/// The fields of an opened index, checked against ours.
pub(crate) fn fields_of(schema: &Schema) -> Option<Fields> {
    let (ours, fields) = build();
    (ours == *schema).then_some(fields)
}
