//! Does the store or the index slow ingest down? Ingest throughput against the bare encoder's
//! on the same chunks.

use std::sync::Arc;
use std::time::Instant;

use crate::chunk::Chunker;
use crate::embed::Encoder;
use crate::engine::{DocumentInput, Engine, EngineOptions, Result};
use crate::progress::NoProgress;

/// Ingest and bare-encoder rates on the same documents.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestSpeed {
    /// Documents ingested.
    pub documents: usize,
    /// Chunks embedded.
    pub chunks: usize,
    /// Seconds the encoder alone took for all chunks (same batch size as ingest).
    pub encoder_seconds: f64,
    /// Seconds the whole ingest took: chunking, embedding, hashing, store, index.
    pub ingest_seconds: f64,
    /// Chunks per second, encoder alone.
    pub encoder_passages_per_s: f64,
    /// Chunks per second, whole ingest.
    pub ingest_passages_per_s: f64,
    /// `ingest_passages_per_s / encoder_passages_per_s` (target ≥ 0.9).
    pub ratio: f64,
}

/// Embeds the documents' chunks with the encoder alone, then ingests the documents into a
/// fresh engine at `options.data_dir` (which should be empty), and compares the rates.
pub fn ingest_speed(
    encoder: Arc<Encoder>,
    docs: Vec<DocumentInput>,
    options: EngineOptions,
) -> Result<IngestSpeed> {
    let chunker = Chunker::new(encoder.tokenizer().clone(), options.chunk)?;
    let chunks: Vec<String> = docs
        .iter()
        .flat_map(|d| chunker.chunk(&d.id, &d.text).into_iter().map(|c| c.text))
        .collect();
    let texts: Vec<&str> = chunks.iter().map(String::as_str).collect();
    // Warm up the threads and the weights' pages before either measurement.
    encoder.embed(&texts[..texts.len().min(8)])?;
    let started = Instant::now();
    for batch in texts.chunks(options.ingest_batch.max(1)) {
        encoder.embed(batch)?;
    }
    let encoder_seconds = started.elapsed().as_secs_f64();

    let engine = Engine::open(encoder, options, &NoProgress)?;
    let documents = docs.len();
    let started = Instant::now();
    engine.ingest(docs, &NoProgress)?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    let n = chunks.len() as f64;
    let encoder_passages_per_s = n / encoder_seconds;
    let ingest_passages_per_s = n / ingest_seconds;
    Ok(IngestSpeed {
        documents,
        chunks: chunks.len(),
        encoder_seconds,
        ingest_seconds,
        encoder_passages_per_s,
        ingest_passages_per_s,
        ratio: ingest_passages_per_s / encoder_passages_per_s,
    })
}
