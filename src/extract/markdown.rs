//! Markdown: the source is what is stored (it reads well as it is, and its passages keep
//! their code blocks and lists); pulldown-cmark finds the headings, ATX and setext, outside
//! code blocks, and their byte ranges in the source.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::builder::sections_from_headings;
use super::{ExtractError, Extracted, Format, Structure};

/// A Markdown document with sections from its headings; the title is YAML front matter's
/// `title:`, else the first top-level heading.
pub fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let text = super::text::utf8(bytes)?.to_string();
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut headings: Vec<(usize, u8, String)> = Vec::new();
    let mut open: Option<(usize, u8, String)> = None;
    let mut in_metadata = false;
    let mut front_title = None;
    for (event, range) in Parser::new_ext(&text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                open = Some((range.start, heading_level(level), String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((start, level, title)) = open.take() {
                    let title = super::builder::collapse_whitespace(&title);
                    if !title.is_empty() {
                        headings.push((start, level, title));
                    }
                }
            }
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            Event::Text(t) if in_metadata => {
                front_title = front_title.or_else(|| yaml_title(&t));
            }
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) => {
                if let Some((_, _, title)) = open.as_mut() {
                    title.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((_, _, title)) = open.as_mut() {
                    title.push(' ');
                }
            }
            _ => {}
        }
    }
    let title = front_title.or_else(|| {
        let top = headings.iter().map(|h| h.1).min()?;
        headings.iter().find(|h| h.1 == top).map(|h| h.2.clone())
    });
    Ok(Extracted {
        format: Format::Markdown,
        structure: Structure {
            title,
            sections: sections_from_headings(text.len(), &headings),
            pages: Vec::new(),
        },
        text,
        blocks: Vec::new(),
        warnings: Vec::new(),
    })
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// `title: ...` from a YAML front matter block, quotes removed.
fn yaml_title(block: &str) -> Option<String> {
    block.lines().find_map(|line| {
        let value = line.strip_prefix("title:")?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_outside_code_make_sections() {
        let src = "Intro line.\n\n# Install\n\nSteps.\n\n```sh\n# not a heading\n```\n\nFrom `source`\n-------------\n\nmake\n\n# Use\n";
        let e = extract(src.as_bytes()).unwrap();
        assert_eq!(e.text, src);
        let labels: Vec<String> = e.structure.sections.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["", "Install", "Install › From source", "Use"]);
        assert_eq!(e.structure.title.as_deref(), Some("Install"));
        assert!(e.text[e.structure.sections[2].start..].starts_with("From `source`"));
        assert_eq!(e.structure.check(&e.text), Ok(()));

        let front = extract(b"---\ntitle: \"Notes\"\n---\n\n## Part\n\ntext\n").unwrap();
        assert_eq!(front.structure.title.as_deref(), Some("Notes"));
    }
}
