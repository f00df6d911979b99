//! The real `semdex serve` binary: it listens before it is ready (/health 503, then 200),
//! serves the seed article from a fresh data directory, honours SEMDEX_API_KEY, and on SIGTERM
//! finishes in-flight requests and saves the index.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

#[test]
fn serve_seed_article_then_shut_down_gracefully() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_semdex"))
        .arg("--model")
        .arg(crate::common::model_dir())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        // As the README runs it: from the repository, with the default `--seeds seeds`.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SEMDEX_API_KEY", "test-key")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The log line "listening addr=127.0.0.1:PORT" tells the ephemeral port.
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
            }
            log.push(line);
        }
        log
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server did not report its address");
    let base = format!("http://{addr}");
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = client.get(format!("{base}/health")).send().unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "before ready: 503"
        );
        assert!(Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        client.get(format!("{base}/info")).send().unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let hits: Value = client
        .get(format!("{base}/search?q=Which%20Kremlin%20spokesman%20said%20there%20are%20no%20plans%20yet%20for%20a%20trip%20to%20North%20Korea%3F&k=3"))
        .bearer_auth("test-key")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        hits["results"][0]["doc_id"], "seeds/putin-kim-summit.txt",
        "the seed article is served"
    );
    assert!(
        hits["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["text"].as_str().unwrap().contains("Peskov"))
    );

    // A slow request in flight when SIGTERM arrives still completes.
    let inputs: Vec<String> = (0..200)
        .map(|i| format!("sentence {i} about summits and trains"))
        .collect();
    let slow = {
        let client = client.clone();
        let base = base.clone();
        std::thread::spawn(move || {
            client
                .post(format!("{base}/embed"))
                .bearer_auth("test-key")
                .json(&json!({"inputs": inputs}))
                .send()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let response = slow.join().unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "in-flight request finished"
    );
    assert_eq!(response.json::<Vec<Value>>().unwrap().len(), 200);
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit: {status:?}");
    let log = reader.join().unwrap();
    assert!(log.iter().any(|l| l.contains("index saved")), "{log:?}");
    assert!(
        data.path().join("index/hnsw.meta.json").exists(),
        "index persisted on shutdown"
    );
}
