//! Shaped answers over real HTTP: `group_by`, `diversity`, `expand`, `max_tokens` /
//! `max_chars` and `highlights` on `POST` and `GET /search` and the collection routes; every
//! bad value a 422 naming the field and its range, with the same bounds in `/openapi.json`.

use reqwest::StatusCode;
use semdex::api::ApiConfig;
use semdex::engine::shape::{MAX_BUDGET_CHARS, MAX_BUDGET_TOKENS, MAX_EXPAND, MAX_GROUP_SIZE};
use semdex::queue::QueueOptions;
use serde_json::{Value, json};

use crate::common::{http_client, send, start_server};

const QUESTION: &str = "At which space facility did the two leaders hold their meeting?";

#[test]
fn shaped_answers_over_http() {
    let s = start_server(ApiConfig::default(), QueueOptions::default());
    let c = http_client();
    let seed = s.engine.document("seed").unwrap().text;

    // A budget with windows: contexts are the document's text, within the budget.
    let (status, body) = send(c.post(s.url("/search")).json(&json!({
        "query": QUESTION, "k": 10, "expand": 1, "max_tokens": 300, "highlights": true,
    })));
    assert_eq!(status, StatusCode::OK, "{body}");
    let budget = &body["budget"];
    assert_eq!(budget["unit"], "tokens");
    assert_eq!(budget["limit"], 300);
    let contexts = body["contexts"].as_array().unwrap();
    let tokenizer = crate::common::encoder();
    let mut used = 0;
    for context in contexts {
        let (start, end) = (
            context["start"].as_u64().unwrap() as usize,
            context["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(context["text"], seed[start..end]);
        used += tokenizer
            .tokenizer()
            .token_spans(context["text"].as_str().unwrap())
            .unwrap()
            .len();
        for position in context["results"].as_array().unwrap() {
            let hit = &body["results"][position.as_u64().unwrap() as usize];
            assert!(hit["start"].as_u64().unwrap() < end as u64);
        }
    }
    assert_eq!(budget["used"], used);
    assert!(used <= 300);
    let first = &body["results"][0];
    let marks = first["highlights"].as_array().unwrap();
    assert!(!marks.is_empty());
    let (m0, m1) = (
        marks[0]["start"].as_u64().unwrap() as usize,
        marks[0]["end"].as_u64().unwrap() as usize,
    );
    assert!(seed[m0..m1].contains("Vostochny"), "{}", &seed[m0..m1]);

    // Grouped, through GET and the collection route: one document, so one group.
    let (status, body) = send(c.get(s.url(&format!(
        "/collections/default/search?q={}&k=3&group_by=doc_id&group_size=2&diversity=0.3",
        QUESTION.replace(' ', "%20").replace('?', "%3F")
    ))));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["groups"],
        json!([{"key": "seed", "score": body["results"][0]["score"], "results": [0, 1]}])
    );
    assert!(body.get("contexts").is_none() && body.get("budget").is_none());
    assert!(body["results"][0].get("highlights").is_none());

    // Characters: the budget is never passed.
    let (status, body) = send(c.post(s.url("/search")).json(&json!({
        "query": QUESTION, "k": 5, "max_chars": 400,
    })));
    assert_eq!(status, StatusCode::OK, "{body}");
    let chars: usize = body["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().chars().count())
        .sum();
    assert!(chars <= 400 && chars > 0);
    assert_eq!(body["budget"]["used"], chars);
}

#[test]
fn bad_shaping_values_are_422_naming_the_field_and_its_range() {
    let s = start_server(ApiConfig::default(), QueueOptions::default());
    let c = http_client();
    let cases = [
        (
            json!({"group_by": "doc_id", "group_size": 0}),
            "group_size must be between 1 and 100",
        ),
        (
            json!({"group_by": "doc_id", "group_size": 5000}),
            "group_size must be between 1 and 100",
        ),
        (json!({"expand": 11}), "expand must be between 0 and 10"),
        (
            json!({"expand": 1_000_000_000}),
            "expand must be between 0 and 10",
        ),
        (
            json!({"max_tokens": 0}),
            "max_tokens must be between 1 and 100000",
        ),
        (
            json!({"max_tokens": 100_001}),
            "max_tokens must be between 1 and 100000",
        ),
        (
            json!({"max_chars": 0}),
            "max_chars must be between 1 and 1000000",
        ),
        (json!({"max_tokens": 10, "max_chars": 10}), "not both"),
        (
            json!({"diversity": 1.01}),
            "diversity must be between 0 and 1",
        ),
        (
            json!({"diversity": -1e-30}),
            "diversity must be between 0 and 1",
        ),
        (json!({"group_by": "colour"}), "\"colour\""),
        (json!({"group_by": ""}), "group_by must be"),
        (json!({"group_by": "$or"}), "group_by must be"),
    ];
    for (extra, needle) in &cases {
        let mut body = json!({"query": QUESTION});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        for path in ["/search", "/collections/default/search"] {
            let (status, answer) = send(c.post(s.url(path)).json(&body));
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {extra}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "invalid_request");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{extra}: {message}");
        }
    }
    // The same through GET's query string.
    for (name, value, needle) in [
        ("group_size", "0", "group_size"),
        ("expand", "11", "expand"),
        ("max_tokens", "0", "max_tokens"),
        ("diversity", "2", "diversity"),
    ] {
        let (status, answer) = send(c.get(s.url(&format!(
            "/search?q=where%20did%20they%20meet&group_by=doc_id&{name}={value}"
        ))));
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}={value}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle)
        );
    }
}

#[test]
fn shaping_bounds_are_in_the_openapi_schema() {
    let spec = serde_json::to_value(semdex::api::openapi()).unwrap();
    let body = &spec["components"]["schemas"]["SearchBody"]["properties"];
    let bounds = |field: &str| {
        (
            body[field]["minimum"].clone(),
            body[field]["maximum"].clone(),
        )
    };
    assert_eq!(bounds("group_size"), (json!(1), json!(MAX_GROUP_SIZE)));
    assert_eq!(bounds("expand"), (json!(0), json!(MAX_EXPAND)));
    assert_eq!(bounds("max_tokens"), (json!(1), json!(MAX_BUDGET_TOKENS)));
    assert_eq!(bounds("max_chars"), (json!(1), json!(MAX_BUDGET_CHARS)));
    assert_eq!(bounds("diversity"), (json!(0), json!(1)));
    assert_eq!(body["group_by"]["maxLength"], json!(256));
    let get = spec["paths"]["/search"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str| -> Value {
        get.iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not a GET /search parameter"))["schema"]
            .clone()
    };
    assert_eq!(param("group_size")["maximum"], json!(MAX_GROUP_SIZE));
    assert_eq!(param("expand")["maximum"], json!(MAX_EXPAND));
    assert_eq!(param("max_tokens")["maximum"], json!(MAX_BUDGET_TOKENS));
    assert_eq!(param("max_chars")["maximum"], json!(MAX_BUDGET_CHARS));
    for name in ["group_by", "diversity", "highlights"] {
        param(name);
    }
}
