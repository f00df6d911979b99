//! The ANN benchmark's file formats, as numpy writes them (`tests/data/ann/make_vecs.py`), read
//! by `semdex::eval::vecs` and by `semdex bench ann`; and the quantised index's recall on real
//! embeddings, its top candidates rescored in f32.

use serde_json::Value;

use semdex::eval::{ann, vecs};
use semdex::index::{HnswIndex, HnswParams, SearchParams, VectorIndex};
use semdex::progress::NoProgress;

use crate::cli::{run_ok, semdex};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ann")
        .join(name)
}

#[test]
fn vector_files_written_by_numpy_are_read_value_for_value() {
    let pattern = vecs::read_fvecs(&fixture("pattern.fvecs")).unwrap();
    assert_eq!(pattern.len(), 3);
    for (i, row) in pattern.iter().enumerate() {
        let expected: Vec<f32> = (0..5).map(|j| i as f32 + j as f32 / 4.0).collect();
        assert_eq!(row, &expected);
    }
    assert_eq!(
        vecs::read_ivecs(&fixture("pattern.ivecs")).unwrap(),
        vec![vec![-2000, -1000, 0], vec![1000, 2000, 3000]]
    );
    let base = vecs::read_fvecs(&fixture("base.fvecs")).unwrap();
    assert_eq!((base.len(), base[0].len()), (1000, 16));
    let truth = vecs::read_ivecs(&fixture("truth.ivecs")).unwrap();
    assert_eq!((truth.len(), truth[0].len()), (40, 10));
    assert!(truth.iter().flatten().all(|&p| (0..1000).contains(&p)));
    // numpy's exact neighbours are semdex's exact neighbours.
    let base = ann::read_base(&fixture("base.fvecs")).unwrap();
    let mut queries = vecs::read_fvecs(&fixture("queries.fvecs")).unwrap();
    for q in &mut queries {
        semdex::embed::l2_normalize(q);
    }
    let ours = ann::exact_truth(&base, &queries, 10).unwrap();
    let theirs = ann::truth_from_positions(&base, &queries, &truth).unwrap();
    assert!(ann::mean_recall(&ours, &theirs, 10) > 0.999);
}

#[test]
fn bench_ann_takes_fvecs_and_ivecs_and_writes_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let index_dir = dir.path().join("index");
    let out = run_ok(&mut semdex(&[
        "bench",
        "ann",
        "--base",
        fixture("base.fvecs").to_str().unwrap(),
        "--queries",
        fixture("queries.fvecs").to_str().unwrap(),
        "--ground-truth",
        fixture("truth.ivecs").to_str().unwrap(),
        "--ef",
        "16,64",
        "--threads",
        "2",
        "--index-dir",
        index_dir.to_str().unwrap(),
        "--json",
    ]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(report["build_s"].as_f64().unwrap() > 0.0);
    assert!(report["open_s"].as_f64().is_some());
    assert_eq!(report["threads"], 2);
    assert_eq!(report["vectors"], 1000);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1]["ef"], 64);
    assert!(results[1]["recall@10"].as_f64().unwrap() > 0.95, "{report}");
    assert!(results[1]["qps"].as_f64().unwrap() > 0.0);
    assert!(report["exact"]["recall@10"].as_f64().unwrap() > 0.999);
    assert!(index_dir.join("segment/segment.meta.json").is_file());

    // A ground truth that names vectors the base does not have is refused.
    let short = dir.path().join("short.fvecs");
    vecs::write_fvecs(
        &short,
        &vecs::read_fvecs(&fixture("base.fvecs")).unwrap()[..100],
    )
    .unwrap();
    let refused = semdex(&[
        "bench",
        "ann",
        "--base",
        short.to_str().unwrap(),
        "--queries",
        fixture("queries.fvecs").to_str().unwrap(),
        "--ground-truth",
        fixture("truth.ivecs").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("there are 100"), "{err}");
}

#[test]
fn quantised_search_with_rescoring_keeps_recall_on_real_embeddings() {
    let encoder = crate::common::encoder();
    let windows = crate::common::seed_windows(700, 24);
    let refs: Vec<&str> = windows.iter().map(String::as_str).collect();
    let vectors: Vec<Vec<f32>> = encoder
        .embed(&refs)
        .unwrap()
        .into_iter()
        .map(|e| e.unit)
        .collect();
    let base: Vec<(u64, Vec<f32>)> = vectors[..600]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.clone()))
        .collect();
    let queries = vectors[600..].to_vec();
    let truth = ann::exact_truth(&base, &queries, 10).unwrap();

    // The codes alone: a flat scan of int8 codes, its best 40 rescored, finds the true top 10.
    let codes = ann::quantisation(&base, &queries, &truth, &[4]);
    let int8 = codes.iter().find(|r| r.codes == "int8").unwrap();
    assert!(int8.recall_10 >= 0.99, "{codes:?}");

    // The index: graph walked on codes, candidates rescored in f32.
    let mut index = HnswIndex::new(384, HnswParams::default(), base.len()).unwrap();
    let items: Vec<(u64, &[f32])> = base.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    index.add(&items).unwrap();
    index.freeze(None, &NoProgress).unwrap();
    let params = SearchParams {
        ef: HnswParams::default().ef_search,
        exact: false,
    };
    let found: Vec<_> = queries
        .iter()
        .map(|q| index.search(q, 10, params, None).unwrap())
        .collect();
    let recall = ann::mean_recall(&found, &truth, 10);
    assert!(recall >= 0.99, "recall@10 {recall}");
    // Scores are exact cosines, not quantised ones.
    for (q, hits) in queries.iter().zip(&found) {
        let exact = semdex::index::dot(q, &base[hits[0].id as usize].1);
        assert_eq!(hits[0].score, exact);
    }
}
