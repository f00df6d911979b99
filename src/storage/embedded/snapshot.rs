//! Snapshots of a data directory's collections ([`Snapshots`] for [`EmbeddedCatalog`]).
//!
//! A snapshot copies the collection's SQLite store with SQLite's online backup API inside
//! one read transaction: the copy is the store as it was when that transaction began, while
//! the server goes on serving and writing (in WAL mode a reader holds up no writer; the write
//! lock of the storage lock order is never taken). The copy is archived with its manifest
//! ([`crate::storage::snapshot`]); the HNSW graph and the BM25 index are rebuilt at restore.
//!
//! Kept snapshots live in `DATA_DIR/snapshots/NAME/ID.tar`, each beside `ID.json` (its
//! [`SnapshotInfo`]); an archive is written as `.partial-ID.tar` and renamed when complete.
//!
//! A restore is built in a hidden `.creating-*` folder of `collections/` (read, checked, its
//! indexes built) and renamed into place under the catalog's DDL lock. Replacing a collection
//! goes through one more hidden name, `.replacing-NAME-*`, that the catalog's open completes:
//! whatever point a crash stops it at, the next start finds the old collection or the new
//! one, never neither and never half of one.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use tokio_util::sync::CancellationToken;

use super::store::{self, DATABASE_FILE, Store};
use super::{
    CREATING, DELETED, EmbeddedBackend, EmbeddedCatalog, MANIFEST, Manifest, REPLACING, io_error,
    sync_dir, unique_suffix, write_durably,
};
use crate::progress::Progress;
use crate::storage::catalog::{ChunkSettings, CollectionRecord, DEFAULT_COLLECTION};
use crate::storage::snapshot::{
    FORMAT, FORMAT_VERSION, Hashing, SnapshotError, SnapshotInfo, SnapshotManifest, Snapshots,
    StagedRestore, describe_file, read_archive, write_archive,
};
use crate::storage::types::ModelIdentity;
use crate::storage::{Backend, BackendOptions, Catalog, Result, StorageError};

/// Where kept snapshots live inside the data directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Prefix of an archive being written.
const PARTIAL: &str = ".partial-";
/// Prefix of the scratch folder a snapshot copies the store into.
const WORK: &str = ".work-";
/// Pages the backup copies per step (between looks at the cancellation token).
const BACKUP_STEP_PAGES: std::ffi::c_int = 4096;

impl EmbeddedCatalog {
    /// `DATA_DIR/snapshots`.
    pub fn snapshots_root(&self) -> PathBuf {
        self.root().join(SNAPSHOTS_DIR)
    }

    /// Clears what an interrupted snapshot left: scratch folders and partial archives.
    pub(super) fn clear_snapshot_leftovers(&self) {
        let root = self.snapshots_root();
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(WORK) {
                remove_leftover(&path);
            } else if path.is_dir()
                && let Ok(inner) = std::fs::read_dir(&path)
            {
                for file in inner.flatten() {
                    if file.file_name().to_string_lossy().starts_with(PARTIAL) {
                        remove_leftover(&file.path());
                    }
                }
            }
        }
    }

    /// Puts a restore that a crash interrupted between its two renames in place: a
    /// `.replacing-*` folder whose collection is absent becomes it; one whose collection is
    /// there (the swap had not begun) is dropped.
    pub(super) fn complete_interrupted_replacements(&self) {
        let parent = self.root().join(super::COLLECTIONS_DIR);
        let Ok(entries) = std::fs::read_dir(&parent) else {
            return;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if !file_name.starts_with(REPLACING) {
                continue;
            }
            let path = entry.path();
            let name = std::fs::read(path.join(MANIFEST))
                .ok()
                .and_then(|text| serde_json::from_slice::<Manifest>(&text).ok())
                .map(|m| m.name)
                .filter(|name| crate::collections::is_valid_name(name));
            let Some(name) = name else {
                remove_leftover(&path);
                continue;
            };
            let dir = self.dir_of(&name);
            if dir.exists() {
                remove_leftover(&path);
                continue;
            }
            match std::fs::rename(&path, &dir).and_then(|()| sync_dir(&parent)) {
                Ok(()) => {
                    tracing::info!(collection = %name, "completed a restore that was interrupted while replacing the collection")
                }
                Err(e) => {
                    tracing::error!(collection = %name, error = %e, "cannot complete an interrupted restore")
                }
            }
        }
    }

    fn check_snapshot_target(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        if name == DEFAULT_COLLECTION || !crate::collections::is_valid_name(name) {
            return Err(StorageError::InvalidRequest(format!(
                "a snapshot restores into a named collection, not {name:?}"
            )));
        }
        Ok(())
    }
}

fn remove_leftover(path: &Path) {
    tracing::info!(path = %path.display(), "removing what an interrupted snapshot or restore left");
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    if let Err(e) = removed {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove");
    }
}

/// A scratch folder, removed with what it holds when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path) -> Result<Self, SnapshotError> {
        let path = parent.join(format!("{WORK}{}", unique_suffix()));
        std::fs::create_dir_all(&path).map_err(|source| SnapshotError::Io {
            action: "creating",
            path: path.clone(),
            source,
        })?;
        Ok(Self(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the store of collection `name` in `dir` into `into` as it stands when a read
/// transaction begins, and describes the copy.
fn copy_store(
    dir: &Path,
    name: &str,
    chunk: ChunkSettings,
    into: &Path,
    cancel: &CancellationToken,
) -> Result<SnapshotManifest> {
    let database = dir.join(DATABASE_FILE);
    if !database.is_file() {
        return Err(StorageError::CollectionNotFound(name.to_string()));
    }
    let sqlite = |e: rusqlite::Error| StorageError::Store(e.into());
    // Read-write so that it can join the WAL's shared memory; it writes nothing.
    let source = Connection::open_with_flags(
        &database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    source
        .busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite)?;
    // The snapshot's moment: the first read of this transaction. The backup reads through it
    // (SQLite's backup uses the source's open read transaction), so every page it copies is
    // of that moment, however many commits other connections make meanwhile.
    let moment = source.unchecked_transaction().map_err(sqlite)?;
    let (state, recorded) = store::snapshot_state(&moment)?;
    let model = recorded
        .ok_or_else(|| SnapshotError::Damaged(format!("the store of {name:?} records no model")))?;
    crate::hooks::reached("snapshot.begun", name);
    let copy = into.join(DATABASE_FILE);
    {
        let mut destination = Connection::open(&copy).map_err(sqlite)?;
        let backup = rusqlite::backup::Backup::new(&moment, &mut destination).map_err(sqlite)?;
        loop {
            if cancel.is_cancelled() {
                return Err(SnapshotError::Cancelled.into());
            }
            match backup.step(BACKUP_STEP_PAGES).map_err(sqlite)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                // Only the destination, which nobody else opens, could be locked.
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }
    moment.rollback().map_err(sqlite)?;
    drop(source);
    // One self-contained file: no write-ahead log beside it.
    let destination = Connection::open(&copy).map_err(sqlite)?;
    destination
        .pragma_update(None, "journal_mode", "DELETE")
        .map_err(sqlite)?;
    drop(destination);
    std::fs::File::open(&copy)
        .and_then(|f| f.sync_all())
        .map_err(|source| SnapshotError::Io {
            action: "syncing",
            path: copy.clone(),
            source,
        })?;
    Ok(SnapshotManifest {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        collection: name.to_string(),
        created: jiff::Timestamp::now().to_string(),
        semdex_version: env!("CARGO_PKG_VERSION").to_string(),
        model: (&model).into(),
        chunk_tokens: chunk.chunk_tokens,
        chunk_overlap: chunk.chunk_overlap,
        store: state,
        files: vec![describe_file(&copy, DATABASE_FILE)?],
    })
}

/// A kept snapshot's id: when it was taken, and a suffix for two in one second.
fn new_id() -> String {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let noise = (now.subsec_nanosecond() as u32) ^ std::process::id().rotate_left(16);
    format!("{stamp}-{:06x}", noise & 0xff_ffff)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + use<> {
    let path = path.to_path_buf();
    move |source| {
        SnapshotError::Io {
            action,
            path,
            source,
        }
        .into()
    }
}

impl Snapshots for EmbeddedCatalog {
    fn write_snapshot(
        &self,
        name: &str,
        chunk: ChunkSettings,
        scratch: &Path,
        out: &mut dyn Write,
        cancel: &CancellationToken,
    ) -> Result<SnapshotManifest> {
        let work = Scratch::new(scratch)?;
        let manifest = copy_store(&self.dir_of(name), name, chunk, &work.0, cancel)?;
        write_archive(out, &manifest, &work.0, cancel)?;
        Ok(manifest)
    }

    fn keep_snapshot(
        &self,
        name: &str,
        chunk: ChunkSettings,
        cancel: &CancellationToken,
    ) -> Result<SnapshotInfo> {
        self.check_writable()?;
        let root = self.snapshots_root();
        let folder = root.join(name);
        std::fs::create_dir_all(&folder).map_err(io("creating", &folder))?;
        let id = new_id();
        let partial = folder.join(format!("{PARTIAL}{id}.tar"));
        let file = std::fs::File::create(&partial).map_err(io("creating", &partial))?;
        let written = (|| {
            let mut hashing = Hashing::new(BufWriter::new(file));
            let manifest = self.write_snapshot(name, chunk, &root, &mut hashing, cancel)?;
            let (writer, bytes, sha256) = hashing.finish();
            writer
                .into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .map_err(io("writing", &partial))?;
            let info = SnapshotInfo {
                id: id.clone(),
                bytes,
                sha256,
                manifest,
            };
            let described = folder.join(format!("{id}.json"));
            let text = serde_json::to_vec_pretty(&info).map_err(|e| SnapshotError::Io {
                action: "writing",
                path: described.clone(),
                source: e.into(),
            })?;
            write_durably(&described, &text).map_err(io("writing", &described))?;
            let archive = folder.join(format!("{id}.tar"));
            std::fs::rename(&partial, &archive).map_err(io("renaming", &partial))?;
            sync_dir(&folder).map_err(io("syncing", &folder))?;
            Ok(info)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(folder.join(format!("{id}.json")));
        }
        written
    }

    fn kept_snapshots(&self, name: &str) -> Result<Vec<SnapshotInfo>> {
        let folder = self.snapshots_root().join(name);
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading", &folder)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = file_name.strip_suffix(".json") else {
                continue;
            };
            if !crate::collections::is_valid_name(id) {
                continue;
            }
            match self.kept_snapshot(name, id) {
                Ok((_, info)) => out.push(info),
                Err(e) => {
                    tracing::warn!(snapshot = %entry.path().display(), error = %e, "not a kept snapshot: ignored")
                }
            }
        }
        out.sort_by(|a, b| b.manifest.created.cmp(&a.manifest.created));
        Ok(out)
    }

    fn kept_snapshot(&self, name: &str, id: &str) -> Result<(PathBuf, SnapshotInfo)> {
        let not_found = || -> StorageError {
            SnapshotError::NotFound {
                collection: name.to_string(),
                id: id.to_string(),
            }
            .into()
        };
        if !crate::collections::is_valid_name(id) {
            return Err(not_found());
        }
        let folder = self.snapshots_root().join(name);
        let archive = folder.join(format!("{id}.tar"));
        let described = folder.join(format!("{id}.json"));
        if !archive.is_file() {
            return Err(not_found());
        }
        let text = match std::fs::read(&described) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(io("reading", &described)(e)),
        };
        let info: SnapshotInfo = serde_json::from_slice(&text)
            .map_err(|e| SnapshotError::Damaged(format!("{}: {e}", described.display())))?;
        Ok((archive, info))
    }

    fn remove_snapshot(&self, name: &str, id: &str) -> Result<bool> {
        self.check_writable()?;
        let (archive, _) = match self.kept_snapshot(name, id) {
            Ok(found) => found,
            Err(StorageError::Snapshot(SnapshotError::NotFound { .. })) => return Ok(false),
            Err(e) => return Err(e),
        };
        std::fs::remove_file(&archive).map_err(io("removing", &archive))?;
        let described = archive.with_extension("json");
        std::fs::remove_file(&described).map_err(io("removing", &described))?;
        Ok(true)
    }

    fn stage_restore(
        &self,
        name: &str,
        input: &mut dyn Read,
        model: &ModelIdentity,
        options: &BackendOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<StagedRestore> {
        self.check_snapshot_target(name)?;
        let parent = self.root().join(super::COLLECTIONS_DIR);
        std::fs::create_dir_all(&parent).map_err(io_error(name, "creating", &parent))?;
        // A `.creating-*` folder: a restore that stops anywhere before its rename leaves what
        // the catalog's next open clears.
        let staging = parent.join(format!("{CREATING}{name}-{}", unique_suffix()));
        std::fs::create_dir(&staging).map_err(io_error(name, "creating", &staging))?;
        let manifest = match read_archive(input, &staging, |m| m.check(model), cancel) {
            Ok(manifest) => manifest,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e.into());
            }
        };
        // From here the staged restore removes its folder when dropped (on any error).
        let mut staged = StagedRestore {
            dir: Some(staging.clone()),
            record: CollectionRecord {
                name: name.to_string(),
                created: jiff::Timestamp::now().to_string(),
                chunk: ChunkSettings {
                    chunk_tokens: 0,
                    chunk_overlap: 0,
                },
            },
            manifest,
        };
        let manifest = &staged.manifest;
        {
            let store = Store::open(&staging, model)?;
            if let Some(problem) = store.quick_check()? {
                return Err(SnapshotError::Damaged(format!(
                    "its store fails SQLite's integrity check: {problem}"
                ))
                .into());
            }
            let counts = store.counts()?;
            if counts != (manifest.store.documents, manifest.store.chunks) {
                return Err(SnapshotError::Damaged(format!(
                    "its store holds {} documents and {} passages; its manifest says {} and {}",
                    counts.0, counts.1, manifest.store.documents, manifest.store.chunks
                ))
                .into());
            }
        }
        staged.record.chunk = manifest.chunk();
        let settings = Manifest {
            name: name.to_string(),
            created: staged.record.created.clone(),
            chunk_tokens: staged.record.chunk.chunk_tokens,
            chunk_overlap: staged.record.chunk.chunk_overlap,
        };
        settings.write_into(&staging)?;
        if cancel.is_cancelled() {
            return Err(SnapshotError::Cancelled.into());
        }
        // The derived indexes, built now so that the collection opens at once once in place.
        let mut writable = options.clone();
        writable.read_only = false;
        let backend = EmbeddedBackend::open(&staging, model, writable, progress)?;
        backend.persist()?;
        drop(backend);
        if cancel.is_cancelled() {
            return Err(SnapshotError::Cancelled.into());
        }
        crate::hooks::reached("restore.staged", name);
        sync_dir(&staging).map_err(io_error(name, "syncing", &staging))?;
        Ok(staged)
    }

    fn install_restore(
        &self,
        mut staged: StagedRestore,
        replace: bool,
    ) -> Result<Option<CollectionRecord>> {
        let name = staged.record.name.clone();
        self.check_snapshot_target(&name)?;
        let Some(staging) = staged.dir.clone() else {
            return Err(StorageError::InvalidRequest(format!(
                "the restore of {name:?} was installed already"
            )));
        };
        let _ddl = self.ddl.lock();
        let dir = self.dir_of(&name);
        let parent = self.root().join(super::COLLECTIONS_DIR);
        let sync_parent = || sync_dir(&parent).map_err(io_error(&name, "syncing", &parent));
        if !dir.exists() {
            std::fs::rename(&staging, &dir).map_err(io_error(&name, "renaming", &staging))?;
            staged.dir = None;
            sync_parent()?;
            return Ok(Some(staged.record.clone()));
        }
        if !replace {
            return Ok(None);
        }
        // Complete before the old one goes: from here a crash leaves the old collection in
        // place (the next open drops this folder) or, once the old one is renamed away, this
        // one (the next open renames it into place).
        let replacing = parent.join(format!("{REPLACING}{name}-{}", unique_suffix()));
        std::fs::rename(&staging, &replacing).map_err(io_error(&name, "renaming", &staging))?;
        staged.dir = Some(replacing.clone());
        sync_parent()?;
        let doomed = parent.join(format!("{DELETED}{name}-{}", unique_suffix()));
        std::fs::rename(&dir, &doomed).map_err(io_error(&name, "renaming", &dir))?;
        staged.dir = None;
        crate::hooks::reached("restore.swap", &name);
        if let Err(e) = std::fs::rename(&replacing, &dir) {
            // Put the old one back; failing that, the next open puts the new one in place.
            let _ = std::fs::rename(&doomed, &dir);
            return Err(io_error(&name, "renaming", &replacing)(e));
        }
        sync_parent()?;
        if let Err(e) = std::fs::remove_dir_all(&doomed) {
            tracing::warn!(path = %doomed.display(), error = %e, "cannot remove the replaced collection's files; the next start will");
        }
        Ok(Some(staged.record.clone()))
    }
}
