//! Faults from outside the request (issue 27), on real servers: abandoned and timed-out
//! ingests, slow and idle clients, a cap on connections, descriptors running out, a failure at
//! each step of a write, a full disk, and the smaller holes (OPTIONS, `.` ids, names differing
//! in case). Interleavings are made with hooks, never with sleeps that guess how long work takes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use semdex::api::ApiConfig;
use semdex::hooks::{Gate, inject_failure, install};
use semdex::queue::QueueOptions;
use semdex::service::ServiceOptions;
use serde_json::{Value, json};

use crate::common::{http_client as client, send};

/// Passages of real text, enough of them for several forward passes.
fn long_text(id: &str, windows: usize) -> String {
    format!(
        "{id}. {}",
        crate::common::seed_windows(windows, 60).join("\n\n")
    )
}

fn server(config: ApiConfig, service: ServiceOptions) -> crate::common::TestServer {
    crate::common::start_server_with(
        config,
        QueueOptions::default(),
        service,
        crate::common::encoder(),
    )
}

/// An ingest whose time runs out part of the way answers with the truth: the documents it
/// stored before its deadline as stored, the rest `not_stored`, and it writes nothing after.
#[test]
fn an_ingest_out_of_time_reports_what_it_stored_and_stores_nothing_after() {
    let s = server(ApiConfig::default(), ServiceOptions::default());
    // The first forward pass holds `dl-a`, `dl-b` and the start of `dl-c`; the second is all
    // `dl-c`'s, held at the hook until the test has moved the deadline past.
    let gate = Gate::new();
    let held = gate.clone();
    let _hold = install("ingest.forward_pass", "dl-c", move || held.wait());
    let body = json!({"documents": [
        {"id": "dl-a", "text": "A short note about the summit."},
        {"id": "dl-b", "text": "Another short note, about the railway."},
        {"id": "dl-c", "text": long_text("dl-c", 40)},
    ]});
    std::thread::scope(|scope| {
        let request = scope.spawn(|| send(client().post(s.url("/documents")).json(&body)));
        assert!(gate.wait_for_arrivals(1, Duration::from_secs(300)));
        let _late = inject_failure("service.deadline", "dl-a", "the deadline has passed");
        gate.open();
        let (status, body) = request.join().unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["timed_out"], true, "{body}");
        let statuses: Vec<(&str, &str)> = body["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].as_str().unwrap(), d["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("dl-a", "created"),
                ("dl-b", "created"),
                ("dl-c", "not_stored")
            ]
        );
    });
    assert!(s.engine.document("dl-a").is_ok());
    assert!(
        s.engine.document("dl-c").is_err(),
        "nothing written after the deadline"
    );
    assert_eq!(gate.arrivals(), 1, "no forward pass after the deadline");
}

/// An ingest that stores nothing by its deadline answers 503 `timeout`, and stores nothing.
#[test]
fn an_ingest_out_of_time_before_storing_anything_answers_503() {
    let s = server(ApiConfig::default(), ServiceOptions::default());
    let gate = Gate::new();
    let held = gate.clone();
    let _hold = install("ingest.forward_pass", "dl-only", move || held.wait());
    let body = json!({"id": "dl-only", "text": long_text("dl-only", 40)});
    std::thread::scope(|scope| {
        let request = scope.spawn(|| send(client().post(s.url("/documents")).json(&body)));
        assert!(gate.wait_for_arrivals(1, Duration::from_secs(300)));
        let _late = inject_failure("service.deadline", "dl-only", "the deadline has passed");
        gate.open();
        let (status, body) = request.join().unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "timeout");
    });
    assert!(s.engine.document("dl-only").is_err());
}

/// A client that goes away while its ingest is being embedded stops it at the next forward
/// pass: its ingest budget is free again and nothing of it is stored.
#[test]
fn an_abandoned_ingest_stops_at_the_next_forward_pass_and_frees_its_budget() {
    let s = server(
        ApiConfig::default(),
        ServiceOptions {
            max_ingest_requests: 1,
            ..ServiceOptions::default()
        },
    );
    let gate = Gate::new();
    let held = gate.clone();
    let _hold = install("ingest.forward_pass", "gone", move || held.wait());
    // Short lines: thousands of passages, as the "ab\n" × 1,000,000 (smaller here).
    let text = "ab\n".repeat(60_000);
    let body = serde_json::to_vec(&json!({"id": "gone", "text": text})).unwrap();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /documents HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    assert!(
        gate.wait_for_arrivals(1, Duration::from_secs(300)),
        "embedding began"
    );
    drop(stream); // the client goes away
    // Its request's future is dropped once the server sees the connection closed; the work
    // finishes the pass it is in and stops.
    gate.open();
    let started = Instant::now();
    loop {
        let (status, body) = send(
            client()
                .post(s.url("/documents"))
                .json(&json!({"id": "next", "text": "The next client's note."})),
        );
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the abandoned ingest still holds the budget ({} forward passes)",
            gate.arrivals()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gate.arrivals() <= 2,
        "stopped at the next forward pass, not after {} of them",
        gate.arrivals()
    );
    assert!(s.engine.document("gone").is_err(), "nothing of it stored");
}

/// A collection deleted while an ingest into it is under way: the ingest answers 404
/// `collection_not_found` (never a 500), and nothing of it appears anywhere afterwards.
#[test]
fn an_ingest_into_a_collection_deleted_under_it_answers_404() {
    let s = server(ApiConfig::default(), ServiceOptions::default());
    let (status, body) = send(
        client()
            .post(s.url("/collections"))
            .json(&json!({"name": "brief"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let gate = Gate::new();
    let held = gate.clone();
    let _hold = install("ingest.forward_pass", "doomed", move || held.wait());
    std::thread::scope(|scope| {
        let request = scope.spawn(|| {
            send(client().post(s.url("/collections/brief/documents")).json(
                &json!({"id": "doomed", "text": "A note written to a collection about to go."}),
            ))
        });
        assert!(
            gate.wait_for_arrivals(1, Duration::from_secs(300)),
            "the ingest is embedding"
        );
        let (status, body) = send(client().delete(s.url("/collections/brief")));
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["deleted"], true, "{body}");
        gate.open();
        let (status, body) = request.join().unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "collection_not_found", "{body}");
    });
    let (status, _) = send(client().get(s.url("/collections/brief")));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = send(
        client()
            .post(s.url("/collections"))
            .json(&json!({"name": "brief"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["documents"], 0, "nothing of the old ingest came back");
}

/// A 16 MiB document without whitespace (one `[UNK]` token to the tokenizer) is cut into
/// passages of at most 16 bytes a token of the budget, not a few passages of megabytes, and
/// a search over it answers kilobytes.
#[test]
fn a_document_without_whitespace_becomes_bounded_passages() {
    let s = server(
        ApiConfig {
            max_body_bytes: 32 * 1024 * 1024,
            ..ApiConfig::default()
        },
        ServiceOptions {
            max_ingest_bytes: 32 * 1024 * 1024,
            ..ServiceOptions::default()
        },
    );
    let text = "a".repeat(16 * 1024 * 1024);
    let (status, body) = send(
        client()
            .post(s.url("/documents"))
            .json(&json!({"id": "blob", "text": text})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let chunks = body["documents"][0]["chunks"].as_u64().unwrap() as usize;
    let bound = 128 * semdex::chunk::MAX_BYTES_PER_TOKEN;
    assert!(chunks >= text.len() / bound, "{chunks} passages");
    let (status, body) = send(client().get(s.url("/documents/blob/chunks")));
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body["chunks"].as_array().expect("chunks listed");
    assert!(!listed.is_empty());
    for chunk in listed {
        let len = chunk["end"].as_u64().unwrap() - chunk["start"].as_u64().unwrap();
        assert!(len as usize <= bound, "a passage of {len} bytes");
    }
    let response = client()
        .post(s.url("/search"))
        .json(&json!({"query": "aaaa", "k": 10}))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().unwrap();
    assert!(
        bytes.len() < 10 * bound + 8192,
        "a search answered {} bytes",
        bytes.len()
    );
}

/// A search answer holds at most `--max-response-bytes` of passage text: the best hits
/// whole, then one cut at a character boundary, the rest empty, each of those saying
/// `text_truncated` (and still naming the whole passage by `start`/`end`).
#[test]
fn a_search_answer_keeps_to_its_text_budget() {
    let s = server(
        ApiConfig {
            max_response_bytes: 600,
            ..ApiConfig::default()
        },
        ServiceOptions::default(),
    );
    let (status, body) = send(
        client()
            .post(s.url("/search"))
            .json(&json!({"query": "Where did Putin and Kim meet?", "k": 8})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let hits = body["results"].as_array().unwrap();
    assert_eq!(hits.len(), 8);
    let texts: usize = hits.iter().map(|h| h["text"].as_str().unwrap().len()).sum();
    assert!(texts <= 600, "{texts} bytes of text");
    let cut: Vec<bool> = hits.iter().map(|h| h["text_truncated"] == true).collect();
    let first_cut = cut.iter().position(|&c| c).expect("the budget was reached");
    assert!(
        cut[first_cut..].iter().all(|&c| c),
        "every hit after the first cut is cut"
    );
    for hit in &hits[..first_cut] {
        let span = hit["end"].as_u64().unwrap() - hit["start"].as_u64().unwrap();
        assert_eq!(
            hit["text"].as_str().unwrap().len() as u64,
            span,
            "whole before the cut"
        );
    }
    // The default budget leaves an ordinary answer whole.
    let s = server(ApiConfig::default(), ServiceOptions::default());
    let (_, body) = send(
        client()
            .post(s.url("/search"))
            .json(&json!({"query": "Where did Putin and Kim meet?", "k": 8})),
    );
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h.get("text_truncated").is_none())
    );
}

/// A failure at each step of a write after the store committed (the vector index, the lexical
/// index, its commit) leaves the write acknowledged and stored, and the indexes are caught up
/// with the store: by the next write, and by a restart. A failure of the store itself stores
/// nothing and is not acknowledged.
#[test]
fn a_write_failing_at_any_step_leaves_store_and_indexes_agreeing() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_string_lossy().into_owned();
    let agree = |engine: &semdex::engine::Engine, ids: &[&str]| {
        let stats = engine.stats().unwrap();
        assert_eq!(stats.indexed, stats.chunks, "vector index = store");
        assert_eq!(
            stats.lexical.passages as usize, stats.chunks,
            "lexical index = store"
        );
        for id in ids {
            let stored = engine.document(id).unwrap();
            for mode in [
                semdex::engine::SearchMode::Dense,
                semdex::engine::SearchMode::Lexical,
            ] {
                let found = engine
                    .search(
                        &stored.text,
                        &semdex::engine::SearchRequest {
                            k: 50,
                            mode,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                assert!(
                    found.hits.iter().any(|h| h.doc_id == *id),
                    "{id} found by {mode:?}"
                );
            }
        }
    };
    let open = || crate::common::engine_with(semdex::engine::EngineOptions::new(dir.path()));
    let mut stored = Vec::new();
    for (n, (point, key)) in [
        ("storage.vectors", "fail-vectors"),
        ("storage.lexical", "fail-lexical"),
        ("storage.lexical_commit", folder.as_str()),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("step-{n}");
        let key = if key.starts_with("fail-") {
            id.as_str()
        } else {
            key
        };
        {
            let engine = open();
            let failing = inject_failure(point, key, "injected");
            let report = engine
                .ingest(
                    vec![crate::common::doc(
                        &id,
                        &format!("{id}: the rocket reached orbit on its {n}th launch."),
                    )],
                    &semdex::progress::NoProgress,
                )
                .unwrap();
            assert_eq!(
                report[0].status,
                semdex::engine::IngestStatus::Created,
                "{point}"
            );
            stored.push(id.clone());
            drop(failing);
            // The next write catches the index up.
            engine
                .ingest(
                    vec![crate::common::doc(
                        &format!("{id}-next"),
                        "A later note on the launch pad.",
                    )],
                    &semdex::progress::NoProgress,
                )
                .unwrap();
            stored.push(format!("{id}-next"));
            let ids: Vec<&str> = stored.iter().map(String::as_str).collect();
            agree(&engine, &ids);
        }
        // And a restart finds them agreeing.
        let engine = open();
        let ids: Vec<&str> = stored.iter().map(String::as_str).collect();
        agree(&engine, &ids);
    }
    // A failing store transaction: nothing stored, an error, and no index holds it.
    let engine = open();
    let _failing = inject_failure("storage.store", "never", "injected");
    let err = engine
        .ingest(
            vec![crate::common::doc("never", "This note is never stored.")],
            &semdex::progress::NoProgress,
        )
        .unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert!(engine.document("never").is_err());
    let ids: Vec<&str> = stored.iter().map(String::as_str).collect();
    agree(&engine, &ids);
}

/// `semdex serve` with `args`, ready; stderr collected.
fn serve(data: &Path, args: &[&str]) -> (Child, String) {
    crate::common::serve_binary_with(data, args)
}

/// Reads from `stream` until the server closes it (or `limit` passes: then it failed).
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return started.elapsed() < limit,
        }
    }
}

/// A half-sent header, a header dripping a line at a time, and an idle keep-alive connection
/// are closed by the server at its header timeout; a stalled connection does not hold up
/// shutdown past its grace.
#[test]
fn slow_and_idle_clients_are_closed_and_do_not_hold_up_shutdown() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(
        data.path(),
        &["--header-timeout", "2", "--shutdown-grace", "2"],
    );
    let addr = base.trim_start_matches("http://").to_string();
    let limit = Duration::from_secs(60);

    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(
        closed_by_server(&mut half, limit),
        "a half-sent header is closed"
    );

    let mut drip = TcpStream::connect(&addr).unwrap();
    drip.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        if drip.write_all(b"X-Drip: 1\r\n").is_err() {
            closed = true;
            break;
        }
        drip.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        if matches!(drip.read(&mut probe), Ok(0)) {
            closed = true;
            break;
        }
        drip.set_nonblocking(false).unwrap();
    }
    assert!(closed, "a dripping header is closed");

    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_by_server(&mut idle, limit),
        "an idle keep-alive connection is closed"
    );

    // A connection that sends nothing, held open while the server is told to stop.
    let _stalled = TcpStream::connect(&addr).unwrap();
    let mut stalled_request = TcpStream::connect(&addr).unwrap();
    stalled_request
        .write_all(b"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let stopping = Instant::now();
    unsafe_signal(&child, "TERM");
    let status = wait_with_deadline(&mut child, limit).expect("SIGTERM was not obeyed");
    assert!(status.success(), "{status}");
    assert!(stopping.elapsed() < limit);
}

/// Past the connection cap a new connection is answered 503 with `Retry-After`, except
/// `/health`, which still answers; once connections go, new ones are served again.
#[test]
fn past_the_connection_cap_new_connections_get_503_and_health_answers() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(
        data.path(),
        &["--max-connections", "4", "--header-timeout", "120"],
    );
    let addr = base.trim_start_matches("http://").to_string();
    // Four connections, each proven served (a request answered), then kept open.
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut head = [0u8; 12];
            c.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            c
        })
        .collect();
    let over = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = over
        .post(format!("{base}/search"))
        .json(&json!({"query": "summit"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "too_many_connections"
    );
    let health = over.get(format!("{base}/health")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK, "/health past the cap");
    held.clear();
    // The server sees them close; then a new connection is served.
    let started = Instant::now();
    loop {
        let r = over
            .post(format!("{base}/search"))
            .json(&json!({"query": "summit"}))
            .send()
            .unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            r.status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Under a low descriptor limit, many collections are served by closing the idle ones; when
/// descriptors do run out, an operation answers 503 `too_many_open_files` with `Retry-After`
/// (never a 500), a collection that could not be made is not left half-made, and the server
/// recovers once descriptors are free.
#[test]
fn many_collections_under_a_low_descriptor_limit() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new("prlimit")
        .arg("--nofile=160:160")
        .arg(env!("CARGO_BIN_EXE_semdex"))
        .arg("--model")
        .arg(crate::common::model_dir())
        .args(["serve", "--addr", "127.0.0.1:0", "--max-connections", "32"])
        .arg("--seeds")
        .arg(data.path().join("no-seeds"))
        .arg("--data-dir")
        .arg(data.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = crate::common::wait_for_address(&mut child);
    let c = client();
    for i in 0..30 {
        let name = format!("many-{i:02}");
        let (status, body) = send(
            c.post(format!("{base}/collections"))
                .json(&json!({"name": name})),
        );
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        let (status, body) = send(
            c.post(format!("{base}/collections/{name}/documents"))
                .json(&json!({"id": "d", "text": format!("Note {i} about the cosmodrome.")})),
        );
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
    // Every one still answers (reopened as needed).
    for i in 0..30 {
        let (status, body) = send(
            c.post(format!("{base}/collections/many-{i:02}/search"))
                .json(&json!({"query": "cosmodrome"})),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = send(c.get(format!("{base}/info")));
    assert_eq!(status, StatusCode::OK, "{body}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The smaller holes: `OPTIONS` needs the key like every other method, ids `.` and `..` are
/// refused, and collection names are unique regardless of case.
#[test]
fn options_needs_the_key_dot_ids_are_refused_and_names_ignore_case() {
    let s = server(
        ApiConfig {
            api_key: Some("k-27".into()),
            ..ApiConfig::default()
        },
        ServiceOptions::default(),
    );
    let c = client();
    for path in ["/documents", "/no-such-route", "/collections/x/search"] {
        let r = c
            .request(reqwest::Method::OPTIONS, s.url(path))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.headers().get("allow").is_none(), "{path}: no route list");
    }
    let auth = |r: reqwest::blocking::RequestBuilder| r.bearer_auth("k-27");
    for id in [".", ".."] {
        let (status, body) =
            send(auth(c.post(s.url("/documents"))).json(&json!({"id": id, "text": "x"})));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{id}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not allowed")
        );
    }
    let (status, _) = send(auth(c.post(s.url("/collections"))).json(&json!({"name": "Docs"})));
    assert_eq!(status, StatusCode::CREATED);
    for name in ["docs", "DOCS"] {
        let (status, body) = send(auth(c.post(s.url("/collections"))).json(&json!({"name": name})));
        assert_eq!(status, StatusCode::CONFLICT, "{name}: {body}");
    }
}

/// Sends a signal to a child process.
fn unsafe_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child to exit, at most `limit`; kills it and returns `None` past that.
fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A full disk (a small tmpfs, mounted here when the tests run as root): writes answer 507
/// `insufficient_storage` with `Retry-After` and store nothing; reads and searches go on; the
/// server stops cleanly and starts again on the full disk, serving reads; once space is freed,
/// writes work again, and every acknowledged document is whole.
#[test]
fn a_full_disk_refuses_writes_serves_reads_and_recovers() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root (this test fills a disk)");
        return;
    }
    let mount = tempfile::tempdir().unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    if !status.success() {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount.path());
    let data = mount.path().join("data");
    // Space to free later.
    let filler = mount.path().join("filler");
    std::fs::write(&filler, vec![0u8; 6 << 20]).unwrap();

    let (mut child, base) = serve(&data, &[]);
    let c = client();
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        let id = format!("full-{i:03}");
        let (status, body) = send(
            c.post(format!("{base}/documents"))
                .json(&json!({"id": id, "text": long_text(&id, 12)})),
        );
        match status {
            StatusCode::OK => acknowledged.push(id),
            StatusCode::INSUFFICIENT_STORAGE => {
                assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
                refused = Some(id);
                break;
            }
            other => panic!("{id}: {other} {body}"),
        }
    }
    let refused = refused.expect("the disk never filled");
    assert!(!acknowledged.is_empty());
    let reads_work = |base: &str| {
        let (status, body) = send(
            c.post(format!("{base}/search"))
                .json(&json!({"query": "Where did Putin and Kim meet?"})),
        );
        assert_eq!(status, StatusCode::OK, "search on a full disk: {body}");
        let (status, body) = send(c.get(format!("{base}/documents/{}", acknowledged[0])));
        assert_eq!(status, StatusCode::OK, "a read on a full disk: {body}");
        let (status, _) = send(c.get(format!("{base}/documents/{refused}")));
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "a refused write stored nothing"
        );
    };
    reads_work(&base);
    unsafe_signal(&child, "TERM");
    let status = wait_with_deadline(&mut child, Duration::from_secs(120)).expect("no exit");
    assert!(status.success(), "shutdown on a full disk: {status}");

    // Starts again on the full disk, and serves reads.
    let (mut child, base) = serve(&data, &[]);
    reads_work(&base);
    // Space comes back: writes work again.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = send(
        c.post(format!("{base}/documents"))
            .json(&json!({"id": refused, "text": long_text(&refused, 12)})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    acknowledged.push(refused.clone());
    for id in &acknowledged {
        let (status, body) = send(c.get(format!("{base}/documents/{id}")));
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        assert_eq!(body["text"], long_text(id, 12), "{id} whole");
    }
    let (status, body) = send(c.get(format!("{base}/info")));
    assert_eq!(status, StatusCode::OK);
    let collection = &body["collections"][0];
    assert_eq!(
        collection["chunks"], collection["lexical_passages"],
        "the lexical index caught up: {body}"
    );
    assert_eq!(collection["chunks"], collection["vectors"], "{body}");
    let _ = child.kill();
    let _ = child.wait();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
