//! `GET /documents/{id}/chunks` over real HTTP: the passages' byte offsets agree with the
//! document's text and with search results, ids with slashes work, unknown ids are 404.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use semdex::api::ApiConfig;
use semdex::queue::QueueOptions;
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// The path segment for a document id (ids may hold `/`, spaces, anything).
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get_json(c: &Client, url: &str) -> Value {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.json().unwrap()
}

#[test]
fn chunks_locate_every_passage_by_byte_offsets() {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    let c = client();
    // Multi-byte text before and inside the passages, and an id that needs escaping.
    let id = "notes/東京 ✓.md";
    let paragraph = "東京で会議が開かれた 🎌. The delegates met at the Vostochny cosmodrome. ";
    let text = paragraph.repeat(40);
    let r = c
        .post(s.url("/documents"))
        .json(&json!({"id": id, "text": text}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let body = get_json(&c, &s.url(&format!("/documents/{}/chunks", segment(id))));
    assert_eq!(body["id"], id);
    let chunks = body["chunks"].as_array().unwrap();
    assert!(chunks.len() > 1, "a long text has several passages");
    let doc = get_json(&c, &s.url(&format!("/documents/{}", segment(id))));
    assert_eq!(doc["chunks"].as_u64().unwrap() as usize, chunks.len());
    let bytes = doc["text"].as_str().unwrap().as_bytes();
    let mut previous_start = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["index"].as_u64().unwrap() as usize, i, "in order");
        let start = chunk["start"].as_u64().unwrap() as usize;
        let end = chunk["end"].as_u64().unwrap() as usize;
        assert!(start < end && end <= bytes.len());
        assert!(start >= previous_start);
        previous_start = start;
        // Offsets fall on character boundaries of the UTF-8 text.
        let passage = std::str::from_utf8(&bytes[start..end]).expect("char boundaries");
        assert!(!passage.trim().is_empty());
    }

    // A search hit's chunk_id and offsets are the same ones this route reports.
    let hits = c
        .post(s.url("/search"))
        .json(
            &json!({"query": "Where did the delegates meet?", "k": 3, "filter": {"doc_ids": [id]}}),
        )
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let hit = &hits["results"][0];
    let same = chunks
        .iter()
        .find(|c| c["chunk_id"] == hit["chunk_id"])
        .expect("the hit's chunk is listed");
    assert_eq!(same["start"], hit["start"]);
    assert_eq!(same["end"], hit["end"]);
    assert_eq!(same["index"], hit["chunk_index"]);
}

#[test]
fn chunks_of_the_seed_and_of_unknown_documents() {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    let c = client();
    let body = get_json(&c, &s.url("/documents/seed/chunks"));
    let seed = crate::common::seed_article();
    let chunks = body["chunks"].as_array().unwrap();
    assert!(!chunks.is_empty());
    let covered: String = chunks
        .iter()
        .map(|c| &seed[c["start"].as_u64().unwrap() as usize..c["end"].as_u64().unwrap() as usize])
        .collect();
    assert!(covered.contains("Vostochny"));

    let r = c
        .get(s.url("/documents/no-such-doc/chunks"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let error: Value = r.json().unwrap();
    assert_eq!(error["error"]["code"], "not_found");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-doc")
    );
}

#[test]
fn chunks_need_the_api_key_when_one_is_set() {
    let s = crate::common::start_server(
        ApiConfig {
            api_key: Some("sekret".into()),
            ..ApiConfig::default()
        },
        QueueOptions::default(),
    );
    let c = client();
    let url = s.url("/documents/seed/chunks");
    assert_eq!(
        c.get(&url).send().unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = c.get(&url).bearer_auth("sekret").send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn chunks_route_is_in_the_openapi_spec() {
    let spec = serde_json::to_value(semdex::api::openapi()).unwrap();
    assert!(spec["paths"]["/documents/{id}/chunks"].get("get").is_some());
}
