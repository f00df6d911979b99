//! Extraction of real files (tests/data/documents, see its SOURCES.md): every format, every
//! bad-file case, chunking by sections, and `semdex ingest` over a directory of them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use semdex::chunk::{ChunkOptions, Chunker};
use semdex::extract::{self, ExtractError, ExtractLimits, Extracted, Format, Hint};

pub fn document(name: &str) -> PathBuf {
    crate::common::data("documents").join(name)
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(document(name)).unwrap()
}

fn extract_file(name: &str) -> Result<Extracted, ExtractError> {
    extract::extract(read(name), &Hint::file(name), &ExtractLimits::default())
}

/// Checks what every extraction promises and returns it.
fn check(name: &str, format: Format) -> Extracted {
    let e = extract_file(name).unwrap_or_else(|err| panic!("{name}: {err}"));
    assert_eq!(e.format, format, "{name}");
    assert_eq!(e.structure.check(&e.text), Ok(()), "{name}");
    assert!(!e.text.trim().is_empty(), "{name}");
    e
}

#[test]
fn pdf_text_pages_and_titles_from_four_producers() {
    // pdfTeX via dvipdfm, two columns; its text is in reading order, column by column.
    let paper = check("naacl06-two-column.pdf", Format::Pdf);
    assert_eq!(paper.structure.pages.len(), 8);
    let first = &paper.structure.pages[0];
    assert_eq!(first.page, 1);
    let page_one = &paper.text[first.start..first.end];
    assert!(
        page_one
            .starts_with("Preemptive Information Extraction using Unrestricted Relation Discovery"),
        "{page_one:.200}"
    );
    let abstract_at = paper.text.find("Abstract").unwrap();
    let tune = paper.text.find("a lot of time and").unwrap();
    assert!(
        abstract_at < tune,
        "the left column reads before the right one"
    );
    assert!(paper.text.contains("Information Extraction (IE) systems"));
    assert_eq!(
        paper.structure.title.as_deref(),
        Some("Preemptive Information Extraction using Unrestricted Relation Discovery"),
        "the largest line of page 1 (the file's metadata has no title)"
    );

    // LibreOffice: title from the document information, pages in order.
    let lo = check("libreoffice-os.path.pdf", Format::Pdf);
    assert_eq!(
        lo.structure.title.as_deref(),
        Some("os.path — Common pathname manipulations — Python 3.11.2 documentation")
    );
    assert_eq!(lo.structure.pages.len(), 10);
    let numbers: Vec<u32> = lo.structure.pages.iter().map(|p| p.page).collect();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
    assert!(lo.text.contains("commonprefix"));

    // Chromium (Skia): one page.
    let chromium = check("chromium-keyword.pdf", Format::Pdf);
    assert_eq!(chromium.structure.pages.len(), 1);
    assert!(chromium.text.contains("Testing for Python keywords"));
    assert!(chromium.text.contains("iskeyword"));

    // pdfTeX, Type 1 fonts with ligatures: "fi" comes out as two letters.
    let news = check("pdftex-ltnews18.pdf", Format::Pdf);
    assert!(
        news.text.contains("This news never existed."),
        "{}",
        news.text
    );
}

#[test]
fn non_latin_scripts() {
    // Japanese in CID TrueType fonts (Chromium), with their ToUnicode maps.
    let ja = check("chromium-debref-ja-apa.pdf", Format::Pdf);
    assert_eq!(ja.structure.pages.len(), 3);
    assert!(ja.text.contains("付録A 補遺"), "{:.300}", ja.text);
    assert!(
        ja.text.contains("以下が本文書の背景です。"),
        "{:.300}",
        ja.text
    );
    // Cyrillic.
    let ru = check("chromium-debfaq-ru.pdf", Format::Pdf);
    let cyrillic = ru
        .text
        .chars()
        .filter(|c| ('\u{0400}'..='\u{04ff}').contains(c))
        .count();
    assert!(cyrillic > 1000, "{cyrillic} Cyrillic letters");
}

#[test]
fn html_main_content_sections_and_title() {
    let json = check("json.html", Format::Html);
    assert_eq!(
        json.structure.title.as_deref(),
        Some("json — JSON encoder and decoder")
    );
    assert!(
        json.text.starts_with("json — JSON encoder and decoder"),
        "{:.200}",
        json.text
    );
    for furniture in [
        "Table of Contents",
        "Report a Bug",
        "Show Source",
        "Navigation",
        "¶",
    ] {
        assert!(
            !json.text.contains(furniture),
            "{furniture:?} is page furniture"
        );
    }
    assert!(
        json.text
            .contains("json.dumps(['foo', {'bar': ('baz', None, 1.0, 2)}])")
    );
    let labels: Vec<String> = json.structure.sections.iter().map(|s| s.label()).collect();
    assert!(
        labels.contains(&"json — JSON encoder and decoder › Basic Usage".to_string()),
        "{labels:?}"
    );
    assert!(
        labels.iter().any(|l| l
            == "json — JSON encoder and decoder › Command Line Interface › Command line options"),
        "{labels:?}"
    );
    let basic = json
        .structure
        .sections
        .iter()
        .find(|s| s.label().ends_with("Basic Usage"))
        .unwrap();
    assert!(json.text[basic.start..basic.end].starts_with("Basic Usage"));
    assert!(json.text[basic.start..basic.end].contains("Serialize obj as a JSON formatted stream"));
}

#[test]
fn boilerplate_repeated_across_a_site_is_removed() {
    let mut pages: Vec<Extracted> = ["json.html", "bisect.html", "keyword.html", "uuid.html"]
        .iter()
        .map(|n| check(n, Format::Html))
        .collect();
    let mut site = extract::SiteBoilerplate::new();
    for p in &pages {
        site.observe(p);
    }
    let before = pages[0].text.clone();
    site.strip(&mut pages[0]);
    assert_eq!(pages[0].structure.check(&pages[0].text), Ok(()));
    // Nothing of the page's own text is lost: every block kept is the page's own.
    assert!(pages[0].text.len() <= before.len());
    assert!(
        pages[0]
            .text
            .contains("Serialize obj as a JSON formatted stream")
    );
}

#[test]
fn markdown_keeps_its_source_and_finds_headings() {
    let md = check("pdfminer-README.md", Format::Markdown);
    assert_eq!(md.text.as_bytes(), read("pdfminer-README.md"));
    let labels: Vec<String> = md.structure.sections.iter().map(|s| s.label()).collect();
    assert!(
        labels.iter().any(|l| l == "pdfminer.six › Features"),
        "{labels:?}"
    );
    assert_eq!(md.structure.title.as_deref(), Some("pdfminer.six"));
}

#[test]
fn word_documents_headings_from_styles() {
    let docx = check("libreoffice-os.path.docx", Format::Docx);
    assert!(docx.text.contains("commonprefix"), "{:.500}", docx.text);
    let labels: Vec<String> = docx.structure.sections.iter().map(|s| s.label()).collect();
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("os.path — Common pathname manipulations")),
        "{labels:?}"
    );
    assert!(docx.structure.title.is_some());
}

#[test]
fn detection_by_content_beats_the_name() {
    let pdf = read("chromium-keyword.pdf");
    let named_txt = extract::extract(pdf, &Hint::file("notes.txt"), &ExtractLimits::default());
    assert_eq!(named_txt.unwrap().format, Format::Pdf);
    let html = read("keyword.html");
    assert_eq!(
        extract::detect(&html, &Hint::default()),
        Ok(Format::Html),
        "a doctype is enough"
    );
    let docx = read("libreoffice-os.path.docx");
    assert_eq!(
        extract::detect(&docx, &Hint::file("upload.bin")),
        Ok(Format::Docx)
    );
    let typed = Hint {
        file_name: None,
        content_type: Some("text/markdown; charset=utf-8".into()),
    };
    assert_eq!(
        extract::detect(b"# Title\n\ntext", &typed),
        Ok(Format::Markdown)
    );
}

#[test]
fn bad_files_are_errors_that_say_what_is_wrong() {
    let limits = ExtractLimits::default();
    let err = |bytes: Vec<u8>, name: &str| {
        extract::extract(bytes, &Hint::file(name), &limits).unwrap_err()
    };

    let encrypted = err(read("encrypted-aes-256.pdf"), "e.pdf");
    assert_eq!(encrypted, ExtractError::Encrypted);
    assert!(encrypted.to_string().contains("password"));

    let scanned = err(read("scanned-no-text.pdf"), "s.pdf");
    assert_eq!(scanned, ExtractError::NoTextLayer);
    assert_eq!(
        scanned.to_string(),
        "no text layer: scanned PDFs need OCR, which semdex does not do"
    );

    let pdf = read("naacl06-two-column.pdf");
    let truncated = err(pdf[..pdf.len() / 3].to_vec(), "t.pdf");
    assert!(
        matches!(
            truncated,
            ExtractError::Corrupt {
                format: Format::Pdf,
                ..
            }
        ),
        "{truncated}"
    );
    assert!(
        truncated
            .to_string()
            .starts_with("corrupt or truncated PDF")
    );

    let bomb = err(read("bomb.docx"), "bomb.docx");
    assert!(
        matches!(bomb, ExtractError::DecompressionLimit { .. }),
        "{bomb}"
    );
    assert!(bomb.to_string().contains("decompression bomb"));

    // 50 MB of nested tags: refused as soon as the nesting passes the limit.
    let started = Instant::now();
    let deep = err("<div>".repeat(10_000_000).into_bytes(), "deep.html");
    assert_eq!(deep, ExtractError::TooDeep { limit: 512 });
    assert!(started.elapsed() < Duration::from_secs(20));

    // A PNG from the Python docs: none of the formats.
    let png = err(
        vec![
            0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13,
        ],
        "x.png",
    );
    assert!(matches!(png, ExtractError::UnknownFormat { .. }), "{png}");
    assert!(
        png.to_string()
            .starts_with("not a PDF, HTML, Markdown, Word")
    );

    let not_pdf = err(b"just text".to_vec(), "claims.pdf");
    assert!(matches!(
        not_pdf,
        ExtractError::Corrupt {
            format: Format::Pdf,
            ..
        }
    ));

    let zip_not_word = {
        let docx = read("libreoffice-os.path.docx");
        // The same archive with its document part renamed: a zip, but not a Word file.
        let renamed = replace_all(&docx, b"word/document.xml", b"word/documenX.xml");
        err(renamed, "renamed.docx")
    };
    assert!(
        matches!(
            zip_not_word,
            ExtractError::Corrupt {
                format: Format::Docx,
                ..
            }
        ),
        "{zip_not_word}"
    );

    let latin1 = err(b"caf\xe9 au lait".to_vec(), "notes.txt");
    assert!(
        matches!(latin1, ExtractError::NotUtf8 { offset: 3 }),
        "{latin1}"
    );
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = haystack.to_vec();
    let mut at = 0;
    while let Some(i) = out[at..].windows(from.len()).position(|w| w == from) {
        out[at + i..at + i + from.len()].copy_from_slice(to);
        at += i + from.len();
    }
    out
}

#[test]
fn limits_on_pages_decompression_and_time() {
    let pdf = read("libreoffice-os.path.pdf");
    let few_pages = ExtractLimits {
        max_pages: 3,
        ..ExtractLimits::default()
    };
    assert_eq!(
        extract::extract(pdf.clone(), &Hint::default(), &few_pages).unwrap_err(),
        ExtractError::TooManyPages {
            pages: 10,
            limit: 3
        }
    );
    let tiny_budget = ExtractLimits {
        max_decompressed_bytes: 1024,
        ..ExtractLimits::default()
    };
    assert!(matches!(
        extract::extract(pdf.clone(), &Hint::default(), &tiny_budget).unwrap_err(),
        ExtractError::DecompressionLimit { .. }
    ));
    let docx = read("libreoffice-os.path.docx");
    assert!(matches!(
        extract::extract(docx, &Hint::default(), &tiny_budget).unwrap_err(),
        ExtractError::DecompressionLimit { .. }
    ));
    let no_time = ExtractLimits {
        timeout: Duration::from_nanos(1),
        ..ExtractLimits::default()
    };
    assert!(matches!(
        extract::extract(pdf, &Hint::default(), &no_time).unwrap_err(),
        ExtractError::TimedOut { .. }
    ));
}

fn chunker(max_tokens: usize) -> Chunker {
    Chunker::new(
        crate::common::encoder().tokenizer().clone(),
        ChunkOptions {
            max_tokens,
            overlap: 0,
            whole_documents: false,
        },
    )
    .unwrap()
}

/// Checks the chunks of an extracted document: offsets slice the text, no passage crosses a
/// section boundary, each carries the path of the section it lies in and its pages.
fn check_chunks(e: &Extracted, max_tokens: usize) -> Vec<semdex::chunk::Chunk> {
    let chunks = chunker(max_tokens).chunk_structured("doc", &e.text, Some(&e.structure));
    assert!(!chunks.is_empty());
    let tokenizer = crate::common::encoder().tokenizer().clone();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.index, i);
        assert_eq!(&e.text[c.start..c.end], c.text);
        assert!(tokenizer.count(&c.text).unwrap() <= max_tokens);
        // The section of the passage's last byte is the one it carries (a heading-only
        // section before it may have joined it).
        let last = e
            .structure
            .section_at(c.end - 1)
            .map(|s| s.path.clone())
            .unwrap_or_default();
        assert_eq!(c.section, last, "chunk {i}: {:?}", c.text);
        let first = e
            .structure
            .section_at(c.start)
            .map(|s| s.path.clone())
            .unwrap_or_default();
        if first != last {
            let s = e.structure.section_at(c.start).unwrap();
            assert!(
                e.text[s.start..s.end].trim().len() <= 300,
                "only a heading-only section joins the next: {:?}",
                c.text
            );
        }
        match e.structure.pages_of(c.start, c.end) {
            Some((first, last)) => {
                let pages = c.pages.unwrap();
                assert_eq!((pages.first, pages.last), (first, last));
            }
            None => assert_eq!(c.pages, None),
        }
    }
    chunks
}

#[test]
fn passages_stay_inside_sections_and_carry_paths_and_pages() {
    let json = check("json.html", Format::Html);
    let chunks = check_chunks(&json, 128);
    let basic = chunks
        .iter()
        .find(|c| c.text.contains("Serialize obj as a JSON formatted stream"))
        .unwrap();
    assert_eq!(
        basic.section_label().as_deref(),
        Some("json — JSON encoder and decoder › Basic Usage")
    );
    let embedded = semdex::chunk::embedding_text(json.structure.title.as_deref(), basic);
    assert!(
        embedded.starts_with("json — JSON encoder and decoder › Basic Usage\n\n"),
        "{embedded:.120}"
    );

    let pdf = check("libreoffice-os.path.pdf", Format::Pdf);
    let chunks = check_chunks(&pdf, 128);
    assert_eq!(chunks[0].pages.unwrap().first, 1);
    assert_eq!(chunks.last().unwrap().pages.unwrap().last, 10);

    let md = check("pdfminer-README.md", Format::Markdown);
    check_chunks(&md, 64);
    let docx = check("libreoffice-os.path.docx", Format::Docx);
    check_chunks(&docx, 96);
}

#[test]
fn plain_text_is_chunked_as_before() {
    let text = crate::common::seed_article();
    let chunker = chunker(128);
    let plain = chunker.chunk("d", &text);
    let structured = chunker.chunk_structured("d", &text, None);
    assert_eq!(plain, structured);
    let empty = semdex::extract::Structure::default();
    assert_eq!(chunker.chunk_structured("d", &text, Some(&empty)), plain);
    assert!(
        plain
            .iter()
            .all(|c| c.section.is_empty() && c.pages.is_none())
    );
}
