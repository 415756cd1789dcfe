use super::*;

fn kinds_texts(doc: &ParsedDoc) -> Vec<(BlockKind, &str, u32, u32)> {
    doc.blocks
        .iter()
        .map(|b| (b.kind, b.text.as_str(), b.line_start, b.line_end))
        .collect()
}

#[test]
fn markdown_headings_fences_and_paragraphs_keep_line_spans() {
    let src = "---\ntitle: \"VPN guide\"\n---\n# VPN\n\nIntro line one\nline two\n\nSetext\n------\n\n```sh\n# not a heading\n\nsudo systemctl restart wg\n```\n## Errors ##\n- a\n- b\n";
    let doc = parse(Some(DocKind::Markdown), src.as_bytes()).unwrap().1;
    assert_eq!(doc.title.as_deref(), Some("VPN guide"));
    assert_eq!(
        kinds_texts(&doc),
        vec![
            (BlockKind::Heading(1), "VPN", 4, 4),
            (BlockKind::Para, "Intro line one\nline two", 6, 7),
            (BlockKind::Heading(2), "Setext", 9, 10),
            (
                BlockKind::Code,
                "```sh\n# not a heading\n\nsudo systemctl restart wg\n```",
                12,
                16
            ),
            (BlockKind::Heading(2), "Errors", 17, 17),
            (BlockKind::Para, "- a\n- b", 18, 19),
        ]
    );
}

#[test]
fn markdown_closing_hashes_need_a_space() {
    let doc = parse(Some(DocKind::Markdown), b"## Using C#\n\n### Done ###\n")
        .unwrap()
        .1;
    assert_eq!(doc.blocks[0].text, "Using C#");
    assert_eq!(doc.blocks[1].text, "Done");
}

#[test]
fn csv_with_crlf_and_blank_lines_keeps_exact_spans() {
    let doc = parse(Some(DocKind::Csv), b"h1,h2\r\na,b\r\n\r\nc,d\r\n")
        .unwrap()
        .1;
    assert_eq!(doc.preamble.as_deref(), Some("h1,h2"));
    assert_eq!(
        kinds_texts(&doc),
        vec![
            (BlockKind::Line, "a,b", 2, 2),
            (BlockKind::Line, "c,d", 4, 4)
        ]
    );
}

#[test]
fn html_takes_the_first_title_and_multibyte_after_ampersand_is_text() {
    let src =
        "<title>VPN guide</title><body><svg><title>Copy</title></svg><p>caf&é &amp; 中文&#233;</p>";
    let doc = parse(Some(DocKind::Html), src.as_bytes()).unwrap().1;
    assert_eq!(doc.title.as_deref(), Some("VPN guide"));
    assert!(
        doc.blocks.iter().any(|b| b.text.contains("caf&é & 中文é")),
        "{doc:?}"
    );
}

#[test]
fn markdown_unclosed_fence_runs_to_the_end_and_hash_words_are_not_headings() {
    let src = "#hashtag is text\n\n~~~\ncode\n";
    let doc = parse(Some(DocKind::Markdown), src.as_bytes()).unwrap().1;
    assert_eq!(
        kinds_texts(&doc),
        vec![
            (BlockKind::Para, "#hashtag is text", 1, 1),
            (BlockKind::Code, "~~~\ncode", 3, 4),
        ]
    );
    assert_eq!(doc.title, None);
}

#[test]
fn rst_titles_levels_and_literal_blocks() {
    let src = "=====\nGuide\n=====\n\nIntro::\n\n    $ kubectl get pods\n    $ kubectl logs x\n\nSection\n-------\n\nText here.\n\nOther\n-----\n- item\n";
    let doc = parse(Some(DocKind::Rst), src.as_bytes()).unwrap().1;
    assert_eq!(doc.title.as_deref(), Some("Guide"));
    assert_eq!(
        kinds_texts(&doc),
        vec![
            (BlockKind::Heading(1), "Guide", 1, 3),
            (BlockKind::Para, "Intro::", 5, 5),
            (
                BlockKind::Code,
                "    $ kubectl get pods\n    $ kubectl logs x",
                7,
                8
            ),
            (BlockKind::Heading(2), "Section", 10, 11),
            (BlockKind::Para, "Text here.", 13, 13),
            (BlockKind::Heading(2), "Other", 15, 16),
            (BlockKind::Para, "- item", 17, 17),
        ]
    );
}

#[test]
fn html_blocks_headings_entities_and_dropped_scripts() {
    let src = "<html><head><title>Mail &amp; calendar</title>\n<style>p { color: red }</style></head>\n<body>\n<h1>Mail</h1>\n<p>Use <b>Outlook</b> &lt;web&gt;\n  or IMAP.</p>\n<script>var secret = 'x';</script>\n<ul><li>one</li><li>two &#39;2&#39;</li></ul>\n<pre><code>imap.northwind.internal:993\n  tls</code></pre>\n<!-- a comment\n over lines -->\n<h2>Filters</h2><p>a &lt; b</p></body></html>";
    let doc = parse(Some(DocKind::Html), src.as_bytes()).unwrap().1;
    assert_eq!(doc.title.as_deref(), Some("Mail & calendar"));
    assert_eq!(
        kinds_texts(&doc),
        vec![
            (BlockKind::Heading(1), "Mail", 4, 4),
            (BlockKind::Para, "Use Outlook <web> or IMAP.", 5, 6),
            (BlockKind::Para, "- one", 8, 8),
            (BlockKind::Para, "- two '2'", 8, 8),
            (BlockKind::Code, "imap.northwind.internal:993\n  tls", 9, 10),
            (BlockKind::Heading(2), "Filters", 13, 13),
            (BlockKind::Para, "a < b", 13, 13),
        ]
    );
}

#[test]
fn csv_header_becomes_preamble_and_quoted_fields_span_lines() {
    let src = "host,owner,notes\nweb-01,sre,\"two\nlines\"\ndb-01,dba,plain\n";
    let doc = parse(Some(DocKind::Csv), src.as_bytes()).unwrap().1;
    assert_eq!(doc.preamble.as_deref(), Some("host,owner,notes"));
    assert_eq!(
        kinds_texts(&doc),
        vec![
            (BlockKind::Line, "web-01,sre,\"two\nlines\"", 2, 3),
            (BlockKind::Line, "db-01,dba,plain", 4, 4),
        ]
    );
    let tsv = parse(Some(DocKind::Csv), b"a\tb\n1\t2\n").unwrap().1;
    assert_eq!(tsv.preamble.as_deref(), Some("a\tb"));
}

#[test]
fn json_one_line_array_splits_into_elements_and_bad_json_is_text() {
    let doc = parse(Some(DocKind::Json), br#"[{"a":1},{"b":"x"}]"#)
        .unwrap()
        .1;
    assert_eq!(doc.blocks.len(), 2);
    assert_eq!(doc.blocks[1].text, r#"{"b":"x"}"#);
    let pretty = parse(Some(DocKind::Json), b"{\n  \"a\": 1\n}\n").unwrap().1;
    assert_eq!(pretty.blocks.len(), 3);
    assert_eq!(pretty.blocks[1].line_start, 2);
    let bad = parse(Some(DocKind::Json), b"{not json\n\nsecond")
        .unwrap()
        .1;
    assert_eq!(bad.blocks.len(), 2);
}

#[test]
fn binary_is_skipped_and_invalid_utf8_is_read_lossily() {
    assert_eq!(
        parse(Some(DocKind::Text), b"abc\0def"),
        Err(SkipReason::Binary)
    );
    let (kind, doc) = parse(None, b"caf\xe9 au lait\r\nnext").unwrap();
    assert_eq!(kind, DocKind::Text);
    assert_eq!(doc.blocks[0].text, "caf\u{fffd} au lait\nnext");
}

#[test]
fn garbage_pdf_is_skipped_not_panicking() {
    let r = parse(Some(DocKind::Pdf), b"%PDF-1.4\n garbage");
    assert!(matches!(r, Err(SkipReason::NoText(_))), "{r:?}");
}

#[test]
fn kinds_from_paths() {
    let k = |p: &str| DocKind::from_path(Path::new(p));
    assert_eq!(k("a/b/README.MD"), Some(DocKind::Markdown));
    assert_eq!(k("app.log.3"), Some(DocKind::Log));
    assert_eq!(k("x.ndjson"), Some(DocKind::Jsonl));
    assert_eq!(k("inventory.tsv"), Some(DocKind::Csv));
    assert_eq!(k("Makefile"), None);
    assert_eq!(k("data.bin"), None);
    for kind in DocKind::ALL {
        assert_eq!(DocKind::from_name(kind.name()), Some(kind));
    }
}
