//! Where `semdex serve` gets its API key: `--api-key` (env `SEMDEX_API_KEY`) or
//! `--api-key-file` (env `SEMDEX_API_KEY_FILE`), which keeps the key out of `ps` and shell
//! history.
//!
//! An empty key is refused rather than read as "no authentication": `--api-key "$KEY"` with
//! `KEY` unset, or an empty key file, would otherwise start an open server that its operator
//! believes is protected.

use std::path::Path;

use anyhow::{Context, bail};

/// The key to require, if any: from the flag, else from the file (its trailing newline
/// removed). Empty or whitespace-only keys are an error.
pub fn resolve(flag: Option<&str>, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Some(key) = flag {
        if key.trim().is_empty() {
            bail!(
                "--api-key (or SEMDEX_API_KEY) is set but empty, which would leave the server \
                 open; give a key, or leave the option out to run without one"
            );
        }
        return Ok(Some(key.to_string()));
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the API key file {}", file.display()))?;
    let key = text.trim_end_matches(['\n', '\r']);
    if key.trim().is_empty() {
        bail!(
            "the API key file {} is empty, which would leave the server open",
            file.display()
        );
    }
    if key.contains(['\n', '\r']) {
        bail!(
            "the API key file {} has more than one line; it must hold the key alone",
            file.display()
        );
    }
    Ok(Some(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_flag_or_the_file_and_are_never_empty() {
        assert_eq!(resolve(None, None).unwrap(), None);
        assert_eq!(resolve(Some("k"), None).unwrap().as_deref(), Some("k"));
        for empty in ["", "  "] {
            let err = resolve(Some(empty), None).unwrap_err().to_string();
            assert!(err.contains("empty"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(
            resolve(None, Some(&file)).unwrap().as_deref(),
            Some("s3cret")
        );
        std::fs::write(&file, "s3cret\r\n").unwrap();
        assert_eq!(
            resolve(None, Some(&file)).unwrap().as_deref(),
            Some("s3cret")
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(resolve(None, Some(&file)).is_err());
        std::fs::write(&file, "a\nb\n").unwrap();
        assert!(resolve(None, Some(&file)).is_err());
        assert!(resolve(None, Some(&dir.path().join("missing"))).is_err());
    }
}
