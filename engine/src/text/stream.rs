//! Incremental detokenisation that never splits a UTF-8 character.
//!
//! Byte-level BPE tokens can end inside a multi-byte character, so decoding token by token
//! would emit U+FFFD halves. A [`TextStream`] decodes the pending tokens together with a few
//! tokens of left context and only releases text once it no longer ends in an incomplete
//! character.

use crate::error::Result;
use crate::text::Tokenizer;

/// Turns a stream of token ids into a stream of complete text pieces.
#[derive(Debug, Clone, Default)]
pub struct TextStream {
    tokens: Vec<u32>,
    /// Start of the context window used to decode.
    prefix_start: usize,
    /// Tokens before this index have been released as text.
    released: usize,
}

impl TextStream {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token; returns the text that became complete, if any.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Option<String>> {
        self.tokens.push(id);
        let before = tok.decode(&self.tokens[self.prefix_start..self.released])?;
        let now = tok.decode(&self.tokens[self.prefix_start..])?;
        if now.len() > before.len()
            && !now.ends_with('\u{FFFD}')
            && now.is_char_boundary(before.len())
        {
            let piece = now[before.len()..].to_string();
            self.prefix_start = self.released;
            self.released = self.tokens.len();
            Ok(Some(piece))
        } else {
            Ok(None)
        }
    }

    /// Releases whatever is still pending (possibly with replacement characters).
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<Option<String>> {
        let before = tok.decode(&self.tokens[self.prefix_start..self.released])?;
        let now = tok.decode(&self.tokens[self.prefix_start..])?;
        self.prefix_start = self.released;
        self.released = self.tokens.len();
        if now.len() > before.len() && now.is_char_boundary(before.len()) {
            Ok(Some(now[before.len()..].to_string()))
        } else {
            Ok(None)
        }
    }
}
