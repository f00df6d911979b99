//! The vector files of the ANN benchmarks (TEXMEX's SIFT/GIST sets, big-ann-benchmarks'
//! tools): `.fvecs` (float vectors) and `.ivecs` (integer vectors, e.g. the ids of each query's
//! true nearest neighbours). Each vector is stored as its length (a little-endian `i32`)
//! followed by that many little-endian values; numpy writes them with
//! `np.hstack([np.full((n, 1), d, 'int32'), x]).tofile(path)`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why a vector file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum VecsError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not a vector file.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
}

/// Reads an `.fvecs` file: every vector, all of one length.
pub fn read_fvecs(path: &Path) -> Result<Vec<Vec<f32>>, VecsError> {
    read(path, f32::from_le_bytes)
}

/// Reads an `.ivecs` file: every vector, all of one length.
pub fn read_ivecs(path: &Path) -> Result<Vec<Vec<i32>>, VecsError> {
    read(path, i32::from_le_bytes)
}

/// Writes vectors as an `.fvecs` file.
pub fn write_fvecs(path: &Path, vectors: &[Vec<f32>]) -> Result<(), VecsError> {
    write(path, vectors, |v: &f32| v.to_le_bytes())
}

/// Writes vectors as an `.ivecs` file.
pub fn write_ivecs(path: &Path, vectors: &[Vec<i32>]) -> Result<(), VecsError> {
    write(path, vectors, |v: &i32| v.to_le_bytes())
}

fn read<T>(path: &Path, value: fn([u8; 4]) -> T) -> Result<Vec<Vec<T>>, VecsError> {
    let bytes = std::fs::read(path).map_err(|source| VecsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| VecsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let word = |at: usize| -> [u8; 4] {
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[at..at + 4]);
        w
    };
    let mut vectors = Vec::new();
    let mut dimension = None;
    let mut at = 0;
    while at < bytes.len() {
        if bytes.len() - at < 4 {
            return Err(bad(format!(
                "{} stray bytes at the end (offset {at})",
                bytes.len() - at
            )));
        }
        let d = i32::from_le_bytes(word(at));
        if d <= 0 || d > 1 << 20 {
            return Err(bad(format!(
                "vector {} claims {d} dimensions (offset {at})",
                vectors.len() + 1
            )));
        }
        let d = d as usize;
        if *dimension.get_or_insert(d) != d {
            return Err(bad(format!(
                "vector {} has {d} dimensions, the first had {}",
                vectors.len() + 1,
                dimension.unwrap_or(0)
            )));
        }
        at += 4;
        if bytes.len() - at < d * 4 {
            return Err(bad(format!(
                "vector {} is cut short: {} of its {} bytes",
                vectors.len() + 1,
                bytes.len() - at,
                d * 4
            )));
        }
        vectors.push((0..d).map(|i| value(word(at + 4 * i))).collect());
        at += d * 4;
    }
    Ok(vectors)
}

fn write<T>(path: &Path, vectors: &[Vec<T>], bytes: fn(&T) -> [u8; 4]) -> Result<(), VecsError> {
    let io = |source| VecsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for v in vectors {
        out.write_all(&(v.len() as i32).to_le_bytes()).map_err(io)?;
        for x in v {
            out.write_all(&bytes(x)).map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.fvecs");
        let vectors = vec![vec![1.0f32, -2.5, 3.25], vec![0.0, 0.5, f32::MAX]];
        write_fvecs(&path, &vectors).unwrap();
        assert_eq!(read_fvecs(&path).unwrap(), vectors);
        let ids = dir.path().join("x.ivecs");
        write_ivecs(&ids, &[vec![3, 1], vec![0, 7]]).unwrap();
        assert_eq!(read_ivecs(&ids).unwrap(), vec![vec![3, 1], vec![0, 7]]);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let err = read_fvecs(&path).unwrap_err().to_string();
        assert!(err.contains("vector 2 is cut short"), "{err}");
        let mut mixed = bytes.clone();
        mixed.extend_from_slice(&2i32.to_le_bytes());
        mixed.extend_from_slice(&[0; 8]);
        std::fs::write(&path, &mixed).unwrap();
        let err = read_fvecs(&path).unwrap_err().to_string();
        assert!(err.contains("vector 3 has 2 dimensions"), "{err}");
        std::fs::write(&path, (-1i32).to_le_bytes()).unwrap();
        assert!(read_fvecs(&path).is_err());
        std::fs::write(&path, b"").unwrap();
        assert!(read_fvecs(&path).unwrap().is_empty());
        assert!(matches!(
            read_fvecs(&dir.path().join("missing.fvecs")),
            Err(VecsError::Io { .. })
        ));
    }
}
