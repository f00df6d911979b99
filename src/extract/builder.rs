//! Writing extracted text block by block while recording where headings, blocks and pages
//! fall, so that every offset of the [`Structure`] is right by construction.

use super::{Extracted, Format, PageSpan, Section, Structure};

/// How a block is separated from the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// A blank line: a new paragraph (the splitter's strongest boundary below a section).
    Paragraph,
    /// A line break: the next item of a list, the next row of a table (a blank line still
    /// separates the first item from the paragraph before it).
    Line,
}

/// Builds extracted text from blocks and headings.
#[derive(Debug, Default)]
pub struct TextBuilder {
    text: String,
    /// (start, level, heading text) of each heading, in order.
    headings: Vec<(usize, u8, String)>,
    blocks: Vec<std::ops::Range<usize>>,
    pages: Vec<PageSpan>,
    page_open: Option<(usize, u32)>,
    title: Option<String>,
    /// How the last block was set apart, so that only items in a row share single line breaks.
    last: Option<Break>,
}

/// Collapses runs of whitespace to one space and trims: how inline text reads.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

impl TextBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Sets the document's title (the first one set wins).
    pub fn title(&mut self, title: &str) {
        let title = collapse_whitespace(title);
        if self.title.is_none() && !title.is_empty() {
            self.title = Some(title);
        }
    }

    /// Appends a block of text after `brk`; a blank block is skipped. Returns its range.
    pub fn block(&mut self, brk: Break, block: &str) -> Option<std::ops::Range<usize>> {
        let block = block.trim_matches(|c: char| c.is_whitespace());
        if block.is_empty() {
            return None;
        }
        if !self.text.is_empty() {
            let items = brk == Break::Line && self.last == Some(Break::Line);
            self.text.push_str(if items { "\n" } else { "\n\n" });
        }
        self.last = Some(brk);
        let start = self.text.len();
        self.text.push_str(block);
        Some(start..self.text.len())
    }

    /// Appends a block that is body text (a candidate for the site boilerplate pass).
    pub fn body(&mut self, brk: Break, block: &str) {
        if let Some(range) = self.block(brk, block) {
            self.blocks.push(range);
        }
    }

    /// Appends a heading of `level` (1 is outermost); it opens a section that runs to the
    /// next heading of any level.
    pub fn heading(&mut self, level: u8, heading: &str) {
        let heading = collapse_whitespace(heading);
        if let Some(range) = self.block(Break::Paragraph, &heading) {
            self.headings.push((range.start, level.max(1), heading));
            self.last = Some(Break::Paragraph);
        }
    }

    /// Starts page `page` (PDF): text from here to the next page's start is on it.
    pub fn begin_page(&mut self, page: u32) {
        self.end_page();
        self.page_open = Some((self.text.len(), page));
    }

    /// Ends the open page, if any.
    pub fn end_page(&mut self) {
        if let Some((start, page)) = self.page_open.take() {
            // A page's text begins after the separator the next block writes.
            let start = start + self.text[start..].len()
                - self.text[start..].trim_start_matches('\n').len();
            if start < self.text.len() {
                self.pages.push(PageSpan {
                    start,
                    end: self.text.len(),
                    page,
                });
            }
        }
    }

    /// The text and its structure. The title is the one set, else the first level-1
    /// heading, else the first heading.
    pub fn finish(mut self, format: Format) -> Extracted {
        self.end_page();
        let title = self.title.take().or_else(|| {
            let top = self.headings.iter().map(|h| h.1).min()?;
            self.headings
                .iter()
                .find(|h| h.1 == top)
                .map(|h| h.2.clone())
        });
        let sections = sections_from_headings(self.text.len(), &self.headings);
        Extracted {
            format,
            text: self.text,
            structure: Structure {
                title,
                sections,
                pages: self.pages,
            },
            blocks: self.blocks,
            warnings: Vec::new(),
        }
    }
}

/// Sections from `(start, level, heading)` triples in text order: each heading opens a
/// section running to the next heading; its path is the headings above it. Text before the
/// first heading is a section with an empty path.
pub fn sections_from_headings(len: usize, headings: &[(usize, u8, String)]) -> Vec<Section> {
    let mut sections = Vec::with_capacity(headings.len() + 1);
    if let Some(&(first, _, _)) = headings.first()
        && first > 0
    {
        sections.push(Section {
            start: 0,
            end: first,
            path: Vec::new(),
        });
    }
    let mut stack: Vec<(u8, &str)> = Vec::new();
    for (i, (start, level, heading)) in headings.iter().enumerate() {
        while stack.last().is_some_and(|&(l, _)| l >= *level) {
            stack.pop();
        }
        stack.push((*level, heading));
        let end = headings.get(i + 1).map_or(len, |h| h.0);
        if end > *start {
            sections.push(Section {
                start: *start,
                end,
                path: stack.iter().map(|&(_, h)| h.to_string()).collect(),
            });
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_make_nested_sections_and_pages_skip_separators() {
        let mut b = TextBuilder::new();
        b.begin_page(1);
        b.body(Break::Paragraph, "  Preface text. ");
        b.heading(1, "Install");
        b.heading(2, " From \n source ");
        b.body(Break::Line, "Run make.");
        b.begin_page(2);
        b.body(Break::Line, "Then install.");
        b.heading(2, "Binaries");
        b.heading(1, "Use");
        b.body(Break::Paragraph, "");
        let e = b.finish(Format::Pdf);
        assert_eq!(
            e.text,
            "Preface text.\n\nInstall\n\nFrom source\n\nRun make.\nThen install.\n\nBinaries\n\nUse"
        );
        let paths: Vec<String> = e.structure.sections.iter().map(|s| s.label()).collect();
        assert_eq!(
            paths,
            [
                "",
                "Install",
                "Install › From source",
                "Install › Binaries",
                "Use"
            ]
        );
        assert_eq!(e.structure.title.as_deref(), Some("Install"));
        let pages: Vec<&str> = e
            .structure
            .pages
            .iter()
            .map(|p| &e.text[p.start..p.end])
            .collect();
        assert_eq!(
            pages,
            [
                "Preface text.\n\nInstall\n\nFrom source\n\nRun make.",
                "Then install.\n\nBinaries\n\nUse"
            ]
        );
        assert_eq!(e.blocks.len(), 3);
        assert_eq!(e.structure.check(&e.text), Ok(()));
    }
}
