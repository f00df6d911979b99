//! Every route over real HTTP on a real socket, with the real model: good input, bad input,
//! limits, auth, and concurrent writers and readers.

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use semdex::api::ApiConfig;
use semdex::queue::QueueOptions;
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn server() -> crate::common::TestServer {
    crate::common::start_server(ApiConfig::default(), QueueOptions::default())
}

/// Asserts an error response: the status, a JSON body with a code and a message.
fn assert_error(response: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{status}: error bodies are JSON"
    );
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_string();
    assert!(!message.is_empty());
    message
}

fn post(s: &crate::common::TestServer, path: &str, body: Value) -> Response {
    client().post(s.url(path)).json(&body).send().unwrap()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn search_post_and_get() {
    let s = server();
    let r = post(
        &s,
        "/search",
        json!({"query": "What ammunition does Russia need?", "k": 3}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(
        results[0]["text"]
            .as_str()
            .unwrap()
            .contains("artillery shells")
    );
    for key in [
        "doc_id",
        "chunk_id",
        "chunk_index",
        "score",
        "start",
        "end",
        "metadata",
    ] {
        assert!(!results[0][key].is_null(), "{key}");
    }
    let doc = s.engine.document("seed").unwrap();
    let (start, end) = (
        results[0]["start"].as_u64().unwrap() as usize,
        results[0]["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&doc.text[start..end], results[0]["text"].as_str().unwrap());
    assert!(body["took_ms"].as_f64().unwrap() > 0.0);

    let r = client()
        .get(s.url("/search?q=naval%20drill&k=2"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().unwrap()["results"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let filtered = post(
        &s,
        "/search",
        json!({"query": "drill", "k": 2, "exact": true, "filter": {"doc_ids": ["nope"]}}),
    );
    assert_eq!(
        filtered.json::<Value>().unwrap()["results"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn bad_search_requests_are_json_4xx() {
    let s = server();
    assert_error(
        post(&s, "/search", json!({"query": "  "})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(&s, "/search", json!({"query": "q", "k": 0})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    let m = assert_error(
        post(&s, "/search", json!({"query": "q", "k": 1000000})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert!(m.contains("1000"), "{m}");
    assert_error(
        post(&s, "/search", json!({"query": "q", "ef": 0})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(&s, "/search", json!({"query": 5})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(&s, "/search", json!({"k": 5})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(&s, "/search", json!({"query": "q", "kk": 5})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(
            &s,
            "/search",
            json!({"query": "q", "filter": {"metadata": {"a": [1]}}}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    let c = client();
    let r = c
        .post(s.url("/search"))
        .header("content-type", "application/json")
        .body("{bad")
        .send()
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_json");
    let r = c
        .post(s.url("/search"))
        .header("content-type", "application/json")
        .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'])
        .send()
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_json");
    let r = c
        .post(s.url("/search"))
        .body("{\"query\": \"q\"}")
        .send()
        .unwrap();
    assert_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    assert_error(
        c.get(s.url("/search")).send().unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        c.get(s.url("/search?q=x&k=abc")).send().unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        c.put(s.url("/search")).send().unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        c.get(s.url("/no/such/route")).send().unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[test]
fn documents_crud() {
    let s = server();
    let r = post(
        &s,
        "/documents",
        json!({"id": "one", "text": "The satellite launch failed twice this year.", "metadata": {"lang": "en"}}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().unwrap();
    assert_eq!(body["documents"][0]["status"], "created");
    assert_eq!(body["documents"][0]["chunks"], 1);

    let r = post(
        &s,
        "/documents",
        json!({"documents": [
            {"id": "one", "text": "The satellite launch failed twice this year.", "metadata": {"lang": "en"}},
            {"text": "A document without an id gets one from its hash."},
        ]}),
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["documents"][0]["status"], "unchanged");
    let generated = body["documents"][1]["id"].as_str().unwrap().to_string();
    assert!(generated.starts_with("doc-"));

    let r = client().get(s.url("/documents/one")).send().unwrap();
    let doc: Value = r.json().unwrap();
    assert_eq!(doc["text"], "The satellite launch failed twice this year.");
    assert_eq!(doc["metadata"]["lang"], "en");
    assert_eq!(doc["chunks"], 1);

    let list: Value = client()
        .get(s.url("/documents?limit=2&offset=0"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["total"], 3);
    assert_eq!(list["documents"].as_array().unwrap().len(), 2);
    let page2: Value = client()
        .get(s.url("/documents?limit=2&offset=2"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(page2["documents"].as_array().unwrap().len(), 1);
    assert_error(
        client().get(s.url("/documents?limit=0")).send().unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );

    let filtered = post(
        &s,
        "/search",
        json!({"query": "satellite", "k": 5, "filter": {"metadata": {"lang": "en"}}}),
    );
    let hits: Value = filtered.json().unwrap();
    assert_eq!(hits["results"].as_array().unwrap().len(), 1);
    assert_eq!(hits["results"][0]["doc_id"], "one");

    let r = client().delete(s.url("/documents/one")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().unwrap()["deleted_chunks"], 1);
    assert_error(
        client().delete(s.url("/documents/one")).send().unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        client().get(s.url("/documents/one")).send().unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let after: Value = post(
        &s,
        "/search",
        json!({"query": "satellite launch failed", "k": 10}),
    )
    .json()
    .unwrap();
    assert!(
        after["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["doc_id"] != "one")
    );

    assert_error(
        post(&s, "/documents", json!({"text": "   "})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(&s, "/documents", json!({"documents": []})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(
            &s,
            "/documents",
            json!({"documents": [{"id": "d", "text": "a"}, {"id": "d", "text": "b"}]}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(&s, "/documents", json!({"id": "x"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_eq!(
        s.engine.stats().unwrap().documents,
        2,
        "rejected requests wrote nothing"
    );
}

#[test]
fn tei_embed_and_similarity() {
    let s = server();
    let one: Value = post(&s, "/embed", json!({"inputs": "Hello world"}))
        .json()
        .unwrap();
    let v = floats(&one[0]);
    assert_eq!(v.len(), 384);
    assert!((norm(&v) - 1.0).abs() < 1e-4);
    let direct = crate::common::encoder()
        .embed_one("Hello world")
        .unwrap()
        .unit;
    assert!(crate::common::cosine(&v, &direct) > 0.99999);

    let many: Value = post(
        &s,
        "/embed",
        json!({"inputs": ["a", "b", "c"], "normalize": false}),
    )
    .json()
    .unwrap();
    assert_eq!(many.as_array().unwrap().len(), 3);
    assert!(
        (norm(&floats(&many[0])) - 1.0).abs() > 1e-3,
        "normalize: false keeps the pooled norm"
    );

    let long = "word ".repeat(400);
    let m = assert_error(
        post(&s, "/embed", json!({"inputs": [long.clone()]})),
        StatusCode::PAYLOAD_TOO_LARGE,
        "input_too_long",
    );
    assert!(m.contains("402"), "{m}");
    let ok: Value = post(&s, "/embed", json!({"inputs": long, "truncate": true}))
        .json()
        .unwrap();
    assert_eq!(floats(&ok[0]).len(), 384);
    assert_error(
        post(&s, "/embed", json!({"inputs": []})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    let too_many: Vec<String> = (0..600).map(|i| format!("t{i}")).collect();
    assert_error(
        post(&s, "/embed", json!({"inputs": too_many})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(&s, "/embed", json!({"inputs": 42})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(
            &s,
            "/embed",
            json!({"inputs": "x", "truncation_direction": "Left"}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    let empty: Value = post(&s, "/embed", json!({"inputs": ""})).json().unwrap();
    assert_eq!(
        floats(&empty[0]).len(),
        384,
        "the empty string has an embedding, as in sentence-transformers"
    );

    let scores: Value = post(
        &s,
        "/similarity",
        json!({"inputs": {
            "source_sentence": "A man is playing a guitar.",
            "sentences": ["Someone plays an instrument.", "The stock market fell sharply."]
        }}),
    )
    .json()
    .unwrap();
    let scores = floats(&scores);
    assert_eq!(scores.len(), 2);
    assert!(scores[0] > scores[1] + 0.3, "{scores:?}");
    assert!(scores.iter().all(|x| (-1.0..=1.0001).contains(x)));
    assert_error(
        post(
            &s,
            "/similarity",
            json!({"inputs": {"source_sentence": "a", "sentences": []}}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
}

#[test]
fn openai_embeddings_float_and_base64() {
    let s = server();
    let texts = ["The cosmodrome summit", "artillery shells"];
    let reference: Value = post(&s, "/embed", json!({"inputs": texts})).json().unwrap();
    let r: Value = post(
        &s,
        "/v1/embeddings",
        json!({"input": texts, "model": "text-embedding-3-small"}),
    )
    .json()
    .unwrap();
    assert_eq!(r["object"], "list");
    assert_eq!(r["model"], "all-MiniLM-L6-v2");
    assert_eq!(r["data"][1]["index"], 1);
    assert_eq!(r["data"][0]["object"], "embedding");
    assert_eq!(floats(&r["data"][0]["embedding"]), floats(&reference[0]));
    let tokens = r["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens >= 8, "{tokens}");
    assert_eq!(r["usage"]["total_tokens"], tokens);

    let b: Value = post(
        &s,
        "/v1/embeddings",
        json!({"input": texts[1], "encoding_format": "base64"}),
    )
    .json()
    .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, floats(&reference[1]));

    let short: Value = post(
        &s,
        "/v1/embeddings",
        json!({"input": "x", "dimensions": 64}),
    )
    .json()
    .unwrap();
    let v = floats(&short["data"][0]["embedding"]);
    assert_eq!(v.len(), 64);
    assert!((norm(&v) - 1.0).abs() < 1e-4);

    assert_error(
        post(&s, "/v1/embeddings", json!({"input": [[1, 2, -3]]})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(
            &s,
            "/v1/embeddings",
            json!({"input": "x", "encoding_format": "int8"}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(
            &s,
            "/v1/embeddings",
            json!({"input": "x", "dimensions": 1000}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    assert_error(
        post(&s, "/v1/embeddings", json!({"model": "m"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
}

#[test]
fn health_info_metrics_openapi() {
    let s = server();
    let c = client();
    assert_eq!(
        c.get(s.url("/health"))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["status"],
        "ok"
    );
    let info: Value = c.get(s.url("/info")).send().unwrap().json().unwrap();
    assert_eq!(info["dimension"], 384);
    assert_eq!(info["max_tokens"], 256);
    assert_eq!(info["documents"], 1);
    assert_eq!(info["index"]["kind"], "hnsw");
    assert_eq!(info["pooling"], "mean");
    assert_eq!(info["precision"], "f32");
    assert_eq!(
        info["kernels"],
        semdex::embed::KernelPath::from_env().unwrap().as_str()
    );
    // One batch budget: the queue gathers what one forward pass of the encoder takes.
    let encoder = crate::common::encoder();
    assert_eq!(
        info["queue"]["max_batch_tokens"],
        encoder.options().max_batch_tokens
    );
    assert_eq!(
        info["queue"]["max_batch_size"],
        encoder.options().max_batch_size
    );
    post(&s, "/embed", json!({"inputs": "warm the metrics"}));
    let metrics = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    for name in [
        "semdex_http_requests_total",
        "semdex_http_request_duration_seconds_bucket",
        "semdex_embed_batch_inputs",
        "semdex_queue_depth",
        "semdex_index_vectors",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("route=\"/embed\""));
    let spec: Value = c
        .get(s.url("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/search",
        "/documents",
        "/documents/{id}",
        "/embed",
        "/similarity",
        "/v1/embeddings",
        "/health",
        "/info",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} not in /openapi.json");
    }
    assert!(paths["/search"].get("get").is_some() && paths["/search"].get("post").is_some());
    assert!(paths["/documents/{id}"].get("delete").is_some());
}

#[test]
fn api_key_and_cors() {
    let s = crate::common::start_server(
        ApiConfig {
            api_key: Some("sekret".into()),
            cors_origins: vec!["https://app.example".into()],
            ..ApiConfig::default()
        },
        QueueOptions::default(),
    );
    let c = client();
    assert_eq!(
        c.get(s.url("/health")).send().unwrap().status(),
        StatusCode::OK,
        "/health needs no key"
    );
    let r = c.get(s.url("/info")).send().unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(
        c.get(s.url("/info")).bearer_auth("wrong").send().unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(
        c.get(s.url("/info"))
            .bearer_auth("sekret")
            .send()
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let preflight = c
        .request(reqwest::Method::OPTIONS, s.url("/search"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

#[test]
fn body_limit_and_timeout() {
    let s = crate::common::start_server(
        ApiConfig {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_millis(100),
            ..ApiConfig::default()
        },
        QueueOptions::default(),
    );
    let big = "x".repeat(100_000);
    assert_error(
        post(&s, "/embed", json!({"inputs": big})),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // A request held at the `service.embed` hook until it has been answered: it outlasts the
    // 100 ms limit however fast the machine.
    let inputs: Vec<String> = (0..120)
        .map(|i| format!("timed out {i} {}", "summit talks ".repeat(29)))
        .collect();
    let small_enough = serde_json::to_string(&json!({"inputs": inputs})).unwrap();
    assert!(small_enough.len() < 64 * 1024);
    let gate = semdex::hooks::Gate::new();
    let held = gate.clone();
    let _hook = semdex::hooks::install("service.embed", inputs[0].clone(), move || held.wait());
    let r = post(&s, "/embed", json!({"inputs": inputs}));
    gate.open();
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "timeout");
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let s = crate::common::start_server(
        ApiConfig::default(),
        QueueOptions {
            max_queued_inputs: 8,
            ..QueueOptions::default()
        },
    );
    let inputs: Vec<String> = (0..8)
        .map(|i| format!("request text number {i} about the summit"))
        .collect();
    let statuses: Vec<(StatusCode, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                let inputs = inputs.clone();
                let s = &s;
                scope.spawn(move || {
                    let r = post(s, "/embed", json!({"inputs": inputs}));
                    let retry = r
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    (r.status(), retry)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: Vec<_> = statuses
        .iter()
        .filter(|(st, _)| *st == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(
        refused
            .iter()
            .all(|(_, retry)| retry.as_deref() == Some("1"))
    );
    assert!(statuses.iter().any(|(st, _)| *st == StatusCode::OK));
    assert!(
        statuses
            .iter()
            .all(|(st, _)| *st == StatusCode::OK || *st == StatusCode::TOO_MANY_REQUESTS)
    );
}

#[test]
fn concurrent_writers_and_readers() {
    let s = server();
    std::thread::scope(|scope| {
        for w in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..5 {
                    let r = post(s, "/documents", json!({"id": format!("w{w}-{i}"), "text": format!("Writer {w} wrote note {i} about the Pacific fleet and the armored train.")}));
                    assert_eq!(r.status(), StatusCode::OK);
                }
            });
        }
        // Two writers racing on the same id: both succeed, one version wins whole.
        for v in 0..2 {
            let s = &s;
            scope.spawn(move || {
                for round in 0..3 {
                    let text = format!(
                        "Shared document, version {v}, round {round}. {}",
                        "More text. ".repeat(40)
                    );
                    assert_eq!(
                        post(s, "/documents", json!({"id": "shared", "text": text})).status(),
                        StatusCode::OK
                    );
                }
            });
        }
        for _ in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for _ in 0..5 {
                    let r = post(s, "/search", json!({"query": "Pacific fleet", "k": 5}));
                    assert_eq!(r.status(), StatusCode::OK);
                }
            });
        }
    });
    let stats = s.engine.stats().unwrap();
    assert_eq!(stats.documents, 1 + 20 + 1);
    assert_eq!(stats.indexed, stats.chunks, "index and store agree");
    let shared = s.engine.document("shared").unwrap();
    let hits = s
        .engine
        .search(
            "Shared document",
            &semdex::engine::SearchRequest {
                k: 100,
                exact: true,
                filter: semdex::storage::ChunkFilter {
                    doc_ids: Some(vec!["shared".into()]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        hits.hits.len(),
        shared.chunks,
        "only the winning version's chunks remain"
    );
    assert!(
        hits.hits
            .iter()
            .all(|h| shared.text[h.start..h.end] == h.text)
    );
}

/// A copy of the model folder whose pipeline has no Normalize step (the same weights, linked):
/// the shape of many sentence-transformers models.
fn model_without_normalize() -> (tempfile::TempDir, std::path::PathBuf) {
    let source = crate::common::model_dir();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("no-normalize");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if name != "modules.json" {
            std::os::unix::fs::symlink(&path, copy.join(name)).unwrap();
        }
    }
    let modules: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(source.join("modules.json")).unwrap())
            .unwrap();
    let kept: Vec<Value> = modules
        .into_iter()
        .filter(|m| !m["type"].as_str().unwrap().ends_with("Normalize"))
        .collect();
    assert_eq!(kept.len(), 2);
    std::fs::write(
        copy.join("modules.json"),
        serde_json::to_vec(&kept).unwrap(),
    )
    .unwrap();
    (dir, copy)
}

#[test]
fn embeddings_are_right_for_a_model_without_normalize() {
    let (_dir, folder) = model_without_normalize();
    let encoder = std::sync::Arc::new(
        semdex::embed::Encoder::load(&folder, semdex::embed::EncoderOptions::default()).unwrap(),
    );
    assert!(!encoder.config().normalize);
    let s = crate::common::start_server_with(
        ApiConfig::default(),
        QueueOptions::default(),
        semdex::service::ServiceOptions::default(),
        encoder,
    );
    // The normalising model's unit vector is the reference direction; the pooled vector is the
    // same direction with its own length.
    let reference = crate::common::encoder().embed_one("Hello world").unwrap();

    let raw: Value = post(
        &s,
        "/embed",
        json!({"inputs": "Hello world", "normalize": false}),
    )
    .json()
    .unwrap();
    let raw = floats(&raw[0]);
    assert!(
        (norm(&raw) - reference.norm()).abs() < 1e-3,
        "normalize: false returns the pooled vector ({} vs {})",
        norm(&raw),
        reference.norm()
    );
    let unit: Value = post(&s, "/embed", json!({"inputs": "Hello world"}))
        .json()
        .unwrap();
    let unit = floats(&unit[0]);
    assert!(
        (norm(&unit) - 1.0).abs() < 1e-4,
        "normalize: true is unit length"
    );
    assert!(crate::common::cosine(&unit, &reference.unit) > 0.99999);

    let scores: Vec<f32> = post(
        &s,
        "/similarity",
        json!({"inputs": {"source_sentence": "Hello world", "sentences": ["Hello world", "Goodbye moon"]}}),
    )
    .json()
    .unwrap();
    assert!(
        (scores[0] - 1.0).abs() < 1e-4,
        "cosine, not a raw dot product: {scores:?}"
    );
    assert!(scores[1] < 0.9 && scores[1] > -1.0);

    let openai: Value = post(
        &s,
        "/v1/embeddings",
        json!({"input": "Hello world", "encoding_format": "float"}),
    )
    .json()
    .unwrap();
    let v = floats(&openai["data"][0]["embedding"]);
    assert!(
        (norm(&v) - 1.0).abs() < 1e-4,
        "OpenAI vectors are unit length"
    );

    // Search works on unit vectors too: a passage that is the query scores ~1.
    let hits: Value = post(
        &s,
        "/search",
        json!({"query": "Putin and Kim held a summit at the Vostochny Cosmodrome", "k": 1}),
    )
    .json()
    .unwrap();
    let score = hits["results"][0]["score"].as_f64().unwrap();
    assert!(score > 0.3 && score <= 1.0001, "{score}");
}
