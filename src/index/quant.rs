//! Vector quantisation: the frozen graph holds each vector as 8-bit codes (a quarter of its f32
//! size) and walks the graph on them; the few candidates it returns are rescored in f32.
//!
//! [`ScalarQuantizer`] learns, per dimension, the range the data spans and maps it onto 0..=255
//! (faiss's `SQ8`, Qdrant's scalar quantisation). A query is not decoded: its weights
//! `q[d] · step[d]` are themselves rounded to i8 with one scale, so a candidate's score is one
//! u8 × i8 dot product (a VNNI instruction per 64 dimensions) that orders candidates as their
//! true dot products do, up to rounding. [`BinaryQuantizer`] (one sign bit per dimension) is
//! measured by `semdex bench ann --binary` and not used to serve: with MiniLM's 384 dimensions
//! it loses too much to be rescued by rescoring (benches/README.md).

use serde::{Deserialize, Serialize};

/// Per-dimension affine 8-bit codes: `value ≈ lo[d] + step[d] · code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalarQuantizer {
    lo: Vec<f32>,
    step: Vec<f32>,
}

/// A query prepared for one quantizer: i8 weights whose dot product with a vector's codes
/// ranks vectors as their dot products with the query do.
#[derive(Debug, Clone)]
pub struct QuantizedQuery {
    pub(crate) weights: Vec<i8>,
}

impl ScalarQuantizer {
    /// Learns each dimension's range from `vectors` (all of the same length `dimension`).
    pub fn learn<'a>(dimension: usize, vectors: impl IntoIterator<Item = &'a [f32]>) -> Self {
        let mut lo = vec![f32::INFINITY; dimension];
        let mut hi = vec![f32::NEG_INFINITY; dimension];
        for v in vectors {
            for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(v) {
                *l = l.min(x);
                *h = h.max(x);
            }
        }
        let step = lo
            .iter_mut()
            .zip(&hi)
            .map(|(l, &h)| {
                if !l.is_finite() || !h.is_finite() {
                    // No vectors: any range will do.
                    *l = -1.0;
                    return 2.0 / 255.0;
                }
                // A constant dimension still needs a non-zero step.
                ((h - *l) / 255.0).max(f32::MIN_POSITIVE)
            })
            .collect();
        Self { lo, step }
    }

    /// The vector length.
    pub fn dimension(&self) -> usize {
        self.lo.len()
    }

    /// Writes the codes of `vector` into `out` (both `dimension` long); values outside the
    /// learned range are clamped to it.
    pub fn encode(&self, vector: &[f32], out: &mut [u8]) {
        for (((o, &x), &lo), &step) in out.iter_mut().zip(vector).zip(&self.lo).zip(&self.step) {
            *o = ((x - lo) / step).round().clamp(0.0, 255.0) as u8;
        }
    }

    /// The query's weights: `q[d] · step[d]`, scaled so the largest magnitude is 127.
    pub fn prepare(&self, query: &[f32]) -> QuantizedQuery {
        let scaled: Vec<f32> = query.iter().zip(&self.step).map(|(q, s)| q * s).collect();
        let largest = scaled.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let scale = if largest > 0.0 { 127.0 / largest } else { 0.0 };
        let weights = scaled
            .iter()
            .map(|w| (w * scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        QuantizedQuery { weights }
    }
}

/// One bit per dimension (its sign); candidates are ranked by the number of agreeing signs.
#[derive(Debug, Clone, Copy)]
pub struct BinaryQuantizer {
    dimension: usize,
}

impl BinaryQuantizer {
    /// For vectors of `dimension`.
    pub fn new(dimension: usize) -> Self {
        Self { dimension }
    }

    /// 64-bit words per code.
    pub fn words(&self) -> usize {
        self.dimension.div_ceil(64)
    }

    /// The sign bits of `vector`, appended to `out`.
    pub fn encode(&self, vector: &[f32], out: &mut Vec<u64>) {
        for chunk in vector.chunks(64) {
            let mut word = 0u64;
            for (bit, &x) in chunk.iter().enumerate() {
                if x > 0.0 {
                    word |= 1 << bit;
                }
            }
            out.push(word);
        }
    }

    /// How many signs two codes share: higher is closer.
    pub fn agreement(&self, a: &[u64], b: &[u64]) -> u32 {
        let differing: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
        self.dimension as u32 - differing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::kernels::dot_u8_i8;

    #[test]
    fn codes_rank_like_the_vectors() {
        let dim = 48;
        let vectors: Vec<Vec<f32>> = (0..200)
            .map(|i| {
                (0..dim)
                    .map(|d| ((i * 31 + d * 17) % 97) as f32 / 97.0 - 0.5 + (d as f32) * 0.01)
                    .collect()
            })
            .collect();
        let q = ScalarQuantizer::learn(dim, vectors.iter().map(Vec::as_slice));
        let mut codes = vec![0u8; dim];
        for v in &vectors {
            q.encode(v, &mut codes);
            let decoded: Vec<f32> = codes
                .iter()
                .zip(&q.lo)
                .zip(&q.step)
                .map(|((&c, lo), step)| lo + step * f32::from(c))
                .collect();
            for ((x, y), step) in v.iter().zip(&decoded).zip(&q.step) {
                assert!((x - y).abs() <= step / 2.0 + 1e-6);
            }
        }
        // The integer score orders vectors as the true dot product does (for well separated
        // pairs: the quantisation error is far smaller than their gap).
        let query = &vectors[3];
        let prepared = q.prepare(query);
        let exact: Vec<f32> = vectors
            .iter()
            .map(|v| v.iter().zip(query).map(|(a, b)| a * b).sum())
            .collect();
        let approx: Vec<i32> = vectors
            .iter()
            .map(|v| {
                q.encode(v, &mut codes);
                dot_u8_i8(&codes, &prepared.weights)
            })
            .collect();
        for i in 0..vectors.len() {
            for j in 0..vectors.len() {
                if exact[i] > exact[j] + 0.2 {
                    assert!(approx[i] > approx[j], "{i} vs {j}");
                }
            }
        }
        // Values past the learned range are clamped, not wrapped.
        q.encode(&vec![10.0; dim], &mut codes);
        assert!(codes.iter().all(|&c| c == 255));
        q.encode(&vec![-10.0; dim], &mut codes);
        assert!(codes.iter().all(|&c| c == 0));
    }

    #[test]
    fn an_empty_set_and_constant_dimensions_still_encode() {
        let q = ScalarQuantizer::learn(4, std::iter::empty());
        let mut codes = [0u8; 4];
        q.encode(&[0.5, -0.5, 0.0, 1.0], &mut codes);
        let constant = [[0.25f32, 1.0], [0.25, -1.0]];
        let q = ScalarQuantizer::learn(2, constant.iter().map(|v| v.as_slice()));
        let mut codes = [0u8; 2];
        q.encode(&[0.25, 0.0], &mut codes);
        assert_eq!(codes[0], 0);
        assert!(q.prepare(&[0.0, 0.0]).weights.iter().all(|&w| w == 0));
    }

    #[test]
    fn binary_codes_count_agreeing_signs() {
        let b = BinaryQuantizer::new(70);
        assert_eq!(b.words(), 2);
        let x: Vec<f32> = (0..70)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let mut y = x.clone();
        y[5] = -y[5];
        y[69] = -y[69];
        let (mut cx, mut cy) = (Vec::new(), Vec::new());
        b.encode(&x, &mut cx);
        b.encode(&y, &mut cy);
        assert_eq!(b.agreement(&cx, &cx), 70);
        assert_eq!(b.agreement(&cx, &cy), 68);
    }
}
