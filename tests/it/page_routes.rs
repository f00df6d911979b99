//! The browser page's routes over real HTTP: `/` and its assets load without an API key, with
//! their content types, caching and security headers; the API behind them still needs the key.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use semdex::api::ApiConfig;
use semdex::queue::QueueOptions;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn page_and_assets_load_without_the_key_and_the_api_still_needs_it() {
    let s = crate::common::start_server(
        ApiConfig {
            api_key: Some("sekret".into()),
            ..ApiConfig::default()
        },
        QueueOptions::default(),
    );
    let c = client();

    let page = c.get(s.url("/")).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    assert!(header(&page, "content-security-policy").contains("script-src 'self'"));
    let etag = header(&page, "etag");
    let html = page.text().unwrap();
    assert!(
        html.contains("<label for=\"q\""),
        "the question box is labelled"
    );
    // The assets are linked with this build's version, never the template's placeholder.
    assert!(!html.contains("{{version}}"));
    let js = html
        .split('"')
        .find(|part| part.starts_with("/assets/app.js?v="))
        .expect("script link")
        .to_string();
    let css = html
        .split('"')
        .find(|part| part.starts_with("/assets/style.css?v="))
        .expect("style link")
        .to_string();

    let not_modified = c
        .get(s.url("/"))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);

    for (path, kind, needle) in [
        (&js, "text/javascript; charset=utf-8", "askForKey"),
        (&css, "text/css; charset=utf-8", ":focus-visible"),
    ] {
        let r = c.get(s.url(path)).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "content-type"), kind);
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert!(r.text().unwrap().contains(needle));
    }
    // Without this build's version the asset is still served, but revalidated.
    let r = c.get(s.url("/assets/app.js")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "cache-control"), "no-cache");

    assert_eq!(
        c.get(s.url("/assets/nothing.js")).send().unwrap().status(),
        StatusCode::NOT_FOUND
    );
    for path in ["/info", "/documents", "/search?q=hello"] {
        assert_eq!(
            c.get(s.url(path)).send().unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{path} needs the key"
        );
    }
}

#[test]
fn page_is_not_in_the_openapi_spec() {
    let spec = serde_json::to_value(semdex::api::openapi()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/"));
    assert!(!paths.keys().any(|p| p.starts_with("/assets")));
}
