//! A byte-level BPE `tokenizer.json` of any vocabulary size, with LFM2's special tokens at
//! their ids.
//!
//! Ids `0..=13` and `64400`/`64401` (when the vocabulary reaches them) are LFM2's fixed tokens
//! (see [`crate::text::special`]); the 256 byte symbols come next, and seeded random merges of
//! existing tokens fill every remaining id. Every string encodes (any byte has a symbol) and
//! every id decodes, which is all a random-weight model needs.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::text::special;

/// GPT-2's byte-to-symbol table used by byte-level BPE.
fn byte_symbols() -> Vec<char> {
    let mut printable: Vec<u32> = ('!' as u32..='~' as u32)
        .chain('¡' as u32..='¬' as u32)
        .chain('®' as u32..='ÿ' as u32)
        .collect();
    let mut table = vec!['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = char::from_u32(c).unwrap_or('?');
    }
    printable.clear();
    table
}

/// The JSON of a byte-level BPE tokenizer with `vocab_size` ids.
pub fn synth_tokenizer_json(vocab_size: usize, seed: u64) -> Result<Value> {
    let fixed: Vec<(u32, &str, bool)> = special::ALL
        .iter()
        .copied()
        .filter(|(id, _, _)| (*id as usize) < vocab_size)
        .collect();
    let free_ids: Vec<u32> = (0..vocab_size as u32)
        .filter(|id| !fixed.iter().any(|f| f.0 == *id))
        .collect();
    if free_ids.len() < 256 {
        return Err(Error::arg(
            "vocab_size",
            format!(
                "{vocab_size} leaves no room for the 256 byte symbols after the special tokens"
            ),
        ));
    }
    let symbols = byte_symbols();
    let mut tokens: Vec<String> = symbols.iter().map(|c| c.to_string()).collect();
    let mut seen: HashSet<String> = tokens.iter().cloned().collect();
    let mut merges: Vec<String> = Vec::new();
    // Merge only printable ASCII and the space symbol, so merged tokens decode to readable
    // (if meaningless) text; letters, digits and space are drawn more often, so tokens look
    // word-like. Index into `tokens` of every mergeable token:
    let mut pool: Vec<usize> = (0x20..0x7f).collect();
    let wordy: Vec<usize> = (0..256)
        .filter(|&b| (b as u8).is_ascii_alphanumeric() || b == b' ' as usize)
        .collect();
    let mut state = seed ^ 0xB1E5_5EED;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let target = free_ids.len();
    let mut attempts = 0usize;
    while tokens.len() < target {
        attempts += 1;
        let pick = |r: u64| -> usize {
            if r.is_multiple_of(3) {
                wordy[(r as usize / 3) % wordy.len()]
            } else {
                pool[(r as usize / 3) % pool.len()]
            }
        };
        let a = pick(next());
        let b = pick(next());
        let merged = format!("{}{}", tokens[a], tokens[b]);
        if merged.chars().count() > 12 || seen.contains(&merged) {
            if attempts > target * 64 {
                return Err(Error::arg(
                    "vocab_size",
                    format!("could not build {vocab_size} distinct tokens"),
                ));
            }
            continue;
        }
        merges.push(format!("{} {}", tokens[a], tokens[b]));
        seen.insert(merged.clone());
        pool.push(tokens.len());
        tokens.push(merged);
    }
    // The fixed tokens are in the model's vocabulary too (as in LFM2's own tokenizer.json);
    // an added token missing from it would be given a fresh id past the end on load.
    let mut vocab = Map::new();
    for (id, text, _) in &fixed {
        vocab.insert(text.to_string(), json!(id));
    }
    for (tok, id) in tokens.iter().zip(&free_ids) {
        vocab.insert(tok.clone(), json!(id));
    }
    let added: Vec<Value> = fixed
        .iter()
        .map(|(id, text, special)| {
            json!({"id": id, "content": text, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": special})
        })
        .collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    }))
}
