//! Upload jobs: files too large to ingest while a client waits (or sent with `?wait=false`)
//! are staged in the data directory and ingested in the background, their progress kept in a
//! record that survives the process.
//!
//! Each job is a JSON record, `jobs/<id>.json`, replaced atomically (written beside, synced,
//! renamed) at every step, and a folder `jobs/<id>/` holding the uploaded files until the job
//! ends. A job is never silently lost: one that was queued or running when the process stopped
//! is marked failed ("interrupted") when the data directory is next opened, with what it had
//! stored by then, and its staged files are removed.
//!
//! Locks: the job map and each job's record are held for a few memory operations and take
//! nothing else; a job's writer lock serialises its record's file writes (taken only on
//! blocking threads, by the one task running the job) and takes the record's lock briefly
//! inside it, never the other way round.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Staged, not started.
    Queued,
    /// Reading and ingesting its files.
    Running,
    /// Every file was read (those that could not be are in its errors).
    Done,
    /// Stopped by a failure (or by the server stopping) before every file was read.
    Failed,
    /// Stopped by `DELETE /jobs/{id}`; what was stored before stays.
    Cancelled,
}

impl JobState {
    /// Whether the job can still change.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// A document a job stored (or found unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDocument {
    /// Its id.
    pub id: String,
    /// `created`, `updated`, `metadata_updated` or `unchanged`.
    pub status: String,
    /// Its passages.
    pub chunks: usize,
}

/// A file a job could not ingest, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFileError {
    /// The file's name (or the document id it was sent under).
    pub file: String,
    /// What is wrong with it.
    pub message: String,
}

/// What a job is and has done: what `GET /jobs/{id}` shows, and what is kept on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: String,
    /// The collection it ingests into.
    pub collection: String,
    /// Where it is.
    pub state: JobState,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// Files (documents) it was given.
    pub documents_total: usize,
    /// Files it has finished with, stored or refused.
    pub documents_done: usize,
    /// Passages of the documents it stored.
    pub passages_done: usize,
    /// The documents it stored, in order.
    pub documents: Vec<JobDocument>,
    /// Files it could not ingest.
    pub errors: Vec<JobFileError>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A file staged for a job: the bytes as uploaded and what is known about them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    /// The document id it will be stored under.
    pub id: String,
    /// Its file name, if it came with one.
    pub file_name: Option<String>,
    /// Its `Content-Type`, if it came with one.
    pub content_type: Option<String>,
}

/// What a job reads when it runs: its files (in `jobs/<id>/`, by position) and the metadata
/// every document gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    files: Vec<StagedFile>,
    metadata: Map<String, Value>,
}

/// Why a job request could not be done.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job has this id.
    #[error("no job {0:?}")]
    NotFound(String),
    /// The job has already ended.
    #[error("job {id:?} has already ended ({state:?})")]
    Finished {
        /// The job.
        id: String,
        /// How it ended.
        state: JobState,
    },
    /// The data directory could not be written or read.
    #[error("job storage: {0}")]
    Io(#[from] std::io::Error),
}

/// The jobs of one data directory.
pub struct Jobs {
    dir: PathBuf,
    /// Jobs of this process, by id (a leaf lock).
    running: Mutex<HashMap<String, Arc<Job>>>,
}

/// One job of this process.
pub struct Job {
    dir: PathBuf,
    record: Mutex<JobRecord>,
    /// Serialises writes of the record's file.
    writer: Mutex<()>,
    cancel: AtomicBool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A job id no other job of this directory has had: time and a random part.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.write_u32(std::process::id());
    format!("job-{:x}-{:016x}", now_ms(), h.finish())
}

/// Whether `id` can name a job (what [`new_id`] makes): no path can be smuggled through it.
fn valid_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with("job-")
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Writes `bytes` to `path` atomically: beside it, synced, renamed over it, directory synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

impl Jobs {
    /// The jobs of `data_dir` (blocking: file I/O). Jobs that were queued or running when the
    /// last process stopped are marked failed, and their staged files removed.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join("jobs");
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let Ok(mut record) = serde_json::from_slice::<JobRecord>(&bytes) else {
                    tracing::warn!(path = %path.display(), "unreadable job record left as it is");
                    continue;
                };
                if !record.state.is_finished() {
                    record.state = JobState::Failed;
                    record.message = Some(format!(
                        "interrupted: the server stopped after {} of {} files; send the rest again",
                        record.documents_done, record.documents_total
                    ));
                    record.updated_ms = now_ms();
                    write_atomically(&path, &serde_json::to_vec_pretty(&record)?)?;
                    tracing::warn!(job = %record.id, "job interrupted by a restart marked failed");
                }
                let staged = dir.join(&record.id);
                if staged.exists() {
                    std::fs::remove_dir_all(&staged)?;
                }
            } else if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&path);
            }
        }
        // Staged files whose job was never recorded (the process stopped while staging them):
        // no one was told of them.
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() && !path.with_extension("json").exists() {
                std::fs::remove_dir_all(&path)?;
            }
        }
        Ok(Self {
            dir,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Stages `files` (their bytes, in order) for `collection` and records the job as queued
    /// (blocking: writes the files and syncs them).
    pub fn create(
        &self,
        collection: &str,
        files: Vec<(StagedFile, Vec<u8>)>,
        metadata: Map<String, Value>,
    ) -> Result<Arc<Job>, JobError> {
        let id = new_id();
        let staged = self.dir.join(&id);
        std::fs::create_dir_all(&staged)?;
        let mut manifest = Manifest {
            files: Vec::with_capacity(files.len()),
            metadata,
        };
        for (i, (file, bytes)) in files.into_iter().enumerate() {
            let mut f = std::fs::File::create(staged.join(i.to_string()))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            manifest.files.push(file);
        }
        write_atomically(
            &staged.join("manifest.json"),
            &serde_json::to_vec(&manifest).map_err(std::io::Error::other)?,
        )?;
        let now = now_ms();
        let job = Arc::new(Job {
            dir: self.dir.clone(),
            record: Mutex::new(JobRecord {
                id: id.clone(),
                collection: collection.to_string(),
                state: JobState::Queued,
                created_ms: now,
                updated_ms: now,
                documents_total: manifest.files.len(),
                documents_done: 0,
                passages_done: 0,
                documents: Vec::new(),
                errors: Vec::new(),
                message: None,
            }),
            writer: Mutex::new(()),
            cancel: AtomicBool::new(false),
        });
        job.persist()?;
        self.running.lock().insert(id, job.clone());
        Ok(job)
    }

    /// A job's record: this process's jobs from memory, earlier ones from disk (blocking).
    pub fn get(&self, id: &str) -> Result<JobRecord, JobError> {
        if let Some(job) = self.running.lock().get(id).cloned() {
            return Ok(job.record());
        }
        if !valid_id(id) {
            return Err(JobError::NotFound(id.to_string()));
        }
        match std::fs::read(self.dir.join(format!("{id}.json"))) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| JobError::Io(std::io::Error::other(format!("job record {id}: {e}")))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(JobError::NotFound(id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Asks a queued or running job to stop: it stops before its next document, keeping what
    /// it stored. Its record as it is now.
    pub fn cancel(&self, id: &str) -> Result<JobRecord, JobError> {
        let job = self.running.lock().get(id).cloned();
        let Some(job) = job else {
            let record = self.get(id)?;
            return Err(JobError::Finished {
                id: record.id,
                state: record.state,
            });
        };
        let record = job.record();
        if record.state.is_finished() {
            return Err(JobError::Finished {
                id: record.id,
                state: record.state,
            });
        }
        job.cancel.store(true, Ordering::Release);
        Ok(record)
    }

    /// Forgets a finished job of this process (its record stays on disk).
    pub fn release(&self, id: &str) {
        self.running.lock().remove(id);
    }
}

impl Job {
    /// Its id.
    pub fn id(&self) -> String {
        self.record.lock().id.clone()
    }

    /// Its record now.
    pub fn record(&self) -> JobRecord {
        self.record.lock().clone()
    }

    /// Whether it was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// Changes its record and writes it (blocking).
    pub fn update(&self, change: impl FnOnce(&mut JobRecord)) -> std::io::Result<()> {
        {
            let mut record = self.record.lock();
            change(&mut record);
            record.updated_ms = now_ms();
        }
        self.persist()
    }

    /// Its staged files and the metadata for them (blocking).
    pub fn files(&self) -> std::io::Result<(Vec<StagedFile>, Map<String, Value>)> {
        let bytes = std::fs::read(self.staged().join("manifest.json"))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        Ok((manifest.files, manifest.metadata))
    }

    /// The bytes of its staged file `index` (blocking).
    pub fn file_bytes(&self, index: usize) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.staged().join(index.to_string()))
    }

    /// Ends it in `state` (with `message` for a failure), writes the record and removes the
    /// staged files (blocking).
    pub fn finish(&self, state: JobState, message: Option<String>) -> std::io::Result<()> {
        self.update(|r| {
            r.state = state;
            r.message = message;
        })?;
        std::fs::remove_dir_all(self.staged())
    }

    fn staged(&self) -> PathBuf {
        self.dir.join(self.id())
    }

    fn persist(&self) -> std::io::Result<()> {
        let _writing = self.writer.lock();
        let record = self.record();
        write_atomically(
            &self.dir.join(format!("{}.json", record.id)),
            &serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?,
        )
    }
}
