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

