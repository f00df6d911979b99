//! Question answering hit rate: does a retrieved passage contain the answer, or come from the
//! page that answers the question?

use std::path::Path;

use serde::Deserialize;

use crate::engine::{Engine, EngineError, SearchRequest};

/// One question with the strings or the page that answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QaItem {
    /// The question.
    pub question: String,
    /// Any of these, found case-insensitively in a passage, answers it.
    #[serde(default)]
    pub answers: Vec<String>,
    /// The page that answers it, by [`page_key`] (`json` for `library/json.html` and for
    /// `_sources/library/json.rst.txt`): results are then ranked by page, each page counted
    /// once, at the rank of its best passage.
    #[serde(default)]
    pub page: Option<String>,
}

/// A document's page name: its file name without the extensions a page is published under
/// (`.html`, `.htm`, `.rst.txt`, `.txt`, `.md`, `.pdf`, `.docx`).
pub fn page_key(doc_id: &str) -> &str {
    let name = doc_id.rsplit('/').next().unwrap_or(doc_id);
    [".rst.txt", ".html", ".htm", ".txt", ".md", ".pdf", ".docx"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name)
}

/// Why a question file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QaError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not `{"question": str, "answers": [str]}`.
    #[error("{path}:{line}: {source}")]
    Json {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A line has an empty question, or neither answers nor a page, so it could never be
    /// scored.
    #[error("{path}:{line}: empty question, or neither answers nor a page")]
    Empty {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
    },
}

/// Reads `{"question": str, "answers": [str]}` lines.
pub fn load(path: &Path) -> Result<Vec<QaItem>, QaError> {
    let shown = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| QaError::Io {
        path: shown(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let item: QaItem = serde_json::from_str(l).map_err(|source| QaError::Json {
                path: shown(),
                line: n + 1,
                source,
            })?;
            if (item.answers.is_empty() && item.page.is_none()) || item.question.trim().is_empty() {
                return Err(QaError::Empty {
                    path: shown(),
                    line: n + 1,
                });
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
    /// The search mode that answered them.
    pub mode: String,
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

/// Asks every question through the engine with `request`'s mode and settings (its `k` is
/// replaced by 10).
pub fn evaluate(
    engine: &Engine,
    items: &[QaItem],
    request: &SearchRequest,
) -> Result<QaReport, EngineError> {
    let request = SearchRequest {
        k: 10,
        ..request.clone()
    };
    let (mut hits, mut reciprocal) = ([0usize; 3], 0.0);
    let mut missed = Vec::new();
    for item in items {
        let answers: Vec<String> = item.answers.iter().map(|a| a.to_lowercase()).collect();
        let results = engine.search(&item.question, &request)?;
        let rank = match &item.page {
            Some(page) => {
                let mut pages: Vec<&str> = Vec::new();
                for h in &results.hits {
                    let key = page_key(&h.doc_id);
                    if !pages.contains(&key) {
                        pages.push(key);
                    }
                }
                pages.iter().position(|p| p == page)
            }
            None => results.hits.iter().position(|h| {
                let text = h.text.to_lowercase();
                answers.iter().any(|a| text.contains(a))
            }),
        }
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
        mode: request.mode.as_str().to_string(),
        hit_1: hits[0] as f64 / n,
        hit_3: hits[1] as f64 / n,
        hit_5: hits[2] as f64 / n,
        mrr_10: reciprocal / n,
        missed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qa.jsonl");
        std::fs::write(
            &path,
            "{\"question\": \"Who?\", \"answers\": [\"Kim\"]}\n\n{\"question\": \"Where?\", \"answers\": []}\n",
        )
        .unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, QaError::Empty { line: 3, .. }), "{err}");
        std::fs::write(
            &path,
            "{\"question\": \"Who?\", \"answers\": [\"Kim\"]}\nnot json\n",
        )
        .unwrap();
        assert!(matches!(
            load(&path).unwrap_err(),
            QaError::Json { line: 2, .. }
        ));
        std::fs::write(
            &path,
            "{\"question\": \"Who?\", \"answers\": [\"Kim\", \"Putin\"]}\n",
        )
        .unwrap();
        assert_eq!(load(&path).unwrap()[0].answers, ["Kim", "Putin"]);
        std::fs::write(&path, "{\"question\": \"Who?\", \"page\": \"json\"}\n").unwrap();
        assert_eq!(load(&path).unwrap()[0].page.as_deref(), Some("json"));
        assert_eq!(page_key("a/library/json.html"), "json");
        assert_eq!(page_key("_sources/library/os.path.rst.txt"), "os.path");
        assert!(matches!(
            load(&dir.path().join("missing")).unwrap_err(),
            QaError::Io { .. }
        ));
    }
}
