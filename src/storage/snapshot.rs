//! Snapshots of a collection: one tar file that restores it elsewhere, whole or not at all.
//!
//! The archive's first entry, `manifest.json` ([`SnapshotManifest`]), says what it holds: the
//! format and its version, the collection it was taken of and its chunking, the model its
//! vectors belong to, the store's counts and generation at the snapshot's moment, and the
//! size and SHA-256 of every file that follows. Only the store is archived; the derived
//! indexes (the HNSW graph, the BM25 index) are rebuilt from it at restore, so that a snapshot
//! is one consistent file however much the server is writing (benches/README.md measures what
//! a restore's rebuild costs).
//!
//! A restore reads the manifest before anything else and refuses an unknown format, a
//! snapshot of another model, and any file whose size or checksum is not the manifest's (a
//! damaged or truncated archive) with [`SnapshotError`], before the restored collection
//! becomes visible: it is built in a hidden folder that a failed or killed restore leaves for
//! the next start to clear.
//!
//! [`Snapshots`] is what a catalog that takes snapshots offers ([`super::Catalog::snapshots`]):
//! the data directory does ([`super::embedded`]); a PostgreSQL database is backed up with
//! `pg_dump` (README, "Backups").

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use super::catalog::{ChunkSettings, CollectionRecord};
use super::types::ModelIdentity;
use super::{BackendOptions, Result};
use crate::progress::Progress;

/// The `format` of every snapshot's manifest.
pub const FORMAT: &str = "semdex-snapshot";
/// The newest format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's name in the archive, its first entry.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Largest manifest a restore reads.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Bytes copied between two looks at the cancellation token.
const COPY_BUFFER: usize = 1 << 20;

/// Why a snapshot could not be taken, read or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot, or a damaged or truncated one.
    #[error("not a usable semdex snapshot: {0}")]
    Damaged(String),
    /// A snapshot of vectors made by another model.
    #[error(
        "the snapshot holds vectors of model {snapshot}; this semdex uses {current}: restore it where that model is served"
    )]
    OtherModel {
        /// The snapshot's model.
        snapshot: String,
        /// The model in use here.
        current: String,
    },
    /// A snapshot written by a newer semdex.
    #[error("the snapshot has format version {found}; this semdex reads up to {supported}")]
    TooNew {
        /// Its version.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// No stored snapshot of this id.
    #[error("no snapshot {id:?} of collection {collection:?}")]
    NotFound {
        /// The collection.
        collection: String,
        /// The id asked for.
        id: String,
    },
    /// The storage takes no snapshots (a database: use its own backup tools).
    #[error("{0}")]
    Unsupported(String),
    /// A file could not be read or written here (not the archive's fault).
    #[error("snapshot: {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The caller went away; nothing was left behind.
    #[error("the snapshot work was abandoned by its caller")]
    Cancelled,
}

/// The model a snapshot's vectors belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotModel {
    /// Its name.
    pub name: String,
    /// Its fingerprint (configuration and weights).
    pub fingerprint: String,
    /// Vector length.
    pub dimension: usize,
    /// The encoder's precision (`f32` when the manifest predates the field).
    #[serde(default = "default_precision")]
    pub precision: String,
}

fn default_precision() -> String {
    super::types::DEFAULT_PRECISION.into()
}

impl SnapshotModel {
    fn describe(&self) -> String {
        format!(
            "{} ({}, dim {}, {})",
            self.name, self.fingerprint, self.dimension, self.precision
        )
    }

    /// Whether vectors of this model are vectors of `model` (the same fingerprint, length and
    /// precision).
    pub fn is(&self, model: &ModelIdentity) -> bool {
        self.fingerprint == model.fingerprint
            && self.dimension == model.dimension
            && self.precision == model.precision
    }
}

impl From<&ModelIdentity> for SnapshotModel {
    fn from(model: &ModelIdentity) -> Self {
        Self {
            name: model.name.clone(),
            fingerprint: model.fingerprint.clone(),
            dimension: model.dimension,
            precision: model.precision.clone(),
        }
    }
}

/// The store's state at the snapshot's moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// The store's schema version.
    pub schema_version: i64,
    /// Its generation (bumped by every commit that adds or removes passages).
    pub generation: u64,
    /// Documents.
    pub documents: usize,
    /// Passages.
    pub chunks: usize,
}

/// One archived file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// Its name in the archive (and in the restored collection's folder).
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// `manifest.json`: what a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version.
    pub version: u32,
    /// The collection it was taken of.
    pub collection: String,
    /// When (RFC 3339).
    pub created: String,
    /// The semdex that took it.
    pub semdex_version: String,
    /// The model its vectors belong to.
    pub model: SnapshotModel,
    /// Passage size of the collection, in model tokens.
    pub chunk_tokens: usize,
    /// Tokens neighbouring passages share.
    pub chunk_overlap: usize,
    /// The store at the snapshot's moment.
    pub store: StoreState,
    /// The files after the manifest.
    pub files: Vec<SnapshotFile>,
}

impl SnapshotManifest {
    /// The chunking the collection had.
    pub fn chunk(&self) -> ChunkSettings {
        ChunkSettings {
            chunk_tokens: self.chunk_tokens,
            chunk_overlap: self.chunk_overlap,
        }
    }

    /// Refuses a manifest of another format, a newer version, or another model than `model`.
    pub fn check(&self, model: &ModelIdentity) -> Result<(), SnapshotError> {
        if self.format != FORMAT {
            return Err(SnapshotError::Damaged(format!(
                "its manifest's format is {:?}, not {FORMAT:?}",
                self.format
            )));
        }
        if self.version > FORMAT_VERSION {
            return Err(SnapshotError::TooNew {
                found: self.version,
                supported: FORMAT_VERSION,
            });
        }
        if !self.model.is(model) {
            return Err(SnapshotError::OtherModel {
                snapshot: self.model.describe(),
                current: model.describe(),
            });
        }
        Ok(())
    }
}

/// A snapshot kept by the storage, for listings and downloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its id, unique among the collection's snapshots.
    pub id: String,
    /// Size of the archive.
    pub bytes: u64,
    /// SHA-256 of the archive, lowercase hex (to check a download).
    pub sha256: String,
    /// Its manifest.
    pub manifest: SnapshotManifest,
}

/// A restored collection ready in a hidden folder, waiting to be put in place with
/// [`Snapshots::install_restore`]; removed with everything in it if dropped before.
#[derive(Debug)]
pub struct StagedRestore {
    /// The hidden folder (`None` once installed).
    pub(crate) dir: Option<PathBuf>,
    /// The collection it will be.
    pub record: CollectionRecord,
    /// The snapshot it came from.
    pub manifest: SnapshotManifest,
}

impl Drop for StagedRestore {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(path = %dir.display(), error = %e, "cannot remove a restore's staging folder; the next start will");
        }
    }
}

/// Snapshots of the collections of one storage. Calls block (files, fsyncs); callers run them
/// on blocking threads. `cancel` stops long work between steps, leaving nothing behind.
pub trait Snapshots: Send + Sync {
    /// Takes a consistent snapshot of collection `name` (whose chunking is `chunk`) while it
    /// keeps serving and being written, and writes the archive to `out`. The store is copied
    /// into a hidden folder made in `scratch` first (room for one copy of it is needed there).
    fn write_snapshot(
        &self,
        name: &str,
        chunk: ChunkSettings,
        scratch: &Path,
        out: &mut dyn Write,
        cancel: &CancellationToken,
    ) -> Result<SnapshotManifest>;

    /// Takes a snapshot as [`Snapshots::write_snapshot`] does and keeps it with the storage.
    fn keep_snapshot(
        &self,
        name: &str,
        chunk: ChunkSettings,
        cancel: &CancellationToken,
    ) -> Result<SnapshotInfo>;

    /// The snapshots kept of collection `name` (one deleted since included), newest first.
    fn kept_snapshots(&self, name: &str) -> Result<Vec<SnapshotInfo>>;

    /// Where a kept snapshot's archive is, and what it is.
    fn kept_snapshot(&self, name: &str, id: &str) -> Result<(PathBuf, SnapshotInfo)>;

    /// Deletes a kept snapshot; `false` when there was none.
    fn remove_snapshot(&self, name: &str, id: &str) -> Result<bool>;

    /// Reads a snapshot from `input` into a hidden folder as collection `name`: checked
    /// (format, `model`, every file's size and checksum, the store itself) and with its
    /// derived indexes built with `options`. Nothing is visible until
    /// [`Snapshots::install_restore`].
    fn stage_restore(
        &self,
        name: &str,
        input: &mut dyn Read,
        model: &ModelIdentity,
        options: &BackendOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<StagedRestore>;

    /// Puts a staged collection in place, atomically: `None` (and nothing changed) when the
    /// name is taken and not `replace`. With `replace`, the collection of that name is
    /// replaced whole; a crash at any point leaves the old one or the new one. The caller
    /// makes sure no engine of the replaced collection is open.
    fn install_restore(
        &self,
        staged: StagedRestore,
        replace: bool,
    ) -> Result<Option<CollectionRecord>>;
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes and counts what passes through it (a snapshot's SHA-256, as it is
/// written).
pub struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    /// Hashes what goes to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the bytes written and their SHA-256 (lowercase hex).
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The archived description of the file at `path`, named `name`.
pub(crate) fn describe_file(path: &Path, name: &str) -> Result<SnapshotFile, SnapshotError> {
    let io = |source| SnapshotError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hashing = Hashing::new(std::io::sink());
    std::io::copy(&mut file, &mut hashing).map_err(io)?;
    let (_, bytes, sha256) = hashing.finish();
    Ok(SnapshotFile {
        path: name.to_string(),
        bytes,
        sha256,
    })
}

/// Writes the archive: the manifest, then each of its files, read from `dir`.
pub(crate) fn write_archive(
    out: &mut dyn Write,
    manifest: &SnapshotManifest,
    dir: &Path,
    cancel: &CancellationToken,
) -> Result<(), SnapshotError> {
    let failed = |source| SnapshotError::Io {
        action: "writing",
        path: PathBuf::from("the snapshot"),
        source,
    };
    let mtime = jiff::Timestamp::now().as_second().max(0) as u64;
    let mut archive = tar::Builder::new(out);
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| failed(e.into()))?;
    let mut header = entry_header(text.len() as u64, mtime);
    archive
        .append_data(&mut header, MANIFEST_FILE, text.as_slice())
        .map_err(failed)?;
    for file in &manifest.files {
        if cancel.is_cancelled() {
            return Err(SnapshotError::Cancelled);
        }
        let path = dir.join(&file.path);
        let source = std::fs::File::open(&path).map_err(|source| SnapshotError::Io {
            action: "reading",
            path: path.clone(),
            source,
        })?;
        let mut header = entry_header(file.bytes, mtime);
        archive
            .append_data(&mut header, &file.path, Cancellable { source, cancel })
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::Interrupted => SnapshotError::Cancelled,
                _ => failed(e),
            })?;
    }
    archive
        .into_inner()
        .map_err(failed)?
        .flush()
        .map_err(failed)?;
    Ok(())
}

fn entry_header(size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    header
}

/// A reader that fails with `Interrupted` once its token is cancelled.
struct Cancellable<'a, R> {
    source: R,
    cancel: &'a CancellationToken,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "cancelled",
            ));
        }
        self.source.read(buf)
    }
}

/// Reads an archive from `input` into the folder `into`: the manifest first, handed to
/// `check` before any file is written, then every file the manifest lists (and nothing else),
/// each checked against its size and checksum as it is written.
pub(crate) fn read_archive(
    input: &mut dyn Read,
    into: &Path,
    check: impl FnOnce(&SnapshotManifest) -> Result<(), SnapshotError>,
    cancel: &CancellationToken,
) -> Result<SnapshotManifest, SnapshotError> {
    let unreadable = |e: std::io::Error| {
        SnapshotError::Damaged(format!("the archive cannot be read (truncated?): {e}"))
    };
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries().map_err(unreadable)?;
    let mut first = entries
        .next()
        .ok_or_else(|| SnapshotError::Damaged("the archive is empty".into()))?
        .map_err(unreadable)?;
    if entry_name(&first)? != MANIFEST_FILE {
        return Err(SnapshotError::Damaged(format!(
            "its first entry is not {MANIFEST_FILE}"
        )));
    }
    if first.size() > MAX_MANIFEST_BYTES {
        return Err(SnapshotError::Damaged(format!(
            "{MANIFEST_FILE} is {} bytes long",
            first.size()
        )));
    }
    let mut text = Vec::new();
    first.read_to_end(&mut text).map_err(unreadable)?;
    let manifest: SnapshotManifest = serde_json::from_slice(&text)
        .map_err(|e| SnapshotError::Damaged(format!("{MANIFEST_FILE}: {e}")))?;
    check(&manifest)?;
    for file in &manifest.files {
        if !is_plain_name(&file.path) || file.path == MANIFEST_FILE {
            return Err(SnapshotError::Damaged(format!(
                "{MANIFEST_FILE} lists the file {:?}",
                file.path
            )));
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(unreadable)?;
        let name = entry_name(&entry)?;
        let Some(file) = manifest.files.iter().find(|f| f.path == name) else {
            return Err(SnapshotError::Damaged(format!(
                "it holds {name:?}, which its manifest does not list"
            )));
        };
        if seen.contains(&file.path.as_str()) {
            return Err(SnapshotError::Damaged(format!("it holds {name:?} twice")));
        }
        if entry.size() != file.bytes {
            return Err(SnapshotError::Damaged(format!(
                "{name} is {} bytes long in the archive; its manifest says {}",
                entry.size(),
                file.bytes
            )));
        }
        let path = into.join(&file.path);
        let written = std::fs::File::create(&path).map_err(|source| SnapshotError::Io {
            action: "creating",
            path: path.clone(),
            source,
        })?;
        let mut hashing = Hashing::new(std::io::BufWriter::new(written));
        let mut buffer = vec![0; COPY_BUFFER];
        loop {
            if cancel.is_cancelled() {
                return Err(SnapshotError::Cancelled);
            }
            let n = entry.read(&mut buffer).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            hashing
                .write_all(&buffer[..n])
                .map_err(|source| SnapshotError::Io {
                    action: "writing",
                    path: path.clone(),
                    source,
                })?;
        }
        let (written, bytes, sha256) = hashing.finish();
        let written = written.into_inner().map_err(|e| SnapshotError::Io {
            action: "writing",
            path: path.clone(),
            source: e.into_error(),
        })?;
        written.sync_all().map_err(|source| SnapshotError::Io {
            action: "syncing",
            path: path.clone(),
            source,
        })?;
        if bytes != file.bytes {
            return Err(SnapshotError::Damaged(format!(
                "{name} ends after {bytes} of its {} bytes (truncated)",
                file.bytes
            )));
        }
        if sha256 != file.sha256 {
            return Err(SnapshotError::Damaged(format!(
                "{name} does not match its checksum (damaged): SHA-256 {sha256}, the manifest says {}",
                file.sha256
            )));
        }
        seen.push(&file.path);
    }
    if let Some(missing) = manifest
        .files
        .iter()
        .find(|f| !seen.contains(&f.path.as_str()))
    {
        return Err(SnapshotError::Damaged(format!(
            "{} is missing (truncated?)",
            missing.path
        )));
    }
    Ok(manifest)
}

/// An entry's name, which must be a plain file name.
fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, SnapshotError> {
    let path = entry
        .path()
        .map_err(|e| SnapshotError::Damaged(format!("an entry's name: {e}")))?;
    let name = path.to_string_lossy().into_owned();
    if entry.header().entry_type() != tar::EntryType::Regular || !is_plain_name(&name) {
        return Err(SnapshotError::Damaged(format!(
            "it holds {name:?}, which is not a plain file"
        )));
    }
    Ok(name)
}

/// A file name without directories, of the characters snapshots use.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: Vec<SnapshotFile>) -> SnapshotManifest {
        SnapshotManifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            collection: "c".into(),
            created: "2026-01-01T00:00:00Z".into(),
            semdex_version: "0".into(),
            model: SnapshotModel {
                name: "m".into(),
                fingerprint: "f".into(),
                dimension: 3,
                precision: "f32".into(),
            },
            chunk_tokens: 128,
            chunk_overlap: 0,
            store: StoreState {
                schema_version: 2,
                generation: 1,
                documents: 1,
                chunks: 1,
            },
            files,
        }
    }

    fn model(fingerprint: &str) -> ModelIdentity {
        ModelIdentity {
            name: "m".into(),
            fingerprint: fingerprint.into(),
            dimension: 3,
            precision: "f32".into(),
        }
    }

    /// An archive of one file `data` holding `content`.
    fn archive(content: &[u8]) -> (Vec<u8>, SnapshotManifest) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data"), content).unwrap();
        let file = describe_file(&dir.path().join("data"), "data").unwrap();
        let manifest = manifest(vec![file]);
        let mut out = Vec::new();
        write_archive(&mut out, &manifest, dir.path(), &CancellationToken::new()).unwrap();
        (out, manifest)
    }

    fn restore(
        bytes: &[u8],
        fingerprint: &str,
    ) -> (Result<SnapshotManifest, SnapshotError>, Vec<u8>) {
        let into = tempfile::tempdir().unwrap();
        let result = read_archive(
            &mut &bytes[..],
            into.path(),
            |m| m.check(&model(fingerprint)),
            &CancellationToken::new(),
        );
        let content = std::fs::read(into.path().join("data")).unwrap_or_default();
        (result, content)
    }

    #[test]
    fn an_archive_reads_back_as_written() {
        let content = b"store bytes ".repeat(10_000);
        let (bytes, manifest) = archive(&content);
        let (read, restored) = restore(&bytes, "f");
        assert_eq!(read.unwrap(), manifest);
        assert_eq!(restored, content);
    }

    #[test]
    fn truncated_damaged_and_foreign_archives_are_refused() {
        let content = b"store bytes ".repeat(10_000);
        let (bytes, _) = archive(&content);
        for cut in [0, 100, 600, bytes.len() / 2, bytes.len() - 2048] {
            let (read, _) = restore(&bytes[..cut], "f");
            assert!(
                matches!(read, Err(SnapshotError::Damaged(_))),
                "cut at {cut}: {read:?}"
            );
        }
        let mut flipped = bytes.clone();
        let at = bytes.len() / 2;
        flipped[at] ^= 0x20;
        let (read, _) = restore(&flipped, "f");
        let message = read.unwrap_err().to_string();
        assert!(message.contains("checksum"), "{message}");
        let (read, restored) = restore(&bytes, "other");
        assert!(
            matches!(read, Err(SnapshotError::OtherModel { .. })),
            "{read:?}"
        );
        assert!(restored.is_empty(), "refused before any file is written");
        let (read, _) = restore(b"not a tar file at all, just text", "f");
        assert!(matches!(read, Err(SnapshotError::Damaged(_))), "{read:?}");
    }
}
