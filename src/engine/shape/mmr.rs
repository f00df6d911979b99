//! Maximal marginal relevance (Carbonell & Goldstein, 1998): re-ranks candidates so that each
//! next pick is relevant and unlike the picks before it, which keeps five neighbouring chunks
//! of one document that say the same thing from filling a result list.

use crate::index::dot;

/// The order in which MMR picks up to `take` of the candidates: indices into `relevance`
/// (candidates in rank order, any scale: normalised here to 0..1 over the candidates).
/// `vectors[i]` is candidate `i`'s unit vector (`None`: unknown, similar to nothing).
/// Each pick maximises `(1 - diversity) · relevance − diversity · (highest cosine with a
/// pick so far)`; `diversity` 0 keeps the rank order, ties go to the better-ranked candidate.
pub fn mmr_order(
    relevance: &[f32],
    vectors: &[Option<&[f32]>],
    diversity: f32,
    take: usize,
) -> Vec<usize> {
    let n = relevance.len().min(vectors.len());
    let (low, high) = relevance[..n]
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &s| {
            (l.min(s), h.max(s))
        });
    let spread = high - low;
    let normalised: Vec<f32> = relevance[..n]
        .iter()
        .map(|&s| {
            if spread > 0.0 && spread.is_finite() {
                (s - low) / spread
            } else {
                1.0
            }
        })
        .collect();
    let mut nearest = vec![f32::NEG_INFINITY; n];
    let mut picked = vec![false; n];
    let mut order = Vec::with_capacity(take.min(n));
    while order.len() < take.min(n) {
        let mut best: Option<(usize, f32)> = None;
        for i in (0..n).filter(|&i| !picked[i]) {
            let redundancy = if order.is_empty() {
                0.0
            } else {
                nearest[i].max(0.0)
            };
            let value = (1.0 - diversity) * normalised[i] - diversity * redundancy;
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((i, value));
            }
        }
        let Some((chosen, _)) = best else { break };
        picked[chosen] = true;
        order.push(chosen);
        if let Some(v) = vectors[chosen] {
            for i in (0..n).filter(|&i| !picked[i]) {
                if let Some(w) = vectors[i] {
                    nearest[i] = nearest[i].max(dot(v, w));
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_diversity_keeps_the_rank_order() {
        let a = [1.0, 0.0];
        let vectors = [Some(&a[..]), Some(&a[..]), Some(&a[..])];
        assert_eq!(mmr_order(&[0.9, 0.8, 0.7], &vectors, 0.0, 3), [0, 1, 2]);
        assert_eq!(mmr_order(&[0.9, 0.8, 0.7], &vectors, 0.0, 2), [0, 1]);
    }

    #[test]
    fn a_near_duplicate_gives_way_to_a_different_candidate() {
        let (a, b) = ([1.0, 0.0], [0.0, 1.0]);
        // Candidate 1 repeats candidate 0; candidate 2 is less relevant but different.
        let vectors = [Some(&a[..]), Some(&a[..]), Some(&b[..])];
        let relevance = [0.9, 0.89, 0.6];
        assert_eq!(mmr_order(&relevance, &vectors, 0.5, 3), [0, 2, 1]);
        // A small weight on diversity does not outweigh the relevance gap.
        assert_eq!(mmr_order(&relevance, &vectors, 0.1, 3), [0, 1, 2]);
        // Unknown vectors are similar to nothing; full diversity still starts with the best.
        assert_eq!(mmr_order(&relevance, &[None, None, None], 1.0, 3)[0], 0);
    }
}
