//! Hybrid retrieval end to end: search modes over HTTP and their errors, per-retriever scores,
//! the lexical index kept in step with the store, queries that tokenize to nothing or to
//! other scripts, and the quality bar on the seed article's question sets.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use semdex::api::ApiConfig;
use semdex::engine::{EngineOptions, SearchMode, SearchRequest};
use semdex::progress::NoProgress;
use semdex::queue::QueueOptions;
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn search(s: &crate::common::TestServer, body: Value) -> (StatusCode, Value) {
    let r = client().post(s.url("/search")).json(&body).send().unwrap();
    let status = r.status();
    (status, r.json().unwrap())
}

#[test]
fn modes_over_http_carry_each_retrievers_score() {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    let question = "Where did Putin and Kim meet?";
    let (status, dense) = search(&s, json!({"query": question, "mode": "dense", "k": 5}));
    assert_eq!(status, StatusCode::OK, "{dense}");
    assert_eq!(dense["mode"], "dense");
    for hit in dense["results"].as_array().unwrap() {
        assert!(hit["scores"]["dense"].is_number());
        assert!(hit["scores"]["lexical"].is_null(), "{hit}");
        assert_eq!(hit["score"], hit["scores"]["dense"]);
    }
    let (status, lexical) = search(&s, json!({"query": question, "mode": "lexical", "k": 5}));
    assert_eq!(status, StatusCode::OK);
    for hit in lexical["results"].as_array().unwrap() {
        assert!(hit["scores"]["lexical"].as_f64().unwrap() > 0.0, "{hit}");
        assert!(hit["scores"]["dense"].is_null());
    }
    // The default mode is hybrid: every hit has both scores and the rescoring's.
    let (status, hybrid) = search(&s, json!({"query": question, "k": 5}));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hybrid["mode"], "hybrid");
    let hits = hybrid["results"].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    for hit in hits {
        assert!(hit["scores"]["dense"].is_number(), "{hit}");
        assert!(hit["scores"]["lexical"].is_number(), "{hit}");
        assert!(hit["scores"]["rerank"].is_number(), "{hit}");
    }
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    // Without rescoring, RRF and a dense weight are accepted; GET takes the same options.
    let (status, rrf) = search(
        &s,
        json!({"query": question, "fusion": "rrf", "rerank": false, "dense_weight": 0.7}),
    );
    assert_eq!(status, StatusCode::OK, "{rrf}");
    assert!(rrf["results"][0]["scores"]["rerank"].is_null());
    let get: Value = client()
        .get(s.url("/search?q=Vostochny%20Cosmodrome&mode=lexical&k=1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        get["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Vostochny")
    );

    // Unknown values are 422 naming the allowed ones.
    for (body, allowed) in [
        (json!({"query": "x", "mode": "semantic"}), "dense"),
        (json!({"query": "x", "fusion": "max"}), "rrf"),
    ] {
        let (status, err) = search(&s, body);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(allowed),
            "{err}"
        );
    }
    let (status, _) = search(&s, json!({"query": "x", "dense_weight": 1.5}));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = client().get(s.url("/search?q=x&mode=nope")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // /info reports the lexical index and the modes.
    let info: Value = client().get(s.url("/info")).send().unwrap().json().unwrap();
    assert!(info["lexical"]["passages"].as_u64().unwrap() > 0);
    assert!(info["lexical"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(info["search"]["default_mode"], "hybrid");
}

#[test]
fn queries_of_nothing_or_other_scripts_get_answers_not_errors() {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    s.engine
        .ingest(
            vec![
                crate::common::doc("zh", "普京和金正恩在东方航天发射场举行了会谈。"),
                crate::common::doc("ru", "Путин и Ким встретились на космодроме Восточный."),
            ],
            &NoProgress,
        )
        .unwrap();
    for mode in ["lexical", "hybrid", "dense"] {
        for query in ["the of and", "?!... ,;", "a"] {
            let (status, body) = search(&s, json!({"query": query, "mode": mode}));
            assert_eq!(status, StatusCode::OK, "{mode} {query:?}: {body}");
            if mode == "lexical" {
                assert!(body["results"].as_array().unwrap().is_empty(), "{body}");
            }
        }
        let long = "summit ".repeat(3000);
        let (status, body) = search(&s, json!({"query": long, "mode": mode}));
        assert_eq!(
            status,
            StatusCode::OK,
            "{mode}: a query past the window: {body}"
        );
    }
    let (_, zh) = search(&s, json!({"query": "东方航天", "mode": "lexical"}));
    assert_eq!(zh["results"][0]["doc_id"], "zh", "{zh}");
    let (_, ru) = search(&s, json!({"query": "космодроме", "mode": "lexical"}));
    assert_eq!(ru["results"][0]["doc_id"], "ru", "{ru}");
    let (status, _) = search(
        &s,
        json!({"query": "космодром Восточный", "mode": "hybrid"}),
    );
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn the_lexical_index_follows_updates_deletes_and_is_rebuilt_when_lost() {
    let dir = tempfile::tempdir().unwrap();
    let find = |engine: &semdex::engine::Engine, word: &str| -> Vec<String> {
        let request = SearchRequest {
            mode: SearchMode::Lexical,
            ..SearchRequest::default()
        };
        engine
            .search(word, &request)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.doc_id)
            .collect()
    };
    {
        let engine = crate::common::engine_with(EngineOptions::new(dir.path()));
        engine
            .ingest(
                vec![crate::common::doc("a", "Zebras graze the savanna.")],
                &NoProgress,
            )
            .unwrap();
        assert_eq!(find(&engine, "zebra"), ["a"], "stemmed: zebras → zebra");
        engine
            .ingest(
                vec![crate::common::doc("a", "Penguins swim in cold water.")],
                &NoProgress,
            )
            .unwrap();
        assert!(find(&engine, "zebra").is_empty(), "the old text is gone");
        assert_eq!(find(&engine, "penguin"), ["a"]);
        engine
            .ingest(
                vec![crate::common::doc("b", "Penguins nest on ice.")],
                &NoProgress,
            )
            .unwrap();
        engine.delete("a").unwrap();
        assert_eq!(find(&engine, "penguin"), ["b"]);
        engine.persist().unwrap();
    }
    // Lost: rebuilt from the store at the next open.
    std::fs::remove_dir_all(semdex::engine::lexical_dir(dir.path())).unwrap();
    let engine = crate::common::engine_with(EngineOptions::new(dir.path()));
    assert_eq!(find(&engine, "penguin"), ["b"]);
    // Damaged: the same.
    drop(engine);
    let meta = semdex::engine::lexical_dir(dir.path()).join("meta.json");
    std::fs::write(&meta, "{ not json").unwrap();
    let engine = crate::common::engine_with(EngineOptions::new(dir.path()));
    assert_eq!(find(&engine, "nest"), ["b"]);
}

fn qa_report(file: &str) -> semdex::eval::qa::QaReport {
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::common::engine_with(EngineOptions::new(dir.path()));
    engine
        .ingest(
            vec![crate::common::doc("seed", &crate::common::seed_article())],
            &NoProgress,
        )
        .unwrap();
    let items = semdex::eval::qa::load(&crate::common::data(file)).unwrap();
    semdex::eval::qa::evaluate(&engine, &items, &SearchRequest::default()).unwrap()
}

/// The bar the issue set for the default mode on the seed article's question file, and a
/// floor on the paraphrased set we develop against (dense alone: hit@1 0.61 there).
#[test]
fn the_default_mode_answers_the_seed_questions_first() {
    let seed = qa_report("seed_qa.jsonl");
    assert_eq!(seed.mode, "hybrid");
    assert!(seed.hit_1 >= 0.85, "seed_qa hit@1 {}", seed.hit_1);
    assert_eq!(seed.hit_3, 1.0, "seed_qa hit@3; missed: {:?}", seed.missed);
    let dev = qa_report("dev_qa.jsonl");
    assert!(dev.hit_1 >= 0.65, "dev_qa hit@1 {}", dev.hit_1);
    assert!(dev.hit_5 >= 0.9, "dev_qa hit@5 {}", dev.hit_5);
}

/// Hybrid searches while documents long enough to enter the graph by parallel inserts are
/// written: the inserts run on the rayon pool under the index's write lock, and a search
/// whose rayon job waited for that lock could take a thread the insert needed, deadlocking
/// both. Every search and ingest must finish.
#[test]
fn hybrid_searches_during_parallel_index_inserts_finish() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let data = tempfile::tempdir().unwrap();
    let mut options = EngineOptions::new(data.path());
    // Short passages: a few hundred per document, cheap to embed, several parallel inserts.
    options.chunk.max_tokens = 16;
    let engine = Arc::new(crate::common::engine_with(options));
    let seed = crate::common::seed_article();
    engine
        .ingest(vec![crate::common::doc("seed", &seed)], &NoProgress)
        .unwrap();
    let long = crate::common::seed_windows(40, 60).join(" ");
    let writing = Arc::new(AtomicBool::new(true));
    let searches = Arc::new(AtomicUsize::new(0));
    let searchers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, writing, searches) = (engine.clone(), writing.clone(), searches.clone());
            std::thread::spawn(move || {
                while writing.load(Ordering::SeqCst) {
                    let found = engine
                        .search("Where did Putin and Kim meet?", &SearchRequest::default())
                        .unwrap();
                    assert_eq!(found.mode, SearchMode::Hybrid);
                    searches.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let (done, finished) = std::sync::mpsc::channel();
    let writer = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            for i in 0..3 {
                let doc = crate::common::doc(&format!("long-{i}"), &long);
                let report = engine.ingest(vec![doc], &NoProgress).unwrap();
                assert!(report[0].chunks >= 128, "{} passages", report[0].chunks);
            }
            done.send(()).unwrap();
        })
    };
    // A deadlock never ends: fail instead of hanging (the stuck threads die with the process).
    finished
        .recv_timeout(Duration::from_secs(180))
        .expect("the ingest did not finish beside hybrid searches: deadlocked?");
    writing.store(false, Ordering::SeqCst);
    writer.join().unwrap();
    for searcher in searchers {
        searcher.join().unwrap();
    }
    assert!(searches.load(Ordering::SeqCst) > 0);
}
