//! `lfm-retrieval` will own document ingest, chunking, the `tantivy` BM25 index, search with
//! score explanations, and packing chunks under a token budget with citations. It takes a
//! token-counting function rather than depending on the engine.
