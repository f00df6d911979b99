//! Uploads as jobs, over real HTTP with real files: `202` and a job that reports its progress
//! and ends done (a bad file among the good ones is an error of the job, not its end); a
//! cancelled job stops before its next file; a job interrupted by the process dying is
//! reported failed after a restart, never "running" forever. The tests hold a job at the
//! `jobs.document` hook instead of guessing how long it takes.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::multipart::{Form, Part};
use semdex::api::ApiConfig;
use semdex::queue::QueueOptions;
use serde_json::Value;

use crate::common::{TestServer, http_client, send};
use crate::extract_files::read;

fn server() -> TestServer {
    crate::common::start_server(
        ApiConfig {
            job_threshold_bytes: 100_000,
            ..ApiConfig::default()
        },
        QueueOptions::default(),
    )
}

fn form(files: &[(&str, &str)]) -> Form {
    files.iter().fold(Form::new(), |form, (file, id)| {
        form.part("files", Part::bytes(read(file)).file_name(id.to_string()))
    })
}

/// Posts `form` and returns the job's id from the `202`.
fn start(base: &str, path: &str, form: Form) -> String {
    let response = http_client()
        .post(format!("{base}{path}"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().unwrap();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/jobs/{id}"));
    assert!(
        ["queued", "running"].contains(&body["state"].as_str().unwrap()),
        "{body}"
    );
    id
}

fn job(base: &str, id: &str) -> (StatusCode, Value) {
    send(http_client().get(format!("{base}/jobs/{id}")))
}

/// Polls the job until `done(job)` holds (the job's own progress, not a guess of time).
fn wait_until(base: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (status, body) = job(base, id);
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "job never got there: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_large_upload_is_a_job_that_reports_progress_and_ends_done() {
    let s = server();
    let gate = semdex::hooks::Gate::new();
    let held = gate.clone();
    let _hook = semdex::hooks::install("jobs.document", "job-b.pdf", move || held.wait());
    // 193 kB of PDF among them: over the 100 kB threshold.
    let id = start(
        &s.base,
        "/documents?meta.batch=7",
        form(&[
            ("naacl06-two-column.pdf", "job-a.pdf"),
            ("libreoffice-os.path.pdf", "job-b.pdf"),
            ("scanned-no-text.pdf", "job-scan.pdf"),
            ("keyword.html", "job-c.html"),
        ]),
    );
    assert!(gate.wait_for_arrivals(1, Duration::from_secs(600)));
    let (_, held_at) = job(&s.base, &id);
    assert_eq!(held_at["state"], "running", "{held_at}");
    assert_eq!(held_at["documents_total"], 4);
    assert_eq!(held_at["documents_done"], 1);
    assert_eq!(held_at["documents"][0]["id"], "job-a.pdf");
    let first_passages = held_at["passages_done"].as_u64().unwrap();
    assert!(first_passages > 0);
    assert_eq!(held_at["documents"][0]["chunks"], first_passages);
    gate.open();

    let done = wait_until(&s.base, &id, |j| {
        j["state"] != "running" && j["state"] != "queued"
    });
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["documents_done"], 4);
    let stored: Vec<&str> = done["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(stored, ["job-a.pdf", "job-b.pdf", "job-c.html"]);
    let passages: u64 = done["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["chunks"].as_u64().unwrap())
        .sum();
    assert_eq!(done["passages_done"], passages);
    assert_eq!(done["errors"][0]["file"], "job-scan.pdf");
    assert!(
        done["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no text layer"),
        "{done}"
    );
    let (status, doc) = send(http_client().get(s.url("/documents/job-c.html")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["metadata"]["batch"], 7);
    assert_eq!(doc["format"], "html");

    // A finished job cannot be cancelled; an unknown one is not found.
    let (status, _) = send(http_client().delete(s.url(&format!("/jobs/{id}"))));
    assert_eq!(status, StatusCode::CONFLICT);
    for unknown in ["job-0-0", "nothing", "..%2F..%2Fetc"] {
        let (status, body) = job(&s.base, unknown);
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}: {body}");
    }

    // Small files wait for nothing with ?wait=false.
    let small = start(
        &s.base,
        "/documents?wait=false",
        form(&[("keyword.html", "small.html")]),
    );
    let ended = wait_until(&s.base, &small, |j| j["state"] == "done");
    assert_eq!(ended["documents"][0]["id"], "small.html");
}

#[test]
fn a_cancelled_job_stops_before_its_next_file() {
    let s = server();
    let gate = semdex::hooks::Gate::new();
    let held = gate.clone();
    let _hook = semdex::hooks::install("jobs.document", "cancel-b.html", move || held.wait());
    let before = crate::upload_http::document_ids(&s, "default");
    let id = start(
        &s.base,
        "/documents?wait=false",
        form(&[
            ("keyword.html", "cancel-a.html"),
            ("uuid.html", "cancel-b.html"),
            ("json.html", "cancel-c.html"),
        ]),
    );
    assert!(gate.wait_for_arrivals(1, Duration::from_secs(600)));
    let (status, body) = send(http_client().delete(s.url(&format!("/jobs/{id}"))));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    gate.open();
    let ended = wait_until(&s.base, &id, |j| {
        j["state"] != "running" && j["state"] != "queued"
    });
    assert_eq!(ended["state"], "cancelled", "{ended}");
    assert_eq!(ended["documents_done"], 1);
    let mut want = before;
    want.push("cancel-a.html".into());
    want.sort();
    let mut got = crate::upload_http::document_ids(&s, "default");
    got.sort();
    assert_eq!(got, want, "the file after the cancel is not stored");
}

#[test]
fn a_job_killed_with_its_server_is_failed_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--job-threshold-bytes", "1000"];
    let (mut child, base) = crate::common::serve_binary_with(data.path(), &args);
    let id = start(
        &base,
        "/documents",
        form(&[
            ("naacl06-two-column.pdf", "kill-a.pdf"),
            ("libreoffice-os.path.pdf", "kill-b.pdf"),
            ("chromium-debref-ja-apa.pdf", "kill-c.pdf"),
        ]),
    );
    // Killed wherever the job is: it must end failed (interrupted) or done, never lost and
    // never running forever.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, base) = crate::common::serve_binary_with(data.path(), &args);
    let (status, body) = job(&base, &id);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    match body["state"].as_str().unwrap() {
        "failed" => {
            let message = body["message"].as_str().unwrap();
            assert!(message.starts_with("interrupted"), "{message}");
        }
        "done" => assert_eq!(body["documents_done"], 3),
        other => panic!("after a restart the job is {other}: {body}"),
    }
    assert!(
        !data.path().join("jobs").join(&id).exists(),
        "the staged files are removed"
    );
}

#[test]
fn a_job_record_left_running_is_failed_when_the_jobs_are_opened() {
    use semdex::jobs::{JobError, JobState, Jobs, StagedFile};
    let dir = tempfile::tempdir().unwrap();
    let jobs = Jobs::open(dir.path()).unwrap();
    let file = StagedFile {
        id: "a".into(),
        file_name: Some("a.txt".into()),
        content_type: None,
    };
    let job = jobs
        .create(
            "default",
            vec![(file.clone(), b"hello".to_vec())],
            serde_json::Map::new(),
        )
        .unwrap();
    let id = job.id();
    assert_eq!(job.files().unwrap().0, vec![file]);
    assert_eq!(job.file_bytes(0).unwrap(), b"hello");
    job.update(|r| r.state = JobState::Running).unwrap();
    drop((job, jobs));

    let jobs = Jobs::open(dir.path()).unwrap();
    let record = jobs.get(&id).unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert!(record.message.unwrap().starts_with("interrupted"));
    assert!(!dir.path().join("jobs").join(&id).exists());
    assert!(matches!(
        jobs.cancel(&id),
        Err(JobError::Finished {
            state: JobState::Failed,
            ..
        })
    ));
    assert!(matches!(jobs.get("job-../x"), Err(JobError::NotFound(_))));
    assert!(matches!(jobs.get("job-none"), Err(JobError::NotFound(_))));
}
