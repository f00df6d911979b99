use serde_json::json;

use super::*;
use crate::filter::MetadataFilter;

fn model() -> ModelIdentity {
    ModelIdentity {
        name: "test-model".into(),
        fingerprint: "abc123".into(),
        dimension: 3,
        precision: "f32".into(),
    }
}

fn metadata(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn put(store: &mut Store, id: &str, text: &str, meta: Value, n_chunks: usize) -> WriteOutcome {
    let meta = metadata(meta);
    let vectors: Vec<Vec<f32>> = (0..n_chunks).map(|i| vec![i as f32, 1.0, 0.0]).collect();
    let chunks: Vec<NewChunk> = (0..n_chunks)
        .map(|i| NewChunk {
            index: i,
            start: i,
            end: i + 1,
            text: &text[i..i + 1],
            vector: &vectors[i],
            tokens: None,
            section: &[],
            pages: None,
        })
        .collect();
    store
        .put_document(
            &NewDocument {
                id,
                source: Some("test"),
                text,
                metadata: &meta,
                content_hash: &format!("hash-{text}"),
                title: None,
                title_in_context: false,
                format: None,
            },
            &chunks,
        )
        .unwrap()
}

#[test]
fn documents_round_trip_and_replace() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &model()).unwrap();
    assert_eq!(store.counts().unwrap(), (0, 0));
    let g0 = store.generation().unwrap();
    let first = put(&mut store, "a", "hello", json!({"lang": "en"}), 3);
    assert_eq!(first.added.len(), 3);
    assert!(first.removed.is_empty());
    assert!(store.generation().unwrap() > g0);

    let doc = store.get_document("a").unwrap().unwrap();
    assert_eq!(doc.text, "hello");
    assert_eq!(doc.chunks, 3);
    assert_eq!(doc.metadata["lang"], "en");
    assert!(doc.ingested_at.ends_with('Z'));

    let second = put(&mut store, "a", "world!", json!({}), 2);
    assert_eq!(second.removed, first.added);
    assert!(
        second.added.iter().all(|id| !first.added.contains(id)),
        "ids never reused"
    );
    assert_eq!(store.counts().unwrap(), (1, 2));

    let chunks = store.chunks_by_ids(&second.added).unwrap();
    assert_eq!(chunks[&second.added[1]].text, "o");
    assert_eq!(chunks[&second.added[1]].doc_id, "a");

    let mut seen = Vec::new();
    let generation = store
        .for_each_vector(|id, v| {
            seen.push((id, v));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].1, vec![1.0, 1.0, 0.0]);
    assert_eq!(generation, second.generation);
    assert_eq!(store.generation().unwrap(), second.generation);
    assert_eq!(
        store.chunk_ids().unwrap(),
        (second.generation, second.added.clone())
    );
    let picked = store
        .vectors_by_ids(&[second.added[1], 999_999, second.added[0]])
        .unwrap();
    assert_eq!(
        picked,
        vec![
            (second.added[0], vec![0.0, 1.0, 0.0]),
            (second.added[1], vec![1.0, 1.0, 0.0])
        ]
    );
}

#[test]
fn delete_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &model()).unwrap();
    put(&mut store, "b", "bbb", json!({}), 1);
    let a = put(&mut store, "a", "aaaa", json!({}), 2);
    let list = store.list_documents(10, 0).unwrap();
    assert_eq!(
        list.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(list[0].bytes, 4);
    assert_eq!(store.list_documents(1, 1).unwrap()[0].id, "b");
    let deleted = store.delete_document("a").unwrap().unwrap();
    assert_eq!(deleted.removed, a.added);
    assert!(deleted.added.is_empty());
    assert_eq!(deleted.generation, a.generation + 1);
    assert_eq!(store.delete_document("a").unwrap(), None);
    assert_eq!(
        store.generation().unwrap(),
        deleted.generation,
        "no-op deletes do not count"
    );
    assert!(store.get_document("a").unwrap().is_none());
    assert_eq!(store.counts().unwrap(), (1, 1));
}

#[test]
fn other_model_is_refused_and_same_model_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = Store::open(dir.path(), &model()).unwrap();
        put(&mut store, "a", "abc", json!({}), 1);
    }
    let other = ModelIdentity {
        fingerprint: "different".into(),
        ..model()
    };
    let err = Store::open(dir.path(), &other).err().unwrap();
    assert!(matches!(err, StoreError::ModelMismatch { .. }), "{err}");
    assert!(err.to_string().contains("test-model"));
    let store = Store::open(dir.path(), &model()).unwrap();
    assert_eq!(store.counts().unwrap(), (1, 1));
}

#[test]
fn filters_by_document_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &model()).unwrap();
    let a = put(
        &mut store,
        "a",
        "aaa",
        json!({"lang": "en", "year": 2023, "draft": true, "dotted.key": "x"}),
        2,
    );
    let b = put(
        &mut store,
        "b",
        "bbb",
        json!({"lang": "ko", "year": 2024, "draft": false}),
        1,
    );
    let all = |f: ChunkFilter| store.chunk_ids_matching(&f).unwrap();
    assert_eq!(all(ChunkFilter::default()).len(), 3);
    assert_eq!(
        all(ChunkFilter {
            doc_ids: Some(vec!["b".into(), "zzz".into()]),
            ..Default::default()
        }),
        b.added
    );
    assert!(
        all(ChunkFilter {
            doc_ids: Some(vec![]),
            ..Default::default()
        })
        .is_empty()
    );
    let by = |k: &str, v: Value| ChunkFilter {
        doc_ids: None,
        metadata: MetadataFilter::parse(&json!({ k: v })).unwrap(),
    };
    assert_eq!(all(by("lang", json!("en"))), a.added);
    assert_eq!(all(by("year", json!(2024))), b.added);
    assert_eq!(all(by("draft", json!(true))), a.added);
    assert_eq!(all(by("dotted.key", json!("x"))), a.added);
    assert!(all(by("lang", json!("fr"))).is_empty());
    assert!(all(by("missing", json!("x"))).is_empty());
    let both = ChunkFilter {
        doc_ids: Some(vec!["a".into()]),
        metadata: MetadataFilter::parse(&json!({"lang": "ko"})).unwrap(),
    };
    assert!(all(both).is_empty());
}

#[test]
fn metadata_update_keeps_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &model()).unwrap();
    let a = put(&mut store, "a", "abc", json!({"v": 1}), 2);
    assert!(store.set_metadata("a", &metadata(json!({"v": 2}))).unwrap());
    assert_eq!(
        store.generation().unwrap(),
        a.generation,
        "no chunk moved: derived indexes stay current"
    );
    assert!(!store.set_metadata("nope", &metadata(json!({}))).unwrap());
    let state = store.document_state("a").unwrap().unwrap();
    assert_eq!(state.metadata["v"], 2);
    assert_eq!(state.content_hash, "hash-abc");
    assert_eq!(store.chunks_by_ids(&a.added).unwrap().len(), 2);
}

#[test]
fn passages_without_token_vectors_are_counted_on_indexes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &model()).unwrap();
    let first = put(&mut store, "a", "abcd", json!({}), 4);
    put(&mut store, "b", "efg", json!({}), 3);
    assert_eq!(store.count_without_token_vectors().unwrap(), 7);
    store
        .put_token_vectors(&[(first.added[0], vec![1]), (first.added[2], vec![2])])
        .unwrap();
    assert_eq!(store.count_without_token_vectors().unwrap(), 5);
    let missing: Vec<ChunkId> = store
        .passages_without_token_vectors(10)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(missing.len(), 5);
    assert!(!missing.contains(&first.added[0]) && !missing.contains(&first.added[2]));
    // A deleted passage takes its token vectors with it: the counts still agree.
    store.delete_document("a").unwrap();
    assert_eq!(store.count_without_token_vectors().unwrap(), 3);
    // Opening checks this every time: the plan must read indexes, never the tables' rows
    // (whose pages hold the texts, vectors and blobs: seconds at a million passages).
    let plan: Vec<String> = store
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {COUNT_WITHOUT_TOKEN_VECTORS}"))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let scans: Vec<&String> = plan
        .iter()
        .filter(|p| p.starts_with("SCAN") && *p != "SCAN CONSTANT ROW")
        .collect();
    assert_eq!(scans.len(), 2, "{plan:?}");
    assert!(
        scans.iter().all(|p| p.contains("COVERING INDEX")),
        "{plan:?}"
    );
}
