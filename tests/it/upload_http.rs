//! Files in through HTTP (real files from tests/data/documents, a real socket, the real
//! model): one file as the body, several as `multipart/form-data`, into the default collection
//! and a named one; where each passage lies comes back with the hits; every bad file is a 4xx
//! that says what is wrong, and nothing of a refused request is stored.

use reqwest::StatusCode;
use reqwest::blocking::multipart::{Form, Part};
use semdex::api::ApiConfig;
use semdex::queue::QueueOptions;
use serde_json::{Value, json};

use crate::common::{TestServer, http_client, send};
use crate::extract_files::read;

const PDF: &str = "application/pdf";
const HTML: &str = "text/html; charset=utf-8";
const MARKDOWN: &str = "text/markdown";
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

fn server() -> TestServer {
    crate::common::start_server(ApiConfig::default(), QueueOptions::default())
}

/// Posts `bytes` as the body of `path` (a query string included).
fn post_file(
    s: &TestServer,
    path: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    send(
        http_client()
            .post(s.url(path))
            .header("content-type", content_type)
            .body(bytes),
    )
}

/// Asserts a refusal: its status, its code, and a message holding `says`.
fn refused(got: (StatusCode, Value), status: StatusCode, code: &str, says: &str) {
    let (got_status, body) = got;
    assert_eq!(got_status, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

/// The ids of a collection's documents, in id order.
pub fn document_ids(s: &TestServer, collection: &str) -> Vec<String> {
    let path = if collection == "default" {
        "/documents?limit=1000".to_string()
    } else {
        format!("/collections/{collection}/documents?limit=1000")
    };
    let (status, body) = send(http_client().get(s.url(&path)));
    assert_eq!(status, StatusCode::OK, "{body}");
    body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

fn search(s: &TestServer, path: &str, body: Value) -> Vec<Value> {
    let (status, body) = send(http_client().post(s.url(path)).json(&body));
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"].as_array().unwrap().clone()
}

#[test]
fn every_format_as_a_file_body_with_its_structure_in_the_hits() {
    let s = server();
    let files = [
        ("os.path", "libreoffice-os.path.pdf", PDF, "pdf"),
        ("json", "json.html", HTML, "html"),
        ("readme", "pdfminer-README.md", MARKDOWN, "markdown"),
        ("os.path.docx", "libreoffice-os.path.docx", DOCX, "docx"),
    ];
    for (id, name, content_type, format) in files {
        let (status, body) = post_file(
            &s,
            &format!("/documents?id={id}&meta.kind={format}&metadata=%7B%22lang%22%3A%22en%22%7D"),
            content_type,
            read(name),
        );
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["documents"][0]["id"], id, "{body}");
        assert_eq!(body["documents"][0]["status"], "created", "{body}");
        assert!(body["documents"][0]["chunks"].as_u64().unwrap() > 0);

        let (status, doc) = send(http_client().get(s.url(&format!("/documents/{id}"))));
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(doc["format"], format, "{name}");
        assert_eq!(doc["metadata"], json!({"kind": format, "lang": "en"}));
        assert!(
            doc["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: {doc}"
        );
    }
    // Plain text: the extracted text is the text, with no structure.
    let (status, body) = post_file(
        &s,
        "/documents?id=note",
        "text/plain",
        b"Dogs and cats are common pets in many homes.".to_vec(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");

    // A PDF's passages cite their pages, HTML's their headings; the same one posted again is
    // unchanged.
    let hits = search(
        &s,
        "/search",
        json!({"query": "return the base name of pathname", "k": 10, "filter": {"doc_ids": ["os.path"]}}),
    );
    assert!(!hits.is_empty());
    for hit in &hits {
        let pages = &hit["pages"];
        let (first, last) = (
            pages["first"].as_u64().unwrap(),
            pages["last"].as_u64().unwrap(),
        );
        assert!(
            (1..=10).contains(&first) && first <= last && last <= 10,
            "{hit}"
        );
        assert_eq!(
            hit["title"],
            "os.path — Common pathname manipulations — Python 3.11.2 documentation"
        );
    }
    let hits = search(
        &s,
        "/search",
        json!({"query": "Infinite and NaN number values", "k": 3, "mode": "lexical", "filter": {"doc_ids": ["json"]}}),
    );
    let section = hits[0]["section"].as_str().unwrap();
    assert!(
        section.contains("Infinite and NaN Number Values"),
        "{section}"
    );
    let (status, spans) = send(http_client().get(s.url("/documents/json/chunks")));
    assert_eq!(status, StatusCode::OK);
    assert!(
        spans["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["section"].as_str() == Some(section))
    );
    let hits = search(
        &s,
        "/search",
        json!({"query": "pets", "k": 1, "filter": {"doc_ids": ["note"]}}),
    );
    assert!(hits[0].get("section").is_none() && hits[0].get("pages").is_none());

    let (status, body) = post_file(
        &s,
        "/documents?id=os.path&meta.kind=pdf&meta.lang=en",
        PDF,
        read("libreoffice-os.path.pdf"),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["documents"][0]["status"], "unchanged", "{body}");

    // The collection route takes files too.
    let (status, body) = send(
        http_client()
            .post(s.url("/collections"))
            .json(&json!({"name": "manuals"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post_file(
        &s,
        "/collections/manuals/documents?id=uuid",
        "application/octet-stream",
        read("uuid.html"),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(document_ids(&s, "manuals"), ["uuid"]);
    let hits = search(
        &s,
        "/collections/manuals/search",
        json!({"query": "generate a random UUID", "k": 3}),
    );
    assert_eq!(hits[0]["doc_id"], "uuid");
    assert!(
        hits[0]["title"].as_str().unwrap().contains("uuid"),
        "{}",
        hits[0]
    );
}

#[test]
fn several_files_as_a_multipart_form() {
    let s = server();
    let part = |name: &str, content_type: &str| {
        Part::bytes(read(name))
            .file_name(format!("docs/{name}"))
            .mime_str(content_type)
            .unwrap()
    };
    let form = Form::new()
        .part("files", part("pdfminer-README.md", MARKDOWN))
        .part("files", part("keyword.html", "text/html"))
        .part("files", part("libreoffice-os.path.docx", DOCX))
        .part("files", part("chromium-keyword.pdf", PDF))
        .text("metadata", r#"{"team": "docs", "lang": "de"}"#);
    let (status, body) = send(
        http_client()
            .post(s.url("/documents?meta.lang=en"))
            .multipart(form),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "pdfminer-README.md",
            "keyword.html",
            "libreoffice-os.path.docx",
            "chromium-keyword.pdf"
        ]
    );
    for id in ids {
        let (status, doc) = send(http_client().get(s.url(&format!("/documents/{id}"))));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            doc["metadata"],
            json!({"team": "docs", "lang": "en"}),
            "{id}"
        );
    }
    let hits = search(
        &s,
        "/search",
        json!({"query": "check whether a string is a Python keyword", "k": 5}),
    );
    assert!(
        hits.iter()
            .take(3)
            .any(|h| h["doc_id"] == "keyword.html" || h["doc_id"] == "chromium-keyword.pdf"),
        "{hits:?}"
    );

    // One file and ?id: the id wins; several files and ?id: refused.
    let one = Form::new().part("file", part("bisect.html", "text/html"));
    let (status, body) = send(
        http_client()
            .post(s.url("/documents?id=bisect"))
            .multipart(one),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["documents"][0]["id"], "bisect");
    let two = Form::new()
        .part("a", part("bisect.html", "text/html"))
        .part("b", part("uuid.html", "text/html"));
    refused(
        send(http_client().post(s.url("/documents?id=x")).multipart(two)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
        "each file's name is its id",
    );
}

/// A bad file: its id, content type and bytes, and the status, code and words of its refusal.
type BadFile = (
    &'static str,
    &'static str,
    Vec<u8>,
    StatusCode,
    &'static str,
    &'static str,
);

#[test]
fn bad_files_are_4xx_with_the_extractors_message_and_nothing_is_stored() {
    let s = server();
    let before = document_ids(&s, "default");
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let pdf = read("naacl06-two-column.pdf");
    let cases: Vec<BadFile> = vec![
        (
            "encrypted",
            PDF,
            read("encrypted-aes-256.pdf"),
            unprocessable,
            "unreadable_file",
            "encrypted PDF",
        ),
        (
            "scanned",
            PDF,
            read("scanned-no-text.pdf"),
            unprocessable,
            "unreadable_file",
            "no text layer: scanned PDFs need OCR, which semdex does not do",
        ),
        (
            "truncated",
            PDF,
            pdf[..pdf.len() / 3].to_vec(),
            unprocessable,
            "unreadable_file",
            "corrupt or truncated PDF",
        ),
        (
            "bomb",
            DOCX,
            read("bomb.docx"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "decompression bomb",
        ),
        (
            "deep",
            "text/html",
            "<div>".repeat(200_000).into_bytes(),
            unprocessable,
            "unreadable_file",
            "nested more than 512 deep",
        ),
        (
            "png",
            "application/octet-stream",
            vec![
                0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13,
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "not a PDF, HTML, Markdown, Word",
        ),
        (
            "latin1",
            "text/plain",
            b"caf\xe9 au lait".to_vec(),
            unprocessable,
            "unreadable_file",
            "not valid UTF-8",
        ),
        (
            "empty",
            "text/markdown",
            b"  \n".to_vec(),
            unprocessable,
            "unreadable_file",
            "holds no text",
        ),
    ];
    for (id, content_type, bytes, status, code, says) in cases {
        refused(
            post_file(&s, &format!("/documents?id={id}"), content_type, bytes),
            status,
            code,
            says,
        );
    }
    // A form with a good file and a bad one stores neither; the message names the bad one.
    let form = Form::new()
        .part(
            "files",
            Part::bytes(read("keyword.html")).file_name("keyword.html"),
        )
        .part(
            "files",
            Part::bytes(read("scanned-no-text.pdf")).file_name("scan.pdf"),
        );
    refused(
        send(http_client().post(s.url("/documents")).multipart(form)),
        unprocessable,
        "unreadable_file",
        "file 2 (\"scan.pdf\"): no text layer",
    );
    // Requests that are wrong whatever the file.
    refused(
        post_file(&s, "/documents", PDF, read("chromium-keyword.pdf")),
        unprocessable,
        "invalid_request",
        "needs an id",
    );
    refused(
        post_file(&s, "/documents?id=a", "image/png", vec![1, 2, 3]),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/pdf",
    );
    refused(
        post_file(
            &s,
            "/documents?id=a&colour=red",
            "text/plain",
            b"text".to_vec(),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "unknown query parameter `colour`",
    );
    refused(
        post_file(
            &s,
            "/documents?id=a&metadata=[1]",
            "text/plain",
            b"text".to_vec(),
        ),
        unprocessable,
        "invalid_request",
        "JSON object",
    );
    refused(
        send(
            http_client()
                .post(s.url("/documents?id=a"))
                .json(&json!({"id": "b", "text": "hello"})),
        ),
        unprocessable,
        "invalid_request",
        "a JSON body carries its own",
    );
    refused(
        send(
            http_client()
                .post(s.url("/documents"))
                .multipart(Form::new().text("metadata", "{}")),
        ),
        unprocessable,
        "invalid_request",
        "the form holds no file",
    );
    // The `metadata` field holds a JSON object, or the upload is refused.
    for metadata in ["[1]", "null", "\"text\"", "{not json"] {
        refused(
            send(
                http_client().post(s.url("/documents?id=m")).multipart(
                    Form::new()
                        .part("files", Part::bytes(b"text".to_vec()).file_name("a.txt"))
                        .text("metadata", metadata),
                ),
            ),
            unprocessable,
            "invalid_request",
            "must be a JSON object",
        );
    }
    // A part without a file name is a form field, not a file (schemathesis sent a number).
    refused(
        send(
            http_client()
                .post(s.url("/documents?id=x"))
                .multipart(Form::new().text("files", "-1.175494351e-38")),
        ),
        unprocessable,
        "invalid_request",
        "is not a file",
    );
    assert_eq!(document_ids(&s, "default"), before);
}

#[test]
fn query_parameters_name_and_describe_files() {
    use semdex::api::upload::UploadParams;
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let p = UploadParams::parse(pairs(&[
        ("id", "manual"),
        ("metadata", r#"{"lang": "de", "v": 1}"#),
        ("meta.lang", "en"),
        ("meta.year", "2024"),
        ("meta.flag", "true"),
    ]))
    .unwrap();
    assert_eq!(p.id.as_deref(), Some("manual"));
    assert_eq!(
        Value::Object(p.metadata),
        json!({"lang": "en", "v": 1, "year": 2024, "flag": true})
    );
    for bad in [
        &[("id", "a"), ("id", "b")][..],
        &[("metadata", "[1]")],
        &[("metadata", "{}"), ("metadata", "{}")],
        &[("meta.", "x")],
        &[("lang", "en")],
        &[("meta.a", "1"), ("meta.a", "2")],
    ] {
        let err = UploadParams::parse(pairs(bad)).unwrap_err();
        assert!(err.status.is_client_error(), "{bad:?}");
    }
    assert!(UploadParams::parse(Vec::new()).unwrap().is_empty());
}
