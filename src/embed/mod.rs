//! Sentence embeddings: tokenizer, transformer, pooling, normalisation.
//!
//! [`Encoder`] is the one entry point. It reproduces sentence-transformers' pipeline for a
//! model folder (same truncation, pooling and normalisation, cosine ≥ 0.9999 with the Python
//! library), sorts inputs by length and packs them into batches under a token budget, and runs
//! the transformer on its own thread pool.

mod backend;
mod candle_bert;
mod config;
mod error;
pub mod kernels;
pub(crate) use kernels::int8_best_matches;
mod packed_bert;
mod pooling;
mod tokenize;
mod weights;
mod window;
mod wordpiece;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use backend::{Backend, Output};
pub use candle_bert::CandleBert;
pub use config::{BertConfig, ModelConfig};
pub use error::{EmbedError, Result};
pub use kernels::KernelPath;
pub use packed_bert::PackedBert;
pub use pooling::{Pooling, l2_normalize};
pub use tokenize::{TextTokenizer, TokenizedText};
pub use window::WindowEncoding;

/// The default model folder, relative to the working directory.
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// Which transformer implementation runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// Packed sequences, no padding: the fast default.
    #[default]
    Packed,
    /// candle-transformers' stock `BertModel` on padded batches: the baseline.
    Candle,
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "packed" => Ok(Self::Packed),
            "candle" => Ok(Self::Candle),
            other => Err(format!(
                "unknown backend {other:?}; expected \"packed\" or \"candle\""
            )),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Packed => "packed",
            Self::Candle => "candle",
        })
    }
}

/// The number format of the dense layers' weights and inputs, which decides the vectors:
/// vectors of different precisions must not be mixed in one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// 32-bit floats throughout: the vectors sentence-transformers computes (cosine ≥ 0.9999).
    #[default]
    F32,
    /// int8 weights (per output channel) and activations (per token) in the dense layers,
    /// int32 sums; layer norm, softmax, GELU and pooling stay f32. Faster where the CPU has
    /// int8 dot products (VNNI, AMX); vectors within cosine 0.99 of f32's.
    Int8,
}

impl Precision {
    /// The name used on the command line, in `/info` and in stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
        }
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "int8" => Ok(Self::Int8),
            other => Err(format!(
                "unknown precision {other:?}; expected \"f32\" or \"int8\""
            )),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the encoder runs; every field has a measured default.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    /// The transformer implementation.
    pub backend: BackendKind,
    /// The number format of the dense layers (the packed backend only).
    pub precision: Precision,
    /// The kernel path; `None` takes `SEMDEX_KERNELS`, else the widest the CPU supports.
    pub kernels: Option<KernelPath>,
    /// Worker threads for the forward pass; `None` uses every available core.
    pub threads: Option<usize>,
    /// Most tokens one forward pass may hold (padding included for padded backends). The
    /// server's batching queue gathers concurrent requests up to this same budget: one
    /// setting, so that a gathered batch is one forward pass.
    pub max_batch_tokens: usize,
    /// Most sequences in one forward pass.
    pub max_batch_size: usize,
}

/// Default token budget of one forward pass: 8 passages of 256 tokens, or 200 short queries.
/// The packed backend's throughput is flat from here to 15k tokens (benches/README.md), and a
/// larger budget only makes the first request of a batch wait longer.
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 2048;

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            backend: BackendKind::default(),
            precision: Precision::default(),
            kernels: None,
            threads: None,
            max_batch_tokens: DEFAULT_MAX_BATCH_TOKENS,
            max_batch_size: 64,
        }
    }
}

/// One embedded input, in both forms callers need: what the model's pooling produced and the
/// same direction at unit length. Which one a model's own pipeline returns depends on whether
/// it ends with a `Normalize` module ([`Encoder::model_output`]); search and cosine similarity
/// always use the unit vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The pooled vector, never normalised.
    pub raw: Vec<f32>,
    /// `raw` scaled to length 1 (a zero vector stays zero).
    pub unit: Vec<f32>,
    /// Tokens in the whole input, special tokens included, before truncation.
    pub tokens: usize,
    /// Whether the input was longer than the model's window and was cut.
    pub truncated: bool,
    /// Every token's final hidden state, when asked for (late interaction).
    pub token_states: Option<TokenStates>,
}

/// The final hidden state of each token of an input: what late interaction (MaxSim) scores.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenStates {
    /// The token ids, special tokens included, as the model saw them (after truncation).
    pub ids: Vec<u32>,
    /// One row of `dimension` floats per id, row-major.
    pub states: Vec<f32>,
}

impl Embedding {
    /// Builds both forms from a pooled vector.
    pub fn from_pooled(raw: Vec<f32>, tokens: usize, truncated: bool) -> Self {
        let mut unit = raw.clone();
        l2_normalize(&mut unit);
        Self {
            raw,
            unit,
            tokens,
            truncated,
            token_states: None,
        }
    }

    /// The L2 norm of the raw vector.
    pub fn norm(&self) -> f32 {
        self.raw.iter().map(|v| v * v).sum::<f32>().sqrt()
    }
}

/// A loaded sentence-transformer: tokenizer, transformer and pooling, ready to embed.
pub struct Encoder {
    config: ModelConfig,
    tokenizer: TextTokenizer,
    backend: Box<dyn Backend>,
    pool: rayon::ThreadPool,
    options: EncoderOptions,
    kernel_path: KernelPath,
}

impl Encoder {
    /// Loads a sentence-transformers folder; a missing or broken folder is one clear error.
    pub fn load(dir: &Path, options: EncoderOptions) -> Result<Self> {
        let config = ModelConfig::load(dir)?;
        let tokenizer = TextTokenizer::load(dir, config.max_seq_length)?;
        let kernel_path = match options.kernels {
            Some(path) => path,
            None => KernelPath::from_env().map_err(EmbedError::Unsupported)?,
        };
        let backend: Box<dyn Backend> = match (options.backend, options.precision) {
            (BackendKind::Packed, precision) => {
                Box::new(PackedBert::load(&config, kernel_path, precision)?)
            }
            (BackendKind::Candle, Precision::F32) => Box::new(CandleBert::load(&config)?),
            (BackendKind::Candle, precision) => {
                return Err(EmbedError::Unsupported(format!(
                    "{precision} precision runs on the packed backend only, not on candle"
                )));
            }
        };
        let threads = options
            .threads
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("semdex-encoder-{i}"))
            .build()?;
        Ok(Self {
            config,
            tokenizer,
            backend,
            pool,
            options,
            kernel_path,
        })
    }

    /// The number format the vectors were computed in; vectors of other precisions must not
    /// share an index with this encoder's.
    pub fn precision(&self) -> Precision {
        self.options.precision
    }

    /// The kernel path the packed backend runs on (the candle backend runs candle's own
    /// kernels, and reports its name instead: see [`Encoder::kernels_name`]).
    pub fn kernel_path(&self) -> KernelPath {
        self.kernel_path
    }

    /// What runs the forward pass's kernels, for `/info` and benchmarks: a kernel path's
    /// name, or "candle".
    pub fn kernels_name(&self) -> &'static str {
        match self.options.backend {
            BackendKind::Packed => self.kernel_path.as_str(),
            BackendKind::Candle => "candle",
        }
    }

    /// The model's configuration (name, dimension, window, pooling, fingerprint).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Length of the vectors this encoder produces.
    pub fn dimension(&self) -> usize {
        self.config.dimension()
    }

    /// The model's window in tokens, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.tokenizer.max_len()
    }

    /// The options the encoder runs with.
    pub fn options(&self) -> &EncoderOptions {
        &self.options
    }

    /// What the model's own sentence-transformers pipeline returns for `embedding`: the unit
    /// vector when the pipeline ends with `Normalize`, the raw pooled vector otherwise.
    pub fn model_output<'a>(&self, embedding: &'a Embedding) -> &'a [f32] {
        if self.config.normalize {
            &embedding.unit
        } else {
            &embedding.raw
        }
    }

    /// The name of the transformer implementation in use.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Threads the forward pass runs on.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The tokenizer, for callers that size text in model tokens (the chunker, the API).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Tokenizes inputs for [`Encoder::embed_tokenized`].
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<TokenizedText>> {
        self.pool.install(|| self.tokenizer.encode_batch(texts))
    }

    /// Embeds texts; the result is in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        let tokenized = self.tokenize(texts)?;
        self.embed_tokenized(&tokenized)
    }

    /// Embeds one text.
    pub fn embed_one(&self, text: &str) -> Result<Embedding> {
        let mut out = self.embed(&[text])?;
        Ok(out.remove(0))
    }

    /// Embeds texts and keeps every token's final state too (for late interaction).
    pub fn embed_with_tokens(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        let tokenized = self.tokenize(texts)?;
        self.embed_tokenized_with(&tokenized, true)
    }

    /// Embeds already tokenized inputs, in input order. Inputs are sorted by length and packed
    /// into batches under the token budget, so that little work goes to padding.
    pub fn embed_tokenized(&self, inputs: &[TokenizedText]) -> Result<Vec<Embedding>> {
        self.embed_tokenized_with(inputs, false)
    }

    /// [`Encoder::embed_tokenized`], keeping each input's token states when `keep_tokens`.
    pub fn embed_tokenized_with(
        &self,
        inputs: &[TokenizedText],
        keep_tokens: bool,
    ) -> Result<Vec<Embedding>> {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| inputs[i].ids.len());
        let mut outputs: Vec<Option<Output>> = vec![None; inputs.len()];
        for batch in self.plan_batches(&order, inputs) {
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| inputs[i].ids.as_slice()).collect();
            let done = self
                .pool
                .install(|| self.backend.embed(&seqs, self.config.pooling, keep_tokens))?;
            for (&i, output) in batch.iter().zip(done) {
                outputs[i] = Some(output);
            }
        }
        Ok(inputs
            .iter()
            .zip(outputs)
            .map(|(input, output)| {
                let (raw, states) = match output {
                    Some(o) => (o.pooled, o.tokens),
                    None => (vec![0.0; self.dimension()], None),
                };
                let mut embedding = Embedding::from_pooled(raw, input.full_len, input.truncated());
                embedding.token_states = states.map(|states| TokenStates {
                    ids: input.ids.clone(),
                    states,
                });
                embedding
            })
            .collect())
    }

    /// Splits length-sorted inputs into batches that respect the token and count budgets.
    fn plan_batches<'a>(&self, order: &'a [usize], inputs: &[TokenizedText]) -> Vec<&'a [usize]> {
        let pads = self.backend.pads_batches();
        let mut batches = Vec::new();
        let mut start = 0;
        let mut tokens = 0;
        for (pos, &i) in order.iter().enumerate() {
            let len = inputs[i].ids.len();
            let count = pos - start + 1;
            // Sorted ascending, so the newest input is the longest of a padded batch.
            let cost = if pads { len * count } else { tokens + len };
            if count > 1
                && (cost > self.options.max_batch_tokens || count > self.options.max_batch_size)
            {
                batches.push(&order[start..pos]);
                start = pos;
                tokens = len;
            } else {
                tokens += len;
            }
        }
        if start < order.len() {
            batches.push(&order[start..]);
        }
        batches
    }
}
