//! Filling a budget of model tokens or characters with contexts in rank order: whole while
//! they fit, then the first that does not is trimmed to the sentences around its best hit
//! that still fit, and the answer ends there. What a pipeline pastes into a prompt.

use super::sentences::{sentence_spans, word_ends};

/// How much text an answer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Model tokens (the served model's tokenizer, special tokens not counted).
    Tokens(usize),
    /// Characters (Unicode scalar values).
    Chars(usize),
}

impl Budget {
    /// The limit, in its unit.
    pub fn limit(self) -> usize {
        match self {
            Self::Tokens(n) | Self::Chars(n) => n,
        }
    }

    /// The unit's name for responses: "tokens" or "chars".
    pub fn unit(self) -> &'static str {
        match self {
            Self::Tokens(_) => "tokens",
            Self::Chars(_) => "chars",
        }
    }
}

/// How much of a budget an answer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUse {
    /// The budget asked for.
    pub budget: Budget,
    /// How much of it the contexts take, in its unit (at most the limit).
    pub used: usize,
}

/// One context's text with the costs of its parts, measured once.
pub struct Measured<'a> {
    /// The text.
    pub text: &'a str,
    /// Byte offset of the best hit in `text` (where trimming starts).
    pub anchor: usize,
    /// Byte offset of the end of the best hit's passage in `text`.
    pub anchor_end: usize,
    /// Sorted byte offsets where each token starts (token budgets only).
    pub token_starts: Option<Vec<usize>>,
}

impl Measured<'_> {
    /// The cost of `text[start..end]` in the budget's unit: tokens starting inside it, or its
    /// characters. Cuts fall where words end, so a token never straddles one.
    pub fn cost(&self, start: usize, end: usize) -> usize {
        match &self.token_starts {
            Some(starts) => {
                starts.partition_point(|&s| s < end) - starts.partition_point(|&s| s < start)
            }
            None => self.text[start..end].chars().count(),
        }
    }
}

/// What became of one context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Kept whole.
    Whole,
    /// Kept as `text[start..end]`.
    Trimmed(usize, usize),
    /// Left out: the budget was spent.
    Dropped,
}

/// Fills `limit` with `contexts` in order; returns what became of each and the cost kept.
pub fn fill(contexts: &[Measured<'_>], limit: usize) -> (Vec<Fill>, usize) {
    let mut used = 0;
    let mut out = Vec::with_capacity(contexts.len());
    let mut spent = false;
    for context in contexts {
        if spent {
            out.push(Fill::Dropped);
            continue;
        }
        let whole = context.cost(0, context.text.len());
        if used + whole <= limit {
            used += whole;
            out.push(Fill::Whole);
            continue;
        }
        spent = true;
        match trim(context, limit - used, used == 0) {
            Some((start, end)) => {
                used += context.cost(start, end);
                out.push(Fill::Trimmed(start, end));
            }
            None => out.push(Fill::Dropped),
        }
    }
    (out, used)
}

/// The longest run of whole sentences of `context` that costs at most `left`, grown from the
/// sentence holding the best hit's start: forward over the hit's own passage first, then a
/// sentence before and a sentence after in turn. When not even that sentence fits and
/// `nothing_yet` (an answer would be empty), its words up to the budget instead.
fn trim(context: &Measured<'_>, left: usize, nothing_yet: bool) -> Option<(usize, usize)> {
    let sentences = sentence_spans(context.text);
    let first = sentences
        .iter()
        .position(|&(_, end)| end > context.anchor)
        .unwrap_or(sentences.len().checked_sub(1)?);
    let fits = |lo: usize, hi: usize| context.cost(sentences[lo].0, sentences[hi].1) <= left;
    if !fits(first, first) {
        if !nothing_yet {
            return None;
        }
        // From the hit's start when the sentence begins before it (in an overlapping passage).
        let (start, end) = sentences[first];
        let start = start.max(context.anchor.min(end));
        let cut = word_ends(context.text, start, end)
            .into_iter()
            .take_while(|&e| context.cost(start, e) <= left)
            .last()?;
        return Some((start, cut));
    }
    let (mut lo, mut hi) = (first, first);
    while hi + 1 < sentences.len() && sentences[hi].1 < context.anchor_end && fits(lo, hi + 1) {
        hi += 1;
    }
    loop {
        let before = lo > 0 && fits(lo - 1, hi);
        if before {
            lo -= 1;
        }
        let after = hi + 1 < sentences.len() && fits(lo, hi + 1);
        if after {
            hi += 1;
        }
        if !before && !after {
            break;
        }
    }
    Some((sentences[lo].0, sentences[hi].1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars<'a>(text: &'a str, anchor: usize, anchor_end: usize) -> Measured<'a> {
        Measured {
            text,
            anchor,
            anchor_end,
            token_starts: None,
        }
    }

    #[test]
    fn whole_contexts_then_one_trimmed_then_nothing() {
        let a = "Alpha one.";
        let b = "Bravo two. Charlie three. Delta four.";
        let c = "Echo.";
        let contexts = [chars(a, 0, a.len()), chars(b, 11, 25), chars(c, 0, c.len())];
        // 10 for `a`, then 20 left: "Charlie three." (14) grows by "Bravo two. " before it
        // (25 in all: too many), then "Delta four." after it (too many): 14.
        let (fills, used) = fill(&contexts, 30);
        assert_eq!(fills[0], Fill::Whole);
        assert_eq!(fills[1], Fill::Trimmed(11, 25));
        assert_eq!(&b[11..25], "Charlie three.");
        assert_eq!(fills[2], Fill::Dropped);
        assert_eq!(used, 24);
        // Enough for "Bravo two. Charlie three." (25): the sentence before joins.
        let (fills, used) = fill(&contexts, 35);
        assert_eq!(fills[1], Fill::Trimmed(0, 25));
        assert_eq!(used, 35);
    }

    #[test]
    fn a_sentence_too_long_is_cut_at_a_word_only_when_the_answer_would_be_empty() {
        let text = "One two three four five.";
        let (fills, used) = fill(&[chars(text, 0, text.len())], 9);
        assert_eq!(fills[0], Fill::Trimmed(0, 7));
        assert_eq!(used, 7);
        let (fills, _) = fill(&[chars("Hi.", 0, 3), chars(text, 0, text.len())], 9);
        assert_eq!(fills, [Fill::Whole, Fill::Dropped]);
        // Not even one word: nothing.
        assert_eq!(fill(&[chars(text, 0, text.len())], 2).0, [Fill::Dropped]);
    }

    #[test]
    fn token_costs_count_token_starts() {
        let text = "ab cd ef";
        let m = Measured {
            text,
            anchor: 0,
            anchor_end: text.len(),
            token_starts: Some(vec![0, 3, 6]),
        };
        assert_eq!(m.cost(0, text.len()), 3);
        assert_eq!(m.cost(3, 5), 1);
    }
}
