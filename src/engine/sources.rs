//! Finding documents to ingest: text files, directories (recursive), JSON lines, stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::DocumentInput;

/// File extensions read as one plain-text document each.
pub const TEXT_EXTENSIONS: [&str; 4] = ["txt", "md", "markdown", "text"];
/// File extensions read as JSON lines, one document per line.
pub const JSONL_EXTENSIONS: [&str; 2] = ["jsonl", "ndjson"];

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
    /// Documents to ingest, in a stable order.
    pub documents: Vec<DocumentInput>,
    /// What was skipped, with reasons (for warnings).
    pub skipped: Vec<Skipped>,
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

/// Collects documents from `paths`: files, directories (walked recursively, in name order),
/// and `-` for `stdin` (JSON lines if it looks like them, else one text document).
pub fn collect(paths: &[PathBuf], mut stdin: impl Read) -> Result<Collected, SourceError> {
    let mut out = Collected::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|_| SourceError::StdinNotUtf8)?;
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
            let walker = walkdir::WalkDir::new(path)
                .follow_links(true)
                .sort_by_file_name();
            for entry in walker {
                match entry {
                    Ok(e) if e.file_type().is_file() => read_file(e.path(), &mut out),
                    Ok(_) => {}
                    Err(e) => out
                        .skipped
                        .push(skip(&path.display().to_string(), &e.to_string())),
                }
            }
        } else {
            read_file(path, &mut out);
        }
    }
    Ok(out)
}

/// A document id for a file: its path as given, with `/` separators.
pub fn id_for_path(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

fn read_file(path: &Path, out: &mut Collected) {
    let location = id_for_path(path);
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let is_text = TEXT_EXTENSIONS.contains(&ext.as_str());
    let is_jsonl = JSONL_EXTENSIONS.contains(&ext.as_str());
    if !is_text && !is_jsonl {
        out.skipped
            .push(skip(&location, "not a .txt, .md or .jsonl file"));
        return;
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
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
        assert_eq!(got.skipped.len(), 5, "{:?}", got.skipped);
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
}
