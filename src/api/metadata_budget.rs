//! How much document metadata one search response may carry.
//!
//! Every hit names its document's metadata, so `k` hits of documents with large metadata
//! would make an answer many times larger than the question asked for. A response holds at
//! most a budget of metadata bytes (as JSON): hits are filled best first, and a hit whose
//! metadata does not fit in what is left carries `{}` and `metadata_omitted: true` instead
//! (empty metadata costs nothing). `include_metadata: false` leaves all of it out, as
//! Qdrant's `with_payload: false` or Chroma's `include` without `metadatas` do.

use std::collections::HashMap;

use serde_json::Map;

use super::types::SearchResult;

/// Applies the caller's choice and the server's budget to `results` (best first).
pub fn apply(results: &mut [SearchResult], include: bool, budget: usize) {
    let mut left = budget;
    let mut sizes: HashMap<String, usize> = HashMap::new();
    for hit in results.iter_mut() {
        if hit.metadata.is_empty() {
            continue;
        }
        if include {
            let size = *sizes.entry(hit.doc_id.clone()).or_insert_with(|| {
                serde_json::to_vec(&hit.metadata).map_or(usize::MAX, |b| b.len())
            });
            if size <= left {
                left -= size;
                continue;
            }
        }
        hit.metadata = Map::new();
        hit.metadata_omitted = true;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hit(doc: &str, metadata: serde_json::Value) -> SearchResult {
        SearchResult {
            doc_id: doc.into(),
            chunk_id: 0,
            chunk_index: 0,
            text: String::new(),
            score: 1.0,
            scores: crate::api::types::ScoresBody {
                dense: Some(1.0),
                lexical: None,
                rerank: None,
            },
            start: 0,
            end: 0,
            metadata: metadata.as_object().unwrap().clone(),
            metadata_omitted: false,
            text_truncated: false,
            highlights: None,
            title: None,
            section: None,
            pages: None,
        }
    }

    fn kept(results: &[SearchResult]) -> Vec<bool> {
        results.iter().map(|h| !h.metadata_omitted).collect()
    }

    #[test]
    fn best_hits_keep_their_metadata_until_the_budget_is_spent() {
        let big = json!({"blob": "x".repeat(90)}); // 101 bytes as JSON
        let small = json!({"a": 1}); // 7 bytes
        let mut results = vec![
            hit("d1", big.clone()),
            hit("d2", json!({})),
            hit("d3", big.clone()),
            hit("d4", small.clone()),
        ];
        apply(&mut results, true, 110);
        assert_eq!(kept(&results), [true, true, false, true]);
        assert!(results[2].metadata.is_empty());
        assert_eq!(results[3].metadata, *small.as_object().unwrap());

        let mut results = vec![hit("d1", big.clone()), hit("d4", small)];
        apply(&mut results, false, usize::MAX);
        assert_eq!(kept(&results), [false, false]);
        assert!(results.iter().all(|h| h.metadata.is_empty()));
    }

    #[test]
    fn the_omitted_flag_is_only_serialized_when_true() {
        let mut results = vec![hit("d1", json!({"k": "v"})), hit("d2", json!({"k": "w"}))];
        apply(&mut results, true, 10);
        let wire = serde_json::to_value(&results).unwrap();
        assert!(wire[0].get("metadata_omitted").is_none());
        assert_eq!(wire[1]["metadata_omitted"], true);
        assert_eq!(wire[1]["metadata"], json!({}));
    }
}
