//! Encoder throughput and latency on fixed texts.

use std::time::{Duration, Instant};

use crate::embed::{Encoder, Result, TextTokenizer};

/// Passages cut from `source` so that each has about `target_tokens` model tokens (special
/// tokens included): deterministic windows of words, starting at spread-out positions.
pub fn passages_of_tokens(
    tokenizer: &TextTokenizer,
    source: &str,
    target_tokens: usize,
    count: usize,
) -> Result<Vec<String>> {
    let words: Vec<&str> = source.split_whitespace().collect();
    if words.is_empty() {
        return Ok(vec![String::new(); count]);
    }
    let mut passages = Vec::with_capacity(count);
    for i in 0..count {
        let mut at = (i * 7919) % words.len();
        let mut passage = String::new();
        loop {
            let candidate = if passage.is_empty() {
                words[at].to_string()
            } else {
                format!("{passage} {}", words[at])
            };
            if tokenizer.count(&candidate)? > target_tokens {
                break;
            }
            passage = candidate;
            at = (at + 1) % words.len();
        }
        passages.push(passage);
    }
    Ok(passages)
}

/// Throughput of one configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    /// Inputs per forward call.
    pub batch: usize,
    /// Inputs embedded.
    pub passages: usize,
    /// Model tokens processed (special tokens included, after truncation).
    pub tokens: usize,
    /// Wall time.
    pub seconds: f64,
    /// `passages / seconds`.
    pub passages_per_s: f64,
    /// `tokens / seconds`.
    pub tokens_per_s: f64,
}

/// Embeds `texts` in calls of `batch` inputs and reports the rate.
pub fn throughput(encoder: &Encoder, texts: &[&str], batch: usize) -> Result<Throughput> {
    let tokenized = encoder.tokenize(texts)?;
    let tokens: usize = tokenized.iter().map(|t| t.ids.len()).sum();
    let started = Instant::now();
    for chunk in tokenized.chunks(batch.max(1)) {
        encoder.embed_tokenized(chunk)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Throughput {
        batch,
        passages: texts.len(),
        tokens,
        seconds,
        passages_per_s: texts.len() as f64 / seconds,
        tokens_per_s: tokens as f64 / seconds,
    })
}

/// Latency percentiles of single-input calls, in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    /// Calls measured.
    pub calls: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// Embeds each query alone (tokenization included, as a server would) `rounds` times.
pub fn query_latency(encoder: &Encoder, queries: &[&str], rounds: usize) -> Result<Latency> {
    let mut samples: Vec<Duration> = Vec::with_capacity(queries.len() * rounds);
    for _ in 0..rounds {
        for q in queries {
            let started = Instant::now();
            encoder.embed_one(q)?;
            samples.push(started.elapsed());
        }
    }
    Ok(latency_of(&mut samples))
}

/// Percentiles of a set of durations (nearest-rank).
pub fn latency_of(samples: &mut [Duration]) -> Latency {
    samples.sort();
    let pick = |p: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1000.0
    };
    Latency {
        calls: samples.len(),
        p50_ms: pick(0.50),
        p90_ms: pick(0.90),
        p99_ms: pick(0.99),
    }
}

/// Short questions (≤ 16 tokens) used for query-latency figures.
pub const SHORT_QUERIES: [&str; 8] = [
    "Who invited Putin to visit North Korea?",
    "Where was the summit held?",
    "what weapons did russia want",
    "When did Kim leave for Vladivostok?",
    "How long since their last summit?",
    "Which factories will Kim visit?",
    "What did the US say about arms?",
    "Is a return visit planned?",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = latency_of(&mut samples);
        assert_eq!(l.calls, 100);
        assert!((l.p50_ms - 50.0).abs() < 1e-9);
        assert!((l.p99_ms - 99.0).abs() < 1e-9);
        assert_eq!(latency_of(&mut []).p50_ms, 0.0);
    }
}
