//! `semdex snapshot` and `semdex restore`: a collection of the data directory to one tar file
//! and back (README, "Backups").

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use semdex::collections::DEFAULT_COLLECTION;
use semdex::embed::ModelConfig;
use semdex::progress::Progress;
use semdex::storage::embedded::EmbeddedCatalog;
use semdex::storage::snapshot::Snapshots;
use semdex::storage::{Catalog, ChunkSettings, ModelIdentity};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{ChunkArgs, EngineArgs, GlobalArgs, progress_bar};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Where to write the archive (`-`: standard output). A file is written whole or not at
    /// all: it appears under its name once complete.
    pub out: PathBuf,
    /// The collection (`default`: the data directory's own).
    #[arg(long, env = "SEMDEX_COLLECTION", default_value = DEFAULT_COLLECTION)]
    pub collection: String,
    /// Data directory. A server may keep serving and writing it meanwhile.
    #[arg(long, env = "SEMDEX_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The default collection's chunking, recorded in the snapshot (a named collection's own
    /// is read from the data directory): give what the server was started with.
    #[command(flatten)]
    pub chunking: ChunkArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot archive (`-`: standard input).
    pub snapshot: PathBuf,
    /// The collection to restore into (not `default`: restore its snapshot under a new name).
    #[arg(long)]
    pub collection: String,
    /// Replace a collection of that name whole, instead of refusing.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Writes a snapshot of a collection to a file or standard output.
pub fn snapshot(args: SnapshotArgs) -> anyhow::Result<()> {
    // Read-only: no lock taken, so a running server keeps the directory.
    let catalog = EmbeddedCatalog::open(&args.data_dir, true)
        .with_context(|| format!("cannot open data directory {}", args.data_dir.display()))?;
    let chunk = if args.collection == DEFAULT_COLLECTION {
        let options = args.chunking.options();
        ChunkSettings {
            chunk_tokens: options.max_tokens,
            chunk_overlap: options.overlap,
        }
    } else {
        catalog
            .lookup(&args.collection)?
            .with_context(|| format!("no collection named {:?}", args.collection))?
            .chunk
    };
    let store = catalog
        .dir_of(&args.collection)
        .join(semdex::storage::embedded::store::DATABASE_FILE);
    let size = std::fs::metadata(&store).map_or(0, |m| m.len());
    let bar = progress_bar("writing the snapshot", "bytes");
    bar.set_total(size);
    let cancel = CancellationToken::new();
    if args.out == Path::new("-") {
        let stdout = std::io::stdout().lock();
        let mut out = Counted {
            inner: stdout,
            bar: &bar,
        };
        catalog.write_snapshot(
            &args.collection,
            chunk,
            &std::env::temp_dir(),
            &mut out,
            &cancel,
        )?;
        out.flush()?;
        bar.finish();
        return Ok(());
    }
    let scratch = match args.out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = args
        .out
        .file_name()
        .context("the output needs a file name")?
        .to_string_lossy()
        .into_owned();
    let partial = scratch.join(format!(".{file_name}.partial-{}", std::process::id()));
    let written = (|| -> anyhow::Result<_> {
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut out = semdex::storage::snapshot::Hashing::new(Counted {
            inner: std::io::BufWriter::new(file),
            bar: &bar,
        });
        let manifest =
            catalog.write_snapshot(&args.collection, chunk, &scratch, &mut out, &cancel)?;
        let (counted, bytes, sha256) = out.finish();
        counted
            .inner
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        std::fs::rename(&partial, &args.out)
            .with_context(|| format!("cannot rename {} into place", partial.display()))?;
        Ok((manifest, bytes, sha256))
    })();
    bar.finish();
    let (manifest, bytes, sha256) = match written {
        Ok(written) => written,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    println!(
        "{}",
        json!({
            "snapshot": args.out,
            "collection": manifest.collection,
            "documents": manifest.store.documents,
            "chunks": manifest.store.chunks,
            "generation": manifest.store.generation,
            "bytes": bytes,
            "sha256": sha256,
        })
    );
    Ok(())
}

/// Restores a snapshot into a collection of the data directory.
pub fn restore(global: &GlobalArgs, args: RestoreArgs) -> anyhow::Result<()> {
    if args.engine.database.in_database() {
        anyhow::bail!(
            "snapshots are of the data directory; a PostgreSQL database is backed up with pg_dump and pg_restore (README, \"Backups\")"
        );
    }
    let config = ModelConfig::load(&global.model)?;
    let model = ModelIdentity {
        name: config.name.clone(),
        fingerprint: config.fingerprint.clone(),
        dimension: config.dimension(),
        precision: global.precision.as_str().to_string(),
    };
    // Writable: takes the directory's lock (a running server holds it: restore through its
    // upload route instead).
    let data_dir = &args.engine.data_dir;
    let catalog = EmbeddedCatalog::open(data_dir, false).with_context(|| {
        format!(
            "cannot open data directory {} for writing (a running server restores through POST /collections/{}/snapshots/upload)",
            data_dir.display(),
            args.collection
        )
    })?;
    if !args.replace && catalog.lookup(&args.collection)?.is_some() {
        anyhow::bail!(
            "a collection named {:?} exists already: restore under another name, or pass --replace",
            args.collection
        );
    }
    let mut input: Box<dyn std::io::Read> = if args.snapshot == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.snapshot)
                .with_context(|| format!("cannot open {}", args.snapshot.display()))?,
        ))
    };
    let rebuild = progress_bar("building the restored collection's index", "vectors");
    let staged = catalog
        .stage_restore(
            &args.collection,
            &mut input,
            &model,
            &args.engine.options().backend(),
            &rebuild,
            &CancellationToken::new(),
        )
        .with_context(|| format!("cannot restore {}", args.snapshot.display()))?;
    let manifest = staged.manifest.clone();
    catalog
        .install_restore(staged, args.replace)?
        .with_context(|| {
            format!(
                "a collection named {:?} was made meanwhile",
                args.collection
            )
        })?;
    println!(
        "{}",
        json!({
            "collection": args.collection,
            "from": manifest.collection,
            "taken": manifest.created,
            "documents": manifest.store.documents,
            "chunks": manifest.store.chunks,
            "replaced": args.replace,
        })
    );
    Ok(())
}

/// A writer that advances a progress bar by what it writes.
struct Counted<'a, W> {
    inner: W,
    bar: &'a super::Bar,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.advance(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
