//! Placing BERT tokens in plain ASCII text without the `tokenizers` crate's bookkeeping.
//!
//! To give offsets, `tokenizers` tracks every character's alignment through normalization and
//! looks up each character's Unicode category several times: about 100 µs for a 1,500-byte
//! passage. That was most of what highlights and token budgets cost a search, which tokenize
//! the returned passages. For ASCII words BERT's pipeline (`BertNormalizer` with lowercasing,
//! `BertPreTokenizer`, `WordPiece`) reduces to: lowercase, split at whitespace and isolate
//! punctuation, then take the longest vocabulary piece from the left. That is done here
//! directly. Every stretch of text this fast path is not sure of (non-ASCII bytes, control
//! characters, a byte that could start an added token such as `[MASK]`) goes to the crate.
//! Tokenizing a stretch between whitespace alone gives what tokenizing it in its text gives
//! (the normalizer is per character, the pre-tokenizer splits at whitespace), so the two
//! halves join exactly. Equality with the crate is tested on real and hostile text.

use std::collections::HashMap;

use tokenizers::{
    ModelWrapper, NormalizerWrapper, PreTokenizerWrapper, Tokenizer, models::wordpiece::WordPiece,
};

/// The ASCII half of a BERT WordPiece tokenizer: vocabulary pieces by their bytes.
pub struct AsciiWordPiece {
    /// Pieces that start a word.
    first: HashMap<Box<[u8]>, u32>,
    /// Pieces that continue a word (stored without the `##` prefix).
    rest: HashMap<Box<[u8]>, u32>,
    /// Longest piece of each map, in bytes: no longer prefix needs looking up.
    first_max: usize,
    rest_max: usize,
    unk: u32,
    max_word_chars: usize,
    /// Bytes that may start an added token: a run holding one goes to the crate.
    added_starts: [bool; 128],
}

/// How a text splits for tokenizing: a stretch the fast path takes or one it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stretch {
    /// `text[start..end]`: ASCII words the fast path tokenizes.
    Ascii(usize, usize),
    /// `text[start..end]`: for the crate.
    Other(usize, usize),
}

impl AsciiWordPiece {
    /// The fast path for `tokenizer`, when its pipeline is exactly BERT's uncased one (the
    /// only one this path reproduces); `None` otherwise, and the crate does all the work.
    pub fn for_tokenizer(tokenizer: &Tokenizer) -> Option<Self> {
        match tokenizer.get_normalizer()? {
            NormalizerWrapper::BertNormalizer(n)
                if n.clean_text && n.lowercase && n.strip_accents != Some(false) => {}
            _ => return None,
        }
        if !matches!(
            tokenizer.get_pre_tokenizer()?,
            PreTokenizerWrapper::BertPreTokenizer(_)
        ) {
            return None;
        }
        let ModelWrapper::WordPiece(model) = tokenizer.get_model() else {
            return None;
        };
        let mut added_starts = [false; 128];
        for token in tokenizer.get_added_tokens_decoder().values() {
            // Stripping spaces around an added token reaches across whitespace, and a
            // normalized one matches after lowercasing: neither splits at whitespace.
            if token.lstrip || token.rstrip || token.normalized {
                return None;
            }
            match token.content.bytes().next() {
                Some(b) if b.is_ascii() => added_starts[b as usize] = true,
                _ => {}
            }
        }
        Self::from_model(model, added_starts)
    }

    fn from_model(model: &WordPiece, added_starts: [bool; 128]) -> Option<Self> {
        use tokenizers::Model;
        let prefix = model.continuing_subword_prefix.as_str();
        let mut first: HashMap<Box<[u8]>, u32> = HashMap::new();
        let mut rest: HashMap<Box<[u8]>, u32> = HashMap::new();
        for (piece, id) in model.get_vocab() {
            if !piece.is_ascii() {
                continue;
            }
            match piece.strip_prefix(prefix).filter(|_| !prefix.is_empty()) {
                Some(tail) if !tail.is_empty() => {
                    rest.insert(tail.as_bytes().into(), id);
                }
                _ => {
                    first.insert(piece.as_bytes().into(), id);
                }
            }
        }
        let unk = model.token_to_id(&model.unk_token)?;
        Some(Self {
            first_max: first.keys().map(|k| k.len()).max().unwrap_or(0),
            rest_max: rest.keys().map(|k| k.len()).max().unwrap_or(0),
            first,
            rest,
            unk,
            max_word_chars: model.max_input_chars_per_word,
            added_starts,
        })
    }

    /// `text` cut into stretches between whitespace, neighbours of one kind merged, in order.
    pub fn stretches(&self, text: &str) -> Vec<Stretch> {
        let bytes = text.as_bytes();
        let mut out: Vec<Stretch> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if is_separator(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            let mut plain = true;
            while i < bytes.len() && !is_separator(bytes[i]) {
                let b = bytes[i];
                plain &= (0x20..0x7f).contains(&b) && !self.added_starts[b as usize];
                i += 1;
            }
            let next = if plain {
                Stretch::Ascii(start, i)
            } else {
                Stretch::Other(start, i)
            };
            match (out.last_mut(), next) {
                (Some(Stretch::Ascii(_, end)), Stretch::Ascii(_, e))
                | (Some(Stretch::Other(_, end)), Stretch::Other(_, e)) => *end = e,
                _ => out.push(next),
            }
        }
        out
    }

    /// Appends the tokens of `text[start..end]`, an [`Stretch::Ascii`] stretch, as ids with
    /// byte ranges of `text`.
    pub fn tokenize(
        &self,
        text: &str,
        start: usize,
        end: usize,
        out: &mut Vec<(u32, (usize, usize))>,
    ) {
        let bytes = &text.as_bytes()[..end];
        let mut lower = Vec::with_capacity(32);
        let mut i = start;
        while i < end {
            let b = bytes[i];
            if is_separator(b) {
                i += 1;
            } else if b.is_ascii_punctuation() {
                lower.clear();
                lower.push(b);
                self.word(&lower, i, out);
                i += 1;
            } else {
                let word = i;
                while i < end && !is_separator(bytes[i]) && !bytes[i].is_ascii_punctuation() {
                    i += 1;
                }
                lower.clear();
                lower.extend(bytes[word..i].iter().map(u8::to_ascii_lowercase));
                self.word(&lower, word, out);
            }
        }
    }

    /// Greedy longest-match WordPiece over one lowercased word found at `at`: the whole word
    /// is the unknown token when it is too long or some part of it matches nothing.
    fn word(&self, word: &[u8], at: usize, out: &mut Vec<(u32, (usize, usize))>) {
        let whole = (self.unk, (at, at + word.len()));
        if word.len() > self.max_word_chars {
            out.push(whole);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        while start < word.len() {
            let (pieces, longest) = if start == 0 {
                (&self.first, self.first_max)
            } else {
                (&self.rest, self.rest_max)
            };
            let mut end = word.len().min(start + longest);
            let id = loop {
                if end == start {
                    out.truncate(mark);
                    out.push(whole);
                    return;
                }
                if let Some(&id) = pieces.get(&word[start..end]) {
                    break id;
                }
                end -= 1;
            };
            out.push((id, (at + start, at + end)));
            start = end;
        }
    }
}

/// The whitespace BERT's normalizer turns into spaces and its pre-tokenizer splits at, within
/// ASCII (vertical tab and form feed are control characters to it, removed, not spaces).
fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;
    use crate::embed::TextTokenizer;

    fn model_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
    }

    fn ours() -> &'static TextTokenizer {
        static TOKENIZER: std::sync::OnceLock<TextTokenizer> = std::sync::OnceLock::new();
        TOKENIZER.get_or_init(|| {
            TextTokenizer::load(&model_dir(), 256).expect("model present (./models/fetch.sh)")
        })
    }

    fn reference() -> &'static Tokenizer {
        static TOKENIZER: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
        TOKENIZER.get_or_init(|| {
            let mut tokenizer = Tokenizer::from_file(model_dir().join("tokenizer.json")).unwrap();
            // The shipped file pads and truncates to 128; compare whole texts.
            tokenizer.with_truncation(None).unwrap();
            tokenizer.with_padding(None);
            tokenizer
        })
    }

    /// The crate's ids and byte ranges for the whole text, as `tokens_with_spans` must give.
    fn expected(text: &str) -> Vec<(u32, (usize, usize))> {
        let encoding = reference().encode(text, false).unwrap();
        encoding
            .get_ids()
            .iter()
            .copied()
            .zip(encoding.get_offsets().iter().copied())
            .collect()
    }

    fn assert_same(text: &str) {
        let got = ours().tokens_with_spans(text).unwrap();
        assert_eq!(got, expected(text), "tokenizing {text:?}");
    }

    #[test]
    fn the_fast_path_is_taken_for_bert() {
        let fast = AsciiWordPiece::for_tokenizer(reference()).expect("BERT uncased has one");
        assert_eq!(
            fast.stretches("Plain words, [MASK] naïve\tend"),
            vec![
                Stretch::Ascii(0, 12),
                Stretch::Other(13, 26),
                Stretch::Ascii(27, 30)
            ]
        );
    }

    #[test]
    fn the_seed_article_tokenizes_as_the_crate_does() {
        let seed = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/putin-kim-summit.txt"),
        )
        .unwrap();
        assert_same(&seed);
    }

    #[test]
    fn hostile_text_tokenizes_as_the_crate_does() {
        let long_word = "a".repeat(101);
        let just_fits = "b".repeat(100);
        for text in [
            "",
            "   \n\t ",
            "Hello, World! It's 3.14159 (roughly)...",
            "UPPER lower MiXeD don't e-mail user@example.com C++ $5",
            &long_word,
            &just_fits,
            "qxzjvkwqpz zzzzzzzzzz unaffable ##ing ## #",
            "[CLS] [SEP] [MASK][PAD][UNK] [notatoken] [ mask ]",
            "a\u{b}b c\u{c}d e\u{0}f g\u{7f}h i\u{1f}j",
            "naïve café — “quoted” ‘single’ 東京は首都です。 😀 x\u{a0}y z\u{301}",
            "\u{fffd}replacement char\u{fffd}",
            "tabs\tand\r\nline\rends\n",
        ] {
            assert_same(text);
        }
    }

    /// Texts of words from an alphabet that mixes what the fast path takes with everything
    /// it must leave to the crate.
    fn hostile_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-zA-Z]{1,12}",
            "[0-9]{1,6}",
            "[!-/:-@\\[-`{-~]{1,3}",
            Just(" ".to_string()),
            Just("\n".to_string()),
            Just("\t".to_string()),
            Just("\u{b}".to_string()),
            Just("\u{0}".to_string()),
            Just("[MASK]".to_string()),
            Just("é".to_string()),
            Just("東".to_string()),
            Just("\u{a0}".to_string()),
            Just("\u{301}".to_string()),
            "[a-z]{95,110}",
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn any_text_tokenizes_as_the_crate_does(text in hostile_text()) {
            prop_assert_eq!(ours().tokens_with_spans(&text).unwrap(), expected(&text));
        }
    }
}
