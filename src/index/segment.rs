//! A frozen graph on disk (a "segment"): its links, codes and f32 vectors as flat files in one
//! checksummed dump folder ([`super::dump`]).
//!
//! Opening reads the links and codes into memory after checking their SHA-256 (a few hundred
//! megabytes at a million vectors: well under a second) and memory-maps the f32 vectors, which
//! only rescoring and folds read: they need not be resident. A fold grows the graph from these
//! same files ([`super::build`]). Files are in the machine's byte order (little-endian on
//! every target semdex builds for).

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

/// The f32 vectors of a frozen graph's nodes, in node order: on the heap (a graph frozen in
/// memory) or mapped from its segment.
pub(crate) enum Rows {
    Owned(Vec<f32>),
    Mapped(memmap2::Mmap),
}

impl Rows {
    /// Every row, one after another.
    pub fn as_slice(&self) -> &[f32] {
        match self {
            Rows::Owned(v) => v,
            // Checked when mapped: the map is page-aligned and a whole number of f32.
            Rows::Mapped(map) => bytemuck::cast_slice(&map[..]),
        }
    }

    /// Heap bytes (a mapped file's pages belong to the page cache).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Rows::Owned(v) => v.len() * 4,
            Rows::Mapped(_) => 0,
        }
    }
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
    let mut values = vec![T::default(); len];
    let mut file = std::fs::File::open(&path).map_err(io_error(&path))?;
    file.read_exact(bytemuck::cast_slice_mut::<T, u8>(&mut values))
        .map_err(io_error(&path))?;
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

/// Opens the current segment in `dir`: `Ok(None)` when there is none, an error (for the log;
/// the caller rebuilds) when it is damaged, of another layout or built with other parameters.
pub(crate) fn open(
    dir: &Path,
    dimension: usize,
    params: HnswParams,
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
    let rows = map_rows(&folder.join(VECTORS), n * dimension)?;
    Ok(Some(Opened {
        meta,
        frozen,
        rows,
        home: Home { folder },
    }))
}

/// Maps a file of `len` f32 values, for reading a few rows at a time.
pub(crate) fn map_rows(path: &Path, len: usize) -> Result<Rows, String> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let bytes = file.metadata().map_err(io_error(path))?.len();
    if bytes != (len * 4) as u64 {
        return Err(format!(
            "{} has {bytes} bytes, expected {}",
            path.display(),
            len * 4
        ));
    }
    if len == 0 {
        return Ok(Rows::Owned(Vec::new()));
    }
    // SAFETY: the file is in a dump folder that semdex never writes again once it is current,
    // and that no other program is expected to change; a change under the map would alter
    // scores, not memory safety, since every bit pattern is a valid f32.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error(path))?;
    // Rescoring reads a few scattered rows per query: no read-ahead around them.
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Random);
    if bytemuck::try_cast_slice::<u8, f32>(&map[..]).is_err() {
        return Err(format!(
            "{} is not mapped on a 4-byte boundary",
            path.display()
        ));
    }
    Ok(Rows::Mapped(map))
}

/// Mapped rows of an already written segment (after freezing into it).
pub(crate) fn rows_of(home: &Home, len: usize) -> Result<Rows, String> {
    map_rows(&home.folder.join(VECTORS), len)
}
