//! Late-interaction rescoring cost: MaxSim of one query against the 30 passages hybrid
//! search rescores, read from their stored int8 form, at semdex's passage size (128 tokens)
//! and at whole-document size (256), and the bytes each passage's token vectors take.
//!
//! `cargo bench --bench late`

use criterion::{Criterion, criterion_group, criterion_main};
use semdex::late::{MaxSim, PackedTokens, TokenMatrix};

const DIMENSION: usize = 384;
const RESCORED: usize = 30;
/// Kept query tokens of a typical question (stop words dropped).
const QUERY_TOKENS: usize = 8;

/// Deterministic pseudo-random unit rows.
fn rows(count: usize, seed: u64) -> TokenMatrix {
    let mut state = seed | 1;
    let values = (0..count * DIMENSION)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    TokenMatrix::from_rows(DIMENSION, values)
}

fn rescoring(c: &mut Criterion) {
    let query = rows(QUERY_TOKENS, 7);
    for tokens in [128usize, 256] {
        // About 70 % of a passage's tokens survive the filter (special tokens, punctuation
        // and stop words go).
        let kept = tokens * 7 / 10;
        let stored: Vec<Vec<u8>> = (0..RESCORED)
            .map(|i| PackedTokens::pack(&rows(kept, 100 + i as u64)).to_bytes())
            .collect();
        eprintln!(
            "{tokens}-token passages: {kept} kept tokens, {} bytes stored per passage",
            stored[0].len()
        );
        c.bench_function(&format!("max_sim 30 passages x {tokens} tokens"), |b| {
            b.iter(|| {
                let mut scorer = MaxSim::new(&query);
                stored
                    .iter()
                    .map(|bytes| scorer.score_stored(bytes).unwrap_or(0.0))
                    .sum::<f32>()
            })
        });
    }
}

criterion_group!(benches, rescoring);
criterion_main!(benches);
