//! Documents as people have them — PDF, HTML, Markdown, Word `.docx`, plain text — turned into
//! the text semdex stores, with the structure a good answer cites: the title, the heading path
//! of every part of the text, and the PDF page every part lies on.
//!
//! One file per format ([`pdf`], [`html`], [`markdown`], [`docx`], [`text`]), format
//! detection by content first ([`detect`]), the site-level boilerplate pass over many HTML
//! pages ([`boilerplate`]), and [`TextBuilder`], which every extractor writes its text through
//! so that offsets are right by construction.
//!
//! Third-party parsers can panic, loop or allocate without bound on hostile input. [`extract`]
//! therefore runs one extraction on its own thread with a deadline, catches panics, and checks
//! [`ExtractLimits`] (decompressed size, pages, HTML depth, time) inside the extractors, so
//! that a bad file is an [`ExtractError`] that says what is wrong, never a crash or a hang.

pub mod boilerplate;
mod builder;
pub mod detect;
pub mod docx;
pub mod html;
pub mod markdown;
pub mod pdf;
pub mod text;

use std::time::{Duration, Instant};

pub use boilerplate::SiteBoilerplate;
pub use builder::TextBuilder;
pub use detect::{Format, detect};

/// Separator between the levels of a heading path when it is shown: `Install › From source`.
pub const SECTION_SEPARATOR: &str = " › ";

/// Default cap on the bytes a file may decompress to (PDF streams, the parts of a `.docx`).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 256 * 1024 * 1024;
/// Default cap on the time one file's extraction may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on the pages of a PDF.
pub const DEFAULT_MAX_PAGES: u32 = 5_000;
/// Default cap on the nesting depth of HTML elements (browsers stop nesting at 512).
pub const DEFAULT_MAX_HTML_DEPTH: usize = 512;

/// Bounds on the work one file may cause, so that a hostile file costs a clear error instead
/// of the machine's memory or an afternoon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Most bytes all of a file's compressed parts may inflate to, together.
    pub max_decompressed_bytes: u64,
    /// Longest one file's extraction may run.
    pub timeout: Duration,
    /// Most pages a PDF may have.
    pub max_pages: u32,
    /// Deepest HTML element nesting accepted.
    pub max_html_depth: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            timeout: DEFAULT_TIMEOUT,
            max_pages: DEFAULT_MAX_PAGES,
            max_html_depth: DEFAULT_MAX_HTML_DEPTH,
        }
    }
}

/// What is known about a file besides its bytes: used when the content alone does not say
/// which format it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hint {
    /// The file's name (or path); its extension counts.
    pub file_name: Option<String>,
    /// An HTTP `Content-Type`, parameters allowed (`text/html; charset=utf-8`).
    pub content_type: Option<String>,
}

impl Hint {
    /// A hint from a file name alone.
    pub fn file(name: impl Into<String>) -> Self {
        Self {
            file_name: Some(name.into()),
            content_type: None,
        }
    }
}

/// A byte range of the text and the headings it lies under, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Section {
    /// First byte of the section (its heading, when it has one).
    pub start: usize,
    /// One past its last byte (the next section's start).
    pub end: usize,
    /// Heading path, outermost first: `["Install", "From source"]`; empty for text before the
    /// first heading.
    pub path: Vec<String>,
}

impl Section {
    /// The path as shown to people: `Install › From source`.
    pub fn label(&self) -> String {
        self.path.join(SECTION_SEPARATOR)
    }
}

/// A byte range of the text and the PDF page it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageSpan {
    /// First byte of the page's text.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// Page number, from 1.
    pub page: u32,
}

/// Where the parts of a document's text came from: what chunking uses to keep passages
/// within a section, and what every passage carries to be cited. Offsets are byte offsets
/// into the extracted text, at character boundaries.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Structure {
    /// The document's title: PDF metadata, HTML `<title>`, `.docx` properties, or the first
    /// heading.
    pub title: Option<String>,
    /// Sections in text order, not overlapping; text outside every section has no heading.
    pub sections: Vec<Section>,
    /// PDF pages in text order, not overlapping (empty for other formats).
    pub pages: Vec<PageSpan>,
}

impl Structure {
    /// The section holding byte `at`, if any.
    pub fn section_at(&self, at: usize) -> Option<&Section> {
        let i = self.sections.partition_point(|s| s.end <= at);
        self.sections.get(i).filter(|s| s.start <= at)
    }

    /// First and last page the byte range `start..end` touches, if the document has pages.
    pub fn pages_of(&self, start: usize, end: usize) -> Option<(u32, u32)> {
        let first = self.pages.partition_point(|p| p.end <= start);
        let touched: Vec<u32> = self.pages[first..]
            .iter()
            .take_while(|p| p.start < end.max(start + 1))
            .map(|p| p.page)
            .collect();
        Some((*touched.first()?, *touched.last()?))
    }

    /// Checks the invariants every extractor promises for `text`: ranges in bounds, at
    /// character boundaries, in order and not overlapping.
    pub fn check(&self, text: &str) -> Result<(), String> {
        let ranges = self
            .sections
            .iter()
            .map(|s| (s.start, s.end, "section"))
            .chain(self.pages.iter().map(|p| (p.start, p.end, "page")));
        for (start, end, what) in ranges {
            if start > end || end > text.len() {
                return Err(format!("{what} {start}..{end} out of bounds"));
            }
            if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                return Err(format!("{what} {start}..{end} splits a character"));
            }
        }
        fn ordered(mut pairs: impl Iterator<Item = (usize, usize)>) -> bool {
            let mut last = 0;
            pairs.all(|(s, e)| {
                let ok = s >= last;
                last = e;
                ok
            })
        }
        if !ordered(self.sections.iter().map(|s| (s.start, s.end))) {
            return Err("sections overlap or are out of order".into());
        }
        if !ordered(self.pages.iter().map(|p| (p.start, p.end))) {
            return Err("pages overlap or are out of order".into());
        }
        Ok(())
    }
}

/// A document's text and structure, as extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The format it was read as.
    pub format: Format,
    /// The text semdex stores; every offset points into it.
    pub text: String,
    /// Title, sections and pages.
    pub structure: Structure,
    /// Byte ranges of the text's blocks (paragraphs, list items, cells) that are not
    /// headings: what [`SiteBoilerplate`] compares across the pages of a site. Empty for
    /// formats where it does not apply.
    pub blocks: Vec<std::ops::Range<usize>>,
    /// Things the reader should know but that did not stop extraction (a PDF page that could
    /// not be read).
    pub warnings: Vec<String>,
}

/// Why a file could not be turned into text. Every message says what is wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// None of the formats semdex reads.
    #[error("not a PDF, HTML, Markdown, Word (.docx), JSON lines or text file: {detail}")]
    UnknownFormat {
        /// What the content looked like.
        detail: String,
    },
    /// A text format whose bytes are not UTF-8.
    #[error("not valid UTF-8 text (the first bad byte is at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// A PDF that needs a password.
    #[error("encrypted PDF: it opens only with a password, which semdex does not take")]
    Encrypted,
    /// A PDF with pages but no text.
    #[error("no text layer: scanned PDFs need OCR, which semdex does not do")]
    NoTextLayer,
    /// The file is cut short or damaged.
    #[error("corrupt or truncated {format}: {detail}")]
    Corrupt {
        /// The format it claims to be.
        format: Format,
        /// What the parser found.
        detail: String,
    },
    /// More pages than [`ExtractLimits::max_pages`].
    #[error("the PDF has {pages} pages, over the limit of {limit} (raise --max-pages)")]
    TooManyPages {
        /// Pages in the file.
        pages: usize,
        /// The limit.
        limit: u32,
    },
    /// Compressed parts inflate past [`ExtractLimits::max_decompressed_bytes`].
    #[error(
        "{what} decompresses to more than {limit} bytes (a decompression bomb?); raise --max-decompressed-bytes if it is genuine"
    )]
    DecompressionLimit {
        /// Which part.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// HTML nested deeper than [`ExtractLimits::max_html_depth`].
    #[error("HTML elements nested more than {limit} deep: not a page a browser would show")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// Extraction ran past [`ExtractLimits::timeout`].
    #[error(
        "extraction took longer than {:.1} s (raise --extract-timeout)",
        .limit.as_secs_f64()
    )]
    TimedOut {
        /// The limit.
        limit: Duration,
    },
    /// A parser failed in a way it should not have (a panic, caught).
    #[error("the {format} reader failed on this file: {message}")]
    ReaderFailed {
        /// The format being read.
        format: Format,
        /// The panic's message.
        message: String,
    },
    /// The file was read but holds no text.
    #[error("the {format} holds no text")]
    NoText {
        /// The format it was read as.
        format: Format,
    },
    /// Several documents in one file: JSON lines are read document by document by
    /// [`crate::engine::sources`], not here.
    #[error("JSON lines hold one document per line; read them as a list of documents")]
    JsonLines,
}

/// Reads one document: detects its format ([`detect`]) and extracts its text and structure,
/// on a thread of its own with `limits.timeout` as a deadline and panics caught, so that no
/// file can crash or hang the caller. A timed-out extraction's thread is left to stop at its
/// next limit check (every extractor checks the deadline as it goes).
pub fn extract(
    bytes: Vec<u8>,
    hint: &Hint,
    limits: &ExtractLimits,
) -> Result<Extracted, ExtractError> {
    let format = detect(&bytes, hint)?;
    extract_as(bytes, format, limits)
}

/// [`extract`] for a format already known.
pub fn extract_as(
    bytes: Vec<u8>,
    format: Format,
    limits: &ExtractLimits,
) -> Result<Extracted, ExtractError> {
    let limits = *limits;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("semdex-extract".into())
        // Parsers recurse on nested structures; a deep stack turns a would-be overflow (an
        // abort no one can catch) into ordinary work bounded by the limits.
        .stack_size(256 * 1024 * 1024)
        .spawn(move || {
            let deadline = Deadline::after(limits.timeout);
            let _ = tx.send(contained(format, || {
                extract_now(&bytes, format, &limits, &deadline)
            }));
        });
    if let Err(e) = spawned {
        return Err(ExtractError::ReaderFailed {
            format,
            message: format!("cannot start a thread: {e}"),
        });
    }
    // A little grace past the deadline, for the extractor's own check to answer first.
    match rx.recv_timeout(limits.timeout + Duration::from_millis(500)) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(ExtractError::TimedOut {
            limit: limits.timeout,
        }),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(ExtractError::ReaderFailed {
            format,
            message: "the reader stopped without an answer".into(),
        }),
    }
}

/// Runs `work`, turning a panic into [`ExtractError::ReaderFailed`].
pub(crate) fn contained<T>(
    format: Format,
    work: impl FnOnce() -> Result<T, ExtractError>,
) -> Result<T, ExtractError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(ExtractError::ReaderFailed { format, message })
    })
}

/// Extracts on the calling thread (no thread, no catch): what [`extract`] runs.
fn extract_now(
    bytes: &[u8],
    format: Format,
    limits: &ExtractLimits,
    deadline: &Deadline,
) -> Result<Extracted, ExtractError> {
    let extracted = match format {
        Format::Pdf => pdf::extract(bytes, limits, deadline)?,
        Format::Html => html::extract(bytes, limits, deadline)?,
        Format::Markdown => markdown::extract(bytes)?,
        Format::Docx => docx::extract(bytes, limits, deadline)?,
        Format::Text => text::extract(bytes)?,
        Format::JsonLines => return Err(ExtractError::JsonLines),
    };
    if extracted.text.trim().is_empty() {
        return Err(if format == Format::Pdf {
            ExtractError::NoTextLayer
        } else {
            ExtractError::NoText { format }
        });
    }
    debug_assert_eq!(extracted.structure.check(&extracted.text), Ok(()));
    Ok(extracted)
}

/// When the current extraction must give up.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Self {
        Self {
            at: Instant::now() + limit,
            limit,
        }
    }

    /// An error once the deadline has passed.
    pub fn check(&self) -> Result<(), ExtractError> {
        if Instant::now() > self.at {
            return Err(ExtractError::TimedOut { limit: self.limit });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_lookups() {
        let s = Structure {
            title: None,
            sections: vec![
                Section {
                    start: 0,
                    end: 10,
                    path: vec![],
                },
                Section {
                    start: 10,
                    end: 30,
                    path: vec!["A".into(), "B".into()],
                },
            ],
            pages: vec![
                PageSpan {
                    start: 0,
                    end: 12,
                    page: 1,
                },
                PageSpan {
                    start: 12,
                    end: 30,
                    page: 2,
                },
            ],
        };
        assert_eq!(s.section_at(3).unwrap().path, Vec::<String>::new());
        assert_eq!(s.section_at(10).unwrap().label(), "A › B");
        assert!(s.section_at(30).is_none());
        assert_eq!(s.pages_of(0, 5), Some((1, 1)));
        assert_eq!(s.pages_of(5, 20), Some((1, 2)));
        assert_eq!(s.pages_of(12, 30), Some((2, 2)));
        assert_eq!(Structure::default().pages_of(0, 3), None);
        assert_eq!(s.check(&"x".repeat(30)), Ok(()));
        assert!(s.check(&"x".repeat(20)).is_err());
    }
}
