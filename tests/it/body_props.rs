//! Request-body parsing, fuzzed with proptest (cargo-fuzz needs a nightly compiler): whatever
//! bytes arrive — random, random JSON, or a valid body with bytes changed — the extractor every
//! JSON route uses answers with the value or a 4xx JSON error, and never panics. Failing inputs
//! proptest finds are kept in `body_props.proptest-regressions` and replayed by `cargo test`.

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use semdex::api::error::ApiJson;
use semdex::api::types::{
    DocumentsBody, EmbedBody, OpenAiEmbeddingsBody, SearchBody, SimilarityBody,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Runs the real extractor on `bytes`; on a refusal, checks it is a 4xx with a JSON error body
/// and returns its status.
fn parse<T: DeserializeOwned>(bytes: &[u8], content_type: &str) -> Result<T, StatusCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let request = Request::post("/")
        .header("content-type", content_type)
        .body(Body::from(bytes.to_vec()))
        .unwrap();
    runtime.block_on(async {
        match ApiJson::<T>::from_request(request, &()).await {
            Ok(ApiJson(value)) => Ok(value),
            Err(error) => {
                let response = axum::response::IntoResponse::into_response(error);
                let status = response.status();
                assert!(status.is_client_error(), "{status}");
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert!(body["error"]["code"].is_string(), "{body}");
                assert!(
                    !body["error"]["message"].as_str().unwrap_or("").is_empty(),
                    "{body}"
                );
                Err(status)
            }
        }
    })
}

/// Parses `bytes` as every body type the API reads; a search body that parses also turns into
/// a request or a 422.
fn parse_all(bytes: &[u8]) {
    if let Ok(body) = parse::<SearchBody>(bytes, "application/json")
        && let Err(e) = body.to_request()
    {
        let status = axum::response::IntoResponse::into_response(e).status();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let _ = parse::<DocumentsBody>(bytes, "application/json");
    let _ = parse::<EmbedBody>(bytes, "application/json");
    let _ = parse::<OpenAiEmbeddingsBody>(bytes, "application/json");
    let _ = parse::<SimilarityBody>(bytes, "application/json");
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec(
                (
                    prop_oneof![
                        "\\PC{0,8}",
                        Just("query".to_string()),
                        Just("k".to_string()),
                        Just("ef".to_string()),
                        Just("filter".to_string()),
                        Just("documents".to_string()),
                        Just("text".to_string()),
                        Just("id".to_string()),
                        Just("metadata".to_string()),
                        Just("inputs".to_string()),
                        Just("input".to_string()),
                        Just("dimensions".to_string()),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Valid bodies of each route, to be damaged.
const VALID: [&str; 6] = [
    r#"{"query": "where was the summit", "k": 5, "ef": 64, "filter": {"doc_ids": ["a"], "metadata": {"year": {"$gte": 2020}}}}"#,
    r#"{"documents": [{"id": "a", "text": "some text", "metadata": {"year": 2024}}]}"#,
    r#"{"id": "a", "text": "some text"}"#,
    r#"{"inputs": ["one", "two"], "truncate": true}"#,
    r#"{"input": [[1, 2, 3]], "encoding_format": "base64", "dimensions": 8}"#,
    r#"{"inputs": {"source_sentence": "s", "sentences": ["a", "b"]}}"#,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_all(&bytes);
    }

    #[test]
    fn random_json_never_panics(value in json_value()) {
        parse_all(value.to_string().as_bytes());
    }

    #[test]
    fn damaged_valid_bodies_never_panic(
        which in 0..VALID.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut bytes = VALID[which].as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => bytes[i] = byte,
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        parse_all(&bytes);
    }
}

#[test]
fn the_valid_bodies_parse() {
    parse::<SearchBody>(VALID[0].as_bytes(), "application/json")
        .unwrap()
        .to_request()
        .unwrap();
    parse::<DocumentsBody>(VALID[1].as_bytes(), "application/json").unwrap();
    parse::<DocumentsBody>(VALID[2].as_bytes(), "application/json").unwrap();
    parse::<EmbedBody>(VALID[3].as_bytes(), "application/json").unwrap();
    parse::<OpenAiEmbeddingsBody>(VALID[4].as_bytes(), "application/json").unwrap();
    parse::<SimilarityBody>(VALID[5].as_bytes(), "application/json").unwrap();
}

#[test]
fn content_types_other_than_json_are_415() {
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let status = parse::<SearchBody>(VALID[0].as_bytes(), content_type)
            .err()
            .unwrap();
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
    }
    parse::<SearchBody>(VALID[0].as_bytes(), "application/json; charset=utf-8").unwrap();
}
