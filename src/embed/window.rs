//! Tokenizing only as much of a long input as the model's window can hold.
//!
//! An input longer than the window is cut to it, so tokenizing a 10 MB string whole to keep
//! its first 256 tokens is wasted work, and a cheap way to make a server busy. BERT's
//! normalizer turns ASCII whitespace into spaces and its pre-tokenizer splits there, so the
//! tokens of a prefix that ends before an ASCII whitespace character are exactly the first
//! tokens of the whole text. A prefix that already overflows the window therefore yields the
//! very ids the whole text would; a prefix that does not is doubled until it does or is the
//! whole text, so the work is at most twice what the window needs.

use super::error::Result;
use super::tokenize::{TextTokenizer, TokenizedText};

/// Bytes tokenized first, per token of the window: English runs at 4 to 6 bytes per token,
/// so the first prefix is almost always enough.
const FIRST_BYTES_PER_TOKEN: usize = 16;

/// An input tokenized for the window, and whether all of it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowEncoding {
    /// The ids, exactly as tokenizing the whole text and truncating would give them. When
    /// `complete` is false, `full_len` counts only the tokens read, which already exceed the
    /// window: a lower bound.
    pub tokenized: TokenizedText,
    /// Whether the whole text was tokenized (`full_len` is then exact).
    pub complete: bool,
}

impl TextTokenizer {
    /// Tokenizes `text` for the model's window, reading only a prefix when the text is long.
    pub fn encode_window(&self, text: &str) -> Result<WindowEncoding> {
        let mut budget = self.max_len().saturating_mul(FIRST_BYTES_PER_TOKEN).max(64);
        loop {
            let Some(end) = prefix_end(text, budget) else {
                return Ok(WindowEncoding {
                    tokenized: self.encode(text)?,
                    complete: true,
                });
            };
            let tokenized = self.encode(&text[..end])?;
            if tokenized.full_len > self.max_len() {
                return Ok(WindowEncoding {
                    tokenized,
                    complete: false,
                });
            }
            budget = budget.saturating_mul(2);
        }
    }
}

/// Where a prefix of at most `budget` bytes may end: before the last ASCII whitespace in it.
/// `None` when the whole text is to be read (it fits, or the prefix holds no such place).
fn prefix_end(text: &str, budget: usize) -> Option<usize> {
    if text.len() <= budget {
        return None;
    }
    // ASCII bytes are never inside a multi-byte character, so any position found is a char
    // boundary.
    text.as_bytes()[..budget]
        .iter()
        .rposition(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .filter(|&at| at > 0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::embed::ModelConfig;

    fn tokenizer() -> &'static TextTokenizer {
        static TOKENIZER: std::sync::OnceLock<TextTokenizer> = std::sync::OnceLock::new();
        TOKENIZER.get_or_init(|| {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
            let config = ModelConfig::load(&dir).expect("model present (./models/fetch.sh)");
            TextTokenizer::load(&dir, config.max_seq_length).unwrap()
        })
    }

    fn assert_same_window(t: &TextTokenizer, text: &str) -> WindowEncoding {
        let whole = t.encode(text).unwrap();
        let window = t.encode_window(text).unwrap();
        assert_eq!(
            window.tokenized.ids,
            whole.ids,
            "{:?}",
            &text[..text.len().min(80)]
        );
        assert_eq!(window.tokenized.truncated(), whole.truncated());
        if window.complete {
            assert_eq!(window.tokenized.full_len, whole.full_len);
        } else {
            assert!(window.tokenized.full_len > t.max_len());
            assert!(window.tokenized.full_len <= whole.full_len);
        }
        window
    }

    #[test]
    fn a_long_input_is_read_only_as_far_as_its_window() {
        let t = tokenizer();
        let article = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/putin-kim-summit.txt"),
        )
        .unwrap();
        let huge = article.repeat(10_000_000 / article.len() + 1);
        assert!(huge.len() > 10_000_000);
        let started = std::time::Instant::now();
        let window = t.encode_window(&huge).unwrap();
        assert!(!window.complete, "a 10 MB input is not tokenized whole");
        assert_eq!(window.tokenized.ids.len(), t.max_len());
        assert!(
            started.elapsed().as_secs_f64() < 1.0,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(window.tokenized.ids, t.encode(&article).unwrap().ids);

        for text in [
            article.clone(),
            article.repeat(3),
            "word ".repeat(400),
            "x".repeat(100_000),
            format!("{}{article}", " ".repeat(50_000)),
            format!("{}{article}", "\u{85}".repeat(5_000)),
            "東京は首都です。".repeat(500),
            "naïve café — 3.14159! ".repeat(300),
        ] {
            assert_same_window(t, &text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_text_gets_the_window_of_the_whole(
            words in proptest::collection::vec(
                "[a-z]{1,12}|[A-Z][a-z]{0,8}[.,;!?]?|[0-9]{1,6}|é+|東京|😀|[ \t\n\r]{1,3}|\u{85}|-{1,3}|[a-z]{90,130}",
                0..2_500,
            ),
            separator in "[ \n\t]|\u{3000}|",
        ) {
            let t = tokenizer();
            assert_same_window(t, &words.join(&separator));
        }
    }

    #[test]
    fn prefixes_end_at_ascii_whitespace() {
        assert_eq!(prefix_end("short", 10), None);
        assert_eq!(prefix_end("aaaa bbbb cccc", 12), Some(9));
        assert_eq!(
            prefix_end("aaaaaaaaaaaaaaaa", 8),
            None,
            "no whitespace: read whole"
        );
        assert_eq!(
            prefix_end("ab\u{85}cdefgh ij", 7),
            None,
            "NEL is removed by the normalizer, not a split: ignored"
        );
        assert_eq!(prefix_end(" leading", 4), None);
        assert_eq!(prefix_end("é é é é é é", 6), Some(5));
    }
}
