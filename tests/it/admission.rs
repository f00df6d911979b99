//! Admission control over real HTTP: work is refused (429, `Retry-After`) before it is done,
//! ingest has a budget of its own, and a request that times out stops its blocking work.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use semdex::api::ApiConfig;
use semdex::queue::QueueOptions;
use semdex::service::ServiceOptions;
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(180))
        .build()
        .unwrap()
}

fn post(s: &crate::common::TestServer, path: &str, body: &Value) -> Response {
    client().post(s.url(path)).json(body).send().unwrap()
}

fn server(
    config: ApiConfig,
    queue: QueueOptions,
    service: ServiceOptions,
) -> crate::common::TestServer {
    crate::common::start_server_with(config, queue, service, crate::common::encoder())
}

/// Waits until `what` holds, or fails after `limit`.
fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(s: &crate::common::TestServer, line_start: &str) -> f64 {
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Passages of about 250 tokens: slow enough to keep the encoder busy for a while.
fn long_inputs(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{i} {}", "summit talks near the cosmodrome ".repeat(50)))
        .collect()
}

#[test]
fn a_busy_server_refuses_a_huge_input_before_tokenizing_it() {
    let s = server(
        ApiConfig::default(),
        QueueOptions {
            max_queued_inputs: 48,
            ..QueueOptions::default()
        },
        ServiceOptions::default(),
    );
    // 48 inputs: the whole embedding budget, held at the `service.embed` hook until the test
    // has seen what a busy server does.
    let inputs = long_inputs(48);
    let gate = semdex::hooks::Gate::new();
    let held = gate.clone();
    let _hook = semdex::hooks::install("service.embed", inputs[0].clone(), move || held.wait());
    let body = json!({"inputs": inputs, "truncate": true});
    let busy = std::thread::scope(|scope| {
        let worker = scope.spawn(|| post(&s, "/embed", &body).status());
        assert!(gate.wait_for_arrivals(1, Duration::from_secs(120)));
        // A 10 MB input: refused at once, without tokenizing 10 MB first.
        let huge = "naval drill ".repeat(900_000);
        let refused = post(&s, "/embed", &json!({"inputs": huge, "truncate": true}));
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "1");
        let body: Value = refused.json().unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
        // Searches share the budget.
        let search = post(&s, "/search", &json!({"query": "naval drill"}));
        assert_eq!(search.status(), StatusCode::TOO_MANY_REQUESTS);
        gate.open();
        worker.join().unwrap()
    });
    assert_eq!(busy, StatusCode::OK);
    assert!(
        metric(&s, "semdex_admission_refused_total{budget=\"inputs\"}") >= 2.0,
        "refusals are counted"
    );
    // Once the work is done the budget is free again.
    assert_eq!(
        post(&s, "/search", &json!({"query": "naval drill"})).status(),
        StatusCode::OK
    );
}

#[test]
fn ingest_has_a_budget_and_answers_429_past_it() {
    let s = server(
        ApiConfig::default(),
        QueueOptions::default(),
        ServiceOptions {
            max_ingest_requests: 1,
            ..ServiceOptions::default()
        },
    );
    let slow = json!({"documents": (0..8).map(|i| json!({
        "id": format!("slow-{i}"),
        "text": long_inputs(2).join("\n\n"),
    })).collect::<Vec<_>>()});
    // The slow ingest is held at its first document until the test has probed the budget.
    let gate = semdex::hooks::Gate::new();
    let held = gate.clone();
    let _hook = semdex::hooks::install("ingest.document", "slow-0", move || held.wait());
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| post(&s, "/documents", &slow).status());
        assert!(gate.wait_for_arrivals(1, Duration::from_secs(120)));
        let refused = post(
            &s,
            "/documents",
            &json!({"id": "quick", "text": "A short note."}),
        );
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "1");
        let body: Value = refused.json().unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ingesting"),
            "{body}"
        );
        // Reads and searches are not held up by the ingest budget.
        assert_eq!(
            post(&s, "/search", &json!({"query": "summit"})).status(),
            StatusCode::OK
        );
        gate.open();
        assert_eq!(worker.join().unwrap(), StatusCode::OK);
    });
    assert_eq!(
        post(
            &s,
            "/documents",
            &json!({"id": "quick", "text": "A short note."})
        )
        .status(),
        StatusCode::OK
    );
}

#[test]
fn a_timed_out_ingest_stops_at_the_next_group_of_documents() {
    let s = server(
        ApiConfig {
            request_timeout: Duration::from_millis(500),
            ..ApiConfig::default()
        },
        QueueOptions::default(),
        ServiceOptions {
            max_ingest_requests: 1,
            ..ServiceOptions::default()
        },
    );
    // 24 documents of ~16 KiB, ingested in groups of 4 (64 KiB). The second document is held
    // at the `ingest.document` hook until the caller has been answered: the ingest is still
    // in its first group when its request times out, however fast the machine.
    let gate = semdex::hooks::Gate::new();
    let held = gate.clone();
    let _hook = semdex::hooks::install("ingest.document", "d01", move || held.wait());
    let docs: Vec<Value> = (0..24)
        .map(|i| {
            json!({
                "id": format!("d{i:02}"),
                "text": format!("d{i:02} {}", "summit talks near the cosmodrome ".repeat(490)),
            })
        })
        .collect();
    let r = post(&s, "/documents", &json!({ "documents": docs }));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "timeout");
    assert_eq!(gate.arrivals(), 1, "the ingest was in its first group");
    gate.open();
    // The abandoned ingest holds its admission until it has really stopped...
    let started = Instant::now();
    wait_for(
        Duration::from_secs(120),
        "the abandoned ingest to stop",
        || {
            post(&s, "/documents", &json!({"id": "probe", "text": "probe"})).status()
                == StatusCode::OK
        },
    );
    // ...which is after the group it was in, not after all 24 documents.
    let stored = s.engine.stats().unwrap().documents - 2; // the seed and the probe
    assert_eq!(
        stored,
        4,
        "the first group only, of 24 documents ({:?})",
        started.elapsed()
    );
}
