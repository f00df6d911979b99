//! Metadata filters end to end: the operator syntax over POST and GET /search, type rules,
//! the limits (422 with a JSON error, never a 500), the metadata cap on ingest, and the
//! strategy a selective filter gets.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::{StatusCode, Url};
use semdex::api::ApiConfig;
use semdex::engine::{DocumentInput, EngineOptions, SearchMode, SearchRequest, SearchStrategy};
use semdex::filter::MetadataFilter;
use semdex::progress::NoProgress;
use semdex::queue::QueueOptions;
use semdex::storage::ChunkFilter;
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn with_meta(id: &str, text: &str, meta: Value) -> DocumentInput {
    DocumentInput {
        id: id.to_string(),
        text: text.to_string(),
        metadata: meta.as_object().unwrap().clone(),
        source: None,
        structure: None,
        format: None,
    }
}

/// A server holding the seed article (no metadata) and four short papers.
fn server() -> crate::common::TestServer {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    s.engine
        .ingest(
            vec![
                with_meta(
                    "p2019",
                    "Rockets launched satellites in 2019.",
                    json!({"year": 2019, "lang": "en", "draft": true}),
                ),
                with_meta(
                    "p2021",
                    "Ein Satellit wurde 2021 gestartet.",
                    json!({"year": 2021, "lang": "de", "draft": false}),
                ),
                with_meta(
                    "s2021",
                    "Un satellite a été lancé en 2021.",
                    json!({"year": "2021", "lang": "fr", "note": null}),
                ),
                with_meta(
                    "p2024",
                    "A satellite launch is planned for 2024.",
                    json!({"year": 2024, "lang": "en", "draft": 1}),
                ),
            ],
            &NoProgress,
        )
        .unwrap();
    s
}

/// The error's status and message, after checking the body is `{"error": {"code", "message"}}`.
fn error(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    (
        status,
        body["error"]["message"].as_str().unwrap().to_string(),
    )
}

fn post_search(s: &crate::common::TestServer, filter: Value) -> Response {
    client()
        .post(s.url("/search"))
        .json(&json!({"query": "satellite launch", "k": 100, "exact": true, "filter": filter}))
        .send()
        .unwrap()
}

fn get_search(s: &crate::common::TestServer, filter: &str) -> Response {
    let url = Url::parse_with_params(
        &s.url("/search"),
        &[
            ("q", "satellite launch"),
            ("k", "100"),
            ("exact", "true"),
            ("filter", filter),
        ],
    )
    .unwrap();
    client().get(url).send().unwrap()
}

/// The distinct documents of a search response.
fn docs(response: Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().unwrap();
    let ids: BTreeSet<String> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["doc_id"].as_str().unwrap().to_string())
        .collect();
    ids.into_iter().collect::<Vec<_>>().join(",")
}

#[test]
fn operators_over_post_and_get() {
    let s = server();
    let cases = [
        (json!({"lang": "en"}), "p2019,p2024"),
        (json!({"year": {"$gte": 2020}}), "p2021,p2024"),
        (json!({"year": {"$gt": 2019, "$lte": 2021}}), "p2021"),
        (json!({"year": {"$lt": 2021}}), "p2019"),
        (json!({"year": 2021}), "p2021"),
        (json!({"year": "2021"}), "s2021"),
        (json!({"year": {"$gte": "2000"}}), "s2021"),
        (json!({"year": {"$ne": 2021}}), "p2019,p2024,s2021,seed"),
        (json!({"lang": {"$in": ["de", "fr"]}}), "p2021,s2021"),
        (json!({"lang": {"$nin": ["de", "fr"]}}), "p2019,p2024,seed"),
        (json!({"draft": true}), "p2019"),
        (json!({"draft": 1}), "p2024"),
        (json!({"note": null}), "s2021"),
        (json!({"lang": {"$exists": false}}), "seed"),
        (
            json!({"$or": [{"lang": "de"}, {"year": {"$gte": 2024}}]}),
            "p2021,p2024",
        ),
        (
            json!({"$and": [{"lang": "en"}, {"$or": [{"draft": true}, {"draft": false}]}]}),
            "p2019",
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            docs(post_search(&s, json!({"metadata": filter}))),
            expected,
            "POST {filter}"
        );
        let text = json!({"metadata": filter}).to_string();
        assert_eq!(docs(get_search(&s, &text)), expected, "GET {filter}");
    }
    // doc_ids and metadata together, in both forms.
    let both = json!({"doc_ids": ["p2019", "p2021"], "metadata": {"year": {"$gte": 2020}}});
    assert_eq!(docs(post_search(&s, both.clone())), "p2021");
    assert_eq!(docs(get_search(&s, &both.to_string())), "p2021");
    // An empty filter parameter is no filter.
    assert!(docs(get_search(&s, "")).contains("seed"));
}

#[test]
fn bad_filters_are_422_with_their_place() {
    let s = server();
    let (status, message) = error(post_search(
        &s,
        json!({"metadata": {"year": {"$gte": [2020]}}}),
    ));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        message,
        "filter.metadata.year: $gte needs a number or a string, got an array"
    );
    let (status, message) = error(get_search(
        &s,
        r#"{"metadata": {"title": {"$regex": "^A"}}}"#,
    ));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        message.starts_with("filter.metadata.title: unknown operator $regex;")
            && message.contains("$exists"),
        "{message}"
    );
    for bad in ["{not json", "[1]", r#"{"year": 2020}"#] {
        let (status, message) = error(get_search(&s, bad));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(
            message.starts_with("filter: expected a JSON object"),
            "{message}"
        );
    }
}

#[test]
fn limits_are_422_not_500() {
    let s = server();
    // The hardening issue: 16,384 keys used to exceed SQLite's variables and answer 500.
    let keys: serde_json::Map<String, Value> =
        (0..16_384).map(|i| (format!("k{i}"), json!(i))).collect();
    let (status, message) = error(post_search(&s, json!({ "metadata": keys })));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        message,
        "filter.metadata: more than 64 clauses; the limit is 64"
    );
    let sixty_four: serde_json::Map<String, Value> = (0..64)
        .map(|i| (format!("k{i}"), json!({"$nin": [i]})))
        .collect();
    assert!(docs(post_search(&s, json!({ "metadata": sixty_four }))).contains("seed"));

    let values: Vec<u32> = (0..1001).collect();
    let (status, message) = error(post_search(
        &s,
        json!({"metadata": {"year": {"$in": values}}}),
    ));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        message,
        "filter.metadata.year: $in has 1001 values; the limit is 1000"
    );
    let values: Vec<u32> = (0..1000).collect();
    assert_eq!(
        docs(post_search(
            &s,
            json!({"metadata": {"year": {"$in": values}}})
        )),
        ""
    );

    let ids: Vec<String> = (0..10_001).map(|i| format!("d{i}")).collect();
    let (status, message) = error(post_search(&s, json!({ "doc_ids": ids })));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        message,
        "filter.doc_ids: 10001 document ids; the limit is 10000"
    );
    let mut ids: Vec<String> = (0..9_999).map(|i| format!("d{i}")).collect();
    ids.push("p2024".into());
    assert_eq!(docs(post_search(&s, json!({ "doc_ids": ids }))), "p2024");
}

#[test]
fn metadata_over_64_kib_is_refused_on_ingest() {
    let s = server();
    let post = |metadata: Value| {
        client()
            .post(s.url("/documents"))
            .json(&json!({"id": "big", "text": "Large metadata.", "metadata": metadata}))
            .send()
            .unwrap()
    };
    // {"t":"..."} is 8 bytes of JSON around the string.
    let (status, message) = error(post(json!({"t": "x".repeat(65_536 - 7)})));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        message,
        "document \"big\": metadata: 65537 bytes of JSON; the limit is 65536 (64 KiB)"
    );
    let (status, message) = error(post(json!({ "k".repeat(257): 1 })));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        message.contains("is 257 bytes long; the limit is 256"),
        "{message}"
    );
    assert!(s.engine.document("big").is_err(), "nothing was written");
    let ok = post(json!({"t": "x".repeat(65_536 - 8)}));
    assert_eq!(ok.status(), StatusCode::OK);
}

#[test]
fn selective_filters_are_answered_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EngineOptions::new(dir.path());
    options.exact_below = 0;
    let engine = crate::common::engine_with(options);
    let docs: Vec<_> = crate::common::seed_windows(60, 30)
        .iter()
        .enumerate()
        .map(|(i, t)| with_meta(&format!("w{i}"), t, json!({"bucket": i % 20})))
        .collect();
    engine.ingest(docs, &NoProgress).unwrap();
    // Dense mode: hybrid retrieval asks for 100 candidates, which 60 passages never exceed,
    // so it always scores them exactly.
    let search = |filter: Value, exact: bool| {
        let request = SearchRequest {
            k: 3,
            exact,
            mode: SearchMode::Dense,
            filter: ChunkFilter {
                doc_ids: None,
                metadata: MetadataFilter::parse(&filter).unwrap(),
            },
            ..SearchRequest::default()
        };
        engine.search("military aircraft plant", &request).unwrap()
    };
    // One bucket in twenty: scored exactly among the admitted passages.
    let few = search(json!({"bucket": {"$in": [3]}}), false);
    assert_eq!(few.strategy, SearchStrategy::ExactFiltered);
    assert_eq!(few.hits.len(), 3);
    assert!(few.hits.iter().all(|h| h.metadata["bucket"] == 3));
    assert_eq!(few.hits, search(json!({"bucket": 3}), true).hits);
    // Everything admitted: the graph, skipping nothing.
    let all = search(json!({"bucket": {"$gte": 0}}), false);
    assert_eq!(all.strategy, SearchStrategy::HnswFiltered);
    assert_eq!(all.hits.len(), 3);
}
