//! The files of a sentence-transformers model folder, read and validated in one place.
//!
//! Nothing about the model is hard-coded: the sequence limit, the pooling mode and whether the
//! pipeline normalises come from the folder's own `sentence_bert_config.json`,
//! `modules.json` and `1_Pooling/config.json`, exactly as the Python library reads them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{EmbedError, Result};
use super::pooling::Pooling;

/// The BERT hyper-parameters, as `config.json` states them.
pub type BertConfig = candle_transformers::models::bert::Config;

/// Everything needed to build an encoder from a model folder.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The folder the model was read from.
    pub dir: PathBuf,
    /// A short human name (the folder's name), used in logs and API responses.
    pub name: String,
    /// Transformer hyper-parameters.
    pub bert: BertConfig,
    /// Longest input, in tokens including `[CLS]` and `[SEP]`, the pipeline keeps.
    pub max_seq_length: usize,
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Whether the pipeline ends with L2 normalisation (a `Normalize` module).
    pub normalize: bool,
    /// A fingerprint of the configuration and weights layout; stores compare it to refuse
    /// vectors made by another model.
    pub fingerprint: String,
}

/// Files that must exist in a usable model folder.
const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

impl ModelConfig {
    /// Reads and checks a model folder; fails with one clear error naming what is missing.
    pub fn load(dir: &Path) -> Result<Self> {
        for file in REQUIRED {
            if !dir.join(file).is_file() {
                return Err(EmbedError::MissingModelFile {
                    dir: dir.to_path_buf(),
                    file: file.to_string(),
                });
            }
        }
        let config_text = read(dir, "config.json")?;
        let bert: BertConfig = parse(dir, "config.json", &config_text)?;
        if !bert.hidden_size.is_multiple_of(bert.num_attention_heads) {
            return Err(EmbedError::Unsupported(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                bert.hidden_size, bert.num_attention_heads
            )));
        }

        // modules.json names the pipeline; without it (a bare transformer folder) the
        // sentence-transformers defaults apply: mean pooling, no normalisation.
        let modules: Vec<ModuleEntry> = match optional(dir, "modules.json")? {
            Some(text) => parse(dir, "modules.json", &text)?,
            None => Vec::new(),
        };
        let normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
        let pooling_path = modules
            .iter()
            .find(|m| m.kind.ends_with(".Pooling"))
            .map(|m| m.path.clone())
            .unwrap_or_else(|| "1_Pooling".to_string());
        let pooling_file = format!("{pooling_path}/config.json");
        let pooling = match optional(dir, &pooling_file)? {
            Some(text) => pooling_from(parse(dir, &pooling_file, &text)?, dir, &pooling_file)?,
            None => Pooling::Mean,
        };

        let sbert_text = optional(dir, "sentence_bert_config.json")?;
        let declared = match &sbert_text {
            Some(text) => {
                let sbert: SentenceBertConfig = parse(dir, "sentence_bert_config.json", text)?;
                sbert.max_seq_length
            }
            None => None,
        };
        let max_seq_length = declared
            .unwrap_or(bert.max_position_embeddings)
            .min(bert.max_position_embeddings);

        let fingerprint = fingerprint(
            dir,
            &[
                config_text.as_bytes(),
                sbert_text.as_deref().unwrap_or("").as_bytes(),
                format!("{pooling:?}/{normalize}").as_bytes(),
            ],
        )?;
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        Ok(Self {
            dir: dir.to_path_buf(),
            name,
            bert,
            max_seq_length,
            pooling,
            normalize,
            fingerprint,
        })
    }

    /// Length of the output vectors.
    pub fn dimension(&self) -> usize {
        self.bert.hidden_size
    }
}

fn pooling_from(cfg: PoolingConfig, dir: &Path, file: &str) -> Result<Pooling> {
    let modes = [
        (cfg.pooling_mode_cls_token, Pooling::Cls),
        (cfg.pooling_mode_mean_tokens, Pooling::Mean),
        (cfg.pooling_mode_max_tokens, Pooling::Max),
        (cfg.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
    ];
    let chosen: Vec<Pooling> = modes
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, p)| *p)
        .collect();
    match chosen.as_slice() {
        [one] => Ok(*one),
        [] => Err(bad(dir, file, "no pooling mode is enabled")),
        _ => Err(EmbedError::Unsupported(format!(
            "{file} enables several pooling modes at once ({chosen:?}); only one is supported"
        ))),
    }
}

/// SHA-256 over the configuration and the full weights file, so that two models with the same
/// shape but other weights (a fine-tune) are told apart. The file is streamed, not read whole:
/// about 60 ms for MiniLM's 90 MB, with no 90 MB buffer left behind in the heap.
fn fingerprint(dir: &Path, parts: &[&[u8]]) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let fail = |e: std::io::Error| bad(dir, "model.safetensors", &e.to_string());
    let mut file = std::fs::File::open(dir.join("model.safetensors")).map_err(fail)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Ok(digest.iter().take(12).map(|b| format!("{b:02x}")).collect())
}

fn read(dir: &Path, file: &str) -> Result<String> {
    std::fs::read_to_string(dir.join(file)).map_err(|e| bad(dir, file, &e.to_string()))
}

fn optional(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    if path.is_file() {
        read(dir, file).map(Some)
    } else {
        Ok(None)
    }
}

fn parse<T: serde::de::DeserializeOwned>(dir: &Path, file: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| bad(dir, file, &e.to_string()))
}

fn bad(dir: &Path, file: &str, reason: &str) -> EmbedError {
    EmbedError::BadModelFile {
        dir: dir.to_path_buf(),
        file: file.to_string(),
        reason: reason.to_string(),
    }
}
