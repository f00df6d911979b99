//! Highlights: the sentences of a passage that best answer the query, found with the signals a
//! search already has. Each sentence is scored by late interaction (MaxSim of the query's
//! token vectors with the passage's stored token vectors that fall inside the sentence: the
//! model's own judgement, word by word) plus the share of the query's BM25 terms it contains
//! (the analyzer's stemmed words); a lexical query, which has no token vectors, is scored by
//! the terms alone.

use std::collections::HashSet;

use crate::late::{MaxSim, TokenMatrix};
use crate::lexical::analyzer;

use super::sentences::sentence_spans;

/// Weight of the share of query terms beside the MaxSim score (measured on the seed
/// questions, benches/README.md).
pub const TERM_WEIGHT: f32 = 0.5;
/// Most highlights per hit.
pub const MAX_HIGHLIGHTS: usize = 3;
/// Sentences within this share of the best sentence's score are highlighted beside it.
pub const CLOSE_TO_BEST: f32 = 0.9;

/// A sentence that answers the query, as a byte span of the document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Highlight {
    /// Byte offset of the sentence in the document (on a sentence boundary).
    pub start: usize,
    /// One past its last byte (whitespace after it excluded).
    pub end: usize,
    /// How well it matches: MaxSim of the query with the sentence plus
    /// [`TERM_WEIGHT`] × the share of the query's terms it holds.
    pub score: f32,
}

/// Where a passage's stored token vectors lie in its text.
pub struct PassageTokens<'a> {
    /// The stored matrix ([`crate::late::PackedTokens::to_bytes`]).
    pub stored: &'a [u8],
    /// The row of the passage's first token (rows before it belong to a title embedded
    /// before the passage).
    pub first_row: usize,
    /// Byte offset in the passage where each of its rows' tokens starts, ascending.
    pub row_starts: &'a [usize],
}

/// Scores the sentences of passages against one query.
pub struct Highlighter {
    terms: Vec<String>,
    late: Option<MaxSim>,
}

impl Highlighter {
    /// A highlighter for a query's text and, when it was embedded, its token vectors.
    pub fn new(query: &str, tokens: Option<&TokenMatrix>) -> Self {
        Self {
            terms: analyzer::query_terms(query),
            late: tokens.filter(|t| !t.is_empty()).map(MaxSim::new),
        }
    }

    /// The best sentences of `text`, best first, as spans of `text` with their scores; none
    /// when no sentence matches at all.
    pub fn highlights(&mut self, text: &str, tokens: Option<&PassageTokens<'_>>) -> Vec<Highlight> {
        let mut scored: Vec<Highlight> = sentence_spans(text)
            .into_iter()
            .map(|(start, end)| Highlight {
                start,
                end,
                score: self.score(&text[start..end], start, end, tokens),
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.start.cmp(&b.start)));
        let Some(best) = scored.first().map(|h| h.score).filter(|&s| s > 0.0) else {
            return Vec::new();
        };
        scored.retain(|h| h.score >= best * CLOSE_TO_BEST);
        scored.truncate(MAX_HIGHLIGHTS);
        scored
    }

    fn score(
        &mut self,
        sentence: &str,
        start: usize,
        end: usize,
        tokens: Option<&PassageTokens<'_>>,
    ) -> f32 {
        let terms = self.term_share(sentence);
        let late = match (&mut self.late, tokens) {
            (Some(scorer), Some(t)) => {
                let first = t.row_starts.partition_point(|&s| s < start);
                let last = t.row_starts.partition_point(|&s| s < end);
                scorer.score_stored_rows(t.stored, t.first_row + first..t.first_row + last)
            }
            _ => None,
        };
        match late {
            Some(late) => late.max(0.0) + TERM_WEIGHT * terms,
            None if self.late.is_some() && tokens.is_some() => TERM_WEIGHT * terms,
            None => terms,
        }
    }

    /// The share of the query's distinct terms that `sentence` holds (0 for a query without
    /// terms).
    fn term_share(&self, sentence: &str) -> f32 {
        if self.terms.is_empty() {
            return 0.0;
        }
        let present: HashSet<String> = analyzer::terms(sentence).into_iter().collect();
        let found = self.terms.iter().filter(|t| present.contains(*t)).count();
        found as f32 / self.terms.len() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_alone_pick_the_sentence_with_the_query_words() {
        let text = "The weather was mild. Putin met Kim at the Vostochny cosmodrome. They ate.";
        let mut h = Highlighter::new("Where did Putin and Kim meet?", None);
        let got = h.highlights(text, None);
        assert_eq!(
            &text[got[0].start..got[0].end],
            "Putin met Kim at the Vostochny cosmodrome."
        );
        assert!((got[0].score - 2.0 / 3.0).abs() < 1e-6, "{got:?}");
        assert!(
            Highlighter::new("submarine", None)
                .highlights(text, None)
                .is_empty()
        );
    }
}
