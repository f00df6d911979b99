//! Finding documents to ingest: text files, directories (recursive), JSON lines, stdin.
//!
//! Walking is bounded: symbolic links are followed only while they stay inside the paths the
//! caller named (a link to `/` does not walk the disk), files over a size cap are skipped
//! unread, and a file or line that cannot be used is reported and skipped without stopping
//! the others.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{DocumentInput, ingest};

/// File extensions read as one plain-text document each.
pub const TEXT_EXTENSIONS: [&str; 4] = ["txt", "md", "markdown", "text"];
/// File extensions read as JSON lines, one document per line.
pub const JSONL_EXTENSIONS: [&str; 2] = ["jsonl", "ndjson"];
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
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            follow_links_anywhere: false,
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

/// Collects documents from `paths`: files, directories (walked recursively, in name order),
/// and `-` for `stdin` (JSON lines if it looks like them, else one text document). Documents
/// that would fail ingest (an empty or over-long id, no text) and repeated ids (the first is
/// kept) are skipped with a reason, so that one bad entry does not stop the rest.
pub fn collect_with(
    paths: &[PathBuf],
    mut stdin: impl Read,
    options: SourceOptions,
) -> Result<Collected, SourceError> {
    let mut out = Collected::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            (&mut stdin)
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
                continue;
            }
            let text = String::from_utf8(bytes).map_err(|_| SourceError::StdinNotUtf8)?;
            if looks_like_jsonl(&text) {
                parse_jsonl(&text, "stdin", &mut out);
            } else if text.trim().is_empty() {
                out.skipped.push(skip("stdin", "empty"));
            } else {
                out.documents
                    .push(text_document("stdin".into(), text, "stdin"));
            }
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|source| SourceError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            walk(path, options, &mut out);
        } else {
            read_file(path, options, true, &mut out);
        }
    }
    keep_valid_documents(&mut out);
    Ok(out)
}

/// Reads the files under `root`, following links only inside it unless told otherwise.
fn walk(root: &Path, options: SourceOptions, out: &mut Collected) {
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
            Ok(e) if e.file_type().is_file() => read_file(e.path(), options, false, out),
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

/// A document id for a file: its path as given, with `/` separators.
pub fn id_for_path(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

/// Reads one file; `named` when the caller named it (a file of another kind is then an
/// error, not something passed over in a walk).
fn read_file(path: &Path, options: SourceOptions, named: bool, out: &mut Collected) {
    let location = id_for_path(path);
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let is_text = TEXT_EXTENSIONS.contains(&ext.as_str());
    let is_jsonl = JSONL_EXTENSIONS.contains(&ext.as_str());
    if !is_text && !is_jsonl {
        if named {
            out.skipped
                .push(skip(&location, "not a .txt, .md or .jsonl file"));
        } else {
            out.ignored += 1;
        }
        return;
    }
    let bytes = match read_capped(path, options.max_file_bytes) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return out.skipped.push(skip(
                &location,
                &format!(
                    "larger than {} bytes (raise --max-file-bytes)",
                    options.max_file_bytes
                ),
            ));
        }
        Err(e) => return out.skipped.push(skip(&location, &e.to_string())),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return out.skipped.push(skip(&location, "not valid UTF-8"));
    };
    if is_jsonl {
        parse_jsonl(&text, &location, out);
    } else if text.trim().is_empty() {
        out.skipped.push(skip(&location, "empty"));
    } else {
        out.documents
            .push(text_document(location.clone(), text, &location));
    }
}

/// The file's bytes, or `None` when it is larger than `max` (checked before reading, and
/// again while reading, in case it grows).
fn read_capped(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
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
