//! `POST /v1/embeddings` with token-id input, over real HTTP with the real model: what
//! LangChain's `OpenAIEmbeddings` sends by default (cl100k_base ids, long texts cut into
//! windows). Ids are made here with tiktoken-rs, the same encoding the server decodes with.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use semdex::api::ApiConfig;
use semdex::api::openai_tokens::TokenEncoding;
use semdex::queue::QueueOptions;
use serde_json::{Value, json};
use tiktoken_rs::{CoreBPE, cl100k_base_singleton, o200k_base_singleton};

/// ASCII, accents, CJK, emoji (a flag and a ZWJ family), and the empty string.
const TEXTS: [&str; 5] = [
    "Putin accepted an invitation to visit North Korea.",
    "Crème brûlée, façade, naïve Ærøskøbing",
    "金正恩与普京在东方航天发射场会晤。",
    "rockets 🚀🇰🇵 and 👩‍👩‍👧 families",
    "",
];

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn post(s: &crate::common::TestServer, path: &str, body: Value) -> Response {
    client().post(s.url(path)).json(&body).send().unwrap()
}

fn ok_json(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The vectors of an OpenAI response, in order.
fn vectors(response: &Value) -> Vec<Vec<f32>> {
    response["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            floats(&d["embedding"])
        })
        .collect()
}

fn assert_same(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(diff <= 1e-6, "{what}: vectors differ by {diff}");
}

/// The /embed vectors of texts (truncated to the model's window, as /v1/embeddings does): what
/// token ids of the same texts must give.
fn reference(s: &crate::common::TestServer, texts: &[&str]) -> Vec<Vec<f32>> {
    let body = ok_json(post(
        s,
        "/embed",
        json!({ "inputs": texts, "truncate": true }),
    ));
    body.as_array().unwrap().iter().map(floats).collect()
}

/// The error message of a 422 answer.
fn invalid(response: Response) -> String {
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

fn ids(bpe: &CoreBPE, text: &str) -> Vec<u32> {
    bpe.encode_ordinary(text)
}

/// Each text as one token array, and as a one-element array of arrays, gives the vector (and
/// the token count) of the text itself.
fn check_round_trip(s: &crate::common::TestServer, bpe: &CoreBPE, name: &str) {
    let want = reference(s, &TEXTS);
    for (text, want) in TEXTS.iter().zip(&want) {
        let as_text = ok_json(post(s, "/v1/embeddings", json!({ "input": text })));
        let mut bodies = vec![json!({ "input": [ids(bpe, text)] })];
        // `[]` is an empty list of inputs, not one empty token array; LangChain sends "" then.
        if !text.is_empty() {
            bodies.push(json!({ "input": ids(bpe, text) }));
        }
        for body in bodies {
            let r = ok_json(post(s, "/v1/embeddings", body.clone()));
            let got = vectors(&r);
            assert_eq!(got.len(), 1, "{body}");
            assert_same(&got[0], want, &format!("{name} ids of {text:?}"));
            assert_eq!(
                r["usage"]["prompt_tokens"], as_text["usage"]["prompt_tokens"],
                "usage counts the model's tokens of {text:?}"
            );
        }
    }
}

#[test]
fn cl100k_ids_embed_exactly_like_their_text() {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    check_round_trip(&s, cl100k_base_singleton(), "cl100k_base");
    let info = ok_json(client().get(s.url("/info")).send().unwrap());
    assert_eq!(info["openai_token_encoding"], "cl100k_base");
}

#[test]
fn a_batch_of_token_arrays_of_mixed_lengths() {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    let bpe = cl100k_base_singleton();
    let article = crate::common::seed_article();
    // Longer than the model's 256-token window: embedded truncated, as text is.
    let long: String = article.chars().take(3000).collect();
    let mut texts: Vec<&str> = vec![long.as_str()];
    texts.extend(TEXTS);
    texts.push("x");
    let want = reference(&s, &texts);
    let as_text = ok_json(post(&s, "/v1/embeddings", json!({ "input": texts })));
    let batch: Vec<Vec<u32>> = texts.iter().map(|t| ids(bpe, t)).collect();
    for format in ["float", "base64"] {
        let r = ok_json(post(
            &s,
            "/v1/embeddings",
            json!({ "input": batch, "encoding_format": format }),
        ));
        let got: Vec<Vec<f32>> = if format == "float" {
            vectors(&r)
        } else {
            use base64::Engine as _;
            r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    base64::engine::general_purpose::STANDARD
                        .decode(d["embedding"].as_str().unwrap())
                        .unwrap()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                })
                .collect()
        };
        assert_eq!(got.len(), texts.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_same(g, w, &format!("{format}: batch item {i}"));
        }
        assert_eq!(r["usage"], as_text["usage"]);
    }

    // LangChain cuts long texts into windows at arbitrary ids, which can split a character:
    // every window is still embedded (with U+FFFD for the cut bytes).
    let emoji = "🚀🇰🇵👩‍👩‍👧 金正恩 ".repeat(20);
    let windows: Vec<Vec<u32>> = ids(bpe, &emoji).chunks(7).map(<[u32]>::to_vec).collect();
    let r = ok_json(post(&s, "/v1/embeddings", json!({ "input": windows })));
    assert_eq!(vectors(&r).len(), windows.len());
}

#[test]
fn bad_ids_are_refused_naming_the_first_bad_position() {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    let cases = [
        (
            json!([[1, 2], [3, 4, 5, 6, 7, 8, 9, 100_300]]),
            "input[1][7]",
        ),
        (json!([1, 2, 100_277]), "input[2]"),
        (json!([1, 100_256]), "input[1]"),
        (json!([[1, 2], [3, -1]]), "input[1][1]"),
        (json!([1, 2.5]), "input[1]"),
        (json!([[1], 2]), "input[1]"),
        (json!([1, "two"]), "input[1]"),
        (json!(["one", 2]), "input[1]"),
    ];
    for (input, at) in cases {
        let message = invalid(post(&s, "/v1/embeddings", json!({ "input": input })));
        assert!(
            message.starts_with(&format!("{at}:")) || message.starts_with(&format!("{at} ")),
            "{input}: {message}"
        );
    }
    let message = invalid(post(&s, "/v1/embeddings", json!({ "input": [200_000] })));
    assert!(message.contains("cl100k_base"), "{message}");
    // The special tokens are ids of the encoding.
    ok_json(post(&s, "/v1/embeddings", json!({ "input": [100_257] })));
}

#[test]
fn o200k_ids_when_configured() {
    let s = crate::common::start_server(
        ApiConfig {
            openai_token_encoding: TokenEncoding::O200kBase,
            ..ApiConfig::default()
        },
        QueueOptions::default(),
    );
    check_round_trip(&s, o200k_base_singleton(), "o200k_base");
    let info = ok_json(client().get(s.url("/info")).send().unwrap());
    assert_eq!(info["openai_token_encoding"], "o200k_base");
    let message = invalid(post(
        &s,
        "/v1/embeddings",
        json!({ "input": [[1], [200_019]] }),
    ));
    assert!(
        message.starts_with("input[1][0]:") && message.contains("o200k_base"),
        "{message}"
    );
}
