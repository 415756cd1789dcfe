use super::*;
use crate::ingest::{parse, DocKind};
use crate::tokens::EstimateCounter;

fn md(src: &str, max: usize, overlap: usize) -> Vec<Chunk> {
    let doc = parse(Some(DocKind::Markdown), src.as_bytes()).unwrap().1;
    chunk(
        &doc,
        &ChunkConfig {
            max_tokens: max,
            overlap_tokens: overlap,
        },
        &EstimateCounter,
    )
}

#[test]
fn each_section_is_a_chunk_with_its_trail() {
    let chunks = md(
        "# Guide\n\n## VPN\n\nConnect first.\n\n### Errors\n\nRestart it.\n\n## Mail\n\nUse IMAP.\n",
        400,
        40,
    );
    let view: Vec<(Vec<&str>, &str, u32, u32)> = chunks
        .iter()
        .map(|c| {
            (
                c.trail.iter().map(String::as_str).collect(),
                c.text.as_str(),
                c.line_start,
                c.line_end,
            )
        })
        .collect();
    assert_eq!(
        view,
        vec![
            (
                vec!["Guide", "VPN"],
                "# Guide\n\n## VPN\n\nConnect first.",
                1,
                5
            ),
            (
                vec!["Guide", "VPN", "Errors"],
                "### Errors\n\nRestart it.",
                7,
                9
            ),
            (vec!["Guide", "Mail"], "## Mail\n\nUse IMAP.", 11, 13),
        ]
    );
    assert_eq!(chunks.iter().map(|c| c.ord).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn long_sections_are_cut_between_paragraphs_with_overlap() {
    // Ten paragraphs of 10 estimated tokens each under one heading; 32-token chunks with a
    // 12-token overlap: each chunk carries the previous chunk's last paragraph.
    let mut src = String::from("# T\n\n");
    for i in 0..10 {
        src.push_str(&format!("p{i} aa bb cc dd ee ff gg hh\n\n"));
    }
    let chunks = md(&src, 32, 12);
    assert!(chunks.len() >= 4, "{chunks:#?}");
    for c in &chunks {
        assert!(c.tokens <= 32, "{c:?}");
        assert_eq!(c.trail, ["T"]);
    }
    for w in chunks.windows(2) {
        let last_para = w[0].text.rsplit("\n\n").next().unwrap();
        assert!(
            w[1].text.starts_with(last_para),
            "{:?} -> {:?}",
            w[0].text,
            w[1].text
        );
        assert!(w[1].line_start <= w[0].line_end);
    }
    // Every paragraph is in some chunk.
    for i in 0..10 {
        assert!(chunks.iter().any(|c| c.text.contains(&format!("p{i} "))));
    }
}

#[test]
fn oversized_code_block_and_line_are_split_within_budget() {
    let mut src = String::from("```\n");
    for i in 0..50 {
        src.push_str(&format!("line {i} of code here\n"));
    }
    src.push_str("```\n\n");
    src.push_str(&"word ".repeat(200));
    let chunks = md(&src, 40, 0);
    for c in &chunks {
        assert!(c.tokens <= 40, "{c:?}");
        assert!(EstimateCounter.count(&c.text) <= 40 + 4, "{c:?}");
    }
    assert!(chunks.iter().any(|c| c.text.contains("line 49 of")));
    let words: usize = chunks.iter().map(|c| c.text.matches("word").count()).sum();
    assert_eq!(words, 200);
    // The code lines keep their own line numbers: line 11 of the file is "line 9 of code".
    let c = chunks
        .iter()
        .find(|c| c.text.contains("line 9 of code"))
        .unwrap();
    assert!(c.line_start <= 11 && 11 <= c.line_end, "{c:?}");
}

#[test]
fn a_huge_single_line_is_cut_in_linear_time_without_losing_text() {
    // 2 MB on one line (minified JSON, say), with multibyte whitespace in it.
    let line = "abc\u{3000}defgh ".repeat(200_000);
    let doc = parse(Some(DocKind::Text), line.as_bytes()).unwrap().1;
    let t = std::time::Instant::now();
    let chunks = chunk(&doc, &ChunkConfig::default(), &EstimateCounter);
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(joined.matches("defgh").count(), 200_000);
    assert!(chunks.iter().all(|c| c.tokens <= 400));
}

#[test]
fn a_run_of_headings_is_cut_at_the_budget() {
    let mut src = String::new();
    for i in 0..100 {
        src.push_str(&format!("## Heading number {i} here\n"));
    }
    src.push_str("\nbody text\n");
    let chunks = md(&src, 64, 0);
    assert!(chunks.len() > 5, "{chunks:#?}");
    assert!(chunks.iter().all(|c| c.tokens <= 64), "{chunks:#?}");
    assert!(chunks
        .iter()
        .any(|c| c.text.contains("Heading number 0 here")));
    assert!(chunks.last().unwrap().text.contains("body text"));
}

#[test]
fn logs_are_windows_of_lines_with_overlap() {
    let mut src = String::new();
    for i in 1..=100 {
        src.push_str(&format!(
            "2026-12-01T10:00:{:02} INFO worker {i} ok\n",
            i % 60
        ));
    }
    let doc = parse(Some(DocKind::Log), src.as_bytes()).unwrap().1;
    let cfg = ChunkConfig {
        max_tokens: 64,
        overlap_tokens: 20,
    };
    let chunks = chunk(&doc, &cfg, &EstimateCounter);
    assert!(chunks.len() > 5);
    assert_eq!(chunks[0].line_start, 1);
    assert_eq!(chunks.last().unwrap().line_end, 100);
    for w in chunks.windows(2) {
        assert!(w[1].line_start <= w[0].line_end, "windows overlap");
        assert!(w[1].line_start > w[0].line_start, "windows advance");
        // Lines are joined by single newlines and the text matches the span.
        let n = w[0].text.lines().count() as u32;
        assert_eq!(n, w[0].line_end - w[0].line_start + 1);
    }
}

#[test]
fn csv_chunks_repeat_the_header() {
    let mut src = String::from("host,owner,rack\n");
    for i in 0..60 {
        src.push_str(&format!("web-{i:02},sre,r{i}\n"));
    }
    let doc = parse(Some(DocKind::Csv), src.as_bytes()).unwrap().1;
    let cfg = ChunkConfig {
        max_tokens: 48,
        overlap_tokens: 0,
    };
    let chunks = chunk(&doc, &cfg, &EstimateCounter);
    assert!(chunks.len() > 2);
    for c in &chunks {
        assert!(c.text.starts_with("host,owner,rack\n"), "{c:?}");
    }
    assert_eq!(chunks[0].line_start, 2);
}

#[test]
fn config_is_checked() {
    assert!(ChunkConfig {
        max_tokens: 8,
        overlap_tokens: 0
    }
    .validate()
    .is_err());
    assert!(ChunkConfig {
        max_tokens: 100,
        overlap_tokens: 60
    }
    .validate()
    .is_err());
    assert!(ChunkConfig::default().validate().is_ok());
}
