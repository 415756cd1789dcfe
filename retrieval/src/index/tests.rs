use std::sync::Arc;

use super::*;
use crate::search::{Retriever, SearchRequest};
use crate::tokens::EstimateCounter;

fn write(dir: &Path, rel: &str, text: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn opts() -> IndexOptions {
    IndexOptions {
        writer_threads: 1,
        ..IndexOptions::default()
    }
}

fn update(index: &Path, roots: &[&Path]) -> IndexSummary {
    let roots: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    let mut ix = Indexer::open(index, opts(), Arc::new(EstimateCounter)).unwrap();
    ix.update(&roots, &|_| {}).unwrap()
}

fn docs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    write(&docs, "net/vpn.md", b"# VPN\n\n## Reconnects\n\nIf the tunnel drops every few minutes, lower the MTU to 1380.\n");
    write(
        &docs,
        "disk.txt",
        b"When the disk is full, clear /var/log/journal first.\n",
    );
    write(
        &docs,
        "app.log",
        b"2026-12-01 ERROR payment timeout\n2026-12-01 INFO ok\n",
    );
    write(&docs, "blob.bin", b"\x00\x01\x02binary");
    write(&docs, ".git/config", b"hidden, never indexed");
    let index = tmp.path().join("index");
    (tmp, docs, index)
}

#[test]
fn incremental_updates_skip_unchanged_rechunk_changed_and_remove_deleted() {
    let (_tmp, docs, index) = docs();
    let s = update(&index, &[&docs]);
    assert_eq!(
        (s.files, s.added, s.changed, s.unchanged, s.removed),
        (4, 3, 0, 0, 0)
    );
    assert_eq!(s.skipped.len(), 1, "{:?}", s.skipped);
    assert!(s.skipped[0].0.ends_with("blob.bin") && s.skipped[0].1.contains("binary"));

    let s = update(&index, &[&docs]);
    assert_eq!(
        (s.added, s.changed, s.unchanged, s.removed, s.chunks_written),
        (0, 0, 3, 0, 0)
    );

    write(
        &docs,
        "disk.txt",
        b"Disk full on laptops: empty the Downloads folder.\n",
    );
    std::fs::remove_file(docs.join("app.log")).unwrap();
    let s = update(&index, &[&docs]);
    assert_eq!((s.added, s.changed, s.unchanged, s.removed), (0, 1, 1, 1));

    let r = Retriever::open(&index).unwrap();
    let hits = r.search(&SearchRequest::new("disk full", 5)).unwrap();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert!(hits[0].chunk.text.contains("Downloads"));
    assert!(r
        .search(&SearchRequest::new("payment timeout", 5))
        .unwrap()
        .is_empty());
    assert!(r
        .search(&SearchRequest::new("journal", 5))
        .unwrap()
        .is_empty());
}

#[test]
fn a_changed_chunk_size_rechunks_everything() {
    let (_tmp, docs, index) = docs();
    update(&index, &[&docs]);
    let mut o = opts();
    o.chunking.max_tokens = 200;
    let mut ix = Indexer::open(&index, o, Arc::new(EstimateCounter)).unwrap();
    let s = ix.update(&[docs], &|_| {}).unwrap();
    assert_eq!((s.changed, s.unchanged), (3, 0));
}

#[test]
fn a_file_first_indexed_as_its_own_root_is_removed_once_deleted_from_its_folder() {
    let (_tmp, docs, index) = docs();
    let file = docs.join("disk.txt");
    update(&index, &[&file]);
    update(&index, &[&docs]);
    std::fs::remove_file(&file).unwrap();
    let s = update(&index, &[&docs]);
    assert_eq!(s.removed, 1);
    let r = Retriever::open(&index).unwrap();
    assert!(r
        .search(&SearchRequest::new("journal", 5))
        .unwrap()
        .is_empty());
}

#[test]
fn a_file_chunked_with_other_settings_is_rechunked_even_from_another_root_run() {
    let (tmp, docs, index) = docs();
    let logs = tmp.path().join("logs");
    write(&logs, "a.log", b"2026-12-01 ERROR x\n");
    update(&index, &[&docs]);
    let mut o = opts();
    o.chunking.max_tokens = 200;
    let mut ix = Indexer::open(&index, o.clone(), Arc::new(EstimateCounter)).unwrap();
    ix.update(&[logs], &|_| {}).unwrap();
    drop(ix);
    let mut ix = Indexer::open(&index, o, Arc::new(EstimateCounter)).unwrap();
    let s = ix.update(&[docs], &|_| {}).unwrap();
    assert_eq!((s.changed, s.unchanged), (3, 0));
}

#[test]
fn roots_not_given_are_left_alone() {
    let (tmp, docs, index) = docs();
    let other = tmp.path().join("other");
    write(
        &other,
        "dns.md",
        b"# DNS\n\nResolvers are 10.0.0.53 and 10.0.1.53.\n",
    );
    update(&index, &[&docs, &other]);
    let s = update(&index, &[&docs]);
    assert_eq!(s.removed, 0);
    let r = Retriever::open(&index).unwrap();
    let hits = r.search(&SearchRequest::new("resolvers", 5)).unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].chunk.path.ends_with("other/dns.md"));
}

#[test]
fn refuses_a_non_empty_folder_that_is_not_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "precious.txt", b"user data");
    let err = Indexer::open(tmp.path(), opts(), Arc::new(EstimateCounter))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(tmp.path().join("precious.txt").exists());
}

#[test]
fn missing_root_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ix = Indexer::open(&tmp.path().join("ix"), opts(), Arc::new(EstimateCounter)).unwrap();
    let err = ix
        .update(&[tmp.path().join("nope")], &|_| {})
        .expect_err("error");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn search_filters_phrases_fallback_snippets_and_threads() {
    let (_tmp, docs, index) = docs();
    write(
        &docs,
        "net/dns.md",
        b"# DNS\n\n## Split horizon\n\nThe tunnel resolver answers internal names.\n",
    );
    update(&index, &[&docs]);
    let r = Arc::new(Retriever::open(&index).unwrap());

    // Heading boost: "reconnects" is only a heading word.
    let hits = r.search(&SearchRequest::new("reconnects", 5)).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk.trail, ["VPN", "Reconnects"]);
    assert_eq!(hits[0].chunk.line_start, 1);

    // Stemming: "drops" matches "drop".
    assert_eq!(r.search(&SearchRequest::new("drop", 5)).unwrap().len(), 1);

    // Phrases need the words in order.
    assert_eq!(
        r.search(&SearchRequest::new("\"few minutes\"", 5))
            .unwrap()
            .len(),
        1
    );
    assert!(r
        .search(&SearchRequest::new("\"minutes few\"", 5))
        .unwrap()
        .is_empty());

    // Text the parser rejects still searches.
    for q in [
        "tunnel AND (",
        "nosuchfield:tunnel",
        "\"unclosed tunnel",
        "tunnel^^",
        "[tunnel TO",
    ] {
        let hits = r.search(&SearchRequest::new(q, 5)).unwrap();
        assert!(!hits.is_empty(), "{q}");
    }
    assert!(r.search(&SearchRequest::new("  ", 5)).unwrap().is_empty());
    // Natural text is a bag of words: a spaced dash is no exclusion, a dotted or hyphenated
    // word is no phrase, AND is just a word.
    let hits = r
        .search(&SearchRequest::new("tunnel - mtu AND drops-1380", 5))
        .unwrap();
    assert!(hits[0].chunk.text.contains("MTU"), "{hits:#?}");
    // Explicit syntax (switched on by a quote or a field prefix) is honoured: -mtu excludes
    // the VPN chunk.
    let hits = r
        .search(&SearchRequest::new("body:tunnel -mtu", 5))
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].chunk.path.ends_with("dns.md"));
    assert!(r
        .search(&SearchRequest::new("!!! ???", 5))
        .unwrap()
        .is_empty());

    // A pasted command's flag is no exclusion, a huge k is no allocation, a typo beside a
    // common word still finds the common word.
    assert!(!r
        .search(&SearchRequest::new("ssh -v tunnel", 5))
        .unwrap()
        .is_empty());
    assert_eq!(
        r.search(&SearchRequest::new("tunnel", usize::MAX))
            .unwrap()
            .len(),
        2
    );
    assert!(!r
        .search(&SearchRequest::new("tunnel tunnelz", 5))
        .unwrap()
        .is_empty());

    // Filters.
    let mut req = SearchRequest::new("tunnel", 5);
    req.kinds = vec![DocKind::Markdown];
    assert_eq!(r.search(&req).unwrap().len(), 2);
    req.path_globs = vec!["**/dns.md".into()];
    let hits = r.search(&req).unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].chunk.path.ends_with("net/dns.md"));
    req.kinds = vec![DocKind::Log];
    assert!(r.search(&req).unwrap().is_empty());
    req.kinds.clear();
    req.path_globs = vec!["nothing/**".into()];
    let err = r.search(&req).unwrap_err().to_string();
    assert!(
        err.contains("matches none of the") && err.contains("paths look like"),
        "{err}"
    );
    req.path_globs = vec!["[".into()];
    assert!(r
        .search(&req)
        .unwrap_err()
        .to_string()
        .contains("bad path glob"));

    // Snippets highlight the matched word.
    let hits = r.search(&SearchRequest::new("resolver", 5)).unwrap();
    let s = hits[0].snippet.as_ref().unwrap();
    assert!(
        s.marked("<", ">")
            .ends_with("The tunnel <resolver> answers internal names"),
        "{s:?}"
    );

    // Explanations on request.
    let mut req = SearchRequest::new("tunnel", 1);
    req.explain = true;
    let hits = r.search(&req).unwrap();
    assert!(
        hits[0].explanation.as_deref().unwrap().contains("BM25")
            || hits[0].explanation.as_deref().unwrap().contains("idf")
    );

    // One retriever, many threads.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                r.search(&SearchRequest::new("tunnel mtu", 3))
                    .unwrap()
                    .len()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 2);
    }

    // Lookup by id and by file.
    let c = r.chunk(&hits[0].chunk.chunk_id).unwrap().unwrap();
    assert_eq!(c, hits[0].chunk);
    assert!(r.chunk("nope#0").unwrap().is_none());
    let path = hits[0].chunk.path.clone();
    assert_eq!(r.chunks_of(&path).unwrap()[0].ord, 0);
}

#[test]
fn retriever_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Retriever>();
}

#[test]
fn retriever_on_a_missing_index_says_how_to_build_one() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Retriever::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("lfm-agent index"), "{err}");
}
