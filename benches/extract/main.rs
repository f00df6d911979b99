//! Extraction alone, file by file, for `benches/extract/*.py`: reads each file named on the
//! command line, extracts it as `semdex ingest` does, and prints one JSON line per file
//! (format, pages, bytes, seconds of extraction, error); with `--text DIR`, writes each
//! file's text to `DIR/<file name>.txt` for comparison with a reference extractor.
//!
//! `cargo bench --bench extract -- [--text DIR] [--repeat N] FILE...`

use std::path::{Path, PathBuf};
use std::time::Instant;

use semdex::extract::{ExtractLimits, Hint};

/// The allocator the `semdex` binary uses, so that extraction runs as it does in `ingest`.
#[global_allocator]
static GLOBAL: semdex::alloc::CountingMimalloc = semdex::alloc::CountingMimalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut text_dir: Option<PathBuf> = None;
    let mut repeat = 1usize;
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--text" => text_dir = args.next().map(PathBuf::from),
            "--repeat" => repeat = args.next().and_then(|n| n.parse().ok()).unwrap_or(1),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            _ => files.push(PathBuf::from(arg)),
        }
    }
    let limits = ExtractLimits::default();
    for file in files {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                println!(
                    "{}",
                    serde_json::json!({"file": file, "error": e.to_string()})
                );
                continue;
            }
        };
        let hint = Hint::file(file.to_string_lossy());
        let mut best = f64::INFINITY;
        let mut result = None;
        for _ in 0..repeat.max(1) {
            let started = Instant::now();
            let extracted = semdex::extract::extract(bytes.clone(), &hint, &limits);
            best = best.min(started.elapsed().as_secs_f64());
            result = Some(extracted);
        }
        let line = match result.expect("at least one run") {
            Ok(e) => {
                if let Some(dir) = &text_dir {
                    let name = file.file_name().map_or("out".into(), |n| n.to_os_string());
                    let mut out = dir.join(name);
                    out.as_mut_os_string().push(".txt");
                    write(&out, &e.text);
                }
                serde_json::json!({
                    "file": file,
                    "format": e.format.as_str(),
                    "bytes": bytes.len(),
                    "pages": e.structure.pages.len(),
                    "sections": e.structure.sections.len(),
                    "title": e.structure.title,
                    "chars": e.text.chars().count(),
                    "seconds": best,
                    "warnings": e.warnings,
                })
            }
            Err(err) => serde_json::json!({
                "file": file,
                "bytes": bytes.len(),
                "seconds": best,
                "error": err.to_string(),
            }),
        };
        println!("{line}");
    }
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
