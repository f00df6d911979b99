//! HTML: the main content as paragraphs, with sections from `<h1>`–`<h6>` and the title from
//! `<title>`.
//!
//! html5ever parses (the WHATWG algorithm browsers use, so broken pages read as a browser
//! reads them) into a small arena tree of our own, which tracks nesting depth as it grows:
//! a page nested past [`ExtractLimits::max_html_depth`] is refused while it is being parsed,
//! before the parser's per-element work over a deep stack of open elements can go
//! quadratic. The text is then read from the main content only — `role="main"`, `<main>`,
//! or a page's one `<article>`, else `<body>` — leaving out scripts, styles, forms,
//! navigation, sidebars, headers, footers and elements whose class or id marks them as such
//! (readability's rules). What one page cannot tell — a sidebar repeated on every page of a
//! site — [`super::SiteBoilerplate`] removes across pages.

use std::borrow::Cow;
use std::cell::{Cell, Ref, RefCell};
use std::rc::Rc;

use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, QualName, local_name};

use super::builder::{Break, TextBuilder, collapse_whitespace};
use super::{Deadline, ExtractError, ExtractLimits, Extracted, Format};

/// Bytes of HTML handed to the parser between two limit checks.
const FEED_BYTES: usize = 16 * 1024;

/// An HTML page's main content.
pub fn extract(
    bytes: &[u8],
    limits: &ExtractLimits,
    deadline: &Deadline,
) -> Result<Extracted, ExtractError> {
    let html = decode(bytes);
    let dom = parse(&html, limits, deadline)?;
    deadline.check()?;
    Ok(Reader::new(&dom).read())
}

/// The page's characters: a byte-order mark wins, then UTF-8 if the bytes are UTF-8, then the
/// charset a `<meta>` declares, then Windows-1252 (what browsers assume).
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding.decode_without_bom_handling(&bytes[bom..]).0;
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let head = &bytes[..bytes.len().min(2048)];
    let declared = memchr::memmem::find(&head.to_ascii_lowercase(), b"charset=").and_then(|i| {
        let rest = &head[i + 8..];
        let rest = rest
            .strip_prefix(b"\"")
            .or_else(|| rest.strip_prefix(b"'"))
            .unwrap_or(rest);
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'))
            .unwrap_or(rest.len());
        encoding_rs::Encoding::for_label(&rest[..end])
    });
    declared
        .unwrap_or(encoding_rs::WINDOWS_1252)
        .decode_without_bom_handling(bytes)
        .0
}

/// A node of the parsed page.
#[derive(Debug)]
enum Data {
    Document,
    Element {
        name: QualName,
        attrs: Vec<Attribute>,
    },
    Text(StrTendril),
    /// Comments, processing instructions, doctypes: kept only so that handles stay valid.
    Other,
}

#[derive(Debug)]
struct Node {
    parent: Option<usize>,
    children: Vec<usize>,
    data: Data,
    depth: usize,
}

/// The parsed page: an arena of nodes, the document at index 0.
#[derive(Debug)]
struct Dom {
    nodes: Vec<Node>,
    /// The name [`TreeSink::elem_name`] gives a node that is not an element.
    placeholder_name: QualName,
}

impl Dom {
    fn element(&self, id: usize) -> Option<(&QualName, &[Attribute])> {
        match &self.nodes[id].data {
            Data::Element { name, attrs } => Some((name, attrs)),
            _ => None,
        }
    }

    fn attr(&self, id: usize, name: &str) -> Option<&str> {
        self.element(id)?
            .1
            .iter()
            .find(|a| a.name.local.as_ref() == name)
            .map(|a| a.value.as_ref())
    }

    fn tag(&self, id: usize) -> Option<&str> {
        self.element(id).map(|(n, _)| n.local.as_ref())
    }

    /// Every node under `root`, in document order (iteratively: pages can be deep).
    fn descendants(&self, root: usize) -> impl Iterator<Item = usize> + '_ {
        let mut stack = vec![root];
        std::iter::from_fn(move || {
            let id = stack.pop()?;
            stack.extend(self.nodes[id].children.iter().rev());
            Some(id)
        })
    }

    /// The text under `root`, whitespace collapsed.
    fn text_of(&self, root: usize) -> String {
        let mut s = String::new();
        for id in self.descendants(root) {
            if let Data::Text(t) = &self.nodes[id].data {
                s.push_str(t);
            }
        }
        collapse_whitespace(&s)
    }
}

/// Builds the arena as html5ever parses, refusing depth past the limit.
struct Sink {
    dom: RefCell<Dom>,
    max_depth: usize,
    too_deep: Rc<Cell<bool>>,
}

impl Sink {
    fn push(&self, data: Data) -> usize {
        let mut dom = self.dom.borrow_mut();
        dom.nodes.push(Node {
            parent: None,
            children: Vec::new(),
            data,
            depth: 0,
        });
        dom.nodes.len() - 1
    }

    fn detach(dom: &mut Dom, child: usize) {
        if let Some(parent) = dom.nodes[child].parent.take() {
            dom.nodes[parent].children.retain(|&c| c != child);
        }
    }

    /// Puts `child` under `parent` at `at` (the end when `None`), merging adjacent text.
    fn insert(&self, parent: usize, at: Option<usize>, child: NodeOrText<usize>) {
        let mut dom = self.dom.borrow_mut();
        let index = at.unwrap_or(dom.nodes[parent].children.len());
        let id = match child {
            NodeOrText::AppendText(text) => {
                let before = index
                    .checked_sub(1)
                    .and_then(|i| dom.nodes[parent].children.get(i).copied());
                if let Some(prev) = before
                    && let Data::Text(t) = &mut dom.nodes[prev].data
                {
                    t.push_tendril(&text);
                    return;
                }
                dom.nodes.push(Node {
                    parent: None,
                    children: Vec::new(),
                    data: Data::Text(text),
                    depth: 0,
                });
                dom.nodes.len() - 1
            }
            NodeOrText::AppendNode(id) => id,
        };
        Self::detach(&mut dom, id);
        let depth = dom.nodes[parent].depth + 1;
        if depth > self.max_depth {
            self.too_deep.set(true);
        }
        dom.nodes[id].parent = Some(parent);
        dom.nodes[id].depth = depth;
        let index = index.min(dom.nodes[parent].children.len());
        dom.nodes[parent].children.insert(index, id);
    }
}

impl TreeSink for Sink {
    type Handle = usize;
    type Output = Dom;
    type ElemName<'a> = Ref<'a, QualName>;

    fn finish(self) -> Dom {
        self.dom.into_inner()
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> usize {
        0
    }

    fn elem_name<'a>(&'a self, target: &'a usize) -> Ref<'a, QualName> {
        Ref::map(self.dom.borrow(), |dom| match &dom.nodes[*target].data {
            Data::Element { name, .. } => name,
            // html5ever asks only about elements; a stable answer for anything else.
            _ => &dom.placeholder_name,
        })
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, _: ElementFlags) -> usize {
        self.push(Data::Element { name, attrs })
    }

    fn create_comment(&self, _text: StrTendril) -> usize {
        self.push(Data::Other)
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> usize {
        self.push(Data::Other)
    }

    fn append(&self, parent: &usize, child: NodeOrText<usize>) {
        self.insert(*parent, None, child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &usize,
        prev_element: &usize,
        child: NodeOrText<usize>,
    ) {
        let has_parent = self.dom.borrow().nodes[*element].parent.is_some();
        if has_parent {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    fn get_template_contents(&self, target: &usize) -> usize {
        *target
    }

    fn same_node(&self, x: &usize, y: &usize) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &usize, new_node: NodeOrText<usize>) {
        let (parent, at) = {
            let dom = self.dom.borrow();
            let Some(parent) = dom.nodes[*sibling].parent else {
                return;
            };
            let at = dom.nodes[parent].children.iter().position(|c| c == sibling);
            (parent, at)
        };
        // Moving a node that sits before the sibling shifts the sibling's index by one.
        if let NodeOrText::AppendNode(id) = &new_node {
            let mut dom = self.dom.borrow_mut();
            Self::detach(&mut dom, *id);
            let at = dom.nodes[parent].children.iter().position(|c| c == sibling);
            drop(dom);
            return self.insert(parent, at, new_node);
        }
        self.insert(parent, at, new_node);
    }

    fn add_attrs_if_missing(&self, target: &usize, attrs: Vec<Attribute>) {
        let mut dom = self.dom.borrow_mut();
        if let Data::Element {
            attrs: existing, ..
        } = &mut dom.nodes[*target].data
        {
            for attr in attrs {
                if !existing.iter().any(|a| a.name == attr.name) {
                    existing.push(attr);
                }
            }
        }
    }

    fn remove_from_parent(&self, target: &usize) {
        Self::detach(&mut self.dom.borrow_mut(), *target);
    }

    fn reparent_children(&self, node: &usize, new_parent: &usize) {
        let children = std::mem::take(&mut self.dom.borrow_mut().nodes[*node].children);
        for child in children {
            self.dom.borrow_mut().nodes[child].parent = None;
            self.insert(*new_parent, None, NodeOrText::AppendNode(child));
        }
    }
}

/// Parses `html`, a piece at a time, checking the depth limit and the deadline between
/// pieces.
fn parse(html: &str, limits: &ExtractLimits, deadline: &Deadline) -> Result<Dom, ExtractError> {
    let too_deep = Rc::new(Cell::new(false));
    let sink = Sink {
        dom: RefCell::new(Dom {
            nodes: vec![Node {
                parent: None,
                children: Vec::new(),
                data: Data::Document,
                depth: 0,
            }],
            placeholder_name: QualName::new(None, html5ever::ns!(html), local_name!("div")),
        }),
        max_depth: limits.max_html_depth,
        too_deep: too_deep.clone(),
    };
    let mut parser = html5ever::parse_document(sink, Default::default());
    let mut rest = html;
    while !rest.is_empty() {
        let mut cut = rest.len().min(FEED_BYTES);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        parser.process(StrTendril::from_slice(&rest[..cut]));
        rest = &rest[cut..];
        if too_deep.get() {
            return Err(ExtractError::TooDeep {
                limit: limits.max_html_depth,
            });
        }
        deadline.check()?;
    }
    let dom = parser.finish();
    if too_deep.get() {
        return Err(ExtractError::TooDeep {
            limit: limits.max_html_depth,
        });
    }
    Ok(dom)
}

/// Elements whose content is never text to read.
const SKIPPED_TAGS: &[&str] = &[
    "head", "script", "style", "noscript", "template", "nav", "aside", "form", "button", "select",
    "input", "textarea", "svg", "math", "iframe", "object", "embed", "canvas", "video", "audio",
    "map", "dialog", "menu",
];

/// ARIA roles of page furniture.
const SKIPPED_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
    "menu",
    "menubar",
    "toolbar",
    "dialog",
    "alertdialog",
];

/// Words of a class or id that mark page furniture (after readability's "unlikely
/// candidates"), matched against whole words of the attribute split at `-`, `_` and spaces.
const FURNITURE_WORDS: &[&str] = &[
    "nav",
    "navbar",
    "navigation",
    "menu",
    "sidebar",
    "sphinxsidebar",
    "sphinxsidebarwrapper",
    "related",
    "footer",
    "header",
    "masthead",
    "breadcrumb",
    "breadcrumbs",
    "comment",
    "comments",
    "share",
    "social",
    "sponsor",
    "advert",
    "ads",
    "cookie",
    "banner",
    "popup",
    "modal",
    "pagination",
    "pager",
    "skip",
    "subscribe",
    "newsletter",
    "headerlink",
];

/// Words that keep an element whatever else its class says (readability's "maybe
/// candidates").
const CONTENT_WORDS: &[&str] = &["content", "main", "article", "body", "post", "entry"];

/// Elements that start a new block of text.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

/// Reads the main content of a parsed page into a [`TextBuilder`].
struct Reader<'a> {
    dom: &'a Dom,
    out: TextBuilder,
    /// Inline text of the block being read, by line (`<br>` starts a new one).
    lines: Vec<String>,
    /// Inside `<pre>`: whitespace is kept.
    pre: usize,
}

impl<'a> Reader<'a> {
    fn new(dom: &'a Dom) -> Self {
        Self {
            dom,
            out: TextBuilder::new(),
            lines: vec![String::new()],
            pre: 0,
        }
    }

    /// The element holding the main content.
    fn main_root(&self) -> usize {
        let elements = || {
            self.dom
                .descendants(0)
                .filter(|&id| self.dom.tag(id).is_some())
        };
        if let Some(id) = elements().find(|&id| self.dom.attr(id, "role") == Some("main")) {
            return id;
        }
        if let Some(id) = elements().find(|&id| self.dom.tag(id) == Some("main")) {
            return id;
        }
        let mut articles = elements().filter(|&id| self.dom.tag(id) == Some("article"));
        if let (Some(one), None) = (articles.next(), articles.next()) {
            return one;
        }
        elements()
            .find(|&id| self.dom.tag(id) == Some("body"))
            .unwrap_or(0)
    }

    /// Whether an element (inside the main content) is furniture to leave out.
    fn skipped(&self, id: usize) -> bool {
        let Some(tag) = self.dom.tag(id) else {
            return false;
        };
        if SKIPPED_TAGS.contains(&tag) {
            return true;
        }
        if self.dom.attr(id, "hidden").is_some() || self.dom.attr(id, "aria-hidden") == Some("true")
        {
            return true;
        }
        if let Some(style) = self.dom.attr(id, "style") {
            let style: String = style.chars().filter(|c| !c.is_whitespace()).collect();
            if style.to_ascii_lowercase().contains("display:none") {
                return true;
            }
        }
        if let Some(role) = self.dom.attr(id, "role")
            && SKIPPED_ROLES.contains(&role.trim().to_ascii_lowercase().as_str())
        {
            return true;
        }
        // A header that carries the page's heading is content (an article's header).
        if (tag == "header" || tag == "footer") && !self.holds_heading(id) {
            return true;
        }
        let words: Vec<String> = ["class", "id"]
            .iter()
            .filter_map(|a| self.dom.attr(id, a))
            .flat_map(|v| v.split(|c: char| c.is_whitespace() || c == '-' || c == '_'))
            .map(str::to_ascii_lowercase)
            .collect();
        words.iter().any(|w| FURNITURE_WORDS.contains(&w.as_str()))
            && !words.iter().any(|w| CONTENT_WORDS.contains(&w.as_str()))
            && !self.holds_heading(id)
    }

    fn holds_heading(&self, id: usize) -> bool {
        self.dom
            .descendants(id)
            .any(|d| matches!(self.dom.tag(d), Some("h1" | "h2")))
    }

    /// Ends the block being read.
    fn flush(&mut self, brk: Break) {
        let lines = std::mem::replace(&mut self.lines, vec![String::new()]);
        let block = if self.pre > 0 {
            lines.concat()
        } else {
            let lines: Vec<String> = lines
                .iter()
                .map(|l| collapse_whitespace(l))
                .filter(|l| !l.is_empty())
                .collect();
            lines.join("\n")
        };
        self.out.body(brk, &block);
    }

    fn read(mut self) -> Extracted {
        if let Some(title) = self
            .dom
            .descendants(0)
            .find(|&id| self.dom.tag(id) == Some("title"))
        {
            let title = self.page_title(&self.dom.text_of(title));
            self.out.title(&title);
        }
        let root = self.main_root();
        // (node, true) on the way in, (node, false) on the way out.
        let mut stack = vec![(root, true)];
        while let Some((id, entering)) = stack.pop() {
            let tag = self.dom.tag(id);
            if !entering {
                self.leave(tag.unwrap_or_default(), id);
                continue;
            }
            match &self.dom.nodes[id].data {
                Data::Text(t) => {
                    if let Some(line) = self.lines.last_mut() {
                        line.push_str(t);
                    }
                    continue;
                }
                Data::Element { .. } if id != root && self.skipped(id) => continue,
                Data::Element { .. } => {}
                Data::Document | Data::Other => {}
            }
            let tag = tag.unwrap_or_default();
            if let Some(level) = heading_level(tag) {
                self.flush(Break::Paragraph);
                let heading = self.heading_text(id);
                self.out.heading(level, &heading);
                continue;
            }
            match tag {
                "br" => self.lines.push(String::new()),
                "td" | "th" => {
                    if let Some(line) = self.lines.last_mut()
                        && !line.trim().is_empty()
                    {
                        line.push_str(" | ");
                    }
                }
                "img" => {}
                t if BLOCK_TAGS.contains(&t) => self.flush(Break::Paragraph),
                _ => {}
            }
            if tag == "pre" {
                self.pre += 1;
            }
            stack.push((id, false));
            stack.extend(self.dom.nodes[id].children.iter().rev().map(|&c| (c, true)));
        }
        self.flush(Break::Paragraph);
        let mut extracted = self.out.finish(Format::Html);
        extracted.blocks.retain(|b| b.end > b.start);
        extracted
    }

    fn leave(&mut self, tag: &str, _id: usize) {
        match tag {
            "li" | "tr" | "dt" => self.flush(Break::Line),
            "td" | "th" => {}
            "pre" => {
                self.flush(Break::Paragraph);
                self.pre = self.pre.saturating_sub(1);
            }
            t if BLOCK_TAGS.contains(&t) => self.flush(Break::Paragraph),
            _ => {}
        }
    }

    /// A heading's text, without permalink anchors (Sphinx's and MkDocs' `¶`).
    fn heading_text(&self, id: usize) -> String {
        let mut s = String::new();
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            match &self.dom.nodes[n].data {
                Data::Text(t) => s.push_str(t),
                Data::Element { .. } if n != id && self.skipped(n) => {}
                _ => stack.extend(self.dom.nodes[n].children.iter().rev()),
            }
        }
        collapse_whitespace(s.trim_end_matches(['¶', '#', ' ']))
    }

    /// `<title>` without the site's name after it, when what remains is the page's first
    /// heading ("json — JSON encoder and decoder — Python 3.11 documentation").
    fn page_title(&self, title: &str) -> String {
        let first_heading = self
            .dom
            .descendants(0)
            .find(|&id| matches!(self.dom.tag(id), Some("h1")))
            .map(|id| self.heading_text(id));
        if let Some(h) = first_heading
            && !h.is_empty()
            && title.len() > h.len()
            && title.starts_with(&h)
            && title[h.len()..]
                .trim_start()
                .starts_with(['—', '–', '-', '|', '·', ':'])
        {
            return h;
        }
        title.to_string()
    }
}

fn heading_level(tag: &str) -> Option<u8> {
    match tag {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(html: &str) -> Extracted {
        extract(
            html.as_bytes(),
            &ExtractLimits::default(),
            &Deadline::after(std::time::Duration::from_secs(10)),
        )
        .unwrap()
    }

    #[test]
    fn main_content_headings_and_furniture() {
        let e = read(
            "<!doctype html><html><head><title>Install &mdash; Tool docs</title>\
             <style>p{}</style><script>var x = 1;</script></head><body>\
             <nav><a href=/>Home</a></nav><div class=sidebar>Links</div>\
             <div role=main><h1>Install<a class=headerlink href=#i>¶</a></h1>\
             <p>Get   the <b>tool</b>.<br>Then run it.</p>\
             <h2>From source</h2><ul><li>clone</li><li>make</li></ul>\
             <pre>  make\n  install</pre><table><tr><td>a</td><td>b</td></tr></table>\
             <footer>© someone</footer></div></body></html>",
        );
        assert_eq!(
            e.text,
            "Install\n\nGet the tool.\nThen run it.\n\nFrom source\n\nclone\nmake\n\nmake\n  install\n\na | b"
        );
        assert_eq!(e.structure.title.as_deref(), Some("Install"));
        let labels: Vec<String> = e.structure.sections.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["Install", "Install › From source"]);
        assert_eq!(e.structure.check(&e.text), Ok(()));
    }

    #[test]
    fn deep_nesting_is_refused_and_broken_markup_is_read() {
        let deep = "<div>".repeat(10_000);
        let err = extract(
            deep.as_bytes(),
            &ExtractLimits::default(),
            &Deadline::after(std::time::Duration::from_secs(10)),
        )
        .unwrap_err();
        assert_eq!(err, ExtractError::TooDeep { limit: 512 });
        let e = read("<p>one<p>two</b><table><td>cell</table><i><b>x</i>y</b>");
        assert!(e.text.contains("one\n\ntwo"), "{:?}", e.text);
        assert!(e.text.contains("cell"));
    }

    #[test]
    fn legacy_encodings_are_decoded() {
        let bytes =
            b"<html><head><meta charset=\"iso-8859-1\"></head><body><p>caf\xe9</p></body></html>";
        let e = extract(
            bytes,
            &ExtractLimits::default(),
            &Deadline::after(std::time::Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(e.text, "café");
    }
}
