//! How text becomes lexical terms: words split at anything that is not a letter or digit, CJK
//! runs cut into overlapping character pairs (there are no spaces to split them at), then
//! lower-cased, English stop words dropped and English words stemmed (Snowball).
//!
//! The same analyzer reads passages and queries. Snowball is a stemmer, not a lemmatizer: it
//! maps "meetings" and "meeting" to "meet" but leaves "met" alone; regular plural and tense
//! endings are what BM25 needs from it.

use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, StopWordFilter, TextAnalyzer, Token,
    TokenStream, Tokenizer,
};

/// The analyzer's name in tantivy's registry, with a version: an index made by another version
/// is rebuilt.
pub const ANALYZER: &str = "semdex_en_v2";

/// Words that carry no meaning of their own in a passage or a question: Lucene's English stop
/// words, plus the question words and auxiliaries a question is built from ("where did ...",
/// "how could ..."), which would otherwise reward passages for sharing the question's grammar
/// rather than its subject. Late interaction ignores the same words.
pub const STOP_WORDS: [&str; 55] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with", "what", "which", "who", "whom", "whose", "where",
    "when", "why", "how", "did", "does", "do", "has", "have", "had", "were", "can", "could",
    "would", "should", "may", "might",
];

/// Terms longer than this many bytes are dropped (base64 blobs, URLs run together).
const MAX_TERM_BYTES: usize = 40;

/// The analyzer every lexical field and query uses.
pub fn analyzer() -> TextAnalyzer {
    let stop_words = StopWordFilter::remove(STOP_WORDS.iter().map(|w| w.to_string()));
    TextAnalyzer::builder(WordsAndCjkPairs::default())
        .filter(RemoveLongFilter::limit(MAX_TERM_BYTES))
        .filter(LowerCaser)
        .filter(stop_words)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The terms of `text`, in order (duplicates kept).
pub fn terms(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// A query's distinct terms, in order of first appearance: what BM25 scores a query by, in
/// tantivy and in PostgreSQL alike (a repeated word counts once).
pub fn query_terms(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    terms(text)
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// Whether `c` belongs to a script written without spaces between words (Han, Kana, Hangul
/// syllables are spaced in modern Korean, but bigrams serve them too).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3400..=0x4DBF   // CJK Extension A
        | 0x4E00..=0x9FFF   // CJK Unified Ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F // CJK Extensions B–F, compatibility supplement
    )
}

/// Splits text into words (runs of letters and digits outside CJK) and CJK character pairs.
#[derive(Clone, Default)]
pub struct WordsAndCjkPairs {
    token: Token,
}

/// The token stream of [`WordsAndCjkPairs`].
pub struct WordsAndCjkPairsStream<'a> {
    text: &'a str,
    /// Byte offset where scanning resumes.
    at: usize,
    token: &'a mut Token,
}

impl Tokenizer for WordsAndCjkPairs {
    type TokenStream<'a> = WordsAndCjkPairsStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordsAndCjkPairsStream<'a> {
        self.token.reset();
        WordsAndCjkPairsStream {
            text,
            at: 0,
            token: &mut self.token,
        }
    }
}

impl WordsAndCjkPairsStream<'_> {
    fn emit(&mut self, from: usize, to: usize) -> bool {
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.token.position.wrapping_add(1);
        true
    }
}

impl TokenStream for WordsAndCjkPairsStream<'_> {
    fn advance(&mut self) -> bool {
        let rest = &self.text[self.at..];
        let Some((skip, first)) = rest.char_indices().find(|(_, c)| c.is_alphanumeric()) else {
            self.at = self.text.len();
            return false;
        };
        let start = self.at + skip;
        if is_cjk(first) {
            // A pair of this character and the next, if the next is CJK too; a lone CJK
            // character is a term of its own. The stream resumes at the next character, so
            // pairs overlap: 金正恩 gives 金正, 正恩.
            let second_at = start + first.len_utf8();
            let next = self.text[second_at..].chars().next();
            self.at = second_at;
            return match next.filter(|c| is_cjk(*c)) {
                Some(second) => self.emit(start, second_at + second.len_utf8()),
                None => {
                    // Emit the lone character only if it did not end a pair just emitted.
                    let previous = self.text[..start].chars().next_back();
                    if previous.is_some_and(is_cjk) {
                        self.advance()
                    } else {
                        self.emit(start, second_at)
                    }
                }
            };
        }
        let end = self.text[start..]
            .char_indices()
            .find(|(_, c)| !c.is_alphanumeric() || is_cjk(*c))
            .map_or(self.text.len(), |(i, _)| start + i);
        self.at = end;
        self.emit(start, end)
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_words_are_stemmed_and_stop_words_dropped() {
        assert_eq!(
            terms("Where did Putin and Kim meet? The meetings were held..."),
            // Question words and auxiliaries are on the stop list: they match every
            // question and no answer.
            ["putin", "kim", "meet", "meet", "held"]
        );
        assert!(terms("the of and").is_empty());
        assert!(terms("  ...  ").is_empty());
        assert_eq!(terms("Komsomolsk-on-Amur"), ["komsomolsk", "amur"]);
    }

    #[test]
    fn cjk_runs_become_overlapping_pairs() {
        assert_eq!(terms("金正恩"), ["金正", "正恩"]);
        assert_eq!(terms("普京 和"), ["普京", "和"]);
        assert_eq!(terms("Kim金正恩visit"), ["kim", "金正", "正恩", "visit"]);
    }

    #[test]
    fn other_scripts_are_words() {
        assert_eq!(
            terms("Где встретились Путин и Ким"),
            ["где", "встретились", "путин", "и", "ким"]
        );
        let long = "x".repeat(60);
        assert!(terms(&long).is_empty(), "over-long terms are dropped");
    }
}
