//! Text: the tokenizer, the chat template, and streaming detokenisation.

mod stream;
mod template;
mod tokenizer;

pub use stream::TextStream;
pub use template::{ChatTemplate, Message, Role, BUILTIN_LFM2_TEMPLATE};
pub use tokenizer::{special, Tokenizer};
