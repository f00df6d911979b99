//! Late interaction: scoring a passage by MaxSim over the embedding model's own token vectors
//! (the scoring of ColBERT, with the sentence model unchanged: no new weights).
//!
//! The forward pass that mean-pools a passage already computes one vector per token; those are
//! kept, minus the tokens that carry little meaning (special tokens, punctuation, stop words),
//! unit-normalised and stored as int8 with a scale per token (a quarter of f32, with no
//! measurable loss: benches/README.md). A query's MaxSim with a passage is the mean, over the
//! query's kept tokens, of the best cosine with any of the passage's tokens: it rewards a
//! passage that answers each part of a question, where mean pooling blurs the parts together.

use crate::embed::{TextTokenizer, TokenStates, l2_normalize};

/// English words too common to carry meaning: the lexical index's list, so that both scorers
/// agree on what a stop word is.
use crate::lexical::analyzer::STOP_WORDS;

/// Which token ids late interaction ignores: special tokens, tokens with no letter or digit
/// (punctuation), and whole-word stop words.
#[derive(Debug, Clone)]
pub struct TokenFilter {
    drop: Vec<bool>,
}

impl TokenFilter {
    /// The filter for a model's vocabulary.
    pub fn new(tokenizer: &TextTokenizer) -> Self {
        let vocabulary = tokenizer.vocabulary();
        let size = vocabulary
            .iter()
            .map(|(id, _, _)| *id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut drop = vec![false; size];
        for (id, text, special) in vocabulary {
            // WordPiece marks a word's continuation with "##"; the rest is the text.
            let (continuation, word) = match text.strip_prefix("##") {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            let punctuation = !word.chars().any(char::is_alphanumeric);
            let stop = !continuation && STOP_WORDS.contains(&word);
            drop[id as usize] = special || punctuation || stop;
        }
        Self { drop }
    }

    /// Whether token `id` counts in MaxSim.
    pub fn keep(&self, id: u32) -> bool {
        !self.drop.get(id as usize).copied().unwrap_or(true)
    }
}

/// The kept token vectors of one text, each at unit length, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenMatrix {
    dimension: usize,
    rows: Vec<f32>,
}

impl TokenMatrix {
    /// The kept tokens of an input's token states.
    pub fn from_states(states: &TokenStates, filter: &TokenFilter) -> Self {
        let dimension = states.states.len() / states.ids.len().max(1);
        let mut rows = Vec::with_capacity(states.states.len());
        for (id, row) in states
            .ids
            .iter()
            .zip(states.states.chunks_exact(dimension.max(1)))
        {
            if filter.keep(*id) {
                let start = rows.len();
                rows.extend_from_slice(row);
                l2_normalize(&mut rows[start..]);
            }
        }
        Self { dimension, rows }
    }

    /// Token vectors given row after row (each `dimension` long), brought to unit length:
    /// for token vectors that come from elsewhere than this crate's encoder.
    pub fn from_rows(dimension: usize, mut rows: Vec<f32>) -> Self {
        let dimension = dimension.max(1);
        rows.truncate(rows.len() / dimension * dimension);
        for row in rows.chunks_exact_mut(dimension) {
            l2_normalize(row);
        }
        Self { dimension, rows }
    }

    /// How many tokens were kept.
    pub fn len(&self) -> usize {
        self.rows.len() / self.dimension.max(1)
    }

    /// Whether no token was kept (a text of stop words and punctuation).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dimension..(i + 1) * self.dimension]
    }
}

/// A passage's token vectors as stored: per token, an f16 scale and `dimension` int8 codes
/// (`value ≈ code · scale`).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedTokens {
    dimension: usize,
    scales: Vec<f32>,
    codes: Vec<i8>,
}

/// First byte of the stored form: the layout's version.
const PACKED_V1: u8 = 1;

impl PackedTokens {
    /// Quantises unit token vectors: each row scaled so that its largest magnitude is 127.
    pub fn pack(matrix: &TokenMatrix) -> Self {
        let d = matrix.dimension;
        let mut scales = Vec::with_capacity(matrix.len());
        let mut codes = Vec::with_capacity(matrix.rows.len());
        for i in 0..matrix.len() {
            let row = matrix.row(i);
            let largest = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            // The scale is stored as f16: round-trip it first so codes match what is read.
            let scale = half::f16::from_f32(largest / 127.0).to_f32();
            scales.push(scale);
            codes.extend(row.iter().map(|v| {
                if scale > 0.0 {
                    (v / scale).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                }
            }));
        }
        debug_assert_eq!(codes.len(), scales.len() * d);
        Self {
            dimension: d,
            scales,
            codes,
        }
    }

    /// How many tokens it holds.
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// The stored form: version, dimension (u16), rows (u32), f16 scales, int8 codes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(7 + self.scales.len() * 2 + self.codes.len());
        out.push(PACKED_V1);
        out.extend_from_slice(&(self.dimension as u16).to_le_bytes());
        out.extend_from_slice(&(self.scales.len() as u32).to_le_bytes());
        for s in &self.scales {
            out.extend_from_slice(&half::f16::from_f32(*s).to_le_bytes());
        }
        out.extend(self.codes.iter().map(|c| *c as u8));
        out
    }

    /// Reads the stored form; `None` if it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (dimension, rows, body) = packed_header(bytes)?;
        let (scales, codes) = body.split_at(rows * 2);
        Some(Self {
            dimension,
            scales: scales
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            codes: codes_as_i8(codes).to_vec(),
        })
    }
}

/// The mean over the query's tokens of the best cosine with any passage token; `None` when
/// either side has no token (nothing to compare) or their dimensions differ.
pub fn max_sim(query: &TokenMatrix, passage: &PackedTokens) -> Option<f32> {
    MaxSim::new(query).score_codes(passage.dimension, &passage.scales, &passage.codes)
}

/// MaxSim of one query against many passages, read straight from their stored bytes. The
/// query's token vectors are quantised to int8 like the passages', so that each pair's dot
/// product is an integer one (no decoding, no float matrix): 30 passages of 128 tokens take
/// a fraction of a millisecond (`cargo bench --bench late`).
pub struct MaxSim {
    dimension: usize,
    query_codes: Vec<i8>,
    query_scales: Vec<f32>,
    scales: Vec<f32>,
    best: Vec<f32>,
}

impl MaxSim {
    /// A scorer for `query`.
    pub fn new(query: &TokenMatrix) -> Self {
        let packed = PackedTokens::pack(query);
        Self {
            dimension: packed.dimension,
            query_codes: packed.codes,
            query_scales: packed.scales,
            scales: Vec::new(),
            best: Vec::new(),
        }
    }

    /// MaxSim with a passage in its stored form ([`PackedTokens::to_bytes`]); `None` when the
    /// bytes are not one, or either side has no token.
    pub fn score_stored(&mut self, bytes: &[u8]) -> Option<f32> {
        let (dimension, rows, body) = packed_header(bytes)?;
        let (scales, codes) = body.split_at(rows * 2);
        let mut decoded_scales = std::mem::take(&mut self.scales);
        decoded_scales.clear();
        decoded_scales.extend(
            scales
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        );
        // The stored codes are int8 written as bytes: reinterpret, do not copy.
        let score = self.score_codes(dimension, &decoded_scales, codes_as_i8(codes));
        self.scales = decoded_scales;
        score
    }

    /// MaxSim with rows `rows` of a passage in its stored form: how well one part of a
    /// passage (a sentence) answers the query, for highlights. `None` as for
    /// [`Self::score_stored`], or when the rows lie outside the stored matrix.
    pub fn score_stored_rows(&mut self, bytes: &[u8], rows: std::ops::Range<usize>) -> Option<f32> {
        let (dimension, count, body) = packed_header(bytes)?;
        if rows.is_empty() || rows.end > count {
            return None;
        }
        let (scales, codes) = body.split_at(count * 2);
        let mut decoded_scales = std::mem::take(&mut self.scales);
        decoded_scales.clear();
        decoded_scales.extend(
            scales[rows.start * 2..rows.end * 2]
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        );
        let codes = &codes[rows.start * dimension..rows.end * dimension];
        let score = self.score_codes(dimension, &decoded_scales, codes_as_i8(codes));
        self.scales = decoded_scales;
        score
    }

    fn score_codes(&mut self, d: usize, scales: &[f32], codes: &[i8]) -> Option<f32> {
        if self.query_scales.is_empty() || scales.is_empty() || self.dimension != d {
            return None;
        }
        self.best.clear();
        self.best.resize(self.query_scales.len(), f32::NEG_INFINITY);
        crate::embed::int8_best_matches(
            codes,
            scales,
            &self.query_codes,
            &self.query_scales,
            &mut self.best,
        );
        Some(self.best.iter().sum::<f32>() / self.best.len() as f32)
    }
}

/// How many token vectors a stored matrix holds; `None` when the bytes are not one.
pub fn stored_rows(bytes: &[u8]) -> Option<usize> {
    packed_header(bytes).map(|(_, rows, _)| rows)
}

/// The dimension, row count and body (scales, then codes) of a stored matrix, checked.
fn packed_header(bytes: &[u8]) -> Option<(usize, usize, &[u8])> {
    let (&version, rest) = bytes.split_first()?;
    if version != PACKED_V1 || rest.len() < 6 {
        return None;
    }
    let dimension = u16::from_le_bytes([rest[0], rest[1]]) as usize;
    let rows = u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize;
    let body = &rest[6..];
    (dimension > 0 && body.len() == rows * 2 + rows * dimension).then_some((dimension, rows, body))
}

/// Bytes read as the int8 codes they were written from.
fn codes_as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment, and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[f32]]) -> TokenMatrix {
        let mut out = Vec::new();
        for r in rows {
            let mut v = r.to_vec();
            l2_normalize(&mut v);
            out.extend(v);
        }
        TokenMatrix {
            dimension: rows[0].len(),
            rows: out,
        }
    }

    #[test]
    fn max_sim_agrees_with_pairwise_dot_products_at_full_size() {
        // Deterministic pseudo-random rows of the model's width.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        };
        let mut rows = |n: usize| -> Vec<Vec<f32>> {
            (0..n).map(|_| (0..384).map(|_| next()).collect()).collect()
        };
        let query_rows = rows(11);
        let passage_rows = rows(97);
        fn as_refs(r: &[Vec<f32>]) -> Vec<&[f32]> {
            r.iter().map(Vec::as_slice).collect()
        }
        let query = matrix(&as_refs(&query_rows));
        let packed = PackedTokens::pack(&matrix(&as_refs(&passage_rows)));
        let decoded: Vec<Vec<f32>> = packed
            .codes
            .chunks_exact(384)
            .zip(&packed.scales)
            .map(|(c, s)| c.iter().map(|v| f32::from(*v) * s).collect())
            .collect();
        let naive = (0..query.len())
            .map(|i| {
                decoded
                    .iter()
                    .map(|p| crate::index::dot(query.row(i), p))
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .sum::<f32>()
            / query.len() as f32;
        let fast = max_sim(&query, &packed).unwrap();
        // Both sides are int8 here; the naive sum keeps the query in f32.
        assert!((fast - naive).abs() < 5e-3, "{fast} vs {naive}");
    }

    #[test]
    fn max_sim_is_the_mean_best_match_and_survives_packing() {
        let query = matrix(&[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]]);
        let passage = matrix(&[&[1.0, 0.0, 0.0], &[0.0, 0.6, 0.8], &[0.0, 0.0, 1.0]]);
        let packed = PackedTokens::pack(&passage);
        let score = max_sim(&query, &packed).unwrap();
        assert!((score - (1.0 + 0.6) / 2.0).abs() < 0.01, "{score}");
        let back = PackedTokens::from_bytes(&packed.to_bytes()).unwrap();
        assert_eq!(back, packed);
        assert_eq!(back.len(), 3);
        let empty = matrix(&[&[1.0, 0.0, 0.0]]);
        let none = TokenMatrix {
            dimension: 3,
            rows: Vec::new(),
        };
        assert!(max_sim(&none, &packed).is_none());
        assert!(max_sim(&empty, &PackedTokens::pack(&none)).is_none());
        assert!(PackedTokens::from_bytes(&[9, 0, 0]).is_none());
        assert!(PackedTokens::from_bytes(&packed.to_bytes()[..10]).is_none());
    }

    #[test]
    fn rows_of_a_stored_matrix_score_as_that_matrix_alone() {
        let query = matrix(&[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]]);
        let rows: [&[f32]; 3] = [&[1.0, 0.0, 0.0], &[0.0, 0.6, 0.8], &[0.0, 0.0, 1.0]];
        let stored = PackedTokens::pack(&matrix(&rows)).to_bytes();
        let alone = PackedTokens::pack(&matrix(&rows[1..3]));
        let mut scorer = MaxSim::new(&query);
        let part = scorer.score_stored_rows(&stored, 1..3).unwrap();
        assert!(
            (part - max_sim(&query, &alone).unwrap()).abs() < 1e-6,
            "{part}"
        );
        assert!(scorer.score_stored_rows(&stored, 2..4).is_none());
        assert!(scorer.score_stored_rows(&stored, 1..1).is_none());
    }

    #[test]
    fn int8_codes_stay_close_to_the_vectors() {
        let row: Vec<f32> = (0..384)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let m = matrix(&[&row]);
        let packed = PackedTokens::pack(&m);
        let q = matrix(&[&row]);
        let self_score = max_sim(&q, &packed).unwrap();
        assert!((self_score - 1.0).abs() < 1e-3, "{self_score}");
    }
}
