//! The engine test suite every storage backend must pass: the same functions run on the
//! embedded backend (`engine.rs`) and on PostgreSQL (`pg.rs`), each through a [`Backing`]
//! that gives it fresh, isolated storage.

use std::collections::HashSet;

use semdex::engine::{
    Budget, Engine, EngineError, EngineOptions, GroupBy, IngestStatus, SearchMode, SearchRequest,
    SearchStrategy, Shaping,
};
use semdex::filter::MetadataFilter;
use semdex::progress::NoProgress;
use semdex::storage::ChunkFilter;
use serde_json::{Value, json};

/// The suite's tests for one backend: `backend_suite!(make)` defines a `#[test]` per suite
/// function, each on fresh storage from `make()`.
macro_rules! backend_suite {
    ($make:expr) => {
        $crate::suite::backend_suite!(@tests $make;
            seed_article_questions_hit_at_3,
            dedup_update_metadata_and_delete,
            filters_by_document_and_metadata_still_return_k,
            empty_store_and_invalid_requests,
            metadata_filters_match_the_reference,
            modes_follow_updates_and_deletes,
            lexical_scores_are_bm25,
            shaping_groups_by_document_and_metadata,
            shaping_diversity_drops_near_duplicates,
            shaping_windows_merge_and_fit_the_budget,
            shaping_highlights_lie_on_sentences,
            citations_and_headings_as_lexical_context,
        );
    };
    (@tests $make:expr; $($name:ident,)*) => {
        mod shared_suite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    crate::suite::$name(&$make);
                }
            )*
        }
    };
}
pub(crate) use backend_suite;

/// Fresh storage for one suite test.
pub trait Backing {
    /// Engine options for this backing's storage.
    fn options(&self) -> EngineOptions;

    /// This backing's default collection, opened with `options`.
    fn open(&self, options: &EngineOptions) -> Box<dyn semdex::storage::Backend>;

    /// An engine over this backing's storage, with `adjust` applied to its options.
    fn engine(&self, adjust: fn(&mut EngineOptions)) -> Engine {
        let mut options = self.options();
        adjust(&mut options);
        let backend = self.open(&options);
        Engine::with_backend(crate::common::encoder(), backend, options, &NoProgress).unwrap()
    }
}

/// The embedded backend in a temporary data directory.
pub struct Embedded(tempfile::TempDir);

impl Embedded {
    /// A fresh, empty data directory.
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
}

impl Backing for Embedded {
    fn options(&self) -> EngineOptions {
        EngineOptions::new(self.0.path())
    }

    fn open(&self, options: &EngineOptions) -> Box<dyn semdex::storage::Backend> {
        Box::new(
            semdex::storage::embedded::EmbeddedBackend::open(
                &options.data_dir,
                &semdex::engine::model_identity(&crate::common::encoder()),
                options.backend(),
                &NoProgress,
            )
            .unwrap(),
        )
    }
}

fn hidden() -> NoProgress {
    NoProgress
}

fn with_meta(id: &str, text: &str, meta: Value) -> semdex::engine::DocumentInput {
    let mut d = crate::common::doc(id, text);
    d.metadata = meta.as_object().unwrap().clone();
    d
}

/// A dense-only request: these tests are about the vector index.
fn req(k: usize) -> SearchRequest {
    SearchRequest {
        k,
        mode: SearchMode::Dense,
        ..SearchRequest::default()
    }
}

/// Shared suite: see the module doc.
pub fn seed_article_questions_hit_at_3(backing: &dyn Backing) {
    let engine = backing.engine(|_| {});
    engine
        .ingest(
            vec![crate::common::doc("seed", &crate::common::seed_article())],
            &hidden(),
        )
        .unwrap();
    let items = semdex::eval::qa::load(&crate::common::data("seed_qa.jsonl")).unwrap();
    assert!(items.len() >= 20);
    let report = semdex::eval::qa::evaluate(&engine, &items, &SearchRequest::default()).unwrap();
    println!(
        "hit@1 {:.3} hit@3 {:.3} hit@5 {:.3} MRR@10 {:.3}; missed: {:?}",
        report.hit_1, report.hit_3, report.hit_5, report.mrr_10, report.missed
    );
    assert!(report.hit_3 >= 0.85, "hit@3 {:.3} < 0.85", report.hit_3);
    assert!(report.hit_1 <= report.hit_3 && report.hit_3 <= report.hit_5);
}

/// Shared suite: see the module doc.
pub fn dedup_update_metadata_and_delete(backing: &dyn Backing) {
    let engine = backing.engine(|_| {});
    let text = "The cosmodrome meeting lasted several hours. Artillery shells were discussed.";
    let r = engine
        .ingest(vec![with_meta("a", text, json!({"v": 1}))], &hidden())
        .unwrap();
    assert_eq!(r[0].status, IngestStatus::Created);
    let r = engine
        .ingest(vec![with_meta("a", text, json!({"v": 1}))], &hidden())
        .unwrap();
    assert_eq!(r[0].status, IngestStatus::Unchanged);
    assert_eq!(r[0].chunks, 1);
    let r = engine
        .ingest(vec![with_meta("a", text, json!({"v": 2}))], &hidden())
        .unwrap();
    assert_eq!(r[0].status, IngestStatus::MetadataUpdated);
    let hit = &engine.search("artillery", &req(1)).unwrap().hits[0];
    assert_eq!(hit.metadata["v"], 2);
    let old_chunk = hit.chunk_id;

    let r = engine
        .ingest(
            vec![crate::common::doc(
                "a",
                "Completely new text about satellites.",
            )],
            &hidden(),
        )
        .unwrap();
    assert_eq!(r[0].status, IngestStatus::Updated);
    let hits = engine.search("artillery", &req(5)).unwrap().hits;
    assert_eq!(hits.len(), 1);
    assert_ne!(hits[0].chunk_id, old_chunk);
    assert!(hits[0].text.contains("satellites"));
    assert_eq!(
        engine.document("a").unwrap().text,
        "Completely new text about satellites."
    );

    engine
        .ingest(
            vec![crate::common::doc("b", "Another document.")],
            &hidden(),
        )
        .unwrap();
    assert_eq!(engine.delete("a").unwrap(), 1);
    assert!(matches!(engine.delete("a"), Err(EngineError::NotFound(_))));
    assert!(matches!(
        engine.document("a"),
        Err(EngineError::NotFound(_))
    ));
    let hits = engine.search("satellites", &req(5)).unwrap().hits;
    assert!(hits.iter().all(|h| h.doc_id == "b"));
    assert_eq!(engine.documents(10, 0).unwrap().len(), 1);

    // Numbers at the edges of f64 come back as they were given, and compare in filters.
    let edges = json!({"max": f64::MAX, "min": -f64::MAX, "big": 1e16, "tiny": 5e-324,
                       "int": 12345678901234567u64, "list": [0.1, -0.0]});
    let numbers = || {
        vec![with_meta(
            "n",
            "Numbers at the edges of doubles.",
            edges.clone(),
        )]
    };
    engine.ingest(numbers(), &hidden()).unwrap();
    assert_eq!(Value::Object(engine.document("n").unwrap().metadata), edges);
    assert_eq!(
        engine.ingest(numbers(), &hidden()).unwrap()[0].status,
        IngestStatus::Unchanged
    );
    let listed = engine.documents(10, 0).unwrap();
    assert!(
        listed
            .iter()
            .any(|d| Value::Object(d.metadata.clone()) == edges)
    );
    let mut r = req(5);
    r.filter.metadata = MetadataFilter::parse(&json!({"max": {"$gt": 1e300}})).unwrap();
    let hits = engine.search("doubles", &r).unwrap().hits;
    assert_eq!(hits.len(), 1);
    assert_eq!(Value::Object(hits[0].metadata.clone()), edges);
}

/// Shared suite: see the module doc.
pub fn filters_by_document_and_metadata_still_return_k(backing: &dyn Backing) {
    let engine = backing.engine(|o| o.exact_below = 0);
    let docs: Vec<_> = crate::common::seed_windows(60, 30)
        .iter()
        .enumerate()
        .map(|(i, t)| {
            with_meta(
                &format!("w{i}"),
                t,
                json!({"parity": if i % 2 == 0 {"even"} else {"odd"}, "i": i}),
            )
        })
        .collect();
    engine.ingest(docs, &hidden()).unwrap();
    let mut r = req(10);
    r.filter = ChunkFilter {
        doc_ids: None,
        metadata: MetadataFilter::parse(&json!({"parity": "odd"})).unwrap(),
    };
    let odd = engine.search("military aircraft plant", &r).unwrap();
    assert_eq!(odd.hits.len(), 10);
    assert!(odd.hits.iter().all(|h| h.metadata["parity"] == "odd"));
    assert_eq!(
        odd.strategy,
        SearchStrategy::HnswFiltered,
        "half the corpus: not selective"
    );
    let mut exact = r.clone();
    exact.exact = true;
    let truth = engine.search("military aircraft plant", &exact).unwrap();
    assert_eq!(truth.strategy, SearchStrategy::ExactFiltered);
    let a: HashSet<u64> = odd.hits.iter().map(|h| h.chunk_id).collect();
    let b: HashSet<u64> = truth.hits.iter().map(|h| h.chunk_id).collect();
    assert!(a.intersection(&b).count() >= 9);

    r.filter = ChunkFilter {
        doc_ids: Some(vec!["w3".into(), "w4".into(), "nope".into()]),
        metadata: Default::default(),
    };
    let few = engine.search("anything", &r).unwrap();
    assert_eq!(few.strategy, SearchStrategy::ExactFiltered);
    let ids: HashSet<&str> = few.hits.iter().map(|h| h.doc_id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["w3", "w4"]));

    r.filter.metadata = MetadataFilter::parse(&json!({"i": 4})).unwrap();
    assert_eq!(engine.search("anything", &r).unwrap().hits.len(), 1);
}

/// Shared suite: see the module doc.
pub fn empty_store_and_invalid_requests(backing: &dyn Backing) {
    let engine = backing.engine(|_| {});
    let empty = engine.search("anything at all", &req(5)).unwrap();
    assert!(empty.hits.is_empty());
    assert_eq!(engine.stats().unwrap().documents, 0);

    fn invalid<T>(r: Result<T, EngineError>) -> bool {
        matches!(r, Err(EngineError::InvalidRequest(_)))
    }
    assert!(invalid(engine.search("q", &req(0))));
    assert!(invalid(engine.search("q", &req(1001))));
    assert!(invalid(engine.search("   ", &req(5))));
    assert!(invalid(engine.search(
        "q",
        &SearchRequest {
            ef: Some(0),
            ..req(5)
        }
    )));
    assert!(
        MetadataFilter::parse(&json!({"k": {"nested": 1}})).is_err(),
        "a bad filter cannot even be built"
    );
    assert!(invalid(engine.search_vector(&[1.0, 2.0], &req(5))));
    assert!(invalid(
        engine.ingest(vec![crate::common::doc("x", "  ")], &hidden())
    ));
    assert!(invalid(
        engine.ingest(vec![crate::common::doc("", "text")], &hidden())
    ));
    assert!(invalid(engine.ingest(
        vec![
            crate::common::doc("d", "one"),
            crate::common::doc("d", "two")
        ],
        &hidden()
    )));
    assert_eq!(
        engine.stats().unwrap().documents,
        0,
        "nothing written by a rejected batch"
    );
}

/// Shared suite: the three modes over one small corpus, each hit carrying its retrievers'
/// scores, and words found by the lexical retriever after an update and gone after a delete.
pub fn modes_follow_updates_and_deletes(backing: &dyn Backing) {
    let engine = backing.engine(|_| {});
    engine
        .ingest(
            vec![
                crate::common::doc(
                    "rockets",
                    "The rocket launch from the cosmodrome was delayed by wind.",
                ),
                crate::common::doc(
                    "bread",
                    "Knead the dough, let it rise overnight, then bake the loaf.",
                ),
            ],
            &hidden(),
        )
        .unwrap();
    for mode in SearchMode::ALL {
        let r = engine
            .search(
                "when will the rocket launch",
                &SearchRequest {
                    k: 2,
                    mode,
                    ..SearchRequest::default()
                },
            )
            .unwrap();
        assert_eq!(r.mode, mode);
        assert_eq!(r.hits[0].doc_id, "rockets", "{mode:?}");
        let scores = r.hits[0].scores;
        assert_eq!(
            scores.dense.is_some(),
            mode != SearchMode::Lexical,
            "{mode:?}"
        );
        assert_eq!(
            scores.lexical.is_some(),
            mode != SearchMode::Dense,
            "{mode:?}"
        );
        assert_eq!(
            scores.late.is_some(),
            mode == SearchMode::Hybrid,
            "{mode:?}"
        );
    }
    let lexical = |q: &str| {
        engine
            .search(
                q,
                &SearchRequest {
                    k: 5,
                    mode: SearchMode::Lexical,
                    ..SearchRequest::default()
                },
            )
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.doc_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(lexical("loaf"), ["bread"]);
    engine
        .ingest(
            vec![crate::common::doc(
                "bread",
                "Sourdough needs a starter fed daily.",
            )],
            &hidden(),
        )
        .unwrap();
    assert!(
        lexical("loaf").is_empty(),
        "the old words went with the update"
    );
    assert_eq!(lexical("sourdough starter"), ["bread"]);
    engine.delete("bread").unwrap();
    assert!(
        lexical("sourdough").is_empty(),
        "and the new ones with the delete"
    );
    // A query of stop words only, or of characters no analyser keeps, finds nothing by words.
    assert!(lexical("the of and").is_empty());
    assert!(lexical("!!! ???").is_empty());
}

/// Shared suite: every filter operator, on values of every JSON type, gives the same
/// documents on every backend (missing keys, types that must not coerce, odd keys, NUL).
pub fn metadata_filters_match_the_reference(backing: &dyn Backing) {
    let engine = backing.engine(|_| {});
    engine
        .ingest(
            vec![
                crate::common::doc("plain", "A satellite story without metadata."),
                with_meta(
                    "p2019",
                    "Rockets launched satellites in 2019.",
                    json!({"year": 2019, "lang": "en", "draft": true, "dotted.key": "x", "q\"uote": 1}),
                ),
                with_meta(
                    "p2021",
                    "Ein Satellit wurde 2021 gestartet.",
                    json!({"year": 2021, "lang": "de", "draft": false, "": "empty key"}),
                ),
                with_meta(
                    "s2021",
                    "Un satellite a été lancé en 2021.",
                    json!({"year": "2021", "lang": "fr", "note": null}),
                ),
                with_meta(
                    "p2024",
                    "A satellite launch is planned for 2024.",
                    json!({"year": 2024, "lang": "en", "draft": 1, "big": 1e300}),
                ),
            ],
            &hidden(),
        )
        .unwrap();
    let cases = [
        (json!({"lang": "en"}), "p2019,p2024"),
        (json!({"year": {"$gte": 2020}}), "p2021,p2024"),
        (json!({"year": {"$gt": 2019, "$lte": 2021}}), "p2021"),
        (json!({"year": {"$lt": 2021}}), "p2019"),
        (json!({"year": 2021}), "p2021"),
        (json!({"year": 2021.0}), "p2021"),
        (json!({"year": "2021"}), "s2021"),
        (json!({"year": {"$gte": "2000"}}), "s2021"),
        (json!({"year": {"$ne": 2021}}), "p2019,p2024,plain,s2021"),
        (json!({"lang": {"$in": ["de", "fr"]}}), "p2021,s2021"),
        (json!({"year": {"$in": [2019, "2021"]}}), "p2019,s2021"),
        (json!({"lang": {"$nin": ["de", "fr"]}}), "p2019,p2024,plain"),
        (json!({"draft": true}), "p2019"),
        (json!({"draft": 1}), "p2024"),
        (json!({"draft": {"$in": [false, null]}}), "p2021"),
        (json!({"note": null}), "s2021"),
        (json!({"note": {"$exists": true}}), "s2021"),
        (json!({"lang": {"$exists": false}}), "plain"),
        (json!({"dotted.key": "x"}), "p2019"),
        (json!({"q\"uote": 1}), "p2019"),
        (json!({"": "empty key"}), "p2021"),
        (json!({"big": {"$gt": 1e299}}), "p2024"),
        (json!({"lang": {"$gt": "en"}}), "s2021"),
        (json!({"lang": {"$lt": "en\u{0}x"}}), "p2019,p2021,p2024"),
        (json!({"lang": "en\u{0}"}), ""),
        (
            json!({"lang": {"$ne": "en\u{0}"}}),
            "p2019,p2021,p2024,plain,s2021",
        ),
        (
            json!({"la\u{0}ng": {"$exists": false}}),
            "p2019,p2021,p2024,plain,s2021",
        ),
        (
            json!({"$or": [{"lang": "de"}, {"year": {"$gte": 2024}}]}),
            "p2021,p2024",
        ),
        (
            json!({"$and": [{"lang": "en"}, {"$or": [{"draft": true}, {"draft": false}]}]}),
            "p2019",
        ),
    ];
    for exact in [true, false] {
        for (filter, expected) in &cases {
            let request = SearchRequest {
                k: 100,
                exact,
                filter: ChunkFilter {
                    doc_ids: None,
                    metadata: MetadataFilter::parse(filter).unwrap(),
                },
                ..SearchRequest::default()
            };
            let ids: std::collections::BTreeSet<String> = engine
                .search("satellite launch", &request)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.doc_id)
                .collect();
            let ids: Vec<String> = ids.into_iter().collect();
            assert_eq!(ids.join(","), *expected, "{filter} (exact {exact})");
        }
    }
    // Document ids with NUL name nothing (and are no error).
    let request = SearchRequest {
        k: 10,
        filter: ChunkFilter {
            doc_ids: Some(vec!["p2019".into(), "p\u{0}2021".into()]),
            metadata: MetadataFilter::default(),
        },
        ..SearchRequest::default()
    };
    let hits = engine.search("satellite", &request).unwrap().hits;
    assert!(hits.iter().all(|h| h.doc_id == "p2019") && !hits.is_empty());
    assert!(matches!(
        engine.document("p\u{0}2021"),
        Err(EngineError::NotFound(_))
    ));
}

/// Short passages in which query words recur, so that BM25's term frequency, document
/// frequency and length all matter (each under 40 terms, where tantivy stores lengths exactly).
pub const BM25_CORPUS: [(&str, &str); 5] = [
    (
        "launch",
        "The rocket launch was delayed. A second launch is planned for Friday at the cosmodrome.",
    ),
    (
        "cosmodrome",
        "Vostochny cosmodrome hosted the summit of the two leaders in the Amur region.",
    ),
    (
        "train",
        "An armored train carried the leader across the border towards the cosmodrome.",
    ),
    (
        "factories",
        "Factories for military aircraft and equipment may be visited next.",
    ),
    (
        "rockets",
        "Rockets, rockets and more rockets: the launch pads of the cosmodrome were busy all year round.",
    ),
];

/// The queries [`lexical_scores_are_bm25`] checks: a rare word, a common one, several at once
/// (one repeated), a word no passage has.
pub const BM25_QUERIES: [&str; 4] = [
    "vostochny",
    "cosmodrome",
    "rocket launch launch from the cosmodrome",
    "submarine",
];

/// BM25 as tantivy computes it (k1 1.2, b 0.75; idf ln(1 + (N - n + 0.5) / (n + 0.5)); the
/// query's distinct terms), over `passages` by semdex's analyzer: the reference both backends
/// must match. Best first; `passages` in the order they were ingested.
pub fn bm25_reference(passages: &[(&str, &str)], query: &str) -> Vec<(String, f64)> {
    use semdex::lexical::analyzer::terms;
    let docs: Vec<Vec<String>> = passages.iter().map(|(_, text)| terms(text)).collect();
    let n = docs.len() as f64;
    let avgdl = docs.iter().map(Vec::len).sum::<usize>() as f64 / n;
    let mut query_terms = terms(query);
    query_terms.sort();
    query_terms.dedup();
    let mut scored: Vec<(String, f64)> = passages
        .iter()
        .zip(&docs)
        .filter_map(|((id, _), doc)| {
            let mut score = 0.0;
            let mut matched = false;
            for term in &query_terms {
                let tf = doc.iter().filter(|t| *t == term).count() as f64;
                if tf == 0.0 {
                    continue;
                }
                matched = true;
                let df = docs.iter().filter(|d| d.contains(term)).count() as f64;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                score +=
                    idf * 2.2 * tf / (tf + 1.2 * (1.0 - 0.75 + 0.75 * doc.len() as f64 / avgdl));
            }
            matched.then(|| (id.to_string(), score))
        })
        .collect();
    // Ties in the order of ingest, as both backends break them (by passage id).
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored
}

/// Asserts that `engine`'s lexical hits for `query` under `filter` are `want`: the same
/// passages, in order, with the same scores (to f32 rounding).
fn assert_lexical_hits(engine: &Engine, query: &str, filter: ChunkFilter, want: &[(String, f64)]) {
    let hits = engine
        .search(
            query,
            &SearchRequest {
                k: 10,
                mode: SearchMode::Lexical,
                filter,
                ..SearchRequest::default()
            },
        )
        .unwrap()
        .hits;
    let got: Vec<(String, f64)> = hits
        .iter()
        .map(|h| (h.doc_id.clone(), f64::from(h.score)))
        .collect();
    assert_eq!(
        got.iter().map(|g| &g.0).collect::<Vec<_>>(),
        want.iter().map(|w| &w.0).collect::<Vec<_>>(),
        "{query:?}: {got:?} vs {want:?}"
    );
    for ((id, g), (_, w)) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs(),
            "{query:?}, {id}: score {g}, BM25 says {w}"
        );
    }
}

/// Asserts that `engine`'s lexical hits for each of [`BM25_QUERIES`] are `expected(query)`.
pub fn assert_bm25(engine: &Engine, expected: impl Fn(&str) -> Vec<(String, f64)>) {
    for query in BM25_QUERIES {
        assert_lexical_hits(engine, query, ChunkFilter::default(), &expected(query));
    }
}

/// Shared suite: lexical scores are BM25's, computed here from the analyzer's terms, on every
/// backend: the same ranking whatever stores the passages. A filter narrows the hits, not the
/// statistics: frequencies stay the collection's.
pub fn lexical_scores_are_bm25(backing: &dyn Backing) {
    let engine = backing.engine(|_| {});
    engine
        .ingest(
            BM25_CORPUS
                .iter()
                .enumerate()
                .map(|(i, (id, text))| with_meta(id, text, json!({"i": i})))
                .collect(),
            &hidden(),
        )
        .unwrap();
    assert_bm25(&engine, |q| bm25_reference(&BM25_CORPUS, q));

    let filters = [
        ChunkFilter {
            doc_ids: Some(vec!["rockets".into(), "train".into(), "unknown".into()]),
            ..ChunkFilter::default()
        },
        ChunkFilter {
            metadata: MetadataFilter::parse(&json!({"i": {"$in": [2, 4]}})).unwrap(),
            ..ChunkFilter::default()
        },
    ];
    let query = "rocket launch at the cosmodrome";
    let want: Vec<(String, f64)> = bm25_reference(&BM25_CORPUS, query)
        .into_iter()
        .filter(|(id, _)| id == "rockets" || id == "train")
        .collect();
    for filter in filters {
        assert_lexical_hits(&engine, query, filter, &want);
    }
}

/// The shaping tests' corpus: one long document in short sentences (so that passages of 40
/// tokens end where sentences do), a short one, and two identical ones.
const VOYAGE: [&str; 12] = [
    "The delegation left Moscow on a cold Monday morning.",
    "Their train crossed the Amur river before dawn.",
    "Reporters waited at the station for several hours.",
    "The leaders met at the Vostochny cosmodrome in the Amur region.",
    "They toured the launch pads and the assembly hall together.",
    "Engineers explained how the new rockets are built.",
    "Lunch was served in a small dining room near the hangar.",
    "The menu included duck dumplings and a crab salad.",
    "After lunch the talks turned to artillery shells.",
    "Both sides refused to publish any agreement.",
    "The visitors then left by train for Vladivostok.",
    "A naval parade was planned for the following day.",
];
const BREAD: &str = "Knead the dough for ten minutes on a floured board. Let it rise overnight in a \
cool kitchen. Shape the loaf and bake it in a hot oven. A good crust needs steam in the first \
minutes. Let the bread cool for an hour before slicing it.";
const DUPLICATE: &str =
    "Rockets are launched from the Vostochny cosmodrome in the far east of Russia.";

/// An engine with passages of at most 40 tokens over the shaping corpus.
fn shaping_engine(backing: &dyn Backing) -> Engine {
    let engine = backing.engine(|o| o.chunk.max_tokens = 40);
    engine
        .ingest(
            vec![
                with_meta(
                    "voyage",
                    &VOYAGE.join(" "),
                    json!({"topic": "politics", "year": 2023}),
                ),
                with_meta("bread", BREAD, json!({"topic": "food", "year": 2021.0})),
                with_meta("dup-a", DUPLICATE, json!({"topic": "space"})),
                with_meta(
                    "dup-b",
                    DUPLICATE,
                    json!({"topic": "space", "year": [1, 2]}),
                ),
            ],
            &hidden(),
        )
        .unwrap();
    engine
}

/// A request in `mode` for `k` results shaped by `shape`.
fn shaped(mode: SearchMode, k: usize, shape: Shaping) -> SearchRequest {
    SearchRequest {
        k,
        mode,
        shape,
        ..SearchRequest::default()
    }
}

/// Shared suite: groups hold at most `group_size` passages of one document (or one metadata
/// value), in rank order, groups by their best score; filters apply; documents without the
/// key are left out; an unknown key and bounds past their ranges are refused.
pub fn shaping_groups_by_document_and_metadata(backing: &dyn Backing) {
    let engine = shaping_engine(backing);
    let passages = |doc: &str| engine.document_chunks(doc).unwrap().len();
    assert!(
        passages("voyage") >= 4 && passages("bread") >= 2,
        "short passages"
    );
    let by = |key: &str, size: usize| Shaping {
        group_by: Some(GroupBy::parse(key).unwrap()),
        group_size: size,
        ..Shaping::default()
    };
    for mode in SearchMode::ALL {
        let query = "rocket launch at the cosmodrome";
        // What the mode finds of each document at all (lexical search only finds passages
        // with a query word): a group holds up to 2 of those.
        let found = engine
            .search(query, &shaped(mode, 100, Shaping::default()))
            .unwrap()
            .hits;
        let found_in = |doc: &str| found.iter().filter(|h| h.doc_id == doc).count();
        let r = engine
            .search(query, &shaped(mode, 3, by("doc_id", 2)))
            .unwrap();
        assert_eq!(r.groups.len(), 3, "{mode:?}");
        let mut next = 0;
        for g in &r.groups {
            let doc = g.key.as_str().unwrap();
            assert_eq!(g.hits, (next..next + g.hits.len()).collect::<Vec<_>>());
            next += g.hits.len();
            assert_eq!(g.hits.len(), found_in(doc).min(2), "{mode:?} {doc}");
            assert!(g.hits.iter().all(|&h| r.hits[h].doc_id == doc));
            let best = g
                .hits
                .iter()
                .map(|&h| r.hits[h].score)
                .fold(f32::MIN, f32::max);
            assert_eq!(g.score, best);
            assert!(
                g.hits
                    .windows(2)
                    .all(|w| r.hits[w[0]].score >= r.hits[w[1]].score)
            );
        }
        assert_eq!(next, r.hits.len());
        assert!(
            r.groups.windows(2).all(|w| w[0].score >= w[1].score),
            "{mode:?}"
        );
    }
    // By a metadata value: every topic once, each with up to 3 of its passages.
    let r = engine
        .search(
            "what happened",
            &shaped(SearchMode::Dense, 5, by("topic", 3)),
        )
        .unwrap();
    let sizes: std::collections::BTreeMap<String, usize> = r
        .groups
        .iter()
        .map(|g| (g.key.as_str().unwrap().to_string(), g.hits.len()))
        .collect();
    let want: std::collections::BTreeMap<String, usize> = [
        ("politics".to_string(), passages("voyage").min(3)),
        ("food".to_string(), passages("bread").min(3)),
        ("space".to_string(), 2),
    ]
    .into();
    assert_eq!(sizes, want);
    // 2023 and 2021.0 are values; a list is not; documents without the key are left out.
    let r = engine
        .search(
            "what happened",
            &shaped(SearchMode::Dense, 5, by("year", 1)),
        )
        .unwrap();
    let keys: Vec<f64> = r.groups.iter().map(|g| g.key.as_f64().unwrap()).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&2023.0) && keys.contains(&2021.0));
    // Filters apply before grouping.
    let mut filtered = shaped(SearchMode::Hybrid, 5, by("topic", 2));
    filtered.filter.metadata = MetadataFilter::parse(&json!({"topic": "food"})).unwrap();
    let r = engine.search("bake a loaf", &filtered).unwrap();
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].key, json!("food"));
    fn invalid(r: Result<semdex::engine::SearchResults, EngineError>) -> String {
        match r {
            Err(EngineError::InvalidRequest(m)) => m,
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }
    let unknown = invalid(engine.search("q", &shaped(SearchMode::Dense, 5, by("colour", 1))));
    assert!(unknown.contains("colour"), "{unknown}");
    for (shape, field) in [
        (by("doc_id", 0), "group_size"),
        (by("doc_id", 101), "group_size"),
        (
            Shaping {
                expand: 11,
                ..Shaping::default()
            },
            "expand",
        ),
        (
            Shaping {
                diversity: Some(1.5),
                ..Shaping::default()
            },
            "diversity",
        ),
        (
            Shaping {
                diversity: Some(-0.1),
                ..Shaping::default()
            },
            "diversity",
        ),
        (
            Shaping {
                budget: Some(Budget::Tokens(0)),
                ..Shaping::default()
            },
            "max_tokens",
        ),
        (
            Shaping {
                budget: Some(Budget::Chars(0)),
                ..Shaping::default()
            },
            "max_chars",
        ),
    ] {
        let message = invalid(engine.search("q", &shaped(SearchMode::Dense, 5, shape)));
        assert!(
            message.starts_with(field) && message.contains("between"),
            "{message}"
        );
    }
}

/// Shared suite: without diversity two identical passages take the first two places; with
/// it the second place goes to a different passage.
pub fn shaping_diversity_drops_near_duplicates(backing: &dyn Backing) {
    let engine = shaping_engine(backing);
    let query = "rockets launched from the Vostochny cosmodrome in Russia";
    let top2 = |diversity: Option<f32>| -> Vec<String> {
        let shape = Shaping {
            diversity,
            ..Shaping::default()
        };
        engine
            .search(query, &shaped(SearchMode::Dense, 2, shape))
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.doc_id)
            .collect()
    };
    let mut plain = top2(None);
    plain.sort();
    assert_eq!(plain, ["dup-a", "dup-b"]);
    assert_eq!(top2(Some(0.0)).len(), 2, "0 is allowed and changes nothing");
    let diverse = top2(Some(0.5));
    assert!(diverse[0].starts_with("dup-"), "{diverse:?}");
    assert!(!diverse[1].starts_with("dup-"), "{diverse:?}");
}

/// Shared suite: windows of `expand` passages on each side, merged where they overlap, each
/// exactly its document's text; a budget of tokens or characters is never
/// exceeded, is reported, and cuts at sentence boundaries.
pub fn shaping_windows_merge_and_fit_the_budget(backing: &dyn Backing) {
    let engine = shaping_engine(backing);
    let voyage = engine.document("voyage").unwrap().text;
    let spans = engine.document_chunks("voyage").unwrap();
    let only_voyage = |mut r: SearchRequest| {
        r.filter.doc_ids = Some(vec!["voyage".into()]);
        r
    };
    let expand = |n: usize| Shaping {
        expand: n,
        ..Shaping::default()
    };
    for mode in SearchMode::ALL {
        let r = engine
            .search(
                "the leaders met at the cosmodrome",
                &only_voyage(shaped(mode, 2, expand(1))),
            )
            .unwrap();
        assert!(!r.contexts.is_empty(), "{mode:?}");
        // The windows a merge of each hit's passages ±1 gives (those sharing a passage), in
        // the order of first hits.
        let mut want: Vec<(usize, usize)> = Vec::new();
        for h in &r.hits {
            let (lo, hi) = (
                h.chunk_index.saturating_sub(1),
                (h.chunk_index + 1).min(spans.len() - 1),
            );
            match want.iter_mut().find(|w| lo <= w.1 && w.0 <= hi) {
                Some(w) => *w = (w.0.min(lo), w.1.max(hi)),
                None => want.push((lo, hi)),
            }
        }
        let want: Vec<(usize, usize)> = want
            .iter()
            .map(|&(lo, hi)| (spans[lo].start, spans[hi].end))
            .collect();
        let got: Vec<(usize, usize)> = r.contexts.iter().map(|c| (c.start, c.end)).collect();
        assert_eq!(got, want, "{mode:?}");
        for (i, c) in r.contexts.iter().enumerate() {
            assert_eq!(c.text, voyage[c.start..c.end], "{mode:?}");
            for other in &r.contexts[i + 1..] {
                assert!(
                    c.end <= other.start || other.end <= c.start,
                    "overlap: {mode:?}"
                );
            }
        }
        for (i, h) in r.hits.iter().enumerate() {
            let holding: Vec<_> = r.contexts.iter().filter(|c| c.hits.contains(&i)).collect();
            assert_eq!(holding.len(), 1, "{mode:?}");
            assert!(holding[0].start <= h.start && h.end <= holding[0].end);
        }
    }

    let tokens = |text: &str| {
        crate::common::encoder()
            .tokenizer()
            .token_spans(text)
            .unwrap()
            .len()
    };
    let sentences = semdex::engine::shape::sentences::sentence_spans(&voyage);
    let on_sentences = |c: &semdex::engine::Context| {
        sentences.iter().any(|s| s.0 == c.start) && sentences.iter().any(|s| s.1 == c.end)
    };
    for (budget, limit) in [
        (Budget::Tokens(50), 50),
        (Budget::Tokens(120), 120),
        (Budget::Chars(200), 200),
        (Budget::Tokens(4), 4),
    ] {
        for expand in [0, 1] {
            let shape = Shaping {
                expand,
                budget: Some(budget),
                ..Shaping::default()
            };
            let r = engine
                .search(
                    "the talks in the Amur region",
                    &only_voyage(shaped(SearchMode::Hybrid, 10, shape)),
                )
                .unwrap();
            let used: usize = r
                .contexts
                .iter()
                .map(|c| match budget {
                    Budget::Tokens(_) => tokens(&c.text),
                    Budget::Chars(_) => c.text.chars().count(),
                })
                .sum();
            let report = r.budget.unwrap();
            assert_eq!(report.used, used, "{budget:?} expand {expand}");
            assert!(
                used <= limit && used > 0,
                "{budget:?} expand {expand}: {used}"
            );
            // The whole document is larger than every budget here: some of it is left out,
            // and a context cut to the budget ends at sentence boundaries (a budget too small
            // for one sentence cuts at a word instead).
            let kept: usize = r.contexts.iter().map(|c| c.end - c.start).sum();
            assert!(kept < voyage.len(), "{budget:?} expand {expand}");
            for c in &r.contexts {
                assert_eq!(c.text, voyage[c.start..c.end]);
                if c.trimmed && limit >= 50 {
                    assert!(on_sentences(c), "{budget:?} expand {expand}: {:?}", c.text);
                }
            }
            assert!(
                r.contexts
                    .iter()
                    .take(r.contexts.len() - 1)
                    .all(|c| !c.trimmed),
                "only the last context may be cut"
            );
            // Every hit kept lies in a context; every context holds a hit.
            for (i, h) in r.hits.iter().enumerate() {
                assert!(
                    r.contexts
                        .iter()
                        .any(|c| c.hits.contains(&i) && h.start < c.end && c.start < h.end)
                );
            }
            assert!(r.contexts.iter().all(|c| !c.hits.is_empty()));
        }
    }
}

/// Shared suite: highlights lie inside their passage, on sentence boundaries, best first; the
/// sentence that answers comes first in every mode; none unless asked for.
pub fn shaping_highlights_lie_on_sentences(backing: &dyn Backing) {
    let engine = shaping_engine(backing);
    let voyage = engine.document("voyage").unwrap().text;
    let answer = VOYAGE[3];
    let sentences = semdex::engine::shape::sentences::sentence_spans(&voyage);
    for mode in SearchMode::ALL {
        let mut request = shaped(
            mode,
            3,
            Shaping {
                highlights: true,
                ..Shaping::default()
            },
        );
        request.filter.doc_ids = Some(vec!["voyage".into()]);
        let r = engine
            .search("Where did the leaders meet?", &request)
            .unwrap();
        assert!(!r.hits.is_empty());
        for h in &r.hits {
            let marks = h.highlights.as_ref().unwrap();
            for m in marks {
                assert!(h.start <= m.start && m.end <= h.end, "{mode:?}");
                assert!(sentences.contains(&(m.start, m.end)), "{mode:?}: {m:?}");
            }
            assert!(marks.windows(2).all(|w| w[0].score >= w[1].score));
            if h.text.contains(answer) {
                let top = marks
                    .first()
                    .expect("the answering passage has a highlight");
                assert_eq!(&voyage[top.start..top.end], answer, "{mode:?}");
            }
        }
        assert!(r.hits.iter().any(|h| h.text.contains(answer)), "{mode:?}");
    }
    let plain = engine
        .search(
            "Where did the leaders meet?",
            &shaped(SearchMode::Hybrid, 3, Shaping::default()),
        )
        .unwrap();
    assert!(plain.hits.iter().all(|h| h.highlights.is_none()));
}

/// A real file read as semdex's file doors read it.
fn extracted_file(id: &str, name: &str) -> semdex::engine::DocumentInput {
    let path = crate::common::data(&format!("documents/{name}"));
    let bytes = std::fs::read(&path).unwrap();
    let extracted = semdex::extract::extract(
        bytes,
        &semdex::extract::Hint::file(name),
        &semdex::extract::ExtractLimits::default(),
    )
    .unwrap();
    semdex::engine::sources::extracted_document(id.into(), name.into(), extracted)
}

/// Shared suite: where a passage lies (its document's title, its section's heading path, its
/// PDF pages) is stored with it and comes back with every hit, on every backend; a passage
/// is found by the words of the headings it lies under, not only by its own (the lexical
/// index holds headings before passages, as the encoder sees them); text given as text has
/// none of it.
pub fn citations_and_headings_as_lexical_context(backing: &dyn Backing) {
    let engine = backing.engine(|_| {});
    engine
        .ingest(
            vec![
                extracted_file("json", "json.html"),
                extracted_file("os.path", "libreoffice-os.path.pdf"),
                crate::common::doc("plain", "Interoperability of plain text, without headings."),
            ],
            &hidden(),
        )
        .unwrap();

    let html = engine.document("json").unwrap();
    assert_eq!(html.format.as_deref(), Some("html"));
    let title = html.title.clone().expect("the HTML <title>");
    assert!(title.contains("JSON"), "{title:?}");
    let spans = engine.document_chunks("json").unwrap();
    assert!(spans.iter().any(|s| !s.section.is_empty()), "{spans:?}");

    // "Interoperability" heads a section whose subsections' passages never say it.
    let heading = "Interoperability";
    let says = |text: &str| text.to_lowercase().contains(&heading.to_lowercase());
    let under: Vec<_> = spans
        .iter()
        .filter(|s| s.section.iter().any(|h| says(h)) && !says(&html.text[s.start..s.end]))
        .collect();
    assert!(
        !under.is_empty(),
        "no passage under the heading lacks its words"
    );
    let hits = engine
        .search(
            heading,
            &SearchRequest {
                k: 50,
                mode: SearchMode::Lexical,
                ..SearchRequest::default()
            },
        )
        .unwrap()
        .hits;
    for s in &under {
        assert!(
            hits.iter().any(|h| h.chunk_id == s.chunk_id),
            "passage {} under {:?} not found by its heading",
            s.index,
            s.section
        );
    }
    for h in &hits {
        let cited = h.citation.section.iter().any(|x| says(x));
        assert!(cited || says(&h.text), "{h:?}");
    }

    // Every hit cites what the document's passages hold, whatever retriever found it.
    let pdf = engine.document("os.path").unwrap();
    assert_eq!(pdf.format.as_deref(), Some("pdf"));
    let pdf_spans = engine.document_chunks("os.path").unwrap();
    assert!(pdf_spans.iter().all(|s| s.pages.is_some()), "{pdf_spans:?}");
    let last_page = pdf_spans.last().unwrap().pages.unwrap().last;
    assert!(last_page >= 2, "the PDF has several pages");
    assert!(
        pdf_spans
            .windows(2)
            .all(|w| w[0].pages.unwrap().first <= w[1].pages.unwrap().first)
    );
    for mode in [SearchMode::Hybrid, SearchMode::Dense, SearchMode::Lexical] {
        let hits = engine
            .search(
                "normalize the case of a pathname",
                &SearchRequest {
                    k: 20,
                    mode,
                    ..SearchRequest::default()
                },
            )
            .unwrap()
            .hits;
        assert!(!hits.is_empty());
        for h in &hits {
            let (doc, spans) = match h.doc_id.as_str() {
                "json" => (&html, &spans),
                "os.path" => (&pdf, &pdf_spans),
                "plain" => {
                    assert_eq!(h.citation, semdex::storage::Citation::default());
                    continue;
                }
                other => panic!("unknown document {other}"),
            };
            let span = spans.iter().find(|s| s.chunk_id == h.chunk_id).unwrap();
            assert_eq!(h.citation.section, span.section, "{mode:?}");
            assert_eq!(h.citation.pages, span.pages, "{mode:?}");
            assert_eq!(h.citation.title, doc.title, "{mode:?}");
        }
    }
    let plain = engine.document("plain").unwrap();
    assert_eq!((plain.title, plain.format), (None, None));
}
