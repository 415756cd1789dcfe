//! Counting model tokens. The crate takes a counter instead of depending on the engine: the
//! CLI passes the model's tokenizer when it has one, and [`EstimateCounter`] otherwise.

/// Counts the tokens a text takes in the model's context. Must be cheap and thread-safe: the
/// indexer calls it once per block, from several threads.
pub trait TokenCounter: Send + Sync {
    /// Tokens in `text` (without any special tokens).
    fn count(&self, text: &str) -> usize;
    /// A stable name for the counter, recorded in the index so that a change of tokenizer
    /// re-chunks every file.
    fn name(&self) -> String;
}

/// A tokenizer-free estimate, close to a byte-level BPE on English prose and code: a run of
/// letters costs one token per started 8 characters, a run of digits one per 3 (the Llama-3
/// split LFM2 uses), every other visible character one; whitespace is free (BPE merges it into
/// the following word), and each non-ASCII character counts one.
#[derive(Debug, Clone, Copy, Default)]
pub struct EstimateCounter;

impl TokenCounter for EstimateCounter {
    fn count(&self, text: &str) -> usize {
        let mut n = 0usize;
        let mut letters = 0usize;
        let mut digits = 0usize;
        let flush = |n: &mut usize, letters: &mut usize, digits: &mut usize| {
            *n += letters.div_ceil(8) + digits.div_ceil(3);
            *letters = 0;
            *digits = 0;
        };
        for b in text.bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' => {
                    if digits > 0 {
                        flush(&mut n, &mut letters, &mut digits);
                    }
                    letters += 1;
                }
                b'0'..=b'9' => {
                    if letters > 0 {
                        flush(&mut n, &mut letters, &mut digits);
                    }
                    digits += 1;
                }
                _ => {
                    flush(&mut n, &mut letters, &mut digits);
                    // Count ASCII punctuation, and each non-ASCII character once (at its
                    // leading byte; continuation bytes are 0b10xx_xxxx).
                    if b.is_ascii_punctuation() || (b >= 0xC0) {
                        n += 1;
                    }
                }
            }
        }
        flush(&mut n, &mut letters, &mut digits);
        n
    }

    fn name(&self) -> String {
        "estimate-v1".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_words_digits_and_punctuation() {
        let c = EstimateCounter;
        assert_eq!(c.count(""), 0);
        assert_eq!(c.count("   \n\t"), 0);
        assert_eq!(c.count("disk full"), 2);
        // "configuration" is 13 letters: two pieces.
        assert_eq!(c.count("configuration"), 2);
        // 2026 -> 2 digit groups, '-' 1, 12 -> 1.
        assert_eq!(c.count("2026-12"), 4);
        assert_eq!(
            c.count("vpn.northwind.internal:443"),
            1 + 1 + 2 + 1 + 1 + 1 + 1
        );
        assert_eq!(c.count("é中"), 2);
    }
}
