//! Exact search: every vector scored, in parallel for large sets.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;

use super::{Filter, Hit, IndexError, Result, VectorId, VectorIndex, dot, rank};

/// All vectors in one contiguous matrix; exact top-k by brute force.
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

    /// The vector length.
    pub fn dimension(&self) -> usize {
        self.dimension
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

    /// Exact top-k among the given ids only (unknown ids are skipped): the fast path for
    /// selective filters.
    pub fn search_among(&self, query: &[f32], ids: &[VectorId], k: usize) -> Vec<Hit> {
        let score = |&id: &VectorId| {
            self.get(id).map(|v| Hit {
                id,
                score: dot(query, v),
            })
        };
        let hits: Vec<Hit> = if ids.len() >= PARALLEL_FROM {
            ids.par_iter().filter_map(score).collect()
        } else {
            ids.iter().filter_map(score).collect()
        };
        top_k(hits, k)
    }

    /// Bytes held by the vectors and ids.
    pub fn memory_bytes(&self) -> usize {
        self.data.len() * 4 + self.ids.len() * (8 + 8 + 8)
    }
}

/// Top-k without sorting everything: partial selection, then a sort of the k survivors.
fn top_k(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    if k == 0 {
        return Vec::new();
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, |a, b| {
            b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
        });
        hits.truncate(k);
    }
    rank(hits, k)
}

impl VectorIndex for FlatIndex {
    fn kind(&self) -> &'static str {
        "exact"
    }

    fn add(&mut self, items: &[(VectorId, &[f32])]) -> Result<()> {
        for (id, v) in items {
            if v.len() != self.dimension {
                return Err(IndexError::Dimension {
                    expected: self.dimension,
                    got: v.len(),
                });
            }
            if self.positions.contains_key(id) {
                return Err(IndexError::DuplicateId(*id));
            }
        }
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

    fn search(&self, query: &[f32], k: usize, _ef: usize, filter: Option<Filter<'_>>) -> Vec<Hit> {
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
        top_k(hits, k)
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn save(&self, _dir: &Path) -> Result<()> {
        // The store holds every vector; the flat index is rebuilt from it on start.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let hits = index.search(&q, 3, 0, None);
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            [10, 13, 11],
            "tie broken by id"
        );
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        let odd = |id: VectorId| id % 2 == 1;
        assert_eq!(
            index
                .search(&q, 5, 0, Some(&odd))
                .iter()
                .map(|h| h.id)
                .collect::<Vec<_>>(),
            [13, 11]
        );
        assert_eq!(
            index
                .search_among(&q, &[12, 11, 99], 5)
                .iter()
                .map(|h| h.id)
                .collect::<Vec<_>>(),
            [11, 12]
        );
        assert_eq!(index.remove(&[10, 99]), 1);
        assert_eq!(index.len(), 3);
        assert_eq!(
            index.get(13).unwrap(),
            vs[3].as_slice(),
            "moved row still found"
        );
        assert_eq!(index.search(&q, 1, 0, None)[0].id, 13);
        assert!(matches!(
            index.add(&[(13, &vs[0])]),
            Err(IndexError::DuplicateId(13))
        ));
        assert!(matches!(
            index.add(&[(20, &[1.0][..])]),
            Err(IndexError::Dimension { .. })
        ));
        assert!(index.search(&q, 0, 0, None).is_empty());
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
