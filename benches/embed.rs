//! Encoder speed: passages/s for ~128- and ~256-token passages at batch 1, 8 and 32, and the
//! latency of one short query (≤ 16 tokens), tokenization included.
//!
//! `cargo bench --bench embed`; `SEMDEX_BENCH_BACKENDS=packed,candle` adds the stock
//! candle-transformers path for comparison, `SEMDEX_BENCH_PRECISIONS=f32` leaves out int8 and
//! `SEMDEX_KERNELS=avx2` forces a narrower kernel path. Figures: benches/README.md.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use semdex::embed::{BackendKind, Encoder, EncoderOptions, Precision};
use semdex::eval::speed::{SHORT_QUERIES, passages_of_tokens};

/// As the binary does: the forward pass is measured with the allocator it runs with.
#[global_allocator]
static GLOBAL: semdex::alloc::CountingMimalloc = semdex::alloc::CountingMimalloc;

const SEED: &str = include_str!("../seeds/putin-kim-summit.txt");

fn model_dir() -> PathBuf {
    std::env::var_os("SEMDEX_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
        })
}

fn backends() -> Vec<BackendKind> {
    std::env::var("SEMDEX_BENCH_BACKENDS")
        .unwrap_or_else(|_| "packed".into())
        .split(',')
        .map(|s| s.trim().parse().expect("backend name"))
        .collect()
}

fn precisions() -> Vec<Precision> {
    std::env::var("SEMDEX_BENCH_PRECISIONS")
        .unwrap_or_else(|_| "f32,int8".into())
        .split(',')
        .map(|s| s.trim().parse().expect("precision name"))
        .collect()
}

fn encode(c: &mut Criterion) {
    let runs = backends().into_iter().flat_map(|backend| {
        precisions()
            .into_iter()
            .filter(move |&p| backend == BackendKind::Packed || p == Precision::F32)
            .map(move |p| (backend, p))
    });
    for (backend, precision) in runs {
        let options = EncoderOptions {
            backend,
            precision,
            max_batch_tokens: usize::MAX,
            max_batch_size: 32,
            ..EncoderOptions::default()
        };
        let encoder = Encoder::load(&model_dir(), options).expect("model (./models/fetch.sh)");
        let backend = format!("{backend}-{}-{precision}", encoder.kernels_name());
        for tokens in [128, 256] {
            let passages = passages_of_tokens(encoder.tokenizer(), SEED, tokens, 32).unwrap();
            let tokenized = encoder
                .tokenize(&passages.iter().map(String::as_str).collect::<Vec<_>>())
                .unwrap();
            let mut group = c.benchmark_group(format!("{backend}/passages_{tokens}tok"));
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(15));
            for batch in [1usize, 8, 32] {
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_function(format!("batch_{batch}"), |b| {
                    b.iter(|| black_box(encoder.embed_tokenized(&tokenized[..batch]).unwrap()))
                });
            }
            group.finish();
        }
        let mut group = c.benchmark_group(format!("{backend}/short_query"));
        group.sample_size(50);
        let mut i = 0;
        group.bench_function("embed_one", |b| {
            b.iter(|| {
                i = (i + 1) % SHORT_QUERIES.len();
                black_box(encoder.embed_one(SHORT_QUERIES[i]).unwrap())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, encode);
criterion_main!(benches);
