//! Plain text: stored exactly as it is, with no structure (the chunker treats it as semdex
//! always has).

use super::{ExtractError, Extracted, Format, Structure};

/// The UTF-8 text of `bytes`, or where it stops being UTF-8.
pub fn utf8(bytes: &[u8]) -> Result<&str, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| ExtractError::NotUtf8 {
        offset: e.valid_up_to(),
    })
}

/// A plain-text document.
pub fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    Ok(Extracted {
        format: Format::Text,
        text: utf8(bytes)?.to_string(),
        structure: Structure::default(),
        blocks: Vec::new(),
        warnings: Vec::new(),
    })
}
