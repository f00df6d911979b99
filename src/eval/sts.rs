//! Sentence similarity quality: Spearman correlation between the encoder's cosine similarity
//! and human scores on an STS Benchmark file (what MTEB reports for STS-B).

use std::path::Path;

use crate::embed::{EmbedError, Encoder};

/// One scored sentence pair.
#[derive(Debug, Clone, PartialEq)]
pub struct StsPair {
    /// The human similarity score (0–5 in STS-B).
    pub gold: f64,
    /// The first sentence.
    pub first: String,
    /// The second sentence.
    pub second: String,
}

/// Why an STS run failed.
#[derive(Debug, thiserror::Error)]
pub enum StsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line lacks the score or a sentence.
    #[error("{path}:{line}: expected a score in column 5 and sentences in columns 6 and 7")]
    Format {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
    },
    /// The file holds fewer than two pairs, so no correlation exists.
    #[error("{0} holds fewer than two sentence pairs")]
    TooFew(String),
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct StsReport {
    /// Pairs scored.
    pub pairs: usize,
    /// Spearman rank correlation of cosine similarity with the gold scores.
    pub spearman: f64,
    /// Pearson correlation of the same.
    pub pearson: f64,
}

/// Reads an STS Benchmark file: tab-separated, no quoting, the gold score in column 5 and the
/// sentences in columns 6 and 7 (extra trailing columns are ignored).
pub fn read_pairs(path: &Path) -> Result<Vec<StsPair>, StsError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| StsError::Io {
        path: name.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let cols: Vec<&str> = line.split('\t').collect();
            let gold = cols.get(4).and_then(|g| g.trim().parse::<f64>().ok());
            match (gold, cols.get(5), cols.get(6)) {
                (Some(gold), Some(first), Some(second)) => Ok(StsPair {
                    gold,
                    first: first.to_string(),
                    second: second.to_string(),
                }),
                _ => Err(StsError::Format {
                    path: name.clone(),
                    line: i + 1,
                }),
            }
        })
        .collect()
}

/// Embeds every sentence of `pairs` and correlates each pair's cosine with its gold score.
pub fn evaluate(encoder: &Encoder, pairs: &[StsPair], source: &str) -> Result<StsReport, StsError> {
    if pairs.len() < 2 {
        return Err(StsError::TooFew(source.to_string()));
    }
    let texts: Vec<&str> = pairs
        .iter()
        .flat_map(|p| [p.first.as_str(), p.second.as_str()])
        .collect();
    let vectors = encoder.embed(&texts)?;
    let cosines: Vec<f64> = vectors
        .chunks_exact(2)
        .map(|pair| {
            pair[0]
                .unit
                .iter()
                .zip(&pair[1].unit)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        })
        .collect();
    let gold: Vec<f64> = pairs.iter().map(|p| p.gold).collect();
    Ok(StsReport {
        pairs: pairs.len(),
        spearman: pearson(&ranks(&cosines), &ranks(&gold)),
        pearson: pearson(&cosines, &gold),
    })
}

/// 1-based ranks, ties sharing their average rank (as scipy's `rankdata`).
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let average = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = average;
        }
        start = end;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    if va == 0.0 || vb == 0.0 {
        return 0.0;
    }
    cov / (va * vb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties_and_spearman_of_a_monotone_map_is_one() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        let x = [0.1, 0.5, 0.2, 0.9, 0.3];
        let y: Vec<f64> = x.iter().map(|v: &f64| v.powi(3) * 10.0).collect();
        assert!((pearson(&ranks(&x), &ranks(&y)) - 1.0).abs() < 1e-12);
        let reversed: Vec<f64> = x.iter().map(|v| -v).collect();
        assert!((pearson(&ranks(&x), &ranks(&reversed)) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn read_pairs_takes_columns_five_to_seven_and_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sts.csv");
        std::fs::write(
            &path,
            "a\tb\tc\td\t2.5\tOne.\tTwo.\textra\n\na\tb\tc\td\t4\tX\tY\n",
        )
        .unwrap();
        let pairs = read_pairs(&path).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].gold, 2.5);
        assert_eq!(
            (pairs[0].first.as_str(), pairs[0].second.as_str()),
            ("One.", "Two.")
        );
        std::fs::write(&path, "a\tb\tc\td\tnot-a-number\tOne.\tTwo.\n").unwrap();
        let err = read_pairs(&path).unwrap_err();
        assert!(err.to_string().contains(":1:"), "{err}");
    }
}
