//! The HTTP layer's edges: request ids and what a 500 tells, the `Bearer` scheme's case, the
//! `/metrics` label set, per-route body limits, and how much metadata a search answer carries.

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::{Method, StatusCode};
use semdex::api::ApiConfig;
use semdex::queue::QueueOptions;
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn server(config: ApiConfig) -> crate::common::TestServer {
    crate::common::start_server(config, QueueOptions::default())
}

fn post(s: &crate::common::TestServer, path: &str, body: &Value) -> Response {
    client().post(s.url(path)).json(body).send().unwrap()
}

fn request_id(r: &Response) -> String {
    r.headers()
        .get("x-request-id")
        .expect("every response has x-request-id")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_response_has_a_request_id_and_a_sane_incoming_one_is_kept() {
    let s = server(ApiConfig {
        api_key: Some("k".into()),
        ..ApiConfig::default()
    });
    let c = client();
    let mut seen = std::collections::HashSet::new();
    for r in [
        c.get(s.url("/health")).send().unwrap(),
        c.get(s.url("/info")).send().unwrap(),
        c.get(s.url("/info")).bearer_auth("k").send().unwrap(),
        c.get(s.url("/nope")).bearer_auth("k").send().unwrap(),
        c.get(s.url("/")).send().unwrap(),
    ] {
        assert!(seen.insert(request_id(&r)), "ids are fresh");
    }
    let r = c
        .get(s.url("/health"))
        .header("x-request-id", "proxy-7f3a:1")
        .send()
        .unwrap();
    assert_eq!(request_id(&r), "proxy-7f3a:1");
    for insane in ["has space", &"x".repeat(200), "quote\"d"] {
        let r = c
            .get(s.url("/health"))
            .header("x-request-id", insane)
            .send()
            .unwrap();
        let id = request_id(&r);
        assert_ne!(id, insane);
        assert!(!id.is_empty() && id.len() <= 64, "{id}");
    }
}

#[test]
fn a_500_tells_the_client_a_request_id_not_the_cause() {
    let s = server(ApiConfig::default());
    // Break the store under the running server: every read of the documents table fails.
    let db = rusqlite::Connection::open(
        s.engine
            .options()
            .data_dir
            .join(semdex::storage::embedded::store::DATABASE_FILE),
    )
    .unwrap();
    db.execute_batch("ALTER TABLE documents RENAME TO documents_gone")
        .unwrap();
    let r = client()
        .get(s.url("/documents"))
        .header("x-request-id", "trace-500")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(request_id(&r), "trace-500");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "internal");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("trace-500"), "{message}");
    for leak in ["documents", "SQL", "sqlite", "no such table", "/tmp"] {
        assert!(
            !message.to_lowercase().contains(&leak.to_lowercase()),
            "{leak:?} leaked: {message}"
        );
    }
    db.execute_batch("ALTER TABLE documents_gone RENAME TO documents")
        .unwrap();
    assert_eq!(
        client().get(s.url("/documents")).send().unwrap().status(),
        StatusCode::OK
    );
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let s = server(ApiConfig {
        api_key: Some("sekret".into()),
        ..ApiConfig::default()
    });
    let c = client();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = c
            .get(s.url("/info"))
            .header("authorization", format!("{scheme} sekret"))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
    }
    for wrong in [
        "Basic sekret",
        "Bearer",
        "Bearer  ",
        "sekret",
        "Bearer sekret2",
    ] {
        let r = c
            .get(s.url("/info"))
            .header("authorization", wrong)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
}

#[test]
fn unknown_methods_do_not_grow_the_metrics_label_set() {
    let s = server(ApiConfig::default());
    let c = client();
    for i in 0..5 {
        let method = Method::from_bytes(format!("XMETHOD{i}").as_bytes()).unwrap();
        let r = c.request(method, s.url("/search")).send().unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let metrics = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(!metrics.contains("XMETHOD"), "raw methods became labels");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

#[test]
fn search_has_a_small_body_limit_and_documents_the_global_one() {
    let s = server(ApiConfig {
        max_search_body_bytes: 4 * 1024,
        ..ApiConfig::default()
    });
    let padding = "pad ".repeat(5_000); // 20 KB
    let r = post(&s, "/search", &json!({"query": padding}));
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "payload_too_large"
    );
    let r = post(&s, "/documents", &json!({"id": "big", "text": padding}));
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "documents keep the global limit"
    );
}

#[test]
fn search_answers_carry_a_bounded_amount_of_metadata() {
    let s = server(ApiConfig {
        max_response_metadata_bytes: 25_000,
        ..ApiConfig::default()
    });
    let blob = "m".repeat(10_000);
    let docs: Vec<Value> = (0..4)
        .map(|i| {
            json!({
                "id": format!("meta-{i}"),
                "text": format!("Artillery shells for the front, shipment {i}."),
                "metadata": {"blob": blob, "n": i},
            })
        })
        .collect();
    assert_eq!(
        post(&s, "/documents", &json!({ "documents": docs })).status(),
        StatusCode::OK
    );
    let filter = json!({"doc_ids": ["meta-0", "meta-1", "meta-2", "meta-3"]});
    let r: Value = post(
        &s,
        "/search",
        &json!({"query": "artillery shells shipment", "k": 4, "filter": filter}),
    )
    .json()
    .unwrap();
    let hits = r["results"].as_array().unwrap();
    assert_eq!(hits.len(), 4);
    let kept: Vec<bool> = hits
        .iter()
        .map(|h| h.get("metadata_omitted").is_none())
        .collect();
    assert_eq!(kept, [true, true, false, false], "two fit in 25 kB: {r}");
    assert_eq!(hits[0]["metadata"]["blob"], blob.as_str());
    assert_eq!(hits[2]["metadata"], json!({}));
    assert_eq!(hits[2]["metadata_omitted"], true);
    let size = serde_json::to_vec(&r).unwrap().len();
    assert!(size < 30_000, "the answer is {size} bytes");

    let r: Value = post(
        &s,
        "/search",
        &json!({"query": "artillery", "k": 4, "filter": filter, "include_metadata": false}),
    )
    .json()
    .unwrap();
    assert!(
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["metadata"] == json!({}) && h["metadata_omitted"] == true)
    );
    let r: Value = client()
        .get(s.url("/search?q=artillery&k=2&include_metadata=false"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["results"][0]["metadata_omitted"], true);
    let r: Value = client()
        .get(s.url("/search?q=artillery%20shipment&k=1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(r["results"][0].get("metadata_omitted").is_none(), "{r}");
}
