//! PDF text layers through `pdf-extract`, page by page. Line numbers refer to the extracted
//! text (pages joined in order), since a PDF has no source lines; each page starts a section
//! headed "Page N" so that chunks never straddle pages and citations can name the page.

use super::{text, Block, BlockKind, ParsedDoc, SkipReason};

pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedDoc, SkipReason> {
    // pdf-extract panics on some malformed files; a bad PDF must not take the indexer down.
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| SkipReason::NoText("the PDF reader failed on this file".to_string()))?
        .map_err(|e| SkipReason::NoText(e.to_string()))?;
    let mut doc = ParsedDoc::default();
    let mut offset = 0u32;
    for (k, page) in pages.iter().enumerate() {
        let parsed = text::paragraphs(page);
        if !parsed.blocks.is_empty() {
            let first = parsed.blocks[0].line_start + offset;
            doc.blocks.push(Block {
                kind: BlockKind::Heading(1),
                text: format!("Page {}", k + 1),
                line_start: first,
                line_end: first,
            });
        }
        for mut b in parsed.blocks {
            b.line_start += offset;
            b.line_end += offset;
            doc.blocks.push(b);
        }
        offset += page.split('\n').count() as u32;
    }
    if doc.blocks.is_empty() {
        return Err(SkipReason::NoText("no extractable text".to_string()));
    }
    Ok(doc)
}
