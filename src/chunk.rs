//! Splitting documents into passages for retrieval.
//!
//! Passages are measured in model tokens (special tokens included, so a passage of the maximum
//! budget fits the model's window exactly), cut at the highest semantic boundary that fits —
//! paragraphs, then sentences, then words, then graphemes — by the `text-splitter` crate.
//! Every chunk knows its byte range in the original text: `&text[start..end] == chunk.text`,
//! and every non-whitespace character of the document lies in some chunk.
//!
//! A document with a [`Structure`] (extracted from a PDF, HTML, Markdown or Word file) is cut
//! section by section, so that no passage straddles two sections; each passage carries its
//! heading path and the PDF pages it lies on, and is embedded after them ([`embedding_text`])
//! as a passage is after its document's title.

use std::borrow::Cow;

use text_splitter::{ChunkConfig, ChunkSizer, TextSplitter};

use crate::embed::TextTokenizer;
use crate::extract::{SECTION_SEPARATOR, Structure};

/// Default passage budget in model tokens.
pub const DEFAULT_MAX_TOKENS: usize = 128;
/// Default overlap between neighbouring passages, in model tokens.
pub const DEFAULT_OVERLAP: usize = 0;
/// Smallest budget accepted: room for the two special tokens and a few words.
pub const MIN_MAX_TOKENS: usize = 8;

/// Most bytes a passage may hold per token of its budget. Text with few tokens per byte (a run
/// without whitespace is one `[UNK]` token however long: base64, minified code, a 16 MiB line of
/// `a`) would otherwise make passages of megabytes that embed as nothing and fill every answer;
/// ordinary prose runs at 4–6 bytes a token, so 16 leaves room for long words and URLs.
pub const MAX_BYTES_PER_TOKEN: usize = 16;

/// Longest first line, in characters, that still reads as a title.
const MAX_TITLE_CHARS: usize = 160;

/// The title of a document, to give each of its passages context when embedded: the
/// `title` metadata field when it is a non-empty string, else the first line when it reads as
/// a heading (a markdown `#` line, or a short line with no sentence-ending full stop followed
/// by more text).
pub fn document_title(
    text: &str,
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    if let Some(title) = metadata.get("title").and_then(|t| t.as_str()) {
        let title = title.trim();
        return (!title.is_empty()).then(|| title.to_string());
    }
    let trimmed = text.trim_start();
    let (first, rest) = trimmed.split_once('\n')?;
    let first = first.trim();
    if rest.trim().is_empty() || first.is_empty() {
        return None;
    }
    let heading = first.trim_start_matches('#').trim();
    let looks_like_title = first.starts_with('#')
        || (first.chars().count() <= MAX_TITLE_CHARS
            && !first.ends_with('.')
            && !first.ends_with(':'));
    (looks_like_title && !heading.is_empty()).then(|| heading.to_string())
}

/// What gets embedded for a passage: the passage, preceded by its document's title unless the
/// passage already begins with it.
pub fn with_title<'a>(title: Option<&str>, passage: &'a str) -> Cow<'a, str> {
    match title {
        Some(t)
            if !passage
                .trim_start()
                .trim_start_matches('#')
                .trim_start()
                .starts_with(t) =>
        {
            Cow::Owned(format!("{t}\n\n{passage}"))
        }
        _ => Cow::Borrowed(passage),
    }
}

/// Where a passage lies, as one line of context: the document's title and the passage's
/// heading path, `Title › Install › From source` (the title left out when the path already
/// starts with it).
pub fn context(title: Option<&str>, section: &[String]) -> Option<String> {
    let title = title.filter(|t| section.first().is_none_or(|s| s != t));
    let parts: Vec<&str> = title
        .into_iter()
        .chain(section.iter().map(String::as_str))
        .collect();
    (!parts.is_empty()).then(|| parts.join(SECTION_SEPARATOR))
}

/// What gets embedded (and indexed by words) for a chunk: the passage after its
/// [`context`], as [`with_title`] puts a title before it. A chunk without a section gets
/// exactly what [`with_title`] gives.
pub fn embedding_text<'a>(title: Option<&str>, chunk: &'a Chunk) -> Cow<'a, str> {
    contextual_text(title, &chunk.section, &chunk.text)
}

/// [`embedding_text`] from a passage's parts, as the storage backends have them: what the
/// lexical index and PostgreSQL's postings index hold for a stored passage, so that a query
/// naming a section's heading (or the title its passages were embedded after) finds the
/// section's passages by their words as well as by their meaning.
pub fn contextual_text<'a>(
    title: Option<&str>,
    section: &[String],
    passage: &'a str,
) -> Cow<'a, str> {
    with_title(context(title, section).as_deref(), passage)
}

/// The PDF pages a passage lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageRange {
    /// Its first page, from 1.
    pub first: u32,
    /// Its last page (the same as `first` for a passage on one page).
    pub last: u32,
}

/// A passage of a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chunk {
    /// The document this passage comes from.
    pub doc_id: String,
    /// Position of the passage in its document, from 0.
    pub index: usize,
    /// Byte offset of the passage's first byte in the document.
    pub start: usize,
    /// Byte offset one past the passage's last byte.
    pub end: usize,
    /// The passage itself, `&document[start..end]`.
    pub text: String,
    /// Heading path of the section the passage lies in, outermost first; empty for a
    /// document without structure (and for text before its first heading).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub section: Vec<String>,
    /// The PDF pages the passage lies on (`None` outside PDFs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageRange>,
}

impl Chunk {
    /// The heading path as shown to people, `Install › From source`, if the passage has one.
    pub fn section_label(&self) -> Option<String> {
        (!self.section.is_empty()).then(|| self.section.join(SECTION_SEPARATOR))
    }
}

/// Chunking parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Most model tokens in a passage, special tokens included.
    pub max_tokens: usize,
    /// Tokens neighbouring passages may share, so that an answer cut by a boundary still lies
    /// whole in one passage.
    pub overlap: usize,
    /// Keep each document whole as one passage (its embedding then covers only the model's
    /// first 256 tokens): the convention of BEIR/MTEB, and right for short documents.
    pub whole_documents: bool,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            overlap: DEFAULT_OVERLAP,
            whole_documents: false,
        }
    }
}

/// Invalid chunking parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    /// The budget is outside what the model can take.
    #[error("chunk budget of {got} tokens is out of range: it must be between {min} and {max}")]
    BudgetOutOfRange {
        /// The requested budget.
        got: usize,
        /// The smallest budget accepted.
        min: usize,
        /// The model's window.
        max: usize,
    },
    /// The overlap leaves no room for new text in a passage.
    #[error(
        "chunk overlap ({overlap}) must be smaller than the chunk budget ({max_tokens}) less the model's special tokens"
    )]
    OverlapTooLarge {
        /// The requested overlap.
        overlap: usize,
        /// The requested budget.
        max_tokens: usize,
    },
}

/// Sizes text exactly, in content tokens (the special tokens the model adds are not counted:
/// text-splitter assumes a text never has more size units than bytes).
struct ExactSizer<'a>(&'a TextTokenizer);

impl ChunkSizer for ExactSizer<'_> {
    fn size(&self, chunk: &str) -> usize {
        // Tokenizing valid UTF-8 does not fail; the byte length is a safe upper bound if it did.
        self.0
            .count(chunk)
            .map_or(chunk.len(), |n| n.saturating_sub(self.0.special_tokens()))
    }
}

/// Sizes slices of one document, in content tokens, from a single tokenization of the whole
/// document.
///
/// text-splitter probes many candidate passages per chunk; tokenizing each one made a 5 MB
/// document take ~40 s. Here a slice's size is the number of the document's tokens it overlaps
/// (two binary searches) plus the special tokens. For cuts at word or punctuation boundaries
/// this is exactly what tokenizing the slice alone gives (BERT's normalizer and pre-tokenizer
/// work character by character, then split at whitespace and punctuation); cuts inside a word
/// can be off by a token, so [`Chunker::chunk`] checks every passage exactly afterwards.
struct DocumentSizer<'a> {
    document: &'a str,
    starts: Vec<usize>,
    ends: Vec<usize>,
    exact: ExactSizer<'a>,
}

impl<'a> DocumentSizer<'a> {
    fn new(tokenizer: &'a TextTokenizer, document: &'a str) -> Self {
        let spans = tokenizer.token_spans(document).unwrap_or_default();
        Self {
            document,
            starts: spans.iter().map(|s| s.0).collect(),
            ends: spans.iter().map(|s| s.1).collect(),
            exact: ExactSizer(tokenizer),
        }
    }
}

impl ChunkSizer for DocumentSizer<'_> {
    fn size(&self, chunk: &str) -> usize {
        let base = self.document.as_ptr() as usize;
        let at = chunk.as_ptr() as usize;
        if at < base || at + chunk.len() > base + self.document.len() {
            return self.exact.size(chunk);
        }
        let (start, end) = (at - base, at - base + chunk.len());
        // Tokens overlapping [start, end): those ending after `start` and starting before `end`.
        let first = self.ends.partition_point(|&e| e <= start);
        let last = self.starts.partition_point(|&s| s < end);
        last.saturating_sub(first)
    }
}

/// Splits documents into token-budgeted passages.
pub struct Chunker {
    tokenizer: TextTokenizer,
    options: ChunkOptions,
}

impl Chunker {
    /// Builds a chunker sized by `tokenizer`; the budget may not exceed the model's window.
    pub fn new(tokenizer: TextTokenizer, options: ChunkOptions) -> Result<Self, ChunkError> {
        let max = tokenizer.max_len();
        if options.max_tokens < MIN_MAX_TOKENS || options.max_tokens > max {
            return Err(ChunkError::BudgetOutOfRange {
                got: options.max_tokens,
                min: MIN_MAX_TOKENS,
                max,
            });
        }
        if options.overlap + tokenizer.special_tokens() >= options.max_tokens {
            return Err(ChunkError::OverlapTooLarge {
                overlap: options.overlap,
                max_tokens: options.max_tokens,
            });
        }
        Ok(Self { tokenizer, options })
    }

    /// The parameters this chunker was built with.
    pub fn options(&self) -> ChunkOptions {
        self.options
    }

    /// Most bytes in one passage ([`MAX_BYTES_PER_TOKEN`] per token of the budget).
    pub fn max_bytes(&self) -> usize {
        self.options.max_tokens * MAX_BYTES_PER_TOKEN
    }

    /// Cuts a passage longer than [`Self::max_bytes`] into pieces that are not: at the last
    /// whitespace within the bound when there is one in its second half, else at the last
    /// character boundary; each piece is then held to the token budget too.
    fn byte_split(&self, offset: usize, piece: &str, ranges: &mut Vec<(usize, usize)>) {
        let max = self.max_bytes();
        let mut rest = (offset, piece);
        while rest.1.len() > max {
            let mut cut = max;
            while !rest.1.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Some(space) = rest.1[..cut].rfind(char::is_whitespace)
                && space >= max / 2
            {
                cut = space;
            }
            // A character longer than the bound cannot be: max_bytes is at least 128.
            let (head, tail) = rest.1.split_at(cut);
            self.trimmed_split(rest.0, head, ranges);
            rest = (rest.0 + cut, tail);
        }
        self.trimmed_split(rest.0, rest.1, ranges);
    }

    /// [`Self::hard_split`] of `piece` without its leading and trailing whitespace.
    fn trimmed_split(&self, offset: usize, piece: &str, ranges: &mut Vec<(usize, usize)>) {
        let lead = piece.len() - piece.trim_start().len();
        let trimmed = piece.trim();
        if !trimmed.is_empty() {
            self.hard_split(offset + lead, trimmed, ranges);
        }
    }

    /// The splitter's configuration: its capacity is in content tokens.
    fn config<S: ChunkSizer>(&self, sizer: S) -> ChunkConfig<S> {
        ChunkConfig::new(self.options.max_tokens - self.tokenizer.special_tokens())
            .with_overlap(self.options.overlap)
            .expect("overlap < max_tokens was checked in Chunker::new")
            .with_sizer(sizer)
    }

    /// Last resort for a passage that is still over budget: the longest prefixes that fit,
    /// cut at character boundaries (a single character always fits the minimum budget).
    fn hard_split(&self, offset: usize, piece: &str, ranges: &mut Vec<(usize, usize)>) {
        let fits = |s: &str| {
            self.tokenizer
                .count(s)
                .is_ok_and(|n| n <= self.options.max_tokens)
        };
        let mut rest = (offset, piece);
        while !rest.1.is_empty() {
            if fits(rest.1) {
                ranges.push((rest.0, rest.0 + rest.1.len()));
                return;
            }
            let bounds: Vec<usize> = rest.1.char_indices().map(|(i, _)| i).skip(1).collect();
            // The longest prefix that fits, by binary search over character boundaries.
            let cut = bounds.partition_point(|&b| fits(&rest.1[..b]));
            let end = if cut == 0 {
                bounds.first().copied().unwrap_or(rest.1.len())
            } else {
                bounds[cut - 1]
            };
            ranges.push((rest.0, rest.0 + end));
            rest = (rest.0 + end, &rest.1[end..]);
        }
    }

    /// Splits `text` into passages, in document order. An empty or all-whitespace document
    /// has no passages.
    pub fn chunk(&self, doc_id: &str, text: &str) -> Vec<Chunk> {
        self.chunk_structured(doc_id, text, None)
    }

    /// Splits `text` into passages section by section (a passage never straddles two
    /// sections, except that a heading with no text of its own joins the section after it),
    /// each carrying its heading path and pages. Without a structure this is [`Self::chunk`].
    pub fn chunk_structured(
        &self,
        doc_id: &str,
        text: &str,
        structure: Option<&Structure>,
    ) -> Vec<Chunk> {
        let mut spans: Vec<(usize, usize, &[String])> = Vec::new();
        if self.options.whole_documents {
            let start = text.len() - text.trim_start().len();
            let end = text.trim_end().len();
            if start < end {
                spans.push((start, end, &[]));
            }
        } else {
            for (start, end, path) in segments(text, structure) {
                for (s, e) in self.ranges(&text[start..end]) {
                    spans.push((start + s, start + e, path));
                }
            }
        }
        spans
            .into_iter()
            .enumerate()
            .map(|(index, (start, end, path))| Chunk {
                doc_id: doc_id.to_string(),
                index,
                start,
                end,
                text: text[start..end].to_string(),
                section: path.to_vec(),
                pages: structure
                    .and_then(|s| s.pages_of(start, end))
                    .map(|(first, last)| PageRange { first, last }),
            })
            .collect()
    }

    /// Byte ranges of the passages of `text`, in order.
    fn ranges(&self, text: &str) -> Vec<(usize, usize)> {
        let sizer = DocumentSizer::new(&self.tokenizer, text);
        let fast = TextSplitter::new(self.config(&sizer));
        let exact = TextSplitter::new(self.config(ExactSizer(&self.tokenizer)));
        let candidates: Vec<(usize, &str)> = fast
            .chunk_indices(text)
            .filter(|(_, piece)| !piece.trim().is_empty())
            .collect();
        let pieces: Vec<&str> = candidates.iter().map(|c| c.1).collect();
        let sizes = self.tokenizer.count_batch(&pieces).unwrap_or_default();
        let mut ranges = Vec::with_capacity(candidates.len());
        for (i, (start, piece)) in candidates.into_iter().enumerate() {
            let size = sizes.get(i).copied().unwrap_or(usize::MAX);
            if size <= self.options.max_tokens {
                ranges.push((start, start + piece.len()));
            } else {
                // The estimate was off (a cut inside a word): split this passage exactly.
                for (offset, part) in exact.chunk_indices(piece) {
                    if !part.trim().is_empty() {
                        self.hard_split(start + offset, part, &mut ranges);
                    }
                }
            }
        }
        ranges.retain(|&(start, end)| !text[start..end].trim().is_empty());
        if ranges
            .iter()
            .any(|&(start, end)| end - start > self.max_bytes())
        {
            let mut bounded = Vec::with_capacity(ranges.len());
            for (start, end) in ranges {
                if end - start > self.max_bytes() {
                    self.byte_split(start, &text[start..end], &mut bounded);
                } else {
                    bounded.push((start, end));
                }
            }
            ranges = bounded;
        }
        // With overlap the splitter can step back and emit a passage that starts before the
        // previous one and contains it: keep document order, and drop passages that lie wholly
        // inside another (they add no text).
        ranges.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut furthest = 0;
        ranges.retain(|&(_, end)| {
            let adds_text = end > furthest;
            furthest = furthest.max(end);
            adds_text
        });
        ranges
    }
}

/// Longest section, in bytes, that can still be a heading with no text of its own.
const MAX_HEADING_ONLY_BYTES: usize = 300;

/// The stretches of `text` chunked apart, with their heading paths: the structure's sections
/// (text outside them in stretches of its own), a heading-only section joined to the one
/// after it. Without sections, the whole text.
fn segments<'s>(text: &str, structure: Option<&'s Structure>) -> Vec<(usize, usize, &'s [String])> {
    let sections = structure.map_or(&[][..], |s| &s.sections[..]);
    let valid = sections.iter().all(|s| {
        s.start <= s.end
            && s.end <= text.len()
            && text.is_char_boundary(s.start)
            && text.is_char_boundary(s.end)
    }) && sections.windows(2).all(|w| w[0].end <= w[1].start);
    if sections.is_empty() || !valid {
        return vec![(0, text.len(), &[])];
    }
    let mut spans: Vec<(usize, usize, &[String])> = Vec::new();
    let mut at = 0;
    for s in sections {
        if s.start > at {
            spans.push((at, s.start, &[]));
        }
        spans.push((s.start, s.end, &s.path));
        at = s.end;
    }
    if at < text.len() {
        spans.push((at, text.len(), &[]));
    }
    let mut merged: Vec<(usize, usize, &[String])> = Vec::with_capacity(spans.len());
    let mut carried: Option<usize> = None;
    for (i, (start, end, path)) in spans.iter().copied().enumerate() {
        let start = carried.take().unwrap_or(start);
        let body = text[start..end].trim();
        let heading_only = !path.is_empty()
            && body.len() <= MAX_HEADING_ONLY_BYTES
            && !body.replace("\r\n", "\n").contains("\n\n");
        if heading_only && i + 1 < spans.len() {
            carried = Some(start);
            continue;
        }
        merged.push((start, end, path));
    }
    merged
}

#[cfg(test)]
mod title_tests {
    use super::*;

    #[test]
    fn titles_from_metadata_headings_and_short_first_lines() {
        let none = serde_json::Map::new();
        let mut meta = serde_json::Map::new();
        meta.insert("title".into(), "Given".into());
        assert_eq!(document_title("Body.", &meta).as_deref(), Some("Given"));
        assert_eq!(
            document_title("# Summit\n\nThey met.", &none).as_deref(),
            Some("Summit")
        );
        assert_eq!(
            document_title("North Korea Says Putin May Visit\n\nText.", &none).as_deref(),
            Some("North Korea Says Putin May Visit")
        );
        assert_eq!(document_title("A sentence.\nAnother.", &none), None);
        assert_eq!(document_title("Only one line", &none), None);
        assert_eq!(
            document_title(&"x".repeat(200).replace('x', "word "), &none),
            None
        );
        assert_eq!(with_title(Some("T"), "body"), "T\n\nbody");
        assert_eq!(with_title(Some("T"), "T and body"), "T and body");
        assert_eq!(with_title(None, "body"), "body");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::ModelConfig;

    fn tokenizer() -> TextTokenizer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        let config = ModelConfig::load(&dir).expect("model present (./models/fetch.sh)");
        TextTokenizer::load(&dir, config.max_seq_length).unwrap()
    }

    #[test]
    fn document_sizer_agrees_with_tokenizing_slices_at_word_boundaries() {
        let tokenizer = tokenizer();
        let doc = "Kim’s propaganda apparatus hailed the meeting, held at Vostochny (Amur region). \
                   東京は首都です。 Emoji 😀 and naïve café — 3.14159!";
        let sizer = DocumentSizer::new(&tokenizer, doc);
        let bounds: Vec<usize> = doc
            .char_indices()
            .filter(|(_, c)| c.is_whitespace())
            .map(|(i, _)| i)
            .chain([doc.len()])
            .collect();
        for &end in &bounds {
            for &start in bounds.iter().filter(|&&s| s < end) {
                let slice = doc[start..end].trim();
                assert_eq!(sizer.size(slice), sizer.exact.size(slice), "{slice:?}");
            }
        }
    }

    #[test]
    fn hard_split_covers_the_piece_within_budget() {
        let chunker = Chunker::new(
            tokenizer(),
            ChunkOptions {
                max_tokens: 8,
                overlap: 0,
                whole_documents: false,
            },
        )
        .unwrap();
        let piece = "supercalifragilisticexpialidocious antidisestablishmentarianism";
        let mut ranges = Vec::new();
        chunker.hard_split(10, piece, &mut ranges);
        assert!(ranges.len() > 1);
        assert_eq!(ranges[0].0, 10);
        assert_eq!(ranges.last().unwrap().1, 10 + piece.len());
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1, pair[1].0, "contiguous");
        }
        for &(s, e) in &ranges {
            let n = chunker.tokenizer.count(&piece[s - 10..e - 10]).unwrap();
            assert!(n <= 8, "{n} tokens");
        }
    }

    #[test]
    fn runs_without_whitespace_are_cut_to_the_byte_bound() {
        let chunker = Chunker::new(tokenizer(), ChunkOptions::default()).unwrap();
        let blob = "QUJD".repeat(5_000);
        let text = format!("A short opening sentence. {blob} and a closing one.");
        let chunks = chunker.chunk("d", &text);
        assert!(chunks.len() >= text.len() / chunker.max_bytes());
        for chunk in &chunks {
            assert!(chunk.end - chunk.start <= chunker.max_bytes());
            assert_eq!(&text[chunk.start..chunk.end], chunk.text);
            let tokens = chunker.tokenizer.count(&chunk.text).unwrap();
            assert!(tokens <= chunker.options().max_tokens, "{tokens} tokens");
        }
        let covered: usize = chunks.iter().map(|c| c.end - c.start).sum();
        let visible = text.chars().filter(|c| !c.is_whitespace()).count();
        assert!(covered >= visible);
        // Prose is not touched by the bound.
        let prose = "Plain sentences of ordinary words. ".repeat(40);
        let plain = chunker.chunk("p", &prose);
        assert!(plain.iter().all(|c| c.end - c.start < chunker.max_bytes()));
    }
}
