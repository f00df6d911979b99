//! Where sentences and words lie in a text, for trimming a context to a budget and for
//! highlights: Unicode's boundaries (UAX #29, the `unicode-segmentation` crate that
//! text-splitter cuts passages with), so that a trimmed context ends where a passage could.

use unicode_segmentation::UnicodeSegmentation;

/// Byte spans of the sentences of `text`, in order, each without its surrounding whitespace;
/// sentences of whitespace only are left out.
pub fn sentence_spans(text: &str) -> Vec<(usize, usize)> {
    text.split_sentence_bound_indices()
        .filter_map(|(start, sentence)| trimmed(start, sentence))
        .collect()
}

/// Byte offsets in `text[start..end]` (absolute) where a word ends: the places a sentence too
/// long for a budget can be cut.
pub fn word_ends(text: &str, start: usize, end: usize) -> Vec<usize> {
    text[start..end]
        .split_word_bound_indices()
        .filter(|(_, w)| !w.trim().is_empty())
        .map(|(at, w)| start + at + w.len())
        .collect()
}

/// The span of `piece` (found at `start`) without leading and trailing whitespace, if any is
/// left.
fn trimmed(start: usize, piece: &str) -> Option<(usize, usize)> {
    let lead = piece.len() - piece.trim_start().len();
    let body = piece.trim();
    (!body.is_empty()).then_some((start + lead, start + lead + body.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_trimmed_and_cover_the_words() {
        let text = "  First one. Second one?\n\nThird, with a comma!  ";
        let spans = sentence_spans(text);
        let got: Vec<&str> = spans.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(got, ["First one.", "Second one?", "Third, with a comma!"]);
        assert!(sentence_spans("   \n ").is_empty());
    }

    #[test]
    fn word_ends_skip_whitespace() {
        let text = "Putin met Kim.";
        let ends = word_ends(text, 0, text.len());
        assert_eq!(ends, [5, 9, 13, 14]);
        assert_eq!(word_ends(text, 6, 9), [9]);
    }
}
