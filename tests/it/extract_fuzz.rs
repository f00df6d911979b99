//! Fuzzing every extractor with proptest: real files (tests/data/documents) with bytes
//! flipped, inserted and deleted, and cut short. Whatever the bytes, extraction answers —
//! text whose structure is consistent, or an error — within its time limit: no panic
//! escapes, nothing hangs.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use semdex::extract::{self, ExtractLimits, Hint};

/// One real file per format (and per PDF producer).
const FILES: &[&str] = &[
    "naacl06-two-column.pdf",
    "kampo-cid-japanese.pdf",
    "chromium-keyword.pdf",
    "libreoffice-os.path.pdf",
    "pdftex-ltnews18.pdf",
    "keyword.html",
    "pdfminer-README.md",
    "libreoffice-os.path.docx",
];

/// How a file is damaged: (position, byte, kind: 0 overwrite, 1 insert, 2 delete).
fn mutations() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..40)
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(at, byte, kind) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let i = at % bytes.len();
        match kind {
            0 => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            _ => {
                bytes.remove(i);
            }
        }
    }
    if let Some(c) = cut {
        bytes.truncate(c % (bytes.len() + 1));
    }
    bytes
}

/// Limits for fuzzing: tight enough that a case ends quickly.
fn limits() -> ExtractLimits {
    ExtractLimits {
        timeout: Duration::from_secs(10),
        max_decompressed_bytes: 64 * 1024 * 1024,
        ..ExtractLimits::default()
    }
}

/// Cases per run: 96 as a standing test; `SEMDEX_FUZZ_CASES` runs a longer campaign.
fn cases() -> u32 {
    std::env::var("SEMDEX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn damaged_real_files_never_panic_or_hang(
        file in 0..FILES.len(),
        edits in mutations(),
        cut in prop::option::of(any::<usize>()),
        name_it in any::<bool>(),
    ) {
        let name = FILES[file];
        let bytes = mutate(crate::extract_files::read(name), &edits, cut);
        let hint = if name_it { Hint::file(name) } else { Hint::default() };
        let started = Instant::now();
        let result = extract::extract(bytes, &hint, &limits());
        prop_assert!(started.elapsed() < Duration::from_secs(12), "{name}: {result:?}");
        if let Ok(e) = &result {
            prop_assert_eq!(e.structure.check(&e.text), Ok(()));
            prop_assert!(!e.text.trim().is_empty());
        }
    }
}

/// Damage aimed at what parsers trip on: every structural byte of a PDF's first kilobytes
/// and of its cross-reference table replaced in turn.
#[test]
fn every_pdf_delimiter_replaced_in_turn() {
    let pdf = crate::extract_files::read("pdftex-ltnews18.pdf");
    let tail = pdf.len().saturating_sub(2048);
    let positions: Vec<usize> = (0..pdf.len().min(4096))
        .chain(tail..pdf.len())
        .filter(|&i| b"<>[]()/%0123456789RobjendxrefstartxreftrailerDecodeParms".contains(&pdf[i]))
        .step_by(7)
        .collect();
    assert!(positions.len() > 100);
    for i in positions {
        let mut bytes = pdf.clone();
        bytes[i] = if bytes[i] == b'0' { b'9' } else { b' ' };
        let started = Instant::now();
        let result = extract::extract(bytes, &Hint::default(), &limits());
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "byte {i}: {result:?}"
        );
        if let Ok(e) = result {
            assert_eq!(e.structure.check(&e.text), Ok(()));
        }
    }
}
