//! The model's tokenizer (`tokenizer.json`, via the `tokenizers` crate) and LFM2's fixed
//! special token ids.
//!
//! The real LFM2 tokenizer does not mark the tool-call tokens as special, and `<think>` tags
//! may arrive as plain text, so nothing here relies on "skip special tokens" to find or hide
//! them: callers compare ids or text explicitly.

use std::path::Path;

use crate::error::{Error, Result};

/// LFM2's special token ids.
pub mod special {
    /// `<|pad|>`
    pub const PAD: u32 = 0;
    /// `<|startoftext|>`
    pub const BOS: u32 = 1;
    /// `<|endoftext|>`
    pub const EOS: u32 = 2;
    /// `<|im_start|>`
    pub const IM_START: u32 = 6;
    /// `<|im_end|>`, the end of a chat turn.
    pub const IM_END: u32 = 7;
    /// `<|tool_list_start|>`
    pub const TOOL_LIST_START: u32 = 8;
    /// `<|tool_list_end|>`
    pub const TOOL_LIST_END: u32 = 9;
    /// `<|tool_call_start|>`
    pub const TOOL_CALL_START: u32 = 10;
    /// `<|tool_call_end|>`
    pub const TOOL_CALL_END: u32 = 11;
    /// `<|tool_response_start|>`
    pub const TOOL_RESPONSE_START: u32 = 12;
    /// `<|tool_response_end|>`
    pub const TOOL_RESPONSE_END: u32 = 13;
    /// `<think>`
    pub const THINK: u32 = 64400;
    /// `</think>`
    pub const THINK_END: u32 = 64401;

    /// Every fixed special token, `(id, text, special)`; `special` says whether the real
    /// tokenizer flags it as special (the tool and thinking tokens are not).
    pub const ALL: &[(u32, &str, bool)] = &[
        (PAD, "<|pad|>", true),
        (BOS, "<|startoftext|>", true),
        (EOS, "<|endoftext|>", true),
        (3, "<|fim_pre|>", true),
        (4, "<|fim_mid|>", true),
        (5, "<|fim_suf|>", true),
        (IM_START, "<|im_start|>", true),
        (IM_END, "<|im_end|>", true),
        (TOOL_LIST_START, "<|tool_list_start|>", false),
        (TOOL_LIST_END, "<|tool_list_end|>", false),
        (TOOL_CALL_START, "<|tool_call_start|>", false),
        (TOOL_CALL_END, "<|tool_call_end|>", false),
        (TOOL_RESPONSE_START, "<|tool_response_start|>", false),
        (TOOL_RESPONSE_END, "<|tool_response_end|>", false),
        (THINK, "<think>", false),
        (THINK_END, "</think>", false),
    ];
}

/// A loaded tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .finish()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
    }

    /// Loads a tokenizer from the bytes of a `tokenizer.json`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Tokenizer { inner })
    }

    /// Token ids of `text`. Special-token text in `text` (e.g. `<|im_start|>`) maps to its id;
    /// no BOS is added (chat templates write it themselves).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(format!("encoding failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens included verbatim.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| Error::Tokenizer(format!("decoding failed: {e}")))
    }

    /// Id of a token's exact text, if it is in the vocabulary.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id(text)
    }

    /// Text of one token id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The underlying `tokenizers` tokenizer.
    pub(crate) fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
