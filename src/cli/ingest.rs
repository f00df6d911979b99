//! `semdex ingest`: files of every format semdex reads (PDF, HTML, Markdown, Word, text,
//! JSON lines), directories or stdin into the data directory.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use semdex::engine::sources;
use semdex::engine::{Engine, IngestStatus};
use semdex::extract::ExtractLimits;

use super::{Bar, EngineArgs, GlobalArgs, progress_bar};

/// Bounds on what one file may cost to extract.
#[derive(Args, Debug, Clone)]
pub struct ExtractArgs {
    /// Refuse a file whose compressed parts (PDF streams, .docx parts) inflate to more than
    /// this many bytes together.
    #[arg(long, env = "SEMDEX_MAX_DECOMPRESSED_BYTES", default_value_t = semdex::extract::DEFAULT_MAX_DECOMPRESSED_BYTES)]
    pub max_decompressed_bytes: u64,
    /// Give up on a file whose extraction takes longer than this many seconds.
    #[arg(long, env = "SEMDEX_EXTRACT_TIMEOUT", default_value_t = semdex::extract::DEFAULT_TIMEOUT.as_secs_f64())]
    pub extract_timeout: f64,
    /// Refuse PDFs of more pages than this.
    #[arg(long, env = "SEMDEX_MAX_PAGES", default_value_t = semdex::extract::DEFAULT_MAX_PAGES)]
    pub max_pages: u32,
    /// Refuse HTML nested deeper than this many elements.
    #[arg(long, env = "SEMDEX_MAX_HTML_DEPTH", default_value_t = semdex::extract::DEFAULT_MAX_HTML_DEPTH)]
    pub max_html_depth: usize,
}

impl ExtractArgs {
    /// The limits these arguments describe.
    pub fn limits(&self) -> anyhow::Result<ExtractLimits> {
        let timeout = Duration::try_from_secs_f64(self.extract_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .context("--extract-timeout must be a positive number of seconds")?;
        Ok(ExtractLimits {
            max_decompressed_bytes: self.max_decompressed_bytes,
            timeout,
            max_pages: self.max_pages,
            max_html_depth: self.max_html_depth.max(1),
        })
    }
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files (PDF, HTML, Markdown, Word .docx, text, JSON lines; the format is read from the
    /// content first), directories (recursive) or `-` for stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Skip files (and standard input) larger than this many bytes.
    #[arg(long, env = "SEMDEX_MAX_FILE_BYTES", default_value_t = sources::DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// Follow symbolic links wherever they lead; by default a link is followed only while it
    /// stays inside the paths given.
    #[arg(long)]
    pub follow_links: bool,
    #[command(flatten)]
    pub extract: ExtractArgs,
    /// The collection to add to (created with the chunking settings given here if absent).
    #[arg(long, env = "SEMDEX_COLLECTION", default_value = semdex::collections::DEFAULT_COLLECTION)]
    pub collection: String,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// What an ingest run did not ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestSummary {
    /// Files and documents reported and passed over.
    pub skipped: usize,
}

pub fn run(global: &GlobalArgs, args: IngestArgs) -> anyhow::Result<()> {
    let encoder = std::sync::Arc::new(global.encoder()?);
    let options = args.engine.options();
    let settings = semdex::collections::CollectionSettings {
        chunk_tokens: Some(options.chunk.max_tokens),
        chunk_overlap: Some(options.chunk.overlap),
    };
    let engine = args
        .engine
        .open_with(encoder, options)?
        .engine(&args.collection, Some(settings))?;
    let options = sources::SourceOptions {
        max_file_bytes: args.max_file_bytes,
        follow_links_anywhere: args.follow_links,
        limits: args.extract.limits()?,
    };
    let summary = ingest_paths(&engine, &args.paths, options)?;
    if summary.skipped > 0 {
        anyhow::bail!(
            "{} files or documents were skipped (see the warnings above); the rest was ingested",
            summary.skipped
        );
    }
    Ok(())
}

/// Most skipped entries named one by one in the log.
const SKIPS_SHOWN: usize = 100;

/// Ingests what `paths` hold, reports what was skipped and done, then compacts and saves the
/// index. Bad files and documents are skipped, not fatal: the summary counts them.
pub fn ingest_paths(
    engine: &Engine,
    paths: &[PathBuf],
    options: sources::SourceOptions,
) -> anyhow::Result<IngestSummary> {
    let reading = reading_bar();
    let started = Instant::now();
    let found = sources::collect_with_progress(paths, std::io::stdin().lock(), options, &reading)?;
    let read_seconds = started.elapsed().as_secs_f64();
    for (format, count) in &found.formats {
        tracing::info!(
            format = format.as_str(),
            files = count.files,
            bytes = count.bytes,
            pages = count.pages,
            "read"
        );
    }
    for s in found.skipped.iter().take(SKIPS_SHOWN) {
        tracing::warn!(location = %s.location, reason = %s.reason, "skipped");
    }
    if found.skipped.len() > SKIPS_SHOWN {
        tracing::warn!("... and {} more skipped", found.skipped.len() - SKIPS_SHOWN);
    }
    if found.documents.is_empty() {
        anyhow::bail!("nothing to ingest in {paths:?}");
    }
    let started = Instant::now();
    let bar = progress_bar("ingesting", "bytes");
    let reports = engine.ingest(found.documents, &bar)?;
    let seconds = started.elapsed().as_secs_f64();
    let count = |status: IngestStatus| reports.iter().filter(|r| r.status == status).count();
    let embedded: usize = reports
        .iter()
        .filter(|r| matches!(r.status, IngestStatus::Created | IngestStatus::Updated))
        .map(|r| r.chunks)
        .sum();
    tracing::info!(
        documents = reports.len(),
        created = count(IngestStatus::Created),
        updated = count(IngestStatus::Updated),
        metadata_updated = count(IngestStatus::MetadataUpdated),
        unchanged = count(IngestStatus::Unchanged),
        skipped = found.skipped.len(),
        ignored = found.ignored,
        chunks_embedded = embedded,
        read_seconds = format!("{read_seconds:.2}"),
        seconds = format!("{seconds:.2}"),
        passages_per_s = format!("{:.1}", embedded as f64 / seconds.max(1e-9)),
        "ingest done"
    );
    engine.maintain()?;
    engine.persist()?;
    Ok(IngestSummary {
        skipped: found.skipped.len(),
    })
}

/// The bar shown while files are read and extracted: bytes of files, and the file being read.
fn reading_bar() -> Bar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "reading [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {wide_msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Bar(bar)
}
