//! Telling "the machine ran out" from other failures: no file descriptor left, or no space on
//! the disk. Such a failure is nobody's fault and passes when the resource comes back; the API
//! answers it 503 (descriptors) or 507 (space) with `Retry-After` instead of a 500.

use std::error::Error;

/// What the storage ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// The process (or the system) has no file descriptor to open another file.
    Descriptors,
    /// The disk (or the quota) is full.
    Space,
}

/// EMFILE, ENFILE: descriptors; ENOSPC, EDQUOT: space (Linux numbers, the same on the BSDs for
/// the first three).
fn of_os_error(code: i32) -> Option<Exhausted> {
    match code {
        23 | 24 => Some(Exhausted::Descriptors),
        28 | 122 => Some(Exhausted::Space),
        _ => None,
    }
}

/// What `err` says ran out, looking through its whole chain of causes: an I/O error's OS code,
/// SQLite's "database or disk is full", or SQLite's "unable to open" while the process is at
/// its descriptor limit (SQLite keeps the OS error to itself).
pub fn exhausted(err: &(dyn Error + 'static)) -> Option<Exhausted> {
    let mut cause: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(found) = io.raw_os_error().and_then(of_os_error)
        {
            return Some(found);
        }
        if let Some(rusqlite::Error::SqliteFailure(failure, _)) =
            e.downcast_ref::<rusqlite::Error>()
        {
            match failure.code {
                rusqlite::ErrorCode::DiskFull => return Some(Exhausted::Space),
                rusqlite::ErrorCode::CannotOpen if near_descriptor_limit() => {
                    return Some(Exhausted::Descriptors);
                }
                _ => {}
            }
        }
        cause = e.source();
    }
    // Some wrappers keep the OS error only in their message (tantivy's "Os { code: 24 ... }").
    let text = err.to_string();
    for (needle, found) in [
        ("os error 24", Exhausted::Descriptors),
        ("code: 24,", Exhausted::Descriptors),
        ("os error 23", Exhausted::Descriptors),
        ("os error 28", Exhausted::Space),
        ("code: 28,", Exhausted::Space),
        ("No space left on device", Exhausted::Space),
        ("Too many open files", Exhausted::Descriptors),
    ] {
        if text.contains(needle) {
            return Some(found);
        }
    }
    None
}

/// Whether this process has (nearly) all the descriptors its limit allows open.
pub fn near_descriptor_limit() -> bool {
    let Ok(open) = std::fs::read_dir("/proc/self/fd").map(Iterator::count) else {
        return false;
    };
    descriptor_limit().is_some_and(|limit| open + 8 >= limit)
}

/// The process's soft limit on open files, where the platform tells.
pub fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_in_a_chain_are_recognised() {
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(exhausted(&full), Some(Exhausted::Space));
        let files = std::io::Error::from_raw_os_error(24);
        assert_eq!(exhausted(&files), Some(Exhausted::Descriptors));
        let wrapped = crate::storage::StorageError::Io {
            name: "c".into(),
            action: "writing",
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert_eq!(exhausted(&wrapped), Some(Exhausted::Space));
        let other = std::io::Error::from_raw_os_error(2);
        assert_eq!(exhausted(&other), None);
        assert!(descriptor_limit().is_some());
    }
}
