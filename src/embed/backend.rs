//! The one trait every transformer implementation sits behind.

use super::error::Result;
use super::pooling::Pooling;

/// A transformer that turns token-id sequences into pooled sentence vectors.
///
/// Implementations differ in speed, not in results: each must agree with sentence-transformers.
pub trait Backend: Send + Sync {
    /// A short name for logs and benchmarks.
    fn name(&self) -> &'static str;

    /// Pooled, not yet normalised vectors, one per sequence, in input order.
    /// Every sequence is non-empty and already fits the model's window.
    fn embed(&self, batch: &[&[u32]], pooling: Pooling) -> Result<Vec<Vec<f32>>>;

    /// Whether a batch is padded to its longest sequence (so it costs `count × longest`
    /// tokens) rather than packed (costing the sum of the lengths).
    fn pads_batches(&self) -> bool;
}
