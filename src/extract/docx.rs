//! Word `.docx`: a zip archive whose `word/document.xml` holds the paragraphs. Headings are
//! paragraphs whose style is a heading — by the style's name in `word/styles.xml` ("heading
//! 2", whatever its id in a localised Word), or its outline level — and the title comes from
//! `docProps/core.xml`, a paragraph in the Title style, or the first heading.
//!
//! Every part is inflated through a budget ([`ExtractLimits::max_decompressed_bytes`]) that
//! counts the bytes actually produced, not what the archive claims, so a zip bomb stops at
//! the budget.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};

use super::builder::{Break, TextBuilder};
use super::{Deadline, ExtractError, ExtractLimits, Extracted, Format};

/// Where the body of a Word document lives.
const DOCUMENT_PART: &str = "word/document.xml";

/// Whether `bytes` is a zip archive holding a Word document body.
pub fn has_document_part(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(Cursor::new(bytes))
        .is_ok_and(|archive| archive.index_for_name(DOCUMENT_PART).is_some())
}

fn corrupt(detail: impl std::fmt::Display) -> ExtractError {
    ExtractError::Corrupt {
        format: Format::Docx,
        detail: detail.to_string(),
    }
}

/// Reads zip parts within one decompression budget.
struct Parts<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    left: u64,
    limit: u64,
}

impl Parts<'_> {
    /// The inflated part `name`, `None` if the archive has no such part.
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let mut file = match self.archive.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(corrupt(format_args!("{name}: {e}"))),
        };
        let over = || ExtractError::DecompressionLimit {
            what: format!("the Word document's {name}"),
            limit: self.limit,
        };
        if file.size() > self.left {
            return Err(over());
        }
        let mut bytes = Vec::with_capacity(file.size().min(self.left) as usize);
        (&mut file)
            .take(self.left + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(format_args!("{name}: {e}")))?;
        if bytes.len() as u64 > self.left {
            return Err(over());
        }
        self.left -= bytes.len() as u64;
        Ok(Some(bytes))
    }
}

/// A Word document's paragraphs, headings and title.
pub fn extract(
    bytes: &[u8],
    limits: &ExtractLimits,
    deadline: &Deadline,
) -> Result<Extracted, ExtractError> {
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    let mut parts = Parts {
        archive,
        left: limits.max_decompressed_bytes,
        limit: limits.max_decompressed_bytes,
    };
    let document = parts
        .read(DOCUMENT_PART)?
        .ok_or_else(|| corrupt("the archive has no word/document.xml"))?;
    let styles = match parts.read("word/styles.xml")? {
        Some(xml) => heading_styles(&xml)?,
        None => HashMap::new(),
    };
    let mut out = TextBuilder::new();
    if let Some(core) = parts.read("docProps/core.xml")? {
        out.title(&core_title(&core)?);
    }
    read_body(&document, &styles, &mut out, deadline)?;
    Ok(out.finish(Format::Docx))
}

/// What a paragraph style makes of its paragraphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Heading(u8),
    Title,
}

/// An attribute's value by local name (`w:val` → `val`).
fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == name)
            .then(|| a.unescape_value().ok().map(|v| v.into_owned()))
            .flatten()
    })
}

/// Paragraph styles that are headings or the title, by style id.
fn heading_styles(xml: &[u8]) -> Result<HashMap<String, Role>, ExtractError> {
    struct Style {
        name: String,
        outline: Option<u8>,
        based_on: Option<String>,
    }
    let mut styles: HashMap<String, Style> = HashMap::new();
    let mut current: Option<(String, Style)> = None;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format_args!("word/styles.xml: {e}")))?;
        match &event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"style" => {
                    current = attr(e, b"styleId").map(|id| {
                        (
                            id,
                            Style {
                                name: String::new(),
                                outline: None,
                                based_on: None,
                            },
                        )
                    });
                }
                b"name" => {
                    if let Some((_, s)) = current.as_mut() {
                        s.name = attr(e, b"val").unwrap_or_default().to_ascii_lowercase();
                    }
                }
                b"basedOn" => {
                    if let Some((_, s)) = current.as_mut() {
                        s.based_on = attr(e, b"val");
                    }
                }
                b"outlineLvl" => {
                    if let Some((_, s)) = current.as_mut() {
                        s.outline = attr(e, b"val").and_then(|v| v.parse().ok());
                    }
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == b"style" => {
                if let Some((id, s)) = current.take() {
                    styles.insert(id, s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let own_role = |s: &Style| -> Option<Role> {
        if s.name == "title" {
            return Some(Role::Title);
        }
        if let Some(n) = s
            .name
            .strip_prefix("heading ")
            .and_then(|n| n.parse::<u8>().ok())
        {
            return Some(Role::Heading(n.clamp(1, 9)));
        }
        s.outline.filter(|&l| l < 9).map(|l| Role::Heading(l + 1))
    };
    let mut roles = HashMap::new();
    for (id, style) in &styles {
        // A style based on a heading style is a heading too (a few steps up, no cycles).
        let mut s = style;
        for _ in 0..8 {
            if let Some(role) = own_role(s) {
                roles.insert(id.clone(), role);
                break;
            }
            match s.based_on.as_ref().and_then(|b| styles.get(b)) {
                Some(parent) => s = parent,
                None => break,
            }
        }
    }
    Ok(roles)
}

/// `dc:title` of `docProps/core.xml`.
fn core_title(xml: &[u8]) -> Result<String, ExtractError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format_args!("docProps/core.xml: {e}")))?
        {
            Event::Start(e) if e.local_name().as_ref() == b"title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == b"title" => in_title = false,
            Event::Text(t) if in_title => title.push_str(&t.decode().unwrap_or_default()),
            Event::GeneralRef(r) if in_title => push_entity(&mut title, &r),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(title)
}

/// Appends the character an entity reference stands for.
fn push_entity(out: &mut String, r: &quick_xml::events::BytesRef<'_>) {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        out.push(c);
        return;
    }
    let name = r.decode().unwrap_or_default();
    if let Some(c) = match name.as_ref() {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    } {
        out.push(c);
    }
}

/// Events between two deadline checks.
const EVENTS_PER_CHECK: usize = 4096;

/// Reads `word/document.xml`'s paragraphs (and table rows, cells joined by ` | `).
fn read_body(
    xml: &[u8],
    styles: &HashMap<String, Role>,
    out: &mut TextBuilder,
    deadline: &Deadline,
) -> Result<(), ExtractError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut paragraph = String::new();
    let mut style: Option<Role> = None;
    let mut in_text = false;
    // Open tables, and the row being read in the innermost one.
    let mut tables = 0usize;
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    for n in 0.. {
        if n % EVENTS_PER_CHECK == 0 {
            deadline.check()?;
        }
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format_args!("word/document.xml: {e}")))?;
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                let empty = matches!(event, Event::Empty(_));
                match e.local_name().as_ref() {
                    b"p" if !empty => {
                        paragraph.clear();
                        style = None;
                    }
                    b"pStyle" => style = attr(e, b"val").and_then(|v| styles.get(&v).copied()),
                    b"outlineLvl" => {
                        if let Some(l) = attr(e, b"val").and_then(|v| v.parse::<u8>().ok())
                            && l < 9
                        {
                            style = Some(Role::Heading(l + 1));
                        }
                    }
                    b"t" if !empty => in_text = true,
                    b"tab" => paragraph.push('\t'),
                    b"br" | b"cr" => paragraph.push('\n'),
                    b"noBreakHyphen" => paragraph.push('-'),
                    b"tbl" if !empty => tables += 1,
                    b"tr" if !empty => row.clear(),
                    b"tc" if !empty => cell.clear(),
                    _ => {}
                }
            }
            Event::Text(t) if in_text => {
                paragraph.push_str(&t.decode().map_err(corrupt)?);
            }
            Event::GeneralRef(r) if in_text => push_entity(&mut paragraph, r),
            Event::End(e) => match e.local_name().as_ref() {
                b"t" => in_text = false,
                b"p" => {
                    let text = std::mem::take(&mut paragraph);
                    if tables > 0 {
                        if !cell.is_empty() {
                            cell.push(' ');
                        }
                        cell.push_str(text.trim());
                    } else {
                        match style {
                            Some(Role::Heading(level)) => out.heading(level, &text),
                            Some(Role::Title) => {
                                out.title(&text);
                                out.body(Break::Paragraph, &text);
                            }
                            None => out.body(Break::Paragraph, &text),
                        }
                    }
                }
                b"tc" => row.push(std::mem::take(&mut cell).trim().to_string()),
                b"tr" => {
                    let cells: Vec<&str> = row
                        .iter()
                        .map(String::as_str)
                        .filter(|c| !c.is_empty())
                        .collect();
                    out.body(Break::Line, &cells.join(" | "));
                    row.clear();
                }
                b"tbl" => tables = tables.saturating_sub(1),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(())
}
