//! Turning a sequence of token states into one sentence vector.

/// The pooling modes of sentence-transformers' `Pooling` module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The state of the first token (`[CLS]`).
    Cls,
    /// The mean over the real (unpadded) tokens: all-MiniLM-L6-v2's mode.
    Mean,
    /// The element-wise maximum over the real tokens.
    Max,
    /// The sum over the real tokens divided by the square root of their count.
    MeanSqrtLen,
}

impl Pooling {
    /// Pools `rows` (one row of `dim` floats per real token, padding already excluded).
    pub fn pool(self, rows: &[f32], dim: usize) -> Vec<f32> {
        let count = rows.len() / dim.max(1);
        if count == 0 {
            return vec![0.0; dim];
        }
        match self {
            Pooling::Cls => rows[..dim].to_vec(),
            Pooling::Max => {
                let mut out = rows[..dim].to_vec();
                for row in rows.chunks_exact(dim).skip(1) {
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o = o.max(v);
                    }
                }
                out
            }
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let mut out = vec![0.0f32; dim];
                for row in rows.chunks_exact(dim) {
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o += v;
                    }
                }
                let divisor = if self == Pooling::Mean {
                    count as f32
                } else {
                    (count as f32).sqrt()
                };
                out.iter_mut().for_each(|o| *o /= divisor);
                out
            }
        }
    }
}

/// Divides `vector` by its L2 norm in place and returns the norm (0 vectors stay 0).
pub fn l2_normalize(vector: &mut [f32]) -> f32 {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    // torch.nn.functional.normalize clamps the norm at 1e-12; do the same.
    let divisor = norm.max(1e-12);
    vector.iter_mut().for_each(|v| *v /= divisor);
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: [f32; 6] = [1.0, -2.0, 3.0, 4.0, 5.0, -6.0];

    #[test]
    fn mean_cls_max_sqrt() {
        assert_eq!(Pooling::Mean.pool(&ROWS, 2), vec![3.0, -4.0 / 3.0]);
        assert_eq!(Pooling::Cls.pool(&ROWS, 2), vec![1.0, -2.0]);
        assert_eq!(Pooling::Max.pool(&ROWS, 2), vec![5.0, 4.0]);
        let s = Pooling::MeanSqrtLen.pool(&ROWS, 2);
        assert!((s[0] - 9.0 / 3f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn empty_rows_pool_to_zero() {
        assert_eq!(Pooling::Mean.pool(&[], 3), vec![0.0; 3]);
    }

    #[test]
    fn normalize_returns_norm() {
        let mut v = vec![3.0, 4.0];
        assert_eq!(l2_normalize(&mut v), 5.0);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0, 0.0];
        assert_eq!(l2_normalize(&mut zero), 0.0);
        assert_eq!(zero, vec![0.0, 0.0]);
    }
}
