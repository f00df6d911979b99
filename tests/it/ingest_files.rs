//! `semdex ingest` over a directory of real files of every format, with bad files among
//! them: the good ones are ingested with their structure, each bad one is reported with its
//! path and what is wrong, and the run exits 1 at the end. Named things that are not regular
//! files are refused without being opened.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::extract_files::document;

#[test]
fn a_directory_of_every_format_with_bad_files_among_them() {
    let corpus = tempfile::tempdir().unwrap();
    let root = corpus.path();
    std::fs::create_dir_all(root.join("site/library")).unwrap();
    for page in ["json.html", "bisect.html", "keyword.html", "uuid.html"] {
        std::fs::copy(document(page), root.join("site/library").join(page)).unwrap();
    }
    for file in [
        "naacl06-two-column.pdf",
        "libreoffice-os.path.docx",
        "pdfminer-README.md",
        "encrypted-aes-256.pdf",
        "scanned-no-text.pdf",
        "bomb.docx",
    ] {
        std::fs::copy(document(file), root.join(file)).unwrap();
    }
    // A PDF under a name that says nothing: found by its content.
    std::fs::copy(document("chromium-keyword.pdf"), root.join("printout")).unwrap();
    std::fs::write(root.join("deep.html"), "<div>".repeat(10_000_000)).unwrap();
    std::fs::write(root.join("image.png"), [0x89u8, b'P', b'N', b'G', 0, 0]).unwrap();
    let fifo = root.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A link to the process environment (which can hold the API key) named explicitly.
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("notes.txt");
    std::os::unix::fs::symlink("/proc/self/environ", &link).unwrap();

    let data = tempfile::tempdir().unwrap();
    let mut child = crate::cli::semdex(&[
        "ingest",
        "--data-dir",
        data.path().to_str().unwrap(),
        root.to_str().unwrap(),
        fifo.to_str().unwrap(),
        "/proc/self/status",
        link.to_str().unwrap(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Never block on the FIFO: the run must end by itself.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(900) {
            child.kill().unwrap();
            panic!("semdex ingest did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    for (file, reason) in [
        ("encrypted-aes-256.pdf", "encrypted PDF"),
        (
            "scanned-no-text.pdf",
            "no text layer: scanned PDFs need OCR",
        ),
        ("bomb.docx", "decompression bomb"),
        ("deep.html", "nested more than 512 deep"),
        ("pipe", "a FIFO"),
        ("/proc/self/status", "kernel interface"),
        ("notes.txt", "kernel interface"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(file) && l.contains(reason));
        assert!(line.is_some(), "{file}: {reason}\n{stderr}");
    }
    assert!(
        stderr.contains("7 files or documents were skipped"),
        "{stderr}"
    );

    let engine = crate::common::engine_with(semdex::engine::EngineOptions::new(data.path()));
    let mut ids: Vec<String> = engine
        .documents(100, 0)
        .unwrap()
        .into_iter()
        .map(|d| d.id.rsplit('/').next().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "bisect.html",
            "json.html",
            "keyword.html",
            "libreoffice-os.path.docx",
            "naacl06-two-column.pdf",
            "pdfminer-README.md",
            "printout",
            "uuid.html"
        ]
    );
    let base = semdex::engine::sources::id_for_path(root);
    let json = engine
        .document(&format!("{base}/site/library/json.html"))
        .unwrap();
    assert!(json.text.starts_with("json — JSON encoder and decoder"));
    let hits = engine
        .search(
            "Serialize obj as a JSON formatted stream",
            &semdex::engine::SearchRequest::default(),
        )
        .unwrap();
    assert!(
        hits.hits[0].doc_id.ends_with("json.html"),
        "{:?}",
        hits.hits[0]
    );
    drop(engine);

    // `semdex query` cites where each hit lies: title, section, PDF pages.
    let out = crate::cli::semdex(&[
        "query",
        "--data-dir",
        data.path().to_str().unwrap(),
        "-k",
        "3",
        "--doc",
        &format!("{base}/naacl06-two-column.pdf"),
        "--doc",
        &format!("{base}/site/library/json.html"),
        "Serialize obj as a JSON formatted stream",
    ])
    .output()
    .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains(
            "json — JSON encoder and decoder · json — JSON encoder and decoder › Basic Usage"
        ),
        "{table}"
    );
    let out = crate::cli::semdex(&[
        "query",
        "--data-dir",
        data.path().to_str().unwrap(),
        "-k",
        "1",
        "--doc",
        &format!("{base}/naacl06-two-column.pdf"),
        "unrestricted relation discovery",
    ])
    .output()
    .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(
            "Preemptive Information Extraction using Unrestricted Relation Discovery · page"
        ),
        "{table}"
    );
}
