//! A `tokenizers` tokenizer rebuilt from a GGUF file's `tokenizer.ggml.*` keys, for files
//! that come without a `tokenizer.json` beside them.
//!
//! llama.cpp stores a byte-level BPE vocabulary (`tokenizer.ggml.model = "gpt2"`) as the token
//! strings, their types and the merges, and names the pre-tokenizer (`tokenizer.ggml.pre`).
//! The rebuilt tokenizer follows llama.cpp's reading of those keys: control tokens (type 3)
//! become special added tokens, user-defined tokens (type 4, such as LFM2's tool-call markers)
//! plain added tokens, and the `lfm2` pre-tokenizer is the Llama-3 split with merges ignored
//! for whole-word matches, as llama.cpp's `LLAMA_VOCAB_PRE_TYPE_LLAMA3` does.

use serde_json::{json, Map};

use super::{GgufFile, Value};
use crate::error::{Error, Result};
use crate::text::Tokenizer;

/// ggml token types.
const CONTROL: u64 = 3;
const USER_DEFINED: u64 = 4;

/// The Llama-3 pre-tokenizer split (LFM2's), as in its `tokenizer.json`.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Pre-tokenizer names that mean the Llama-3 split (with merges ignored on whole words).
const LLAMA3_FAMILY: &[&str] = &[
    "lfm2",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "pixtral",
];
/// Names that mean GPT-2's byte-level split.
const GPT2_FAMILY: &[&str] = &["default", "gpt2", "gpt-2"];

fn strings<'a>(g: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    g.need(key)?
        .as_array()
        .ok_or_else(|| g.bad_key(key, "expected an array of strings"))?
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| g.bad_key(key, "expected an array of strings"))
        })
        .collect()
}

/// The tokenizer described by `g`'s `tokenizer.ggml.*` keys.
pub fn tokenizer_from_gguf(g: &GgufFile) -> Result<Tokenizer> {
    let model = g.need_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(g.bad_key(
            "tokenizer.ggml.model",
            format!("`{model}` tokenizers are not supported (LFM2 uses byte-level BPE, \"gpt2\"); put a tokenizer.json beside the file"),
        ));
    }
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let merges = match g.get("tokenizer.ggml.merges") {
        Some(_) => strings(g, "tokenizer.ggml.merges")?,
        None => Vec::new(),
    };
    let types: Vec<u64> = match g.get("tokenizer.ggml.token_type") {
        Some(Value::Array(a)) => a.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        Some(_) => return Err(g.bad_key("tokenizer.ggml.token_type", "expected an array")),
        None => vec![1; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(g.bad_key(
            "tokenizer.ggml.token_type",
            format!("has {} entries for {} tokens", types.len(), tokens.len()),
        ));
    }
    let pre = g
        .get("tokenizer.ggml.pre")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let (pre_tokenizer, ignore_merges) = if LLAMA3_FAMILY.contains(&pre) {
        (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
            ]}),
            true,
        )
    } else if GPT2_FAMILY.contains(&pre) {
        (
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}),
            false,
        )
    } else {
        return Err(g.bad_key(
            "tokenizer.ggml.pre",
            format!("pre-tokenizer `{pre}` is not supported (known: lfm2, llama3, gpt2); put a tokenizer.json beside the file"),
        ));
    };
    let mut vocab = Map::new();
    let mut added = Vec::new();
    for (id, (tok, &ty)) in tokens.iter().zip(&types).enumerate() {
        if vocab.contains_key(*tok) {
            tracing::warn!(token = %tok, id, "duplicate token string in tokenizer.ggml.tokens; the first id wins");
            continue;
        }
        vocab.insert(tok.to_string(), json!(id));
        if ty == CONTROL || ty == USER_DEFINED {
            added.push(
                json!({"id": id, "content": tok, "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": ty == CONTROL}),
            );
        }
    }
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges,
        },
    });
    let bytes = serde_json::to_vec(&json).map_err(|e| Error::Tokenizer(e.to_string()))?;
    Tokenizer::from_bytes(&bytes).map_err(|e| {
        Error::Tokenizer(format!(
            "{}: building the tokenizer from tokenizer.ggml.*: {e}",
            g.path().display()
        ))
    })
}
