//! The bad-input matrix: every kind of malformed, oversized or hostile request gets its
//! documented status and a JSON error body, and the server stays up after each.

use std::io::{Read, Write};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use semdex::api::ApiConfig;
use semdex::queue::QueueOptions;
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Sends `request`; asserts its status, a JSON error body with a code and a message (unless
/// `status` is a success), and that the server still answers `/health`.
fn expect(s: &crate::common::TestServer, what: &str, request: RequestBuilder, status: StatusCode) {
    let r = request.send().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.status(), status, "{what}");
    if !status.is_success() {
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("application/json"), "{what}: {kind}");
        let body: Value = r.json().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(body["error"]["code"].is_string(), "{what}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{what}: {body}"
        );
    }
    alive(s, what);
}

fn alive(s: &crate::common::TestServer, after: &str) {
    let r = client().get(s.url("/health")).send();
    assert!(
        r.is_ok_and(|r| r.status() == StatusCode::OK),
        "the server is down after {after}"
    );
}

fn json_post(s: &crate::common::TestServer, path: &str, body: &Value) -> RequestBuilder {
    client().post(s.url(path)).json(body)
}

fn raw_post(s: &crate::common::TestServer, path: &str, body: Vec<u8>) -> RequestBuilder {
    client()
        .post(s.url(path))
        .header("content-type", "application/json")
        .body(body)
}

/// `depth` nested arrays around a number.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Writes a request head declaring `declared` body bytes, then `sent` of them (or a chunked
/// body of `sent` bytes when `declared` is `None`), and returns the status line that comes
/// back and the rest of what was read.
fn raw_request(
    s: &crate::common::TestServer,
    path: &str,
    declared: Option<u64>,
    sent: usize,
) -> String {
    let addr = s.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let length = match declared {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_string(),
    };
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{length}\r\n"
    )
    .unwrap();
    // The server may answer and close before all of it is sent: write errors are expected.
    let piece = vec![b' '; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(piece.len());
        let ok = match declared {
            Some(_) => stream.write_all(&piece[..n]).is_ok(),
            None => write!(stream, "{n:x}\r\n")
                .and_then(|()| stream.write_all(&piece[..n]))
                .and_then(|()| stream.write_all(b"\r\n"))
                .is_ok(),
        };
        if !ok {
            break;
        }
        left -= n;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&answer).contains("\"message\"") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn bad_inputs_get_their_documented_status_and_the_server_stays_up() {
    let s = crate::common::start_server(
        ApiConfig {
            max_body_bytes: 8 * 1024 * 1024,
            ..ApiConfig::default()
        },
        QueueOptions::default(),
    );
    let c = client();
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let bad = StatusCode::BAD_REQUEST;

    // Empty and whitespace text.
    for text in ["", " ", "\n\t \r\n", "\u{3000}"] {
        expect(
            &s,
            "blank document",
            json_post(&s, "/documents", &json!({"text": text})),
            unprocessable,
        );
        expect(
            &s,
            "blank query",
            json_post(&s, "/search", &json!({"query": text})),
            unprocessable,
        );
    }
    expect(
        &s,
        "GET /search blank q",
        c.get(s.url("/search?q=%20%20")),
        unprocessable,
    );
    expect(
        &s,
        "empty /embed input",
        json_post(&s, "/embed", &json!({"inputs": ""})),
        StatusCode::OK,
    );
    expect(
        &s,
        "no /embed inputs",
        json_post(&s, "/embed", &json!({"inputs": []})),
        unprocessable,
    );

    // A 10 MB document: over this server's 8 MiB body limit; to /embed it is a long input.
    let ten_mb = "naval drill ".repeat(875_000);
    expect(
        &s,
        "10 MB document",
        json_post(&s, "/documents", &json!({"id": "big", "text": ten_mb})),
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    let five_mb = &ten_mb[..5_000_000];
    expect(
        &s,
        "5 MB input, not truncating",
        json_post(&s, "/embed", &json!({"inputs": five_mb})),
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    expect(
        &s,
        "5 MB input, truncating",
        json_post(&s, "/embed", &json!({"inputs": five_mb, "truncate": true})),
        StatusCode::OK,
    );
    expect(
        &s,
        "5 MB query",
        json_post(&s, "/search", &json!({"query": five_mb})),
        StatusCode::PAYLOAD_TOO_LARGE,
    );

    // 100 MB bodies: refused before they are read whole, declared or chunked.
    let answer = raw_request(&s, "/documents", Some(100 * 1024 * 1024), 1024 * 1024);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    alive(&s, "a declared 100 MB body");
    let answer = raw_request(&s, "/documents", None, 9 * 1024 * 1024);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    alive(&s, "a chunked body over the limit");

    // Invalid UTF-8 and NUL bytes.
    let invalid = b"{\"query\": \"caf\xe9\"}".to_vec();
    expect(
        &s,
        "invalid UTF-8 body",
        raw_post(&s, "/search", invalid),
        bad,
    );
    // Query strings are decoded leniently (invalid sequences become U+FFFD), as browsers do.
    expect(
        &s,
        "invalid UTF-8 query string",
        c.get(s.url("/search?q=%FF%FE")),
        StatusCode::OK,
    );
    let raw_nul = b"{\"query\": \"a\x00b\"}".to_vec();
    expect(
        &s,
        "raw NUL in a JSON string",
        raw_post(&s, "/search", raw_nul),
        bad,
    );
    expect(
        &s,
        "escaped NUL in a document",
        json_post(
            &s,
            "/documents",
            &json!({"id": "nul", "text": "before\u{0}after"}),
        ),
        StatusCode::OK,
    );
    let stored: Value = c
        .get(s.url("/documents/nul"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stored["text"], "before\u{0}after", "stored verbatim");
    expect(
        &s,
        "escaped NUL in a query",
        json_post(&s, "/search", &json!({"query": "\u{0}summit\u{0}"})),
        StatusCode::OK,
    );

    // 10,000-deep nesting, wherever JSON goes: past serde_json's depth limit (128) it is
    // malformed (400); where a string was expected and read directly, the first bracket is
    // already the wrong type (422).
    let deep = nested(10_000);
    for (path, body, status) in [
        ("/search", format!("{{\"query\": {deep}}}"), unprocessable),
        ("/search", deep.clone(), unprocessable),
        (
            "/documents",
            format!("{{\"text\": \"t\", \"metadata\": {{\"a\": {deep}}}}}"),
            bad,
        ),
        ("/embed", format!("{{\"inputs\": {deep}}}"), bad),
        ("/v1/embeddings", format!("{{\"input\": {deep}}}"), bad),
        (
            "/similarity",
            format!("{{\"inputs\": {{\"source_sentence\": \"s\", \"sentences\": {deep}}}}}"),
            // `inputs` is read as a JSON object first (so that an array is not taken for
            // one), and that read meets the depth limit.
            bad,
        ),
    ] {
        expect(
            &s,
            &format!("deep nesting to {path}"),
            raw_post(&s, path, body.into_bytes()),
            status,
        );
    }

    // Wrong types and unknown fields.
    for (path, body) in [
        ("/search", json!({"query": 5})),
        ("/search", json!({"query": "q", "k": "5"})),
        ("/search", json!({"query": "q", "exact": "yes"})),
        ("/search", json!({"query": "q", "filter": 5})),
        ("/search", json!({"query": "q", "unknown": 1})),
        ("/documents", json!({"documents": "x"})),
        ("/documents", json!({"id": 7, "text": "t"})),
        ("/documents", json!({"text": "t", "metadata": [1, 2]})),
        ("/embed", json!({"inputs": {"a": 1}})),
        ("/v1/embeddings", json!({"input": [1.5]})),
        ("/similarity", json!({"inputs": "x"})),
    ] {
        expect(
            &s,
            &format!("{path} {body}"),
            json_post(&s, path, &body),
            unprocessable,
        );
    }
    expect(
        &s,
        "a JSON array body",
        raw_post(&s, "/search", b"[]".to_vec()),
        unprocessable,
    );
    expect(
        &s,
        "an empty body",
        raw_post(&s, "/search", Vec::new()),
        bad,
    );
    expect(
        &s,
        "no content type",
        c.post(s.url("/search")).body("{\"query\": \"q\"}"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    expect(
        &s,
        "a form body",
        c.post(s.url("/documents"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("text=hello"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );

    // k = 0 and 10⁹, negative and huge ef, over and under the ranges.
    for body in [
        json!({"query": "q", "k": 0}),
        json!({"query": "q", "k": 1_000_000_000}),
        json!({"query": "q", "ef": 0}),
        json!({"query": "q", "ef": 1_000_000_000}),
    ] {
        expect(
            &s,
            &body.to_string(),
            json_post(&s, "/search", &body),
            unprocessable,
        );
    }
    for body in [
        json!({"query": "q", "ef": -1}),
        json!({"query": "q", "k": -5}),
        json!({"query": "q", "k": 1e30}),
        json!({"query": "q", "k": 2.5}),
    ] {
        expect(
            &s,
            &body.to_string(),
            json_post(&s, "/search", &body),
            unprocessable,
        );
    }
    for query in ["k=0", "k=1000000000"] {
        expect(
            &s,
            query,
            c.get(s.url(&format!("/search?q=x&{query}"))),
            unprocessable,
        );
    }
    for query in [
        "ef=-1",
        "k=-1",
        "k=abc",
        "k=99999999999999999999999",
        "exact=maybe",
    ] {
        expect(
            &s,
            query,
            c.get(s.url(&format!("/search?q=x&{query}"))),
            bad,
        );
    }
    for query in ["limit=-1", "offset=-3", "limit=x"] {
        expect(&s, query, c.get(s.url(&format!("/documents?{query}"))), bad);
    }
    expect(
        &s,
        "limit=0",
        c.get(s.url("/documents?limit=0")),
        unprocessable,
    );
    expect(
        &s,
        "limit=1000000",
        c.get(s.url("/documents?limit=1000000")),
        unprocessable,
    );

    // Unknown ids.
    for (method, path) in [
        (reqwest::Method::GET, "/documents/no-such-id"),
        (reqwest::Method::DELETE, "/documents/no-such-id"),
        (reqwest::Method::GET, "/documents/no-such-id/chunks"),
        (reqwest::Method::GET, "/documents/%00"),
    ] {
        expect(
            &s,
            path,
            c.request(method, s.url(path)),
            StatusCode::NOT_FOUND,
        );
    }
    let hits: Value = c
        .post(s.url("/search"))
        .json(&json!({"query": "summit", "filter": {"doc_ids": ["no-such-id"]}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(hits["results"], json!([]));

    // Duplicate ids in one batch, and an over-long id: nothing is written.
    let before = s.engine.stats().unwrap().documents;
    expect(
        &s,
        "duplicate ids",
        json_post(
            &s,
            "/documents",
            &json!({"documents": [{"id": "twice", "text": "a"}, {"id": "fresh", "text": "b"}, {"id": "twice", "text": "c"}]}),
        ),
        unprocessable,
    );
    expect(
        &s,
        "over-long id",
        json_post(
            &s,
            "/documents",
            &json!({"id": "i".repeat(513), "text": "t"}),
        ),
        unprocessable,
    );
    assert_eq!(
        s.engine.stats().unwrap().documents,
        before,
        "nothing written"
    );
}

#[test]
fn wrong_or_missing_keys_get_401_everywhere_but_health() {
    let s = crate::common::start_server(
        ApiConfig {
            api_key: Some("the-key".into()),
            ..ApiConfig::default()
        },
        QueueOptions::default(),
    );
    let c = client();
    let routes = [
        (reqwest::Method::POST, "/search"),
        (reqwest::Method::GET, "/search?q=x"),
        (reqwest::Method::POST, "/documents"),
        (reqwest::Method::GET, "/documents"),
        (reqwest::Method::GET, "/documents/seed"),
        (reqwest::Method::DELETE, "/documents/seed"),
        (reqwest::Method::GET, "/documents/seed/chunks"),
        (reqwest::Method::POST, "/embed"),
        (reqwest::Method::POST, "/similarity"),
        (reqwest::Method::POST, "/v1/embeddings"),
        (reqwest::Method::GET, "/info"),
        (reqwest::Method::GET, "/metrics"),
        (reqwest::Method::GET, "/openapi.json"),
    ];
    for (method, path) in routes {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer the-key2"),
            Some("the-key"),
        ] {
            let mut request = c
                .request(method.clone(), s.url(path))
                .header("content-type", "application/json")
                .body("{}");
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let r = request.send().unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let body: Value = r.json().unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(
        s.engine.stats().unwrap().documents,
        1,
        "the seed is still there"
    );
    assert_eq!(
        c.get(s.url("/health")).send().unwrap().status(),
        StatusCode::OK
    );
}
