//! Chunker invariants: offsets always slice the original text, no text is lost, budgets hold.

use proptest::prelude::*;
use semdex::chunk::{ChunkError, ChunkOptions, Chunker};

fn chunker(max_tokens: usize, overlap: usize) -> Chunker {
    Chunker::new(
        crate::common::encoder().tokenizer().clone(),
        ChunkOptions {
            max_tokens,
            overlap,
            whole_documents: false,
        },
    )
    .unwrap()
}

/// Checks every invariant the chunker promises for one document.
fn check_invariants(text: &str, max_tokens: usize, overlap: usize) {
    let chunker = chunker(max_tokens, overlap);
    let chunks = chunker.chunk("doc", text);
    let tokenizer = crate::common::encoder().tokenizer().clone();
    let mut covered = vec![false; text.len()];
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.index, i);
        assert_eq!(c.doc_id, "doc");
        assert!(c.start < c.end && c.end <= text.len());
        assert_eq!(&text[c.start..c.end], c.text, "offsets must slice the text");
        let tokens = tokenizer.count(&c.text).unwrap();
        assert!(
            tokens <= max_tokens,
            "chunk {i} has {tokens} tokens > {max_tokens}: {:?}",
            c.text
        );
        if i > 0 {
            assert!(c.start >= chunks[i - 1].start, "chunks in document order");
            if overlap == 0 {
                assert!(c.start >= chunks[i - 1].end, "no overlap asked, none given");
            }
        }
        covered[c.start..c.end].iter_mut().for_each(|b| *b = true);
    }
    for (at, ch) in text.char_indices() {
        if !ch.is_whitespace() {
            assert!(covered[at], "character {ch:?} at byte {at} is in no chunk");
        }
    }
}

fn text_strategy() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[a-z]{1,12}",
        "[A-Z][a-z]{0,8}",
        "[0-9]{1,6}",
        "[.,;:!?]",
        "(\r\n|\n\n|\n| |  |\t)",
        "[\u{4e00}-\u{4e80}]{1,6}",
        "[\u{1F600}-\u{1F64F}]{1,3}",
        "[à-ÿ]{1,5}",
        "[a-z]{20,80}",
    ];
    prop::collection::vec(word, 0..300).prop_map(|parts| parts.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_default_budget(text in text_strategy()) {
        check_invariants(&text, 128, 0);
    }

    #[test]
    fn invariants_hold_for_small_budgets_and_overlap(
        text in text_strategy(),
        max_tokens in 8usize..40,
        overlap_pct in 0usize..50,
    ) {
        let overlap = max_tokens * overlap_pct / 100;
        check_invariants(&text, max_tokens, overlap);
    }

    #[test]
    fn arbitrary_unicode_is_handled(text in "\\PC{0,400}") {
        check_invariants(&text, 16, 0);
    }
}

#[test]
fn overlap_never_steps_back_before_the_previous_passage() {
    // Found by proptest: with overlap the splitter emitted "0610" and then ". 0610 ad",
    // which starts earlier and contains it.
    check_invariants("eyymfuubwhiyxtcgnszchqnlpqyjisbidkj . 0610 ad", 18, 7);
}

#[test]
fn empty_and_blank_documents_have_no_chunks() {
    let chunker = chunker(128, 0);
    assert!(chunker.chunk("d", "").is_empty());
    assert!(chunker.chunk("d", " \n\r\n\t ").is_empty());
}

#[test]
fn crlf_cjk_emoji_and_no_punctuation() {
    for text in [
        "First line.\r\nSecond line.\r\n\r\nNew paragraph here.\r\n",
        &"東京は日本の首都です。大阪は西日本の中心です。".repeat(40),
        &"emoji 😀🚀🔥 everywhere ".repeat(60),
        &"no punctuation at all just words flowing on and on ".repeat(50),
    ] {
        check_invariants(text, 32, 0);
        check_invariants(text, 128, 16);
    }
}

#[test]
fn a_sentence_longer_than_the_budget_is_split_not_dropped() {
    let sentence = format!("{}.", "alpha beta gamma delta ".repeat(100));
    let chunks = chunker(32, 0).chunk("d", &sentence);
    assert!(chunks.len() > 5);
    check_invariants(&sentence, 32, 0);
}

#[test]
fn five_megabyte_document() {
    let paragraph = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/putin-kim-summit.txt"),
    )
    .unwrap();
    let mut text = String::new();
    while text.len() < 5_000_000 {
        text.push_str(&paragraph);
        text.push_str("\n\n");
    }
    let chunks = chunker(128, 0).chunk("big", &text);
    assert!(chunks.len() > 5000, "{} chunks", chunks.len());
    let last = chunks.last().unwrap();
    assert_eq!(last.end, text.trim_end().len());
    for c in &chunks {
        assert_eq!(&text[c.start..c.end], c.text);
    }
}

#[test]
fn whole_document_mode_keeps_one_trimmed_passage() {
    let chunker = Chunker::new(
        crate::common::encoder().tokenizer().clone(),
        ChunkOptions {
            whole_documents: true,
            ..ChunkOptions::default()
        },
    )
    .unwrap();
    let text = format!("  \n{}\n ", "A long document. ".repeat(200));
    let chunks = chunker.chunk("d", &text);
    assert_eq!(chunks.len(), 1);
    assert_eq!(&text[chunks[0].start..chunks[0].end], chunks[0].text);
    assert_eq!(chunks[0].text, text.trim());
    assert!(chunker.chunk("d", " \t ").is_empty());
}

#[test]
fn bad_options_are_errors() {
    let tokenizer = crate::common::encoder().tokenizer().clone();
    let err = Chunker::new(
        tokenizer.clone(),
        ChunkOptions {
            max_tokens: 300,
            ..ChunkOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(matches!(err, ChunkError::BudgetOutOfRange { max: 256, .. }));
    let err = Chunker::new(
        tokenizer,
        ChunkOptions {
            max_tokens: 64,
            overlap: 64,
            whole_documents: false,
        },
    )
    .err()
    .unwrap();
    assert_eq!(
        err,
        ChunkError::OverlapTooLarge {
            overlap: 64,
            max_tokens: 64
        }
    );
}
