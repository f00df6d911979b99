//! HNSW recall against exact search on real retrieval data: the BEIR SciFact corpus and its
//! queries, embedded by the real model, at the default search breadth.
//!
//! SciFact is not part of the repository: the test reads it from `SEMDEX_SCIFACT`, else from
//! `../shared/data/scifact` beside the repository (where CI has it). It is ignored by default,
//! so that a fresh clone without the data reports it as ignored rather than passed; run it with
//! `cargo test --release -- --ignored` (as `.ci/run` does), and without the data it fails.

use std::path::PathBuf;

use semdex::eval::{ann, beir};
use semdex::index::HnswParams;
use semdex::progress::NoProgress;

/// Bytes of each abstract embedded: enough for a distinctive vector (~35 tokens), small enough
/// to embed the whole corpus in well under a minute.
const PREFIX_BYTES: usize = 160;

fn scifact_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SEMDEX_SCIFACT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/scifact")
        });
    dir.join("corpus.jsonl").exists().then_some(dir)
}

fn prefix(text: &str) -> &str {
    let mut end = text.len().min(PREFIX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[test]
#[ignore = "needs ../shared/data/scifact (or SEMDEX_SCIFACT)"]
fn hnsw_recall_at_default_ef_on_scifact() {
    let dir = scifact_dir().expect(
        "SciFact not found: set SEMDEX_SCIFACT or put it at ../shared/data/scifact beside the repository",
    );
    let dataset = beir::load(&dir, "test").unwrap();
    let encoder = crate::common::encoder();
    let texts: Vec<String> = dataset
        .corpus
        .iter()
        .map(|d| prefix(&d.full_text()).to_owned())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let base: Vec<(u64, Vec<f32>)> = encoder
        .embed(&refs)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64, e.unit))
        .collect();
    let mut queries: Vec<&String> = dataset.queries.values().collect();
    queries.sort();
    let queries: Vec<&str> = queries.into_iter().map(String::as_str).collect();
    let query_vectors: Vec<Vec<f32>> = encoder
        .embed(&queries)
        .unwrap()
        .into_iter()
        .map(|e| e.unit)
        .collect();

    let params = HnswParams::default();
    let options = ann::AnnOptions {
        params,
        efs: vec![params.ef_search],
        threads: 1,
        index_dir: None,
    };
    let truth = ann::exact_truth(&base, &query_vectors, 100).unwrap();
    let report = ann::benchmark(&base, &query_vectors, &truth, &options, &NoProgress).unwrap();
    let row = &report.rows[0];
    println!(
        "SciFact: {} vectors, {} queries, ef {}: recall@1 {:.4}, recall@10 {:.4}, recall@100 {:.4}",
        report.vectors,
        report.queries,
        row.ef,
        row.recall_1,
        row.recall_10,
        row.recall_100.unwrap_or_default()
    );
    assert_eq!(report.vectors, dataset.corpus.len());
    assert!(report.queries > 1000);
    assert!(row.recall_10 >= 0.99, "recall@10 {}", row.recall_10);
}

/// Every SciFact abstract (scientific prose: symbols, Greek letters, units, citations) is
/// placed token by token exactly as the `tokenizers` crate places it, although most of it
/// takes semdex's ASCII fast path.
#[test]
#[ignore = "needs ../shared/data/scifact (or SEMDEX_SCIFACT)"]
fn token_spans_on_scifact_equal_the_tokenizers_crate() {
    let dir = scifact_dir().expect(
        "SciFact not found: set SEMDEX_SCIFACT or put it at ../shared/data/scifact beside the repository",
    );
    let dataset = beir::load(&dir, "test").unwrap();
    let model = crate::common::model_dir();
    let ours = semdex::embed::TextTokenizer::load(&model, 256).unwrap();
    let mut reference = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    reference.with_truncation(None).unwrap();
    reference.with_padding(None);
    for document in &dataset.corpus {
        let text = document.full_text();
        let encoding = reference.encode(text.as_str(), false).unwrap();
        let expected: Vec<(u32, (usize, usize))> = encoding
            .get_ids()
            .iter()
            .copied()
            .zip(encoding.get_offsets().iter().copied())
            .collect();
        assert_eq!(
            ours.tokens_with_spans(&text).unwrap(),
            expected,
            "document {}",
            document.id
        );
    }
}
