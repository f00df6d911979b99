//! Model weights read from `model.safetensors` through a memory map.
//!
//! Each tensor is copied once, straight into the buffer the forward pass keeps, instead of
//! loading the whole file into tensors and converting them (which held the weights three times
//! over while loading and left the allocator with a large heap afterwards). The word-embedding
//! table, half of MiniLM's weights, is not copied at all when it is stored as aligned
//! little-endian f32: it is read in place from the map, so only the rows of tokens actually
//! seen become resident, and as clean file pages rather than anonymous memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::Dtype;
use safetensors::tensor::Metadata;

use super::error::{EmbedError, Result};

/// An open safetensors file.
pub struct WeightFile {
    map: Arc<Mmap>,
    metadata: Metadata,
    /// Where the tensor data starts in the file.
    data_start: usize,
    /// `bert.` for checkpoints saved from `BertForX` classes, else empty.
    prefix: String,
    path: PathBuf,
}

impl WeightFile {
    /// Maps `path` and reads its header. `probe` names a tensor that tells whether the
    /// checkpoint's names carry a `bert.` prefix.
    pub fn open(path: &Path, probe: &str) -> Result<Self> {
        let bad = |reason: String| EmbedError::BadModelFile {
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            file: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        // SAFETY: the model file is opened read-only and not written while semdex runs; as for
        // every memory-mapped model loader (candle's included), changing it underneath a
        // running process is unsupported.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| bad(e.to_string()))?;
        let (header_len, metadata) =
            safetensors::SafeTensors::read_metadata(&map).map_err(|e| bad(e.to_string()))?;
        let prefix = if metadata.info(&format!("bert.{probe}")).is_some() {
            "bert.".to_string()
        } else {
            String::new()
        };
        Ok(Self {
            map: Arc::new(map),
            metadata,
            data_start: 8 + header_len,
            prefix,
            path: path.to_path_buf(),
        })
    }

    /// Drops the map's resident pages from this process once every tensor has been copied: the
    /// copies are what the forward pass reads, and the word-embedding table's rows fault back
    /// in from the file as tokens use them.
    pub fn release_pages(&self) {
        #[cfg(unix)]
        {
            // SAFETY: the map is a read-only shared file mapping and no slice of it is borrowed
            // at this point (tables hold the map, not borrows of it); MADV_DONTNEED only makes
            // later reads fault the unchanged file contents back in.
            let released = unsafe {
                self.map
                    .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
            };
            if let Err(e) = released {
                tracing::debug!(error = %e, "madvise(DONTNEED) on the weights file failed");
            }
        }
    }

    /// The raw bytes, dtype and shape of a tensor, checked against the expected shape.
    fn bytes(&self, name: &str, shape: &[usize]) -> Result<(&[u8], Dtype)> {
        let key = format!("{}{name}", self.prefix);
        let info = self
            .metadata
            .info(&key)
            .ok_or_else(|| EmbedError::Unsupported(format!("weights lack tensor {key}")))?;
        if info.shape != shape {
            return Err(EmbedError::Unsupported(format!(
                "tensor {key} has shape {:?}, expected {shape:?}",
                info.shape
            )));
        }
        let (start, end) = info.data_offsets;
        let bytes = self
            .map
            .get(self.data_start + start..self.data_start + end)
            .ok_or_else(|| {
                EmbedError::Unsupported(format!(
                    "tensor {key} lies outside {}",
                    self.path.display()
                ))
            })?;
        Ok((bytes, info.dtype))
    }

    /// A tensor as f32 values, row-major (f16 and bf16 are widened).
    pub fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (bytes, dtype) = self.bytes(name, shape)?;
        let values: Vec<f32> = match dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(EmbedError::Unsupported(format!(
                    "tensor {name} is {other:?}; f32, f16 and bf16 are supported"
                )));
            }
        };
        Ok(values)
    }

    /// A `[rows, width]` lookup table, read in place from the map when its bytes are aligned
    /// little-endian f32, else copied.
    pub fn table(&self, name: &str, rows: usize, width: usize) -> Result<Table> {
        let (bytes, dtype) = self.bytes(name, &[rows, width])?;
        let in_place = dtype == Dtype::F32
            && cfg!(target_endian = "little")
            && (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f32>());
        if in_place {
            let offset = bytes.as_ptr() as usize - self.map.as_ptr() as usize;
            return Ok(Table {
                storage: TableStorage::Mapped {
                    map: self.map.clone(),
                    offset,
                },
                rows,
                width,
            });
        }
        Ok(Table {
            storage: TableStorage::Owned(self.floats(name, &[rows, width])?),
            rows,
            width,
        })
    }
}

/// A row-major table of f32 rows (the word embeddings).
pub struct Table {
    storage: TableStorage,
    rows: usize,
    width: usize,
}

enum TableStorage {
    /// Aligned little-endian f32 inside the mapped file, from `offset`.
    Mapped { map: Arc<Mmap>, offset: usize },
    /// A copy.
    Owned(Vec<f32>),
}

impl Table {
    /// Row `index`; `None` past the end.
    pub fn row(&self, index: usize) -> Option<&[f32]> {
        if index >= self.rows {
            return None;
        }
        let all: &[f32] = match &self.storage {
            TableStorage::Owned(values) => values,
            TableStorage::Mapped { map, offset } => {
                let bytes = &map[*offset..*offset + self.rows * self.width * 4];
                // SAFETY: `table` checked that these bytes are f32-aligned, in bounds and in
                // the host's (little-endian) byte order; every bit pattern is a valid f32.
                unsafe {
                    std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), self.rows * self.width)
                }
            }
        };
        Some(&all[index * self.width..(index + 1) * self.width])
    }
}
