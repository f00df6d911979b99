//! Errors of the embedding stack.

use std::path::PathBuf;

/// Everything that can go wrong while loading the model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model folder lacks a file; the message says how to fetch the model.
    #[error(
        "model folder {dir} is missing {file}; fetch the model with ./models/fetch.sh (or point --model / SEMDEX_MODEL at a sentence-transformers folder)"
    )]
    MissingModelFile {
        /// The model folder that was searched.
        dir: PathBuf,
        /// The file that is not there, relative to `dir`.
        file: String,
    },
    /// A config file exists but cannot be read or parsed.
    #[error("model folder {dir}: cannot read {file}: {reason}")]
    BadModelFile {
        /// The model folder.
        dir: PathBuf,
        /// The offending file, relative to `dir`.
        file: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The model uses something this encoder does not implement.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The tokenizer failed on some input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The tensor library failed (shape bug, allocation failure).
    #[error("model forward pass: {0}")]
    Candle(#[from] candle_core::Error),
    /// Building the worker thread pool failed.
    #[error("thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
}

/// Result alias for the embedding stack.
pub type Result<T, E = EmbedError> = std::result::Result<T, E>;
