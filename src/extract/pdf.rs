//! PDF, by its text layer: lopdf parses the file, pdf-extract interprets each page's content
//! stream (fonts, encodings, CMaps, the text matrix) and hands us every glyph with its
//! position; [`PageText`] lays the glyphs out into words, lines and paragraphs.
//!
//! Before any of that, [`check_inflated_size`] inflates every compressed stream once into a
//! counter, so a decompression bomb is refused before lopdf or pdf-extract would inflate it
//! into memory. Pages are read one at a time, each with its panics caught (a page the reader
//! cannot handle becomes a warning, not a lost document) and the deadline checked between
//! them. Sections come from the PDF's outline (bookmarks), placed where each bookmark's title
//! appears on its page; the title from the document information, else the largest line of
//! the first page.

use std::io::Read;

use pdf_extract::{Document, MediaBox, Object, OutputDev, OutputError, Transform};
use unicode_normalization::UnicodeNormalization;

use super::builder::{Break, TextBuilder, collapse_whitespace, sections_from_headings};
use super::{Deadline, ExtractError, ExtractLimits, Extracted, Format};

fn corrupt(detail: impl std::fmt::Display) -> ExtractError {
    ExtractError::Corrupt {
        format: Format::Pdf,
        detail: detail.to_string(),
    }
}

/// A PDF's text, page by page.
pub fn extract(
    bytes: &[u8],
    limits: &ExtractLimits,
    deadline: &Deadline,
) -> Result<Extracted, ExtractError> {
    check_inflated_size(bytes, limits.max_decompressed_bytes, deadline)?;
    let mut doc = Document::load_mem(bytes).map_err(|e| corrupt(describe(&e)))?;
    repair_cid_widths(&mut doc);
    // lopdf opens a file encrypted with an empty user password itself (and drops /Encrypt
    // from the trailer); one that still has it needs a real password.
    if doc.trailer.get(b"Encrypt").is_ok() || doc.is_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let pages = doc.get_pages();
    if pages.len() > limits.max_pages as usize {
        return Err(ExtractError::TooManyPages {
            pages: pages.len(),
            limit: limits.max_pages,
        });
    }
    if pages.is_empty() {
        return Err(corrupt("it has no pages"));
    }
    let mut out = TextBuilder::new();
    if let Some(title) = info_title(&doc) {
        out.title(&title);
    }
    let mut warnings = Vec::new();
    let mut failures = 0;
    let mut largest_first_line = None;
    for &number in pages.keys() {
        deadline.check()?;
        let mut page = PageText::default();
        let read = super::contained(Format::Pdf, || {
            pdf_extract::output_doc_page(&doc, &mut page, number).map_err(corrupt)
        });
        if let Err(e) = read {
            failures += 1;
            warnings.push(format!("page {number} could not be read: {e}"));
        }
        out.begin_page(number);
        let lines = page.finish();
        if largest_first_line.is_none() && !lines.is_empty() {
            largest_first_line = title_line(&lines);
        }
        let mut paragraph = String::new();
        for line in lines {
            if line.starts_paragraph && !paragraph.is_empty() {
                out.body(Break::Paragraph, &std::mem::take(&mut paragraph));
            }
            if hyphenated(&paragraph, &line.text) {
                // A word broken across two lines is one word again ("Ex-" + "isting").
                paragraph.pop();
            } else if !paragraph.is_empty() {
                paragraph.push('\n');
            }
            paragraph.push_str(&line.text);
        }
        out.body(Break::Paragraph, &paragraph);
    }
    if failures == pages.len() {
        return Err(ExtractError::ReaderFailed {
            format: Format::Pdf,
            message: warnings.join("; "),
        });
    }
    if let Some(line) = largest_first_line {
        out.title(&line);
    }
    let mut extracted = out.finish(Format::Pdf);
    extracted.warnings = warnings;
    // The outline is an extra: a broken one costs the sections, not the document.
    if let Ok(sections) = super::contained(Format::Pdf, || Ok(outline_sections(&doc, &extracted))) {
        extracted.structure.sections = sections;
    }
    Ok(extracted)
}

/// Most glyph widths one range of a CID font's `/W` array is expanded to.
const MAX_WIDTH_RANGE: i64 = 65_536;

/// Rewrites the `c_first c_last width` entries of CID fonts' `/W` arrays (what Chromium
/// writes for monospaced fonts) as `c_first [width ...]`, the form pdf-extract 0.12 reads:
/// it misreads the range form and then places every glyph of such a font a full em apart,
/// which splits words into letters.
fn repair_cid_widths(doc: &mut Document) {
    let fonts: Vec<pdf_extract::ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| {
            o.as_dict().is_ok_and(|d| {
                d.get(b"W").is_ok()
                    && d.get(b"Subtype")
                        .and_then(Object::as_name)
                        .is_ok_and(|n| n.starts_with(b"CIDFontType"))
            })
        })
        .map(|(id, _)| *id)
        .collect();
    for id in fonts {
        let w = match doc
            .get_object(id)
            .and_then(Object::as_dict)
            .and_then(|d| d.get(b"W"))
        {
            Ok(Object::Reference(r)) => doc.get_object(*r).ok().cloned(),
            Ok(direct) => Some(direct.clone()),
            Err(_) => None,
        };
        let Some(Object::Array(entries)) = w else {
            continue;
        };
        let number = |o: &Object| match o {
            Object::Integer(i) => Some(*i as f64),
            Object::Real(r) => Some(f64::from(*r)),
            _ => None,
        };
        let mut fixed = Vec::with_capacity(entries.len());
        let mut i = 0;
        while i < entries.len() {
            match (entries.get(i), entries.get(i + 1), entries.get(i + 2)) {
                (Some(first), Some(Object::Array(widths)), _) => {
                    fixed.push(first.clone());
                    fixed.push(Object::Array(widths.clone()));
                    i += 2;
                }
                (Some(first), Some(last), Some(width)) => {
                    let (Some(first), Some(last), Some(width)) =
                        (number(first), number(last), number(width))
                    else {
                        break;
                    };
                    let (first, last) = (first as i64, last as i64);
                    if last >= first && last - first < MAX_WIDTH_RANGE {
                        fixed.push(Object::Integer(first));
                        fixed.push(Object::Array(
                            (first..=last).map(|_| Object::Real(width as f32)).collect(),
                        ));
                    }
                    i += 3;
                }
                _ => break,
            }
        }
        if let Ok(Object::Dictionary(d)) = doc.get_object_mut(id) {
            d.set("W", Object::Array(fixed));
        }
    }
}

/// lopdf's error, in words a person can act on.
fn describe(e: &pdf_extract::Error) -> String {
    format!("{e}")
}

/// Inflates every `stream … endstream` of the file into a counter and refuses the file when
/// the total passes `limit`: the only way to know what a deflate stream holds is to inflate
/// it, and doing so here, into nothing, bounds the memory lopdf and pdf-extract will use.
/// Streams that are not deflate fail to inflate at once and count for nothing.
pub fn check_inflated_size(
    bytes: &[u8],
    limit: u64,
    deadline: &Deadline,
) -> Result<(), ExtractError> {
    let mut total = 0u64;
    let mut at = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let finder = memchr::memmem::Finder::new(b"stream");
    let end_finder = memchr::memmem::Finder::new(b"endstream");
    while let Some(i) = finder.find(&bytes[at..]) {
        let keyword = at + i;
        at = keyword + b"stream".len();
        if keyword >= 3 && &bytes[keyword - 3..keyword] == b"end" {
            continue;
        }
        let mut start = at;
        if bytes.get(start) == Some(&b'\r') {
            start += 1;
        }
        if bytes.get(start) != Some(&b'\n') {
            continue;
        }
        start += 1;
        let end = end_finder
            .find(&bytes[start..])
            .map_or(bytes.len(), |e| start + e);
        let mut inflater = flate2::read::ZlibDecoder::new(&bytes[start..end]);
        loop {
            match inflater.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    if total > limit {
                        return Err(ExtractError::DecompressionLimit {
                            what: "the PDF's compressed streams".into(),
                            limit,
                        });
                    }
                }
            }
        }
        at = end;
        deadline.check()?;
    }
    Ok(())
}

/// The document information's `/Title`, when it says something.
fn info_title(doc: &Document) -> Option<String> {
    let info = match doc.trailer.get(b"Info").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    let title = pdf_extract::decode_text_string(info.get(b"Title").ok()?).ok()?;
    let title = collapse_whitespace(&title.replace('\0', ""));
    // Producers write file names and placeholders where a title should be.
    let lower = title.to_lowercase();
    let placeholder = lower.is_empty()
        || lower == "untitled"
        || lower.ends_with(".pdf")
        || lower.ends_with(".doc")
        || lower.ends_with(".docx")
        || lower.ends_with(".tex")
        || lower.ends_with(".dvi");
    (!placeholder).then_some(title)
}

/// One glyph as drawn: position in device space (y grows downwards), advance and size.
#[derive(Debug, Clone)]
struct Glyph {
    x: f64,
    y: f64,
    end: f64,
    size: f64,
    text: String,
}

/// A line of a page's text.
#[derive(Debug, Clone)]
struct Line {
    text: String,
    /// Largest glyph size on the line.
    size: f64,
    /// A gap above it (or a jump back up the page) sets it apart from the line before.
    starts_paragraph: bool,
}

/// Collects a page's glyphs from pdf-extract and lays them out.
#[derive(Debug, Default)]
struct PageText {
    glyphs: Vec<Glyph>,
}

/// Most glyphs kept from one page (a page of a million glyphs is an attack, not a page).
const MAX_GLYPHS_PER_PAGE: usize = 2_000_000;

impl OutputDev for PageText {
    fn begin_page(
        &mut self,
        _page: u32,
        _media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), OutputError> {
        if self.glyphs.len() >= MAX_GLYPHS_PER_PAGE {
            return Ok(());
        }
        // The text rendering matrix maps text space to device space; its scale times the
        // font size is the glyph's size on the page.
        let scale = (trm.m11 * trm.m22 - trm.m12 * trm.m21).abs().sqrt();
        let size = font_size * scale;
        let x = trm.m31;
        let advance = width * font_size * trm.m11.hypot(trm.m12);
        if !(x.is_finite() && trm.m32.is_finite() && size.is_finite() && advance.is_finite()) {
            return Ok(());
        }
        self.glyphs.push(Glyph {
            x,
            y: -trm.m32,
            end: x + advance,
            size,
            text: normalize_glyph(char),
        });
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Ligatures (ﬁ, ﬂ, ﬀ, …) become their letters, as a reader types them, and the Kangxi and
/// CJK radicals and compatibility ideographs some CJK fonts map their glyphs to (⽂ for 文)
/// become the ideographs people search for; other characters stay as the font maps them.
/// Control characters become spaces.
fn normalize_glyph(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let ligature = ('\u{FB00}'..='\u{FB06}').contains(&c)
                || ('\u{2E80}'..='\u{2FDF}').contains(&c)
                || ('\u{F900}'..='\u{FAFF}').contains(&c);
            let control = c.is_control() && c != '\n' && c != '\t';
            let replacement: Vec<char> = if ligature {
                c.to_string().nfkc().collect()
            } else if control || c == '\u{FFFD}' {
                vec![' ']
            } else {
                vec![c]
            };
            replacement
        })
        .collect()
}

impl PageText {
    /// Lines of text in drawing order: a glyph that leaves the baseline starts a new line;
    /// a horizontal gap wider than a fifth of the glyph's size (or a space glyph) separates
    /// words; a glyph drawn again on top of itself (fake bold) is dropped.
    fn finish(self) -> Vec<Line> {
        let mut lines: Vec<Line> = Vec::new();
        let mut current = Line {
            text: String::new(),
            size: 0.0,
            starts_paragraph: false,
        };
        let mut last: Option<&Glyph> = None;
        let mut line_y = 0.0;
        let mut pending_space = false;
        for g in &self.glyphs {
            if g.text.trim().is_empty() {
                pending_space = true;
                continue;
            }
            if let Some(prev) = last {
                let size = g.size.max(prev.size).max(1e-6);
                let dy = g.y - prev.y;
                let same_spot = (g.x - prev.x).abs() < 0.1 * size && dy.abs() < 0.1 * size;
                if same_spot && g.text == prev.text {
                    continue;
                }
                if dy.abs() > 0.6 * size {
                    // A new line: a paragraph when the gap is wider than a line and a half,
                    // or the text jumps back up the page (a new column or box).
                    let gap = g.y - line_y;
                    let paragraph = gap > 1.7 * size || gap < -0.6 * size;
                    lines.push(std::mem::replace(
                        &mut current,
                        Line {
                            text: String::new(),
                            size: 0.0,
                            starts_paragraph: paragraph,
                        },
                    ));
                    line_y = g.y;
                } else if pending_space || g.x > prev.end + 0.2 * size || g.x < prev.x - 0.5 * size
                {
                    current.text.push(' ');
                }
            } else {
                line_y = g.y;
            }
            pending_space = false;
            current.text.push_str(&g.text);
            current.size = current.size.max(g.size);
            last = Some(g);
        }
        lines.push(current);
        lines
            .into_iter()
            .filter_map(|mut l| {
                l.text = collapse_whitespace(&l.text);
                (!l.text.is_empty()).then_some(l)
            })
            .collect()
    }
}

/// Whether `before` ends with a word cut by a hyphen that `next` completes: a letter and a
/// hyphen, then a line starting with a lowercase letter.
fn hyphenated(before: &str, next: &str) -> bool {
    let mut tail = before.chars().rev();
    tail.next() == Some('-')
        && tail.next().is_some_and(char::is_alphabetic)
        && next.chars().next().is_some_and(char::is_lowercase)
}

/// The first page's title: its lines in the largest size, when that size stands out from
/// the body text's.
fn title_line(lines: &[Line]) -> Option<String> {
    let mut sizes: Vec<f64> = lines.iter().map(|l| l.size).collect();
    sizes.sort_by(f64::total_cmp);
    let median = sizes[sizes.len() / 2];
    let largest = *sizes.last()?;
    if largest < 1.3 * median {
        return None;
    }
    let title: Vec<&str> = lines
        .iter()
        .skip_while(|l| l.size < largest * 0.99)
        .take_while(|l| l.size >= largest * 0.99)
        .map(|l| l.text.as_str())
        .collect();
    let title = title.join(" ");
    (title.chars().count() <= 200 && title.chars().any(char::is_alphabetic)).then_some(title)
}

/// Sections from the outline: each bookmark's heading starts where its title appears on its
/// page (else at the top of the page).
fn outline_sections(doc: &Document, extracted: &Extracted) -> Vec<super::Section> {
    let Ok(toc) = doc.get_toc() else {
        return Vec::new();
    };
    let text = &extracted.text;
    let pages = &extracted.structure.pages;
    let mut headings: Vec<(usize, u8, String)> = Vec::new();
    for entry in toc.toc {
        let title = collapse_whitespace(&entry.title.replace('\0', ""));
        let Some(page) = pages.iter().find(|p| p.page as usize == entry.page) else {
            continue;
        };
        let floor = headings.last().map_or(0, |h| h.0).max(page.start);
        let start = (floor <= page.end)
            .then(|| find_collapsed(&text[floor..page.end], &title).map(|i| floor + i))
            .flatten()
            .unwrap_or(floor);
        let level = u8::try_from(entry.level.clamp(1, 9)).unwrap_or(9);
        if !title.is_empty() {
            headings.push((start, level, title));
        }
    }
    sections_from_headings(text.len(), &headings)
}

/// Where `needle` occurs in `haystack` when runs of whitespace count as one space, as a byte
/// offset of `haystack` (case-insensitively for ASCII).
fn find_collapsed(haystack: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let mut collapsed = String::with_capacity(haystack.len());
    let mut offsets = Vec::with_capacity(haystack.len());
    let mut in_space = false;
    for (i, c) in haystack.char_indices() {
        if c.is_whitespace() {
            if !in_space {
                collapsed.push(' ');
                offsets.push(i);
            }
            in_space = true;
            continue;
        }
        in_space = false;
        let lower = c.to_ascii_lowercase();
        for _ in 0..lower.len_utf8() {
            offsets.push(i);
        }
        collapsed.push(lower);
    }
    let at = collapsed.find(&needle.to_ascii_lowercase())?;
    offsets.get(at).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph(x: f64, y: f64, text: &str) -> Glyph {
        Glyph {
            x,
            y,
            end: x + 5.0,
            size: 10.0,
            text: text.into(),
        }
    }

    #[test]
    fn glyphs_become_words_lines_and_paragraphs() {
        let page = PageText {
            glyphs: vec![
                glyph(0.0, 0.0, "H"),
                glyph(5.0, 0.0, "i"),
                glyph(5.0, 0.0, "i"),
                glyph(13.0, 0.0, "y"),
                glyph(18.0, 0.0, "o"),
                glyph(23.0, 0.0, " "),
                glyph(28.0, 0.0, &normalize_glyph("\u{FB01}")),
                glyph(0.0, 12.0, "n"),
                glyph(0.0, 40.0, "p"),
            ],
        };
        let lines = page.finish();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["Hi yo fi", "n", "p"]);
        assert_eq!(normalize_glyph("\u{2F42}"), "文");
        assert!(!lines[1].starts_paragraph);
        assert!(lines[2].starts_paragraph);
    }

    #[test]
    fn words_broken_by_a_hyphen_are_joined() {
        assert!(hyphenated("Ex-", "isting IE systems"));
        assert!(!hyphenated("Ex-", "Isting"));
        assert!(!hyphenated("pages 3-", "five"), "a digit before the hyphen");
        assert!(!hyphenated("", "word"));
    }

    #[test]
    fn collapsed_search_maps_back_to_offsets() {
        let text = "Intro\n\n2.1  Getting\nStarted here";
        let at = find_collapsed(text, "getting started").unwrap();
        assert!(text[at..].starts_with("Getting"));
        assert_eq!(find_collapsed(text, "absent"), None);
    }

    #[test]
    fn a_deflate_bomb_is_refused_before_parsing() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; 20 * 1024 * 1024]).unwrap();
        let mut pdf = b"%PDF-1.4\n1 0 obj << /Filter /FlateDecode >>\nstream\n".to_vec();
        pdf.extend(z.finish().unwrap());
        pdf.extend(b"\nendstream\nendobj\n");
        let deadline = Deadline::after(std::time::Duration::from_secs(10));
        assert!(matches!(
            check_inflated_size(&pdf, 1024 * 1024, &deadline),
            Err(ExtractError::DecompressionLimit { .. })
        ));
        assert!(check_inflated_size(&pdf, 64 * 1024 * 1024, &deadline).is_ok());
    }
}
