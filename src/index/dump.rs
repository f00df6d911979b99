//! Crash-safe index dumps: each dump goes to a fresh folder, is flushed to disk, and only then
//! becomes current through an atomic rename of a small meta file that names it and records the
//! size and SHA-256 of every file in it.
//!
//! A dump that fails verification is reported and ignored: the caller rebuilds from the store.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of the folders that hold one dump each.
const DUMP_PREFIX: &str = "dump-";

/// One file of a dump, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpFile {
    /// File name inside the dump's folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// Where a verified dump lies, and what it contains.
#[derive(Debug, Clone)]
pub struct VerifiedDump<M> {
    /// The dump's folder.
    pub folder: PathBuf,
    /// The caller's description of the dump.
    pub meta: M,
}

#[derive(Serialize, Deserialize)]
struct Envelope<M> {
    /// Bumped whenever the layout of this file or of the dump changes.
    format: u32,
    /// The folder (inside the index directory) holding the dump.
    folder: String,
    files: Vec<DumpFile>,
    meta: M,
}

/// The layout version this build writes and reads.
const FORMAT: u32 = 2;

/// Why a dump could not be used; logged by the caller, which then rebuilds.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The meta file is unreadable, of another format, or describes files that do not match.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DumpError + '_ {
    move |source| DumpError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a new dump into `dir`: `write_files` fills a fresh folder, then every file is
/// flushed and checksummed, the meta file `meta_name` is replaced atomically, and older dump
/// folders are removed. Returns the new dump's folder and files.
pub fn write<M: Serialize>(
    dir: &Path,
    meta_name: &str,
    meta: &M,
    write_files: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(PathBuf, Vec<DumpFile>), DumpError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let folder_name = format!("{DUMP_PREFIX}{stamp}-{}", std::process::id());
    let folder = dir.join(&folder_name);
    std::fs::create_dir(&folder).map_err(io(&folder))?;
    let written = (|| {
        write_files(&folder).map_err(DumpError::Invalid)?;
        let mut files = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(io(&folder))?
            .map(|e| e.map(|e| e.path()).map_err(io(&folder)))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
            let (bytes, sha256) = checksum(&path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push(DumpFile {
                name,
                bytes,
                sha256,
            });
        }
        sync_dir(&folder)?;
        let envelope = Envelope {
            format: FORMAT,
            folder: folder_name.clone(),
            files: files.clone(),
            meta,
        };
        let bytes =
            serde_json::to_vec_pretty(&envelope).map_err(|e| DumpError::Invalid(e.to_string()))?;
        let tmp = dir.join(format!("{meta_name}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        let target = dir.join(meta_name);
        pause_before_current(meta_name);
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
        sync_dir(dir)?;
        Ok(files)
    })();
    let files = match written {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&folder);
            return Err(e);
        }
    };
    remove_stale(dir, &folder_name);
    Ok((folder, files))
}

/// A hook for crash tests: with `SEMDEX_PAUSE_DUMP=META_NAME:DIR` in the environment, every
/// write of a dump whose meta file is `META_NAME` stops once its files are on disk, just before
/// it becomes current, creates `DIR/paused` and waits until `DIR/resume` exists (ten minutes at
/// most). A test kills the process there to check that nothing acknowledged depends on it.
fn pause_before_current(meta_name: &str) {
    static HOOK: std::sync::LazyLock<Option<(String, PathBuf)>> = std::sync::LazyLock::new(|| {
        let value = std::env::var("SEMDEX_PAUSE_DUMP").ok()?;
        let (name, dir) = value.split_once(':')?;
        Some((name.to_string(), PathBuf::from(dir)))
    });
    let Some((name, dir)) = HOOK.as_ref() else {
        return;
    };
    if name != meta_name {
        return;
    }
    tracing::warn!(
        meta = meta_name,
        "paused before a dump becomes current (SEMDEX_PAUSE_DUMP)"
    );
    let _ = std::fs::write(dir.join("paused"), b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !dir.join("resume").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Reads the meta file `meta_name` in `dir` and verifies the size and checksum of every file
/// it names. `Ok(None)`: there is no dump.
pub fn read<M: for<'de> Deserialize<'de>>(
    dir: &Path,
    meta_name: &str,
) -> Result<Option<VerifiedDump<M>>, DumpError> {
    read_checking(dir, meta_name, |_| true)
}

/// [`read`], verifying only the files `checksummed` selects: the others are never read (files
/// an older writer left beside the ones still in use).
pub fn read_checking<M: for<'de> Deserialize<'de>>(
    dir: &Path,
    meta_name: &str,
    checksummed: impl Fn(&str) -> bool,
) -> Result<Option<VerifiedDump<M>>, DumpError> {
    let path = dir.join(meta_name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let format = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
    if format != Some(u64::from(FORMAT)) {
        return Err(DumpError::Invalid(format!(
            "{} is of another format ({format:?}, this build reads {FORMAT})",
            path.display()
        )));
    }
    let envelope: Envelope<M> = serde_json::from_slice(&bytes)
        .map_err(|e| DumpError::Invalid(format!("{}: {e}", path.display())))?;
    if envelope.folder.contains(['/', '\\']) || !envelope.folder.starts_with(DUMP_PREFIX) {
        return Err(DumpError::Invalid(format!(
            "{} names an unexpected folder {:?}",
            path.display(),
            envelope.folder
        )));
    }
    let folder = dir.join(&envelope.folder);
    for file in envelope.files.iter().filter(|f| checksummed(&f.name)) {
        verify_file(&folder, file)?;
    }
    Ok(Some(VerifiedDump {
        folder,
        meta: envelope.meta,
    }))
}

fn verify_file(folder: &Path, file: &DumpFile) -> Result<(), DumpError> {
    let path = folder.join(&file.name);
    let (bytes, sha256) = checksum(&path)?;
    if bytes != file.bytes || sha256 != file.sha256 {
        return Err(DumpError::Invalid(format!(
            "{} has {bytes} bytes with checksum {}…, the dump recorded {} bytes with {}…",
            path.display(),
            &sha256[..12],
            file.bytes,
            file.sha256.get(..12).unwrap_or(&file.sha256)
        )));
    }
    Ok(())
}

/// Size and SHA-256 of a file, streamed.
fn checksum(path: &Path) -> Result<(u64, String), DumpError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn sync_dir(dir: &Path) -> Result<(), DumpError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Removes every dump folder but `keep` (older dumps, and folders of writes that crashed).
fn remove_stale(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DUMP_PREFIX) || name == keep {
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(folder = %entry.path().display(), error = %e, "cannot remove an old index dump");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Meta {
        points: usize,
    }

    fn write_two(folder: &Path) -> Result<(), String> {
        std::fs::write(folder.join("a.bin"), b"alpha").map_err(|e| e.to_string())?;
        std::fs::write(folder.join("b.bin"), vec![7u8; 5000]).map_err(|e| e.to_string())
    }

    #[test]
    fn round_trip_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read::<Meta>(dir.path(), "m.json").unwrap().is_none());
        write(dir.path(), "m.json", &Meta { points: 1 }, write_two).unwrap();
        let first = read::<Meta>(dir.path(), "m.json").unwrap().unwrap();
        assert_eq!(first.meta, Meta { points: 1 });
        assert!(first.folder.join("a.bin").is_file());
        write(dir.path(), "m.json", &Meta { points: 2 }, write_two).unwrap();
        let second = read::<Meta>(dir.path(), "m.json").unwrap().unwrap();
        assert_eq!(second.meta.points, 2);
        assert!(!first.folder.exists(), "the older dump is removed");
        let folders = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count();
        assert_eq!(folders, 1);
    }

    #[test]
    fn truncated_or_altered_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.json", &Meta { points: 1 }, write_two).unwrap();
        let dump = read::<Meta>(dir.path(), "m.json").unwrap().unwrap();
        let b = dump.folder.join("b.bin");
        std::fs::write(&b, vec![7u8; 4000]).unwrap();
        let err = read::<Meta>(dir.path(), "m.json").unwrap_err();
        assert!(err.to_string().contains("4000 bytes"), "{err}");
        std::fs::write(&b, vec![8u8; 5000]).unwrap();
        assert!(matches!(
            read::<Meta>(dir.path(), "m.json"),
            Err(DumpError::Invalid(_))
        ));
        std::fs::remove_file(&b).unwrap();
        assert!(matches!(
            read::<Meta>(dir.path(), "m.json"),
            Err(DumpError::Io { .. })
        ));
    }

    #[test]
    fn only_the_files_selected_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (folder, _) = write(dir.path(), "m.json", &Meta { points: 1 }, write_two).unwrap();
        std::fs::write(folder.join("b.bin"), vec![7u8; 10]).unwrap();
        assert!(read::<Meta>(dir.path(), "m.json").is_err());
        assert!(read_checking::<Meta>(dir.path(), "m.json", |name| name == "a.bin").is_ok());
        std::fs::write(folder.join("a.bin"), vec![7u8; 10]).unwrap();
        assert!(read_checking::<Meta>(dir.path(), "m.json", |name| name == "a.bin").is_err());
    }

    #[test]
    fn a_failed_write_keeps_the_previous_dump() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.json", &Meta { points: 1 }, write_two).unwrap();
        let failed = write(dir.path(), "m.json", &Meta { points: 2 }, |_| {
            Err("disk full".into())
        });
        assert!(failed.is_err());
        let kept = read::<Meta>(dir.path(), "m.json").unwrap().unwrap();
        assert_eq!(kept.meta.points, 1);
    }

    #[test]
    fn other_formats_and_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.json"), br#"{"m": 16, "points": 3}"#).unwrap();
        assert!(matches!(
            read::<Meta>(dir.path(), "m.json"),
            Err(DumpError::Invalid(_))
        ));
        std::fs::write(
            dir.path().join("m.json"),
            br#"{"format": 2, "folder": "../elsewhere", "files": [], "meta": {"points": 1}}"#,
        )
        .unwrap();
        assert!(matches!(
            read::<Meta>(dir.path(), "m.json"),
            Err(DumpError::Invalid(_))
        ));
    }
}
