use super::*;
use crate::ingest::DocKind;
use crate::search::ChunkRecord;
use crate::tokens::EstimateCounter;

fn hit(path: &str, ord: u32, lines: (u32, u32), text: &str, score: f32) -> Hit {
    Hit {
        score,
        chunk: ChunkRecord {
            chunk_id: format!("{path}#{ord}"),
            path: path.into(),
            kind: DocKind::Markdown,
            title: "T".into(),
            trail: vec!["T".into()],
            text: text.into(),
            ord,
            line_start: lines.0,
            line_end: lines.1,
            tokens: 0,
        },
        snippet: None,
        explanation: None,
    }
}

#[test]
fn overlapping_and_adjacent_chunks_merge_with_the_overlap_once() {
    let hits = vec![
        hit("a.md", 1, (5, 8), "p2\np3", 3.0),
        hit("b.md", 0, (1, 2), "other", 2.0),
        hit("a.md", 0, (1, 5), "p1\np2", 1.5),
        hit("a.md", 2, (9, 9), "p4", 1.0),
    ];
    let p = pack(&hits, 1000, &EstimateCounter);
    assert_eq!(p.citations.len(), 2);
    let a = &p.citations[0];
    assert_eq!((a.n, a.line_start, a.line_end), (1, 1, 9));
    assert_eq!(a.text, "p1\np2\np3\n\np4");
    assert_eq!(a.chunk_ids, ["a.md#0", "a.md#1", "a.md#2"]);
    assert_eq!(a.location(), "a.md#L1-L9");
    assert_eq!(p.citations[1].render(), "[2] b.md#L1-L2 (T)\nother");
    assert!(p.text().starts_with("[1] a.md#L1-L9 (T)\np1"));
    assert_eq!(
        p.tokens,
        EstimateCounter.count(&p.citations[0].render())
            + 1
            + EstimateCounter.count(&p.citations[1].render())
    );
}

#[test]
fn a_hit_that_bridges_two_passages_joins_them_into_one() {
    let hits = vec![
        hit("a.md", 0, (1, 10), "one", 3.0),
        hit("b.md", 0, (1, 2), "other", 2.5),
        hit("a.md", 2, (21, 30), "three", 2.0),
        hit("a.md", 1, (11, 20), "two", 1.0),
    ];
    let p = pack(&hits, 1000, &EstimateCounter);
    assert_eq!(p.citations.len(), 2, "{p:#?}");
    let a = &p.citations[0];
    assert_eq!((a.n, a.line_start, a.line_end), (1, 1, 30));
    assert_eq!(a.text, "one\n\ntwo\n\nthree");
    assert_eq!(a.chunk_ids, ["a.md#0", "a.md#1", "a.md#2"]);
    assert_eq!(p.citations[1].n, 2);
    assert_eq!(p.citations[1].path, "b.md");
    let total: usize = p.citations.iter().map(|c| c.tokens).sum::<usize>() + 1;
    assert_eq!(p.tokens, total);
}

#[test]
fn budget_is_kept_and_smaller_hits_still_fit() {
    let big = "word ".repeat(100);
    let hits = vec![
        hit("a.md", 0, (1, 3), "short one", 3.0),
        hit("b.md", 0, (1, 30), &big, 2.0),
        hit("c.md", 0, (1, 2), "short two", 1.0),
    ];
    let p = pack(&hits, 40, &EstimateCounter);
    assert!(p.tokens <= 40);
    assert_eq!(p.dropped, 1);
    let paths: Vec<&str> = p.citations.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["a.md", "c.md"]);
    assert_eq!(p.citations[1].n, 2);
    assert_eq!(pack(&hits, 0, &EstimateCounter).citations.len(), 0);
}

#[test]
fn citations_resolve_verify_and_are_checked() {
    let hits = vec![hit(
        "a.md",
        0,
        (1, 3),
        "Lower the MTU to 1380 on the tunnel.",
        1.0,
    )];
    let p = pack(&hits, 1000, &EstimateCounter);
    assert_eq!(p.resolve(1).unwrap().path, "a.md");
    assert!(p.resolve(0).is_none() && p.resolve(2).is_none());
    assert!(p.verify_quote(1, "MTU  to\n1380"));
    assert!(!p.verify_quote(1, "MTU to 1400"));
    assert!(!p.verify_quote(1, "  "));
    assert_eq!(
        citation_numbers("see [1], [2, 3] and [x] or [4][0]"),
        [1, 2, 3, 4]
    );
    assert_eq!(p.check_citations("per [1] and [7]"), (vec![1], vec![7]));
}
