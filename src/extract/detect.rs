//! Which format a file is: by its content first (`%PDF-`, a zip holding
//! `word/document.xml`, an HTML doctype or `<html>`), then by its name's extension or its
//! `Content-Type`, then — for UTF-8 without NUL bytes — plain text.

use super::{ExtractError, Hint};

/// A format semdex reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// PDF, by its text layer.
    Pdf,
    /// HTML, main content only.
    Html,
    /// Markdown, kept as written, sections from its headings.
    Markdown,
    /// Word `.docx` (Office Open XML).
    Docx,
    /// Plain UTF-8 text, kept as it is.
    Text,
    /// One JSON document per line.
    JsonLines,
}

impl Format {
    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Html => "html",
            Self::Markdown => "markdown",
            Self::Docx => "docx",
            Self::Text => "text",
            Self::JsonLines => "jsonl",
        }
    }

    /// The format a file-name extension names, if any.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "pdf" => Self::Pdf,
            "html" | "htm" | "xhtml" => Self::Html,
            "md" | "markdown" => Self::Markdown,
            "docx" => Self::Docx,
            "txt" | "text" => Self::Text,
            "jsonl" | "ndjson" => Self::JsonLines,
            _ => return None,
        })
    }

    /// The format a `Content-Type` names, if any (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        Some(match essence.as_str() {
            "application/pdf" | "application/x-pdf" => Self::Pdf,
            "text/html" | "application/xhtml+xml" => Self::Html,
            "text/markdown" | "text/x-markdown" => Self::Markdown,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Self::Docx,
            "text/plain" => Self::Text,
            "application/jsonl"
            | "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonlines" => Self::JsonLines,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pdf => "PDF",
            Self::Html => "HTML page",
            Self::Markdown => "Markdown file",
            Self::Docx => "Word document",
            Self::Text => "text file",
            Self::JsonLines => "JSON lines file",
        })
    }
}

/// How far into a file the signatures are looked for (PDF allows junk before `%PDF-`).
const SNIFF_BYTES: usize = 1024;

/// What the content alone says, if anything.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if memchr::memmem::find(head, b"%PDF-").is_some() {
        return Some(Format::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") && super::docx::has_document_part(bytes) {
        return Some(Format::Docx);
    }
    if looks_like_html(head) {
        return Some(Format::Html);
    }
    None
}

/// Whether the content starts like an HTML document: after a byte-order mark, whitespace,
/// an XML declaration and comments, a doctype naming html or an `<html` tag.
fn looks_like_html(head: &[u8]) -> bool {
    let mut rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    loop {
        rest = rest.trim_ascii_start();
        let lower: Vec<u8> = rest.iter().take(16).map(u8::to_ascii_lowercase).collect();
        let skip_to =
            |rest: &[u8], end: &[u8]| memchr::memmem::find(rest, end).map(|i| i + end.len());
        if lower.starts_with(b"<!--") {
            match skip_to(rest, b"-->") {
                Some(i) => rest = &rest[i..],
                None => return false,
            }
        } else if lower.starts_with(b"<?xml") {
            match skip_to(rest, b"?>") {
                Some(i) => rest = &rest[i..],
                None => return false,
            }
        } else {
            return lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html");
        }
    }
}

/// The extension of a file name, if it has one.
fn extension(name: &str) -> Option<&str> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|e| !e.is_empty())
}

/// The format of a file: content first, then the hint's extension or `Content-Type`, then
/// plain text when the bytes are UTF-8 without NUL bytes. A name or type that promises a
/// format the content contradicts (a `.pdf` without `%PDF-`) is reported as corrupt.
pub fn detect(bytes: &[u8], hint: &Hint) -> Result<Format, ExtractError> {
    if let Some(format) = sniff(bytes) {
        return Ok(format);
    }
    let named = hint
        .file_name
        .as_deref()
        .and_then(extension)
        .and_then(Format::from_extension)
        .or_else(|| {
            hint.content_type
                .as_deref()
                .and_then(Format::from_content_type)
        });
    match named {
        Some(Format::Pdf) => Err(ExtractError::Corrupt {
            format: Format::Pdf,
            detail: "it does not start with %PDF- (another format, or only part of a file)".into(),
        }),
        Some(Format::Docx) if !bytes.starts_with(b"PK") => Err(ExtractError::Corrupt {
            format: Format::Docx,
            detail: "it is not a zip archive, as every .docx is".into(),
        }),
        Some(Format::Docx) => Err(ExtractError::Corrupt {
            format: Format::Docx,
            detail: "the zip archive has no readable word/document.xml".into(),
        }),
        Some(format) => Ok(format),
        None if bytes.starts_with(b"PK\x03\x04") => Err(ExtractError::UnknownFormat {
            detail: "a zip archive without word/document.xml".into(),
        }),
        None if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() => Ok(Format::Text),
        None => Err(ExtractError::UnknownFormat {
            detail: format!(
                "binary content starting {}",
                bytes
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_first_then_names_then_text() {
        let none = Hint::default();
        assert_eq!(detect(b"%PDF-1.7\n...", &none), Ok(Format::Pdf));
        assert_eq!(
            detect(
                b"\xEF\xBB\xBF <!-- c --> <!DOCTYPE html><p>x",
                &Hint::file("a.txt")
            ),
            Ok(Format::Html)
        );
        assert_eq!(detect(b"<HTML><body>x", &none), Ok(Format::Html));
        assert_eq!(
            detect(b"# Title", &Hint::file("dir.d/notes.MD")),
            Ok(Format::Markdown)
        );
        assert_eq!(detect(b"plain words", &none), Ok(Format::Text));
        let typed = Hint {
            file_name: None,
            content_type: Some("text/html; charset=utf-8".into()),
        };
        assert_eq!(detect(b"<p>fragment</p>", &typed), Ok(Format::Html));
        assert!(matches!(
            detect(b"hello", &Hint::file("x.pdf")),
            Err(ExtractError::Corrupt {
                format: Format::Pdf,
                ..
            })
        ));
        assert!(matches!(
            detect(&[0x89, b'P', b'N', b'G', 0, 0], &none),
            Err(ExtractError::UnknownFormat { .. })
        ));
        assert!(matches!(
            detect(b"PK\x03\x04rest", &none),
            Err(ExtractError::UnknownFormat { .. })
        ));
    }
}
