//! `semdex ingest`: files, directories, JSON lines or stdin into the data directory.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use semdex::engine::sources;
use semdex::engine::{Engine, IngestStatus};

use super::{EngineArgs, GlobalArgs, progress_bar};

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files, directories (recursive: .txt, .md, .jsonl) or `-` for stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Skip files (and standard input) larger than this many bytes.
    #[arg(long, env = "SEMDEX_MAX_FILE_BYTES", default_value_t = sources::DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// Follow symbolic links wherever they lead; by default a link is followed only while it
    /// stays inside the paths given.
    #[arg(long)]
    pub follow_links: bool,
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
    let found = sources::collect_with(paths, std::io::stdin().lock(), options)?;
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
