//! The one trait every transformer implementation sits behind.

use super::error::Result;
use super::pooling::Pooling;

/// One sequence's result of a forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The pooled, not yet normalised sentence vector.
    pub pooled: Vec<f32>,
    /// Every token's final hidden state, row-major (`[tokens, hidden]`), when asked for: the
    /// token vectors of late interaction.
    pub tokens: Option<Vec<f32>>,
}

/// A transformer that turns token-id sequences into pooled sentence vectors.
///
/// Implementations differ in speed, not in results: each must agree with sentence-transformers.
pub trait Backend: Send + Sync {
    /// A short name for logs and benchmarks.
    fn name(&self) -> &'static str;

    /// One output per sequence, in input order; token states only when `keep_tokens`.
    /// Every sequence is non-empty and already fits the model's window.
    fn embed(&self, batch: &[&[u32]], pooling: Pooling, keep_tokens: bool) -> Result<Vec<Output>>;

    /// Whether a batch is padded to its longest sequence (so it costs `count × longest`
    /// tokens) rather than packed (costing the sum of the lengths).
    fn pads_batches(&self) -> bool;
}
