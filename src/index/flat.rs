//! Exact search: every vector scored, in parallel for large sets.

use std::collections::HashMap;

use rayon::prelude::*;

use super::{
    Filter, Hit, Result, SearchParams, VectorId, VectorIndex, check_new, check_query, dot, top_k,
};

/// All vectors in one contiguous matrix; exact top-k by brute force. The ground truth of
/// recall measurements.
#[derive(Debug, Clone)]
pub struct FlatIndex {
    dimension: usize,
    ids: Vec<VectorId>,
    data: Vec<f32>,
    positions: HashMap<VectorId, usize>,
}

/// Below this many vectors a search runs on one thread.
const PARALLEL_FROM: usize = 16_384;

impl FlatIndex {
    /// An empty index of `dimension`-long vectors.
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension,
            ids: Vec::new(),
            data: Vec::new(),
            positions: HashMap::new(),
        }
    }

    /// The stored vector of `id`.
    pub fn get(&self, id: VectorId) -> Option<&[f32]> {
        self.positions
            .get(&id)
            .map(|&p| &self.data[p * self.dimension..(p + 1) * self.dimension])
    }

    /// Whether `id` is indexed.
    pub fn contains(&self, id: VectorId) -> bool {
        self.positions.contains_key(&id)
    }

    /// Every (id, vector) pair, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (VectorId, &[f32])> {
        self.ids
            .iter()
            .copied()
            .zip(self.data.chunks_exact(self.dimension.max(1)))
    }

    /// Bytes held by the vectors and ids.
    pub fn memory_bytes(&self) -> usize {
        self.data.len() * 4 + self.ids.len() * (8 + 8 + 8)
    }
}

impl VectorIndex for FlatIndex {
    fn kind(&self) -> &'static str {
        "exact"
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn add(&mut self, items: &[(VectorId, &[f32])]) -> Result<()> {
        check_new(items, self.dimension, |id| self.positions.contains_key(&id))?;
        self.data.reserve(items.len() * self.dimension);
        for (id, v) in items {
            self.positions.insert(*id, self.ids.len());
            self.ids.push(*id);
            self.data.extend_from_slice(v);
        }
        Ok(())
    }

    fn remove(&mut self, ids: &[VectorId]) -> usize {
        let d = self.dimension;
        let mut removed = 0;
        for id in ids {
            let Some(p) = self.positions.remove(id) else {
                continue;
            };
            let last = self.ids.len() - 1;
            if p != last {
                self.ids.swap(p, last);
                self.data.copy_within(last * d..(last + 1) * d, p * d);
                self.positions.insert(self.ids[p], p);
            }
            self.ids.pop();
            self.data.truncate(last * d);
            removed += 1;
        }
        removed
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        _params: SearchParams,
        filter: Option<Filter<'_>>,
    ) -> Result<Vec<Hit>> {
        check_query(query, self.dimension)?;
        let d = self.dimension;
        let score = |(i, &id): (usize, &VectorId)| {
            if filter.is_some_and(|f| !f(id)) {
                return None;
            }
            Some(Hit {
                id,
                score: dot(query, &self.data[i * d..(i + 1) * d]),
            })
        };
        let hits: Vec<Hit> = if self.ids.len() >= PARALLEL_FROM {
            self.ids.par_iter().enumerate().filter_map(score).collect()
        } else {
            self.ids.iter().enumerate().filter_map(score).collect()
        };
        Ok(top_k(hits, k))
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexError;

    const EXACT: SearchParams = SearchParams { ef: 0, exact: true };

    fn unit(x: f32, y: f32) -> Vec<f32> {
        let n = (x * x + y * y).sqrt();
        vec![x / n, y / n]
    }

    #[test]
    fn exact_top_k_with_ties_filters_and_removal() {
        let mut index = FlatIndex::new(2);
        let vs = [
            unit(1.0, 0.0),
            unit(1.0, 1.0),
            unit(0.0, 1.0),
            unit(1.0, 0.0),
        ];
        let items: Vec<(VectorId, &[f32])> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64 + 10, v.as_slice()))
            .collect();
        index.add(&items).unwrap();
        let q = unit(1.0, 0.0);
        let hits = index.search(&q, 3, EXACT, None).unwrap();
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            [10, 13, 11],
            "tie broken by id"
        );
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        let odd = |id: VectorId| id % 2 == 1;
        assert_eq!(
            index
                .search(&q, 5, EXACT, Some(&odd))
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect::<Vec<_>>(),
            [13, 11]
        );
        assert_eq!(index.remove(&[10, 99]), 1);
        assert_eq!(index.len(), 3);
        assert_eq!(
            index.get(13).unwrap(),
            vs[3].as_slice(),
            "moved row still found"
        );
        assert_eq!(index.search(&q, 1, EXACT, None).unwrap()[0].id, 13);
        assert!(matches!(
            index.add(&[(13, &vs[0])]),
            Err(IndexError::DuplicateId(13))
        ));
        assert!(matches!(
            index.add(&[(20, &[1.0][..])]),
            Err(IndexError::Dimension { .. })
        ));
        assert!(index.search(&q, 0, EXACT, None).unwrap().is_empty());
        assert!(matches!(
            index.search(&[1.0], 1, EXACT, None),
            Err(IndexError::Dimension {
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            index.search(&[f32::NAN, 0.0], 1, EXACT, None),
            Err(IndexError::NonFinite)
        ));
        let len = index.len();
        assert!(matches!(
            index.add(&[(30, &vs[0]), (30, &vs[1])]),
            Err(IndexError::DuplicateId(30))
        ));
        assert_eq!(index.len(), len, "a rejected batch adds nothing");
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
