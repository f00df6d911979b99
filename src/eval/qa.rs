//! Question answering hit rate: does a retrieved passage contain the answer?

use std::path::Path;

use serde::Deserialize;

use crate::engine::{Engine, EngineError, SearchRequest};

/// One question with the strings that answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QaItem {
    /// The question.
    pub question: String,
    /// Any of these, found case-insensitively in a passage, answers it.
    pub answers: Vec<String>,
}

/// Reads `{"question": str, "answers": [str]}` lines.
pub fn load(path: &Path) -> Result<Vec<QaItem>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let item: QaItem = serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            if item.answers.is_empty() || item.question.trim().is_empty() {
                return Err(format!(
                    "{}:{}: empty question or answers",
                    path.display(),
                    n + 1
                ));
            }
            Ok(item)
        })
        .collect()
}

/// Hit rates and MRR over a question set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QaReport {
    /// Questions asked.
    pub questions: usize,
    /// Share with an answer in the top passage.
    #[serde(rename = "hit@1")]
    pub hit_1: f64,
    /// Share with an answer in the top 3.
    #[serde(rename = "hit@3")]
    pub hit_3: f64,
    /// Share with an answer in the top 5.
    #[serde(rename = "hit@5")]
    pub hit_5: f64,
    /// Mean reciprocal rank of the first answering passage within the top 10.
    #[serde(rename = "mrr@10")]
    pub mrr_10: f64,
    /// Questions with no answer in the top 5.
    pub missed: Vec<String>,
}

/// Asks every question through the engine (exact or HNSW as the engine decides).
pub fn evaluate(engine: &Engine, items: &[QaItem]) -> Result<QaReport, EngineError> {
    let request = SearchRequest {
        k: 10,
        ..SearchRequest::default()
    };
    let (mut hits, mut reciprocal) = ([0usize; 3], 0.0);
    let mut missed = Vec::new();
    for item in items {
        let answers: Vec<String> = item.answers.iter().map(|a| a.to_lowercase()).collect();
        let results = engine.search(&item.question, &request)?;
        let rank = results
            .hits
            .iter()
            .position(|h| {
                let text = h.text.to_lowercase();
                answers.iter().any(|a| text.contains(a))
            })
            .map(|p| p + 1);
        for (slot, cut) in [1, 3, 5].into_iter().enumerate() {
            if rank.is_some_and(|r| r <= cut) {
                hits[slot] += 1;
            }
        }
        if rank.is_none_or(|r| r > 5) {
            missed.push(item.question.clone());
        }
        reciprocal += rank.map_or(0.0, |r| 1.0 / r as f64);
    }
    let n = items.len().max(1) as f64;
    Ok(QaReport {
        questions: items.len(),
        hit_1: hits[0] as f64 / n,
        hit_3: hits[1] as f64 / n,
        hit_5: hits[2] as f64 / n,
        mrr_10: reciprocal / n,
        missed,
    })
}
