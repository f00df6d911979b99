//! Finding documents to ingest: files of every format [`crate::extract`] reads (PDF, HTML,
//! Markdown, Word, text), JSON lines, directories (recursive), stdin.
//!
//! Files are chosen by content first: in a directory, a file with a known extension, or
//! whose first bytes say PDF or HTML, is read; others are passed over. A file named on the
//! command line is always read, and one that is none of the formats is an error. HTML pages
//! found under one named directory are one site: blocks repeated on most of its pages are
//! removed ([`crate::extract::SiteBoilerplate`]).
//!
//! Walking is bounded: symbolic links are followed only while they stay inside the paths the
//! caller named (a link to `/` does not walk the disk), files over a size cap are skipped
//! unread, things that are not regular files (FIFOs, devices, sockets, anything under
//! `/proc` or `/sys`) are refused without being opened, and a file or line that cannot be
//! used is reported and skipped without stopping the others.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{DocumentInput, ingest};
use crate::extract::{self, ExtractLimits, Extracted, Format, Hint, SiteBoilerplate};
use crate::progress::{NoProgress, Progress};

/// Default size cap of one file (and of standard input).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// How sources are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOptions {
    /// Files larger than this are skipped unread.
    pub max_file_bytes: u64,
    /// Follow symbolic links wherever they lead (by default only those that stay inside the
    /// named paths).
    pub follow_links_anywhere: bool,
    /// Bounds on extracting one file.
    pub limits: ExtractLimits,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            follow_links_anywhere: false,
            limits: ExtractLimits::default(),
        }
    }
}

/// Something that was not ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file (with `:line` for JSON lines).
    pub location: String,
    /// Why.
    pub reason: String,
}

/// Documents found, and what was passed over.
#[derive(Debug, Default)]
pub struct Collected {
    /// Documents to ingest, in a stable order; each valid, ids unique.
    pub documents: Vec<DocumentInput>,
    /// Files and documents that could not be used, with reasons: the run should say so.
    pub skipped: Vec<Skipped>,
    /// Files met while walking a directory that are not of a kind semdex reads (not errors).
    pub ignored: usize,
    /// Bytes of files read, and how many documents of each format they gave.
    pub formats: HashMap<Format, FormatCount>,
}

/// Files of one format read, for the run's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FormatCount {
    /// Files read.
    pub files: usize,
    /// Their size.
    pub bytes: u64,
    /// PDF pages among them.
    pub pages: usize,
}

/// A source that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A named path does not exist or cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Standard input is not UTF-8.
    #[error("standard input is not valid UTF-8 text")]
    StdinNotUtf8,
}

/// Collects documents from `paths` with the default [`SourceOptions`].
pub fn collect(paths: &[PathBuf], stdin: impl Read) -> Result<Collected, SourceError> {
    collect_with(paths, stdin, SourceOptions::default())
}

/// [`collect_with_progress`] without progress.
pub fn collect_with(
    paths: &[PathBuf],
    stdin: impl Read,
    options: SourceOptions,
) -> Result<Collected, SourceError> {
    collect_with_progress(paths, stdin, options, &NoProgress)
}

/// A file to read, found under a named path.
struct Candidate {
    path: PathBuf,
    /// Named by the caller (not met in a walk): a file of no known format is then an error.
    named: bool,
    /// Size when listed.
    len: u64,
    /// Which named directory it was found under: the HTML pages of one are one site.
    site: Option<usize>,
}

/// Collects documents from `paths`: files, directories (walked recursively, in name order),
/// and `-` for `stdin` (JSON lines if it looks like them, a PDF, HTML or Word file by its
/// content, else one text document). Documents that would fail ingest (an empty or
/// over-long id, no text) and repeated ids (the first is kept) are skipped with a reason, so
/// that one bad entry does not stop the rest. `progress` counts the bytes of the files read,
/// and names each file as it is read.
pub fn collect_with_progress(
    paths: &[PathBuf],
    mut stdin: impl Read,
    options: SourceOptions,
    progress: &dyn Progress,
) -> Result<Collected, SourceError> {
    let mut out = Collected::default();
    let mut candidates = Vec::new();
    // Stdin is read where it is named, among the files.
    let mut stdin_at = None;
    for (site, path) in paths.iter().enumerate() {
        if path.as_os_str() == "-" {
            stdin_at = Some(candidates.len());
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|source| SourceError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if let Some(reason) = refused(path, &meta) {
            out.skipped.push(skip(&id_for_path(path), &reason));
        } else if meta.is_dir() {
            walk(path, site, options, &mut candidates, &mut out);
        } else {
            candidates.push(Candidate {
                path: path.clone(),
                named: true,
                len: meta.len(),
                site: None,
            });
        }
    }
    progress.set_total(candidates.iter().map(|c| c.len).sum());
    let mut pages: Vec<(usize, Extracted, String)> = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        if stdin_at == Some(i) {
            read_stdin(&mut stdin, options, &mut out)?;
        }
        let location = id_for_path(&candidate.path);
        progress.message(&location);
        if let Some(page) = read_file(candidate, options, &mut out) {
            pages.push((candidate.site.unwrap_or(usize::MAX), page, location));
        }
        progress.advance(candidate.len);
    }
    if stdin_at == Some(candidates.len()) {
        read_stdin(&mut stdin, options, &mut out)?;
    }
    strip_site_boilerplate(&mut pages);
    for (_, page, location) in pages {
        out.documents
            .push(extracted_document(location.clone(), location, page));
    }
    progress.finish();
    keep_valid_documents(&mut out);
    Ok(out)
}

/// Why a named path is not read at all: it is not a regular file or a directory (a FIFO
/// would block, a device never ends), or it lies under `/proc` or `/sys`, whose files claim
/// no size and change as they are read.
fn refused(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if real.starts_with("/proc") || real.starts_with("/sys") {
        return Some(format!(
            "{} is a kernel interface, not a document (under {}); not read",
            path.display(),
            if real.starts_with("/proc") {
                "/proc"
            } else {
                "/sys"
            }
        ));
    }
    let kind = meta.file_type();
    if kind.is_file() || kind.is_dir() {
        return None;
    }
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        }
    };
    #[cfg(not(unix))]
    let what = "not a regular file";
    Some(format!(
        "{what}: semdex reads regular files and directories only (pipe data to `-` instead)"
    ))
}

/// Lists the files under `root` worth reading, following links only inside it unless told
/// otherwise.
fn walk(
    root: &Path,
    site: usize,
    options: SourceOptions,
    candidates: &mut Vec<Candidate>,
    out: &mut Collected,
) {
    let inside = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut outside = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            if options.follow_links_anywhere || e.depth() == 0 || !e.path_is_symlink() {
                return true;
            }
            let target = std::fs::canonicalize(e.path());
            let stays = target.as_ref().is_ok_and(|t| t.starts_with(&inside));
            if !stays {
                let to = target.map_or_else(|e| e.to_string(), |t| t.display().to_string());
                outside.push(skip(
                    &id_for_path(e.path()),
                    &format!(
                        "a symbolic link to {to}, outside {}; not followed (--follow-links follows it)",
                        root.display()
                    ),
                ));
            }
            stays
        });
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() => {
                let len = e.metadata().map_or(0, |m| m.len());
                if worth_reading(e.path()) {
                    candidates.push(Candidate {
                        path: e.path().to_path_buf(),
                        named: false,
                        len,
                        site: Some(site),
                    });
                } else {
                    out.ignored += 1;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let location = e.path().unwrap_or(root);
                out.skipped
                    .push(skip(&id_for_path(location), &e.to_string()));
            }
        }
    }
    out.skipped.append(&mut outside);
}

/// Whether a file met in a walk is one semdex reads: a known extension, or content that
/// starts like a PDF or an HTML page.
fn worth_reading(path: &Path) -> bool {
    let known = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Format::from_extension)
        .is_some();
    if known {
        return true;
    }
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path)
        .and_then(|f| f.take(1024).read_to_end(&mut head))
        .is_ok()
        && matches!(
            extract::detect::sniff(&head),
            Some(Format::Pdf | Format::Html)
        )
}

/// A document id for a file: its path as given, with `/` separators.
pub fn id_for_path(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

/// Reads and extracts one file into `out`; an HTML page found in a directory walk is
/// returned instead, for the site-wide boilerplate pass.
fn read_file(
    candidate: &Candidate,
    options: SourceOptions,
    out: &mut Collected,
) -> Option<Extracted> {
    let path = &candidate.path;
    let location = id_for_path(path);
    let bytes = match read_capped(path, options.max_file_bytes) {
        Ok(Some(b)) => b,
        Ok(None) => {
            out.skipped.push(skip(
                &location,
                &format!(
                    "larger than {} bytes (raise --max-file-bytes)",
                    options.max_file_bytes
                ),
            ));
            return None;
        }
        Err(e) => {
            out.skipped.push(skip(&location, &e.to_string()));
            return None;
        }
    };
    let hint = Hint::file(location.clone());
    let format = match extract::detect(&bytes, &hint) {
        Ok(f) => f,
        Err(e) if !candidate.named && matches!(e, extract::ExtractError::UnknownFormat { .. }) => {
            out.ignored += 1;
            return None;
        }
        Err(e) => {
            out.skipped.push(skip(&location, &e.to_string()));
            return None;
        }
    };
    let len = bytes.len() as u64;
    if format == Format::JsonLines {
        match extract::text::utf8(&bytes) {
            Ok(text) => parse_jsonl(text, &location, out),
            Err(e) => out.skipped.push(skip(&location, &e.to_string())),
        }
        count(out, format, len, 0);
        return None;
    }
    match extract::extract_as(bytes, format, &options.limits) {
        Ok(extracted) => {
            for warning in &extracted.warnings {
                tracing::warn!(location = %location, "{warning}");
            }
            count(out, format, len, extracted.structure.pages.len());
            if format == Format::Html && candidate.site.is_some() {
                return Some(extracted);
            }
            out.documents
                .push(extracted_document(location.clone(), location, extracted));
            None
        }
        Err(e) => {
            out.skipped.push(skip(&location, &e.to_string()));
            None
        }
    }
}

fn count(out: &mut Collected, format: Format, bytes: u64, pages: usize) {
    let c = out.formats.entry(format).or_default();
    c.files += 1;
    c.bytes += bytes;
    c.pages += pages;
}

/// Removes, from the HTML pages of each site, the blocks most of its pages repeat.
fn strip_site_boilerplate(pages: &mut [(usize, Extracted, String)]) {
    let mut sites: HashMap<usize, SiteBoilerplate> = HashMap::new();
    for (site, page, _) in pages.iter() {
        sites.entry(*site).or_default().observe(page);
    }
    for (site, page, location) in pages.iter_mut() {
        if let Some(boilerplate) = sites.get(site) {
            let removed = boilerplate.strip(page);
            if removed > 0 {
                tracing::debug!(location = %location, removed, "blocks repeated across the site removed");
            }
        }
    }
}

/// The document an extracted file becomes, under `id`, its source `location`: plain text
/// keeps no structure (it is chunked as it always was). Every door that takes files (the
/// CLI, HTTP uploads) makes its documents here.
pub fn extracted_document(id: String, location: String, extracted: Extracted) -> DocumentInput {
    let structure = (extracted.format != Format::Text).then_some(extracted.structure);
    DocumentInput {
        id,
        text: extracted.text,
        metadata: Map::new(),
        source: Some(location),
        structure,
        format: Some(extracted.format),
    }
}

/// A file received whole (an HTTP upload) read into the document `id`, with `metadata`:
/// extracted within `limits` on a thread of its own ([`crate::extract::extract`]; blocking),
/// its extraction warnings logged.
pub fn file_document(
    id: String,
    hint: &Hint,
    bytes: Vec<u8>,
    metadata: Map<String, Value>,
    limits: &ExtractLimits,
) -> Result<DocumentInput, extract::ExtractError> {
    let extracted = extract::extract(bytes, hint, limits)?;
    for warning in &extracted.warnings {
        tracing::warn!(id = %id, "{warning}");
    }
    let source = format!("upload:{}", hint.file_name.as_deref().unwrap_or(&id));
    let mut doc = extracted_document(id, source, extracted);
    doc.metadata = metadata;
    Ok(doc)
}

/// Reads standard input: JSON lines, a file of a format its content names, or text.
fn read_stdin(
    stdin: &mut impl Read,
    options: SourceOptions,
    out: &mut Collected,
) -> Result<(), SourceError> {
    let mut bytes = Vec::new();
    stdin
        .take(options.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| SourceError::Io {
            path: "stdin".into(),
            source,
        })?;
    if bytes.len() as u64 > options.max_file_bytes {
        out.skipped.push(skip(
            "stdin",
            &format!(
                "longer than {} bytes (raise --max-file-bytes)",
                options.max_file_bytes
            ),
        ));
        return Ok(());
    }
    if let Some(format) = extract::detect::sniff(&bytes) {
        match extract::extract_as(bytes, format, &options.limits) {
            Ok(e) => out
                .documents
                .push(extracted_document("stdin".into(), "stdin".into(), e)),
            Err(e) => out.skipped.push(skip("stdin", &e.to_string())),
        }
        return Ok(());
    }
    let text = String::from_utf8(bytes).map_err(|_| SourceError::StdinNotUtf8)?;
    if looks_like_jsonl(&text) {
        parse_jsonl(&text, "stdin", out);
    } else if text.trim().is_empty() {
        out.skipped.push(skip("stdin", "empty"));
    } else {
        out.documents
            .push(text_document("stdin".into(), text, "stdin"));
    }
    Ok(())
}

/// The file's bytes, or `None` when it is larger than `max` (checked before reading, and
/// again while reading, in case it grows). The file is opened without blocking and must be
/// a regular file once open (a path swapped for a FIFO after it was listed is refused).
fn read_capped(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK);
    }
    let file = open.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file: semdex reads regular files and directories only",
        ));
    }
    let len = meta.len();
    if len > max {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Moves documents that ingest would refuse, and repeats of an id, to `skipped`.
fn keep_valid_documents(out: &mut Collected) {
    let mut first_at: HashMap<String, String> = HashMap::new();
    let documents = std::mem::take(&mut out.documents);
    for doc in documents {
        let location = doc.source.clone().unwrap_or_else(|| doc.id.clone());
        if let Err(e) = ingest::validate(&doc) {
            out.skipped.push(skip(&location, &e.to_string()));
            continue;
        }
        if let Some(first) = first_at.get(&doc.id) {
            out.skipped.push(skip(
                &location,
                &format!("document id {:?} was already read from {first}", doc.id),
            ));
            continue;
        }
        first_at.insert(doc.id.clone(), location);
        out.documents.push(doc);
    }
}

fn text_document(id: String, text: String, source: &str) -> DocumentInput {
    DocumentInput {
        id,
        text,
        metadata: Map::new(),
        source: Some(source.to_string()),
        structure: None,
        format: None,
    }
}

fn looks_like_jsonl(text: &str) -> bool {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .is_some_and(|v| v.get("text").is_some_and(Value::is_string))
}

/// One document per line: `{"id"?: str|int, "text": str, "metadata"?: object}`.
fn parse_jsonl(text: &str, location: &str, out: &mut Collected) {
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{location}:{}", n + 1);
        match parse_line(line) {
            Ok((id, text, metadata)) => out.documents.push(DocumentInput {
                id: id.unwrap_or_else(|| format!("{location}#{}", n + 1)),
                text,
                metadata,
                source: Some(at),
                structure: None,
                format: None,
            }),
            Err(reason) => out.skipped.push(skip(&at, &reason)),
        }
    }
}

/// A JSON line's id (if given), text and metadata.
type ParsedLine = (Option<String>, String, Map<String, Value>);

fn parse_line(line: &str) -> Result<ParsedLine, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("not a JSON object".into());
    };
    let id = match obj.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err("\"id\" must be a string or a number".into()),
    };
    let text = match obj.remove("text") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(Value::String(_)) => return Err("\"text\" is empty".into()),
        _ => return Err("\"text\" (a string) is missing".into()),
    };
    let metadata = match obj.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("\"metadata\" must be an object".into()),
    };
    Ok((id, text, metadata))
}

fn skip(location: &str, reason: &str) -> Skipped {
    Skipped {
        location: location.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_directories_jsonl_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "alpha").unwrap();
        std::fs::write(root.join("sub/b.md"), "# beta").unwrap();
        std::fs::write(root.join("image.png"), [0u8, 159, 146, 150]).unwrap();
        std::fs::write(root.join("bad.txt"), [0xffu8, 0xfe]).unwrap();
        std::fs::write(root.join("empty.txt"), "  \n").unwrap();
        std::fs::write(
            root.join("docs.jsonl"),
            "{\"id\": \"x\", \"text\": \"ex\", \"metadata\": {\"k\": 1}}\n\n{\"id\": 7, \"text\": \"seven\"}\n{\"text\": \"anon\"}\nnot json\n{\"id\": \"y\"}\n",
        )
        .unwrap();
        let got = collect(&[root.to_path_buf()], std::io::empty()).unwrap();
        let ids: Vec<&str> = got.documents.iter().map(|d| d.id.as_str()).collect();
        let base = id_for_path(root);
        assert_eq!(
            ids,
            [
                format!("{base}/a.txt").as_str(),
                "x",
                "7",
                &format!("{base}/docs.jsonl#4"),
                &format!("{base}/sub/b.md")
            ]
        );
        assert_eq!(got.documents[1].metadata["k"], 1);
        assert_eq!(got.skipped.len(), 4, "{:?}", got.skipped);
        assert_eq!(got.ignored, 1, "image.png is passed over, not an error");
        assert!(got.skipped.iter().any(|s| s.reason.contains("UTF-8")));
        assert!(
            got.skipped
                .iter()
                .any(|s| s.location.ends_with("docs.jsonl:5"))
        );

        let stdin = collect(&[PathBuf::from("-")], "plain text on stdin".as_bytes()).unwrap();
        assert_eq!(stdin.documents[0].id, "stdin");
        let stdin = collect(
            &[PathBuf::from("-")],
            "{\"id\":\"s\",\"text\":\"t\"}\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(stdin.documents[0].id, "s");
        assert!(collect(&[root.join("missing.txt")], std::io::empty()).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_only_inside_the_named_paths() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "outside the root").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/inside.txt"), "inside the root").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        };
        link(&root.join("real"), "again");
        link(outside.path(), "out-dir");
        link(&outside.path().join("secret.txt"), "out-file.txt");
        link(Path::new("/"), "slash");

        let got = collect(std::slice::from_ref(&root), std::io::empty()).unwrap();
        let texts: Vec<&str> = got.documents.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(
            texts,
            ["inside the root", "inside the root"],
            "the inside link is followed, the outside ones are not"
        );
        let mut refused: Vec<&str> = got
            .skipped
            .iter()
            .map(|s| s.location.rsplit('/').next().unwrap())
            .collect();
        refused.sort_unstable();
        assert_eq!(
            refused,
            ["out-dir", "out-file.txt", "slash"],
            "{:?}",
            got.skipped
        );
        // A link to an ancestor ("/" is everyone's) is a loop walkdir reports itself.
        assert!(
            got.skipped
                .iter()
                .all(|s| s.reason.contains("--follow-links") || s.reason.contains("loop")),
            "{:?}",
            got.skipped
        );

        // Following "/" would walk the disk: check the option with the other links only.
        std::fs::remove_file(root.join("slash")).unwrap();
        let anywhere = collect_with(
            &[root],
            std::io::empty(),
            SourceOptions {
                follow_links_anywhere: true,
                ..SourceOptions::default()
            },
        )
        .unwrap();
        assert!(
            anywhere
                .documents
                .iter()
                .any(|d| d.text == "outside the root")
        );
    }

    #[test]
    fn large_files_and_bad_documents_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("big.txt"), "x".repeat(2_000)).unwrap();
        std::fs::write(root.join("small.txt"), "fine").unwrap();
        let long_id = "i".repeat(super::super::MAX_ID_BYTES + 1);
        std::fs::write(
            root.join("lines.jsonl"),
            format!(
                "{{\"id\": \"{long_id}\", \"text\": \"too long an id\"}}\n\
                 {{\"id\": \"dup\", \"text\": \"first\"}}\n\
                 {{\"id\": \"dup\", \"text\": \"second\"}}\n\
                 {{\"id\": \" \", \"text\": \"blank id\"}}\n\
                 {{\"id\": \"ok\", \"text\": \"good\"}}\n"
            ),
        )
        .unwrap();
        let options = SourceOptions {
            max_file_bytes: 1_000,
            ..SourceOptions::default()
        };
        let got = collect_with(&[root.to_path_buf()], std::io::empty(), options).unwrap();
        let ids: Vec<&str> = got.documents.iter().map(|d| d.id.as_str()).collect();
        let base = id_for_path(root);
        assert_eq!(ids, ["dup", "ok", &format!("{base}/small.txt")]);
        assert_eq!(
            got.documents[0].text, "first",
            "the first of a repeated id is kept"
        );
        let reasons: Vec<&str> = got.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("--max-file-bytes")));
        assert!(reasons.iter().any(|r| r.contains("limit is 512")));
        assert!(reasons.iter().any(|r| r.contains("already read from")));
        assert!(reasons.iter().any(|r| r.contains("must not be empty")));

        let stdin =
            collect_with(&[PathBuf::from("-")], "y".repeat(1_001).as_bytes(), options).unwrap();
        assert!(stdin.documents.is_empty());
        assert!(stdin.skipped[0].reason.contains("--max-file-bytes"));
    }
}
