//! Combining ranked lists: the dense and lexical candidates of a hybrid query become one
//! ranking, by normalised score combination or by reciprocal rank; then the best of them are
//! rescored with a third signal, late interaction.

use std::collections::HashMap;

use crate::index::{Hit, VectorId};

/// How two candidate lists are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fusion {
    /// Each list's scores min-max normalised over its own candidates (a candidate absent from
    /// a list scores 0 there), then combined with weights: keeps how far apart candidates are.
    #[default]
    Convex,
    /// Reciprocal rank fusion (Cormack et al., k = 60): only ranks count.
    Rrf,
}

impl Fusion {
    /// A lowercase name for requests and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Convex => "convex",
            Self::Rrf => "rrf",
        }
    }
}

impl std::str::FromStr for Fusion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "convex" => Ok(Self::Convex),
            "rrf" => Ok(Self::Rrf),
            other => Err(format!(
                "unknown fusion {other:?}; expected \"convex\" or \"rrf\""
            )),
        }
    }
}

/// The RRF constant of the original paper, also Elasticsearch's and Qdrant's default.
const RRF_K: f32 = 60.0;

/// One candidate of a fused ranking, with the scores it came with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    /// The passage.
    pub id: VectorId,
    /// The combined score (what the ranking is sorted by).
    pub score: f32,
    /// Its cosine similarity, if the dense list had it.
    pub dense: Option<f32>,
    /// Its BM25 score, if the lexical list had it.
    pub lexical: Option<f32>,
    /// Its late-interaction (MaxSim) score, once rescored.
    pub late: Option<f32>,
}

/// The weights of the second stage: dense, lexical and late-interaction scores, each min-max
/// normalised over the rescored candidates. Chosen on SciFact train and our own question set
/// jointly: claims over abstracts want the first two, questions over news passages the third,
/// and this mix costs the former 0.001 nDCG@10 for +0.12 hit@1 on the latter
/// (benches/README.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RescoreWeights {
    /// Weight of the cosine similarity.
    pub dense: f32,
    /// Weight of BM25.
    pub lexical: f32,
    /// Weight of MaxSim.
    pub late: f32,
}

impl Default for RescoreWeights {
    fn default() -> Self {
        Self {
            dense: 0.3,
            lexical: 0.2,
            late: 0.5,
        }
    }
}

/// Reorders `candidates` (all of which have all three scores, missing ones counting as the
/// lowest) by the weighted sum of their min-max normalised scores, best first.
pub fn rescore(candidates: &mut [Fused], weights: RescoreWeights) {
    let scores = |f: fn(&Fused) -> Option<f32>| -> Vec<Hit> {
        candidates
            .iter()
            .filter_map(|c| f(c).map(|score| Hit { id: c.id, score }))
            .collect()
    };
    let dense = min_max(&scores(|c| c.dense));
    let lexical = min_max(&scores(|c| c.lexical));
    let late = min_max(&scores(|c| c.late));
    for c in candidates.iter_mut() {
        c.score = weights.dense * c.dense.map_or(0.0, &dense)
            + weights.lexical * c.lexical.map_or(0.0, &lexical)
            + weights.late * c.late.map_or(0.0, &late);
    }
    sort(candidates);
}

/// Merges two candidate lists (each best first) into one ranking, best first, ties by id.
/// `dense_weight` (0..=1) weighs the dense list against the lexical one.
pub fn fuse(dense: &[Hit], lexical: &[Hit], fusion: Fusion, dense_weight: f32) -> Vec<Fused> {
    let w = dense_weight.clamp(0.0, 1.0);
    let mut merged: HashMap<VectorId, Fused> = HashMap::with_capacity(dense.len() + lexical.len());
    let parts: [(&[Hit], f32, bool); 2] = [(dense, w, true), (lexical, 1.0 - w, false)];
    for (list, weight, is_dense) in parts {
        let normalise = min_max(list);
        for (rank, hit) in list.iter().enumerate() {
            let contribution = match fusion {
                Fusion::Convex => weight * normalise(hit.score),
                Fusion::Rrf => weight / (RRF_K + rank as f32 + 1.0),
            };
            let entry = merged.entry(hit.id).or_insert(Fused {
                id: hit.id,
                score: 0.0,
                dense: None,
                lexical: None,
                late: None,
            });
            entry.score += contribution;
            if is_dense {
                entry.dense = Some(hit.score);
            } else {
                entry.lexical = Some(hit.score);
            }
        }
    }
    let mut ranking: Vec<Fused> = merged.into_values().collect();
    sort(&mut ranking);
    ranking
}

/// Sorts best first, ties by ascending id (deterministic).
pub fn sort(ranking: &mut [Fused]) {
    ranking.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
}

/// Min-max normalisation over a list's scores; a list whose scores are all equal maps to 1.
pub fn min_max(list: &[Hit]) -> impl Fn(f32) -> f32 + use<> {
    let (lo, hi) = list
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| {
            (lo.min(h.score), hi.max(h.score))
        });
    move |s| {
        if hi > lo { (s - lo) / (hi - lo) } else { 1.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(pairs: &[(u64, f32)]) -> Vec<Hit> {
        pairs.iter().map(|&(id, score)| Hit { id, score }).collect()
    }

    #[test]
    fn convex_normalises_each_list_and_keeps_both_scores() {
        let dense = hits(&[(1, 0.9), (2, 0.7), (3, 0.5)]);
        let lexical = hits(&[(3, 12.0), (4, 6.0), (1, 2.0)]);
        let fused = fuse(&dense, &lexical, Fusion::Convex, 0.5);
        // 1: 0.5·1 + 0.5·0 = 0.5; 3: 0.5·0 + 0.5·1 = 0.5; 2: 0.5·0.5; 4: 0.5·0.4
        assert_eq!(fused.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 3, 2, 4]);
        assert!((fused[0].score - 0.5).abs() < 1e-6);
        assert_eq!(fused[0].dense, Some(0.9));
        assert_eq!(fused[0].lexical, Some(2.0));
        assert_eq!(fused[2].lexical, None, "2 was not a lexical candidate");
        let dense_only = fuse(&dense, &lexical, Fusion::Convex, 1.0);
        assert_eq!(dense_only[0].id, 1);
        assert_eq!(fuse(&dense, &lexical, Fusion::Convex, 0.0)[0].id, 3);
    }

    #[test]
    fn rrf_uses_ranks_only() {
        let dense = hits(&[(1, 0.9), (2, 0.89)]);
        let lexical = hits(&[(2, 30.0), (3, 1.0)]);
        let fused = fuse(&dense, &lexical, Fusion::Rrf, 0.5);
        assert_eq!(fused[0].id, 2, "ranked high in both lists");
        let expected = 0.5 / 62.0 + 0.5 / 61.0;
        assert!((fused[0].score - expected).abs() < 1e-7);
    }

    #[test]
    fn rescoring_weighs_three_normalised_signals() {
        let candidate = |id, dense, lexical, late| Fused {
            id,
            score: 0.0,
            dense: Some(dense),
            lexical: Some(lexical),
            late: Some(late),
        };
        let mut c = vec![
            candidate(1, 0.9, 10.0, 0.50),
            candidate(2, 0.8, 2.0, 0.70),
            candidate(3, 0.7, 6.0, 0.60),
        ];
        rescore(&mut c, RescoreWeights::default());
        // 1: .3·1 + .2·1 + .5·0 = .5; 2: .3·.5 + 0 + .5·1 = .65; 3: 0 + .2·.5 + .5·.5 = .35
        assert_eq!(c.iter().map(|f| f.id).collect::<Vec<_>>(), [2, 1, 3]);
        assert!((c[0].score - 0.65).abs() < 1e-5);
        let only_dense = RescoreWeights {
            dense: 1.0,
            lexical: 0.0,
            late: 0.0,
        };
        rescore(&mut c, only_dense);
        assert_eq!(c[0].id, 1);
    }

    #[test]
    fn one_empty_list_leaves_the_other_in_order() {
        let dense = hits(&[(5, 0.3), (6, 0.2)]);
        let fused = fuse(&dense, &[], Fusion::Convex, 0.5);
        assert_eq!(fused.iter().map(|f| f.id).collect::<Vec<_>>(), [5, 6]);
        assert!(fuse(&[], &[], Fusion::Rrf, 0.5).is_empty());
    }
}
