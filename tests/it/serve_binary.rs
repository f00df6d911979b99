//! The real `semdex serve` binary: it listens before it is ready (/health 503, then 200),
//! serves the seed article from a fresh data directory, honours SEMDEX_API_KEY (or a key file;
//! an empty key refuses to start), and on SIGTERM finishes in-flight requests and saves the
//! index.

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
        data.path().join("index/state/state.meta.json").exists(),
        "index persisted on shutdown"
    );
}

/// Runs `semdex serve` with `args` and `env`, expecting it to refuse to start: returns its
/// stderr (fails if it is still running after 60 s).
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_semdex"))
        .arg("--model")
        .arg(crate::common::model_dir())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SEMDEX_API_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("semdex serve {args:?} {env:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{args:?} {env:?}: {stderr}");
    stderr
}

#[test]
fn an_empty_api_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty_file = dir.path().join("empty-key");
    std::fs::write(&empty_file, "\n").unwrap();
    let empty_file = empty_file.to_str().unwrap();
    for (args, env) in [
        (vec!["--api-key", ""], vec![]),
        (vec!["--api-key", "  "], vec![]),
        (vec![], vec![("SEMDEX_API_KEY", "")]),
        (vec!["--api-key-file", empty_file], vec![]),
    ] {
        let stderr = refused_start(&args, &env);
        assert!(stderr.contains("empty"), "{args:?} {env:?}: {stderr}");
    }
    let stderr = refused_start(&["--api-key", "k", "--api-key-file", empty_file], &[]);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn the_api_key_can_come_from_a_file() {
    let data = tempfile::tempdir().unwrap();
    let key_file = data.path().join("key");
    std::fs::write(&key_file, "file-key\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_semdex"))
        .arg("--model")
        .arg(crate::common::model_dir())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("data"))
        .arg("--api-key-file")
        .arg(&key_file)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SEMDEX_API_KEY")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server did not report its address");
    let base = format!("http://{addr}");
    let client = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while client
        .get(format!("{base}/health"))
        .send()
        .unwrap()
        .status()
        != StatusCode::OK
    {
        assert!(Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = |key: Option<&str>| {
        let mut r = client.get(format!("{base}/info"));
        if let Some(key) = key {
            r = r.bearer_auth(key);
        }
        r.send().unwrap().status()
    };
    assert_eq!(info(None), StatusCode::UNAUTHORIZED);
    assert_eq!(info(Some("file-key\n".trim_end())), StatusCode::OK);
    assert_eq!(info(Some("file-key2")), StatusCode::UNAUTHORIZED);
    child.kill().unwrap();
    child.wait().unwrap();
}
