//! A frozen graph on disk (a "segment"): its links, codes and f32 vectors as flat files in one
//! checksummed dump folder ([`super::dump`]).
//!
//! Opening reads the links and codes into memory after checking their SHA-256 (a few hundred
//! megabytes at a million vectors: well under a second). The f32 vectors, which only
//! rescoring, exact scans and folds read, stay in their file when large ([`Rows`]): they need
//! not be resident. A fold grows the graph from these same files ([`super::build`]). Files are
//! in the machine's byte order (little-endian on every target semdex builds for).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use super::dump::{self, DumpError};
use super::frozen::FrozenGraph;
use super::quant::ScalarQuantizer;
use super::{HnswParams, VectorId};

/// The meta file naming the current segment.
pub(crate) const SEGMENT_META: &str = "segment.meta.json";
/// What wrote a segment: a segment by another layout is rebuilt.
const WRITER: &str = "semdex frozen graph 2";
/// Writers of the same layout whose segments are read as they are: the first frozen graphs,
/// built by hnsw_rs, which kept its own dump beside them (unused now).
const SAME_LAYOUT: [&str; 1] = ["semdex frozen graph 1, hnsw_rs 0.3.5 with UnitDot"];
/// The hnsw_rs dump files such a segment holds: never read, so never checksummed.
const HNSW_FILES: [&str; 2] = ["hnsw.hnsw.graph", "hnsw.hnsw.data"];
const IDS: &str = "ids.u64";
const LEVELS: &str = "levels.u8";
const LINKS0: &str = "links0.u32";
const UPPER_AT: &str = "upper_at.u32";
const UPPER: &str = "upper.u32";
const CODES: &str = "codes.u8";
const VECTORS: &str = "vectors.f32";

/// What a segment's meta file records besides its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SegmentMeta {
    writer: String,
    m: usize,
    ef_construction: usize,
    dimension: usize,
    points: usize,
    stride0: usize,
    stride_up: usize,
    upper_len: usize,
    entry: u32,
    max_level: u8,
    quantizer: ScalarQuantizer,
    /// The store generation the segment reflects, with its tombstones, when no newer state
    /// of the index was saved.
    pub generation: u64,
    pub tombstones: Vec<VectorId>,
}

/// Segments whose f32 vectors take at most this many bytes read them onto the heap when
/// opened, where rescoring reads them for free. Larger ones (a million vectors of 384
/// dimensions are 1.5 GB) are read from the file a row at a time, one `pread` each (1.4 µs
/// from the page cache on the development machine): the server's resident memory then holds
/// only the 8-bit codes. A map would not do: the kernel maps whole page-cache folios around
/// each row touched, and 100 searches at a million vectors left 0.9 GB of the file resident.
pub(crate) const HEAP_ROWS_UP_TO: u64 = 256 << 20;
/// Rows read in one call when every row is wanted (an exact scan).
pub(crate) const SCAN_BLOCK: usize = 4096;

/// The f32 vectors of a frozen graph's nodes, in node order: on the heap (a graph frozen in
/// memory, or a small segment) or in its segment's file.
pub(crate) enum Rows {
    Owned(Vec<f32>),
    #[cfg(unix)]
    File(RowFile),
}

/// A segment's `vectors.f32`, read at an offset per request.
pub(crate) struct RowFile {
    file: std::fs::File,
    path: PathBuf,
    /// f32 values in the file.
    len: usize,
}

/// Every row at once, for the rare reader of all of them (a fold, a segment written
/// elsewhere): borrowed from the heap, or the file mapped for as long as it is held.
pub(crate) enum AllRows<'a> {
    Borrowed(&'a [f32]),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for AllRows<'_> {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            AllRows::Borrowed(rows) => rows,
            // Checked when mapped: the map is page-aligned and a whole number of f32.
            AllRows::Mapped(map) => bytemuck::cast_slice(&map[..]),
        }
    }
}

impl Rows {
    /// Rows `first..first + count` of width `dimension`, one after another: a slice of the
    /// heap, or read from the file into `buffer`.
    pub fn read<'a>(
        &'a self,
        dimension: usize,
        first: usize,
        count: usize,
        buffer: &'a mut Vec<f32>,
    ) -> std::io::Result<&'a [f32]> {
        let (start, end) = (first * dimension, (first + count) * dimension);
        match self {
            Rows::Owned(rows) => rows.get(start..end).ok_or_else(|| out_of_range(end)),
            #[cfg(unix)]
            Rows::File(file) => {
                use std::os::unix::fs::FileExt;
                if end > file.len {
                    return Err(out_of_range(end));
                }
                buffer.resize(end - start, 0.0);
                file.file
                    .read_exact_at(bytemuck::cast_slice_mut(&mut buffer[..]), start as u64 * 4)
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", file.path.display()))
                    })?;
                Ok(&buffer[..])
            }
        }
    }

    /// Asks for the row at `node` to be brought near the CPU (rows on the heap only: a read
    /// from the file copies it anyway).
    pub fn prefetch(&self, dimension: usize, node: usize) {
        if let Rows::Owned(rows) = self
            && let Some(row) = rows.get(node * dimension..(node + 1) * dimension)
        {
            super::kernels::prefetch(row.as_ptr().cast(), dimension * 4);
        }
    }

    /// Every row, one after another.
    pub fn all(&self) -> std::io::Result<AllRows<'_>> {
        match self {
            Rows::Owned(rows) => Ok(AllRows::Borrowed(rows)),
            #[cfg(unix)]
            Rows::File(file) => {
                // SAFETY: the file is in a dump folder that semdex never writes again once it
                // is current, and that no other program is expected to change; a change under
                // the map would alter scores, not memory safety, since every bit pattern is a
                // valid f32.
                let map = unsafe { memmap2::Mmap::map(&file.file) }?;
                if map.len() != file.len * 4 || bytemuck::try_cast_slice::<u8, f32>(&map).is_err() {
                    return Err(std::io::Error::other(format!(
                        "{} changed size or is not mapped on a 4-byte boundary",
                        file.path.display()
                    )));
                }
                Ok(AllRows::Mapped(map))
            }
        }
    }

    /// Heap bytes (a file's pages belong to the page cache).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Rows::Owned(v) => v.len() * 4,
            #[cfg(unix)]
            Rows::File(_) => 0,
        }
    }
}

fn out_of_range(end: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("row data ends before value {end}"),
    )
}

/// Where a segment lies on disk.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    pub folder: PathBuf,
}

impl Home {
    /// The segment's folder name (what a saved state refers to).
    pub fn name(&self) -> String {
        self.folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

fn write_array<T: Pod>(folder: &Path, name: &str, values: &[T]) -> Result<(), String> {
    let path = folder.join(name);
    std::fs::write(&path, bytemuck::cast_slice::<T, u8>(values)).map_err(io_error(&path))
}

fn read_array<T: Pod + Default>(folder: &Path, name: &str, len: usize) -> Result<Vec<T>, String> {
    let path = folder.join(name);
    let mut file = std::fs::File::open(&path).map_err(io_error(&path))?;
    read_values(&mut file, &path, len)
}

/// The first `len` values of an open file (`path` names it in errors).
fn read_values<T: Pod + Default>(
    file: &mut std::fs::File,
    path: &Path,
    len: usize,
) -> Result<Vec<T>, String> {
    let mut values = vec![T::default(); len];
    file.read_exact(bytemuck::cast_slice_mut::<T, u8>(&mut values))
        .map_err(io_error(path))?;
    Ok(values)
}

/// Writes a segment into `dir` (a fresh dump folder, made current atomically): the frozen
/// graph and each node's f32 vector (`row(node)`). `generation` and `tombstones` describe the
/// index at that moment.
pub(crate) fn write<'a>(
    dir: &Path,
    params: HnswParams,
    frozen: &FrozenGraph,
    row: &dyn Fn(usize) -> &'a [f32],
    generation: u64,
    tombstones: Vec<VectorId>,
) -> Result<Home, DumpError> {
    let meta = SegmentMeta {
        writer: WRITER.into(),
        m: params.m,
        ef_construction: params.ef_construction,
        dimension: frozen.dimension,
        points: frozen.len(),
        stride0: frozen.stride0,
        stride_up: frozen.stride_up,
        upper_len: frozen.upper.len(),
        entry: frozen.entry,
        max_level: frozen.max_level,
        quantizer: frozen.quantizer.clone(),
        generation,
        tombstones,
    };
    let (folder, _) = dump::write(dir, SEGMENT_META, &meta, |folder| {
        write_array(folder, IDS, &frozen.ids)?;
        write_array(folder, LEVELS, &frozen.levels)?;
        write_array(folder, LINKS0, &frozen.links0)?;
        write_array(folder, UPPER_AT, &frozen.upper_at)?;
        write_array(folder, UPPER, &frozen.upper)?;
        write_array(folder, CODES, &frozen.codes)?;
        let path = folder.join(VECTORS);
        let file = std::fs::File::create(&path).map_err(io_error(&path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for node in 0..frozen.len() {
            out.write_all(bytemuck::cast_slice(row(node)))
                .map_err(io_error(&path))?;
        }
        out.flush().map_err(io_error(&path))
    })?;
    Ok(Home { folder })
}

/// An opened segment.
pub(crate) struct Opened {
    pub meta: SegmentMeta,
    pub frozen: FrozenGraph,
    pub rows: Rows,
    pub home: Home,
}

/// Opens the current segment in `dir` (its f32 rows as [`open_rows`] does): `Ok(None)` when
/// there is none, an error (for the log; the caller rebuilds) when it is damaged, of another
/// layout or built with other parameters.
pub(crate) fn open(
    dir: &Path,
    dimension: usize,
    params: HnswParams,
    heap_up_to: u64,
) -> Result<Option<Opened>, String> {
    let dump = match dump::read_checking::<SegmentMeta>(dir, SEGMENT_META, |name| {
        !HNSW_FILES.contains(&name)
    }) {
        Ok(Some(dump)) => dump,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = dump.meta;
    if meta.writer != WRITER && !SAME_LAYOUT.contains(&meta.writer.as_str()) {
        return Err(format!("written by {}, not {WRITER}", meta.writer));
    }
    if meta.m != params.m || meta.ef_construction != params.ef_construction {
        return Err(format!(
            "built with m {} and ef_construction {}, not {} and {}",
            meta.m, meta.ef_construction, params.m, params.ef_construction
        ));
    }
    if meta.dimension != dimension || meta.quantizer.dimension() != dimension {
        return Err(format!("of dimension {}, not {dimension}", meta.dimension));
    }
    let folder = dump.folder;
    let n = meta.points;
    let frozen = FrozenGraph {
        dimension,
        ids: read_array(&folder, IDS, n)?,
        levels: read_array(&folder, LEVELS, n)?,
        links0: read_array(&folder, LINKS0, n * meta.stride0)?,
        stride0: meta.stride0,
        upper_at: read_array(&folder, UPPER_AT, n)?,
        upper: read_array(&folder, UPPER, meta.upper_len)?,
        stride_up: meta.stride_up,
        entry: meta.entry,
        max_level: meta.max_level,
        quantizer: meta.quantizer.clone(),
        codes: read_array(&folder, CODES, n * dimension)?,
    };
    frozen.validate().map_err(|e| e.to_string())?;
    let rows = open_rows(&folder.join(VECTORS), n * dimension, heap_up_to)?;
    Ok(Some(Opened {
        meta,
        frozen,
        rows,
        home: Home { folder },
    }))
}

/// Opens a file of `len` f32 values: read onto the heap when it takes at most `heap_up_to`
/// bytes ([`HEAP_ROWS_UP_TO`]), else kept open to be read a few rows at a time.
pub(crate) fn open_rows(path: &Path, len: usize, heap_up_to: u64) -> Result<Rows, String> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let bytes = file.metadata().map_err(io_error(path))?.len();
    if bytes != (len * 4) as u64 {
        return Err(format!(
            "{} has {bytes} bytes, expected {}",
            path.display(),
            len * 4
        ));
    }
    #[cfg(unix)]
    if bytes > heap_up_to {
        return Ok(Rows::File(RowFile {
            file,
            path: path.to_path_buf(),
            len,
        }));
    }
    Ok(Rows::Owned(read_values(&mut file, path, len)?))
}

/// The rows of an already written segment (after freezing into it).
pub(crate) fn rows_of(home: &Home, len: usize, heap_up_to: u64) -> Result<Rows, String> {
    open_rows(&home.folder.join(VECTORS), len, heap_up_to)
}
