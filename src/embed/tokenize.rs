//! Text to token ids, with the sentence-transformers truncation rule and full token counts.

use std::path::Path;

use tokenizers::{PostProcessor, Tokenizer};

use super::error::{EmbedError, Result};
use super::wordpiece::{AsciiWordPiece, Stretch};

/// One input, tokenized for the model: `ids` already fits the model's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedText {
    /// Token ids including the special tokens, truncated to the model's limit.
    pub ids: Vec<u32>,
    /// How many tokens (special tokens included) the whole input has, before truncation.
    pub full_len: usize,
}

impl TokenizedText {
    /// Whether truncation dropped part of the input.
    pub fn truncated(&self) -> bool {
        self.full_len > self.ids.len()
    }
}

/// The model's tokenizer, configured as sentence-transformers runs it.
///
/// The shipped `tokenizer.json` truncates at 128 and pads to a fixed 128; the Python library
/// overrides both (max_seq_length 256, pad to the longest of a batch). Here the tokenizer does
/// neither: inputs are tokenized whole, so the full length is known, then cut to the window
/// keeping the closing special token, which is what `LongestFirst` truncation yields for one
/// sequence. Padding, when a backend needs it, is the backend's business.
///
/// Cloning is cheap (the vocabulary is shared): every collection's chunker holds one.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: std::sync::Arc<Tokenizer>,
    /// The fast path for placing tokens in ASCII text, when the pipeline is BERT's.
    ascii: Option<std::sync::Arc<AsciiWordPiece>>,
    max_len: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from a model folder; `max_len` counts special tokens.
    pub fn load(dir: &Path, max_len: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
            EmbedError::BadModelFile {
                dir: dir.to_path_buf(),
                file: "tokenizer.json".into(),
                reason: e.to_string(),
            }
        })?;
        inner
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        inner.with_padding(None);
        Ok(Self {
            ascii: AsciiWordPiece::for_tokenizer(&inner).map(std::sync::Arc::new),
            inner: std::sync::Arc::new(inner),
            max_len: max_len.max(2),
        })
    }

    /// The window length, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokenizes a batch (in parallel) and truncates each input to the window.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<TokenizedText>> {
        let encodings = self
            .inner
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encodings
            .iter()
            .map(|e| self.truncate(e.get_ids()))
            .collect())
    }

    /// Tokenizes one input.
    pub fn encode(&self, text: &str) -> Result<TokenizedText> {
        let encoding = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(self.truncate(encoding.get_ids()))
    }

    /// Number of model tokens `text` costs, special tokens included, without truncation.
    pub fn count(&self, text: &str) -> Result<usize> {
        Ok(self
            .inner
            .encode_fast(text, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?
            .len())
    }

    /// Byte ranges in `text` of its tokens, special tokens excluded, in order.
    pub fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        Ok(self
            .tokens_with_spans(text)?
            .into_iter()
            .map(|(_, span)| span)
            .collect())
    }

    /// The tokens of `text` (special tokens excluded, no truncation): each id with its byte
    /// range in `text`, in order. What a passage's stored token vectors were made from, for
    /// placing them in its text.
    ///
    /// Plain ASCII words take [`AsciiWordPiece`]'s fast path; the rest of the text goes to the
    /// `tokenizers` crate, stretch by stretch.
    pub fn tokens_with_spans(&self, text: &str) -> Result<Vec<(u32, (usize, usize))>> {
        let Some(ascii) = &self.ascii else {
            let mut out = Vec::new();
            self.crate_tokens(text, 0, &mut out)?;
            return Ok(out);
        };
        let mut out = Vec::with_capacity(text.len() / 4);
        for stretch in ascii.stretches(text) {
            match stretch {
                Stretch::Ascii(start, end) => ascii.tokenize(text, start, end, &mut out),
                Stretch::Other(start, end) => {
                    self.crate_tokens(&text[start..end], start, &mut out)?
                }
            }
        }
        Ok(out)
    }

    /// Appends the tokens of `text` as the crate finds them, their ranges moved by `offset`.
    ///
    /// Long texts are cut at whitespace into pieces tokenized in parallel: BERT tokenization
    /// never crosses whitespace, so the result is the same as tokenizing the text whole.
    fn crate_tokens(
        &self,
        text: &str,
        offset: usize,
        out: &mut Vec<(u32, (usize, usize))>,
    ) -> Result<()> {
        const PIECE: usize = 64 * 1024;
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + PIECE).min(text.len());
            while end < text.len() && !text.is_char_boundary(end) {
                end += 1;
            }
            if end < text.len() {
                // Back off to the last whitespace of the piece, if it has one.
                if let Some(ws) = text[start..end].rfind(char::is_whitespace) {
                    end = start + ws.max(1);
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                }
            }
            pieces.push((start, &text[start..end]));
            start = end;
        }
        // `encode` keeps byte offsets (`encode_fast` does not track them).
        let encodings = if pieces.len() == 1 {
            self.inner.encode(text, false).map(|e| vec![e])
        } else {
            self.inner
                .encode_batch(pieces.iter().map(|p| p.1).collect::<Vec<_>>(), false)
        }
        .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        for ((at, _), encoding) in pieces.iter().zip(encodings) {
            let shift = offset + at;
            out.extend(
                encoding
                    .get_ids()
                    .iter()
                    .zip(encoding.get_offsets())
                    .map(|(&id, &(s, e))| (id, (s + shift, e + shift))),
            );
        }
        Ok(())
    }

    /// Token counts of many texts (special tokens included), tokenized in parallel.
    pub fn count_batch(&self, texts: &[&str]) -> Result<Vec<usize>> {
        Ok(self
            .inner
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?
            .iter()
            .map(|e| e.len())
            .collect())
    }

    /// Every token of the vocabulary with its id, and whether it is a special token ([CLS],
    /// [SEP], [PAD], ...): what late interaction needs to decide which tokens carry meaning.
    pub fn vocabulary(&self) -> Vec<(u32, String, bool)> {
        let specials = self.inner.get_added_tokens_decoder();
        self.inner
            .get_vocab(true)
            .into_iter()
            .map(|(text, id)| {
                let special = specials.get(&id).is_some_and(|t| t.special);
                (id, text, special)
            })
            .collect()
    }

    /// How many special tokens the model adds around one input (2 for BERT).
    pub fn special_tokens(&self) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false))
    }

    fn truncate(&self, ids: &[u32]) -> TokenizedText {
        let full_len = ids.len();
        let ids = if full_len <= self.max_len {
            ids.to_vec()
        } else {
            // Keep the head and the closing special token ([SEP] for BERT).
            let mut kept = ids[..self.max_len - 1].to_vec();
            kept.push(ids[full_len - 1]);
            kept
        };
        TokenizedText { ids, full_len }
    }
}
