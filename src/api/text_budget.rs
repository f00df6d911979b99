//! How much passage text one search response may carry.
//!
//! Passages are bounded (in tokens, and in bytes: [`crate::chunk::MAX_BYTES_PER_TOKEN`]), but
//! `k` of them from a collection chunked with a large budget still add up. A response holds at
//! most a budget of text bytes: hits are filled best first; the first that does not fit is cut
//! at a character boundary, and it and every later hit say `text_truncated: true` (their
//! `start`/`end` still name the whole passage, which `GET /documents/{id}` has).

use super::types::SearchResult;

/// Cuts the texts of `results` (best first) to `budget` bytes in all.
pub fn apply(results: &mut [SearchResult], budget: usize) {
    let mut left = budget;
    for hit in results.iter_mut() {
        if hit.text.len() <= left {
            left -= hit.text.len();
            continue;
        }
        let mut cut = left;
        while !hit.text.is_char_boundary(cut) {
            cut -= 1;
        }
        hit.text.truncate(cut);
        hit.text_truncated = true;
        left -= cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str) -> SearchResult {
        SearchResult {
            doc_id: "d".into(),
            chunk_id: 0,
            chunk_index: 0,
            text: text.into(),
            score: 1.0,
            scores: crate::api::types::ScoresBody {
                dense: Some(1.0),
                lexical: None,
                rerank: None,
            },
            start: 0,
            end: text.len(),
            metadata: serde_json::Map::new(),
            metadata_omitted: false,
            text_truncated: false,
            highlights: None,
            title: None,
            section: None,
            pages: None,
        }
    }

    #[test]
    fn hits_are_filled_best_first_and_cut_at_characters() {
        let mut results = vec![hit("abcd"), hit("été au lac"), hit("zzz")];
        apply(&mut results, 7);
        assert_eq!(results[0].text, "abcd");
        assert!(!results[0].text_truncated);
        // Three bytes left: "é" is two, "t" one.
        assert_eq!(results[1].text, "ét");
        assert!(results[1].text_truncated);
        assert_eq!(results[2].text, "");
        assert!(results[2].text_truncated);
        let wire = serde_json::to_value(&results).unwrap();
        assert!(wire[0].get("text_truncated").is_none());
        assert_eq!(wire[2]["text_truncated"], true);
    }

    #[test]
    fn a_budget_that_holds_everything_changes_nothing() {
        let mut results = vec![hit("one"), hit("two")];
        apply(&mut results, 6);
        assert!(results.iter().all(|h| !h.text_truncated));
        assert_eq!(results[1].text, "two");
    }
}
