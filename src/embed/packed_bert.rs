//! The packed BERT: every token of a batch in one matrix, no padding, fused kernels.
//!
//! Linear layers — nearly all of the FLOPs — run once over the `[total_tokens, hidden]` matrix
//! of the whole batch, so a batch costs the sum of its lengths, not `count × longest`: by the
//! panel kernels of the encoder's [`KernelPath`] (f32), by its int8 kernels (int8 precision),
//! or by the `gemm` crate on CPUs without AVX2. Bias, residual and activation are fused into
//! the passes around each product ([`super::kernels`]), attention runs per (sequence, head)
//! with no copies of Q, K or V, and the activations live in one reused workspace instead of a
//! fresh allocation per op. Weights are read from the memory-mapped safetensors file straight
//! into these layouts ([`super::weights`]); int8 weights are quantised from them at load.

use gemm::{Parallelism, gemm};
use parking_lot::Mutex;
use rayon::prelude::*;

use super::Precision;
use super::backend::{Backend, Output};
use super::config::ModelConfig;
use super::error::{EmbedError, Result};
use super::kernels::bf16x3::{SplitRows, SplitWeights};
use super::kernels::int8::{Int8Kernel, Int8Weights, QuantizedRows};
use super::kernels::matmul::PanelWeights;
use super::kernels::{self, KernelPath, Width};
use super::pooling::Pooling;
use super::weights::{Table, WeightFile};

/// Below this many multiply-adds a GEMM runs on one thread (fork/join costs more).
const PARALLEL_GEMM_FROM: usize = 1 << 20;
/// Below this many floats an element-wise pass runs on one thread.
const PARALLEL_ROWS_FROM: usize = 1 << 15;

/// A dense layer.
struct Linear {
    weights: LinearWeights,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

/// A dense layer's weight in the layout its matrix kernel reads, kept once (not both: the
/// weights are most of the model's memory).
enum LinearWeights {
    /// Panels for the AVX2 / AVX-512 kernels, which stream each weight once per block of
    /// tokens; they beat gemm at every batch size measured, from one short query (gemm
    /// repacked the whole weight per call: ~60% of a short query's time) to 64 passages of
    /// 240 tokens.
    Panels(PanelWeights),
    /// `[in, out]` row-major, the column-major operand gemm's micro-kernel reads directly; for
    /// CPUs without AVX2/FMA.
    Transposed(Vec<f32>),
    /// int8 codes per output channel, for int8 precision.
    Int8(Int8Weights),
    /// Two bf16 halves, for f32 on AMX tiles ([`kernels::bf16x3`]): the products of three
    /// bf16 tile multiplications keep 16 significant bits. Sequences of fewer than
    /// [`TILES_FROM_TOKENS`] tokens (a query) run on the AVX-512 panels, which answer them
    /// sooner (1.6–1.8 ms against 2.2 ms for a short query, measured).
    Split {
        split: SplitWeights,
        panels: PanelWeights,
    },
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections stacked into one `[3·hidden, hidden]` layer.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

/// Activations of one forward pass, reused between calls.
#[derive(Default)]
struct Workspace {
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    intermediate: Vec<f32>,
    /// The current dense layer's input, as its kernel reads it.
    input: LayerInput,
}

/// Fewest tokens of a sequence for its rows to run on AMX bf16 tiles; shorter sequences run
/// on the AVX-512 panels.
const TILES_FROM_TOKENS: usize = 48;

/// A dense layer's input re-coded for its kernel: quantised (int8 precision) or split into
/// two bf16 halves (f32 on AMX tiles). Reused from layer to layer.
#[derive(Default)]
struct LayerInput {
    quantized: QuantizedRows,
    split: SplitRows,
    /// Runs of rows by kernel for split layers: `(rows, on tiles)`, in row order. Each
    /// sequence runs on the kernel its own length picks, so that its vector does not depend
    /// on what it is batched with.
    runs: Vec<(std::ops::Range<usize>, bool)>,
}

impl LayerInput {
    /// Groups the rows of `spans` (start, length) into runs of sequences that take the same
    /// kernel.
    fn plan_runs(&mut self, spans: &[(usize, usize)]) {
        self.runs.clear();
        for &(start, len) in spans {
            let tiles = len >= TILES_FROM_TOKENS;
            match self.runs.last_mut() {
                Some((rows, on_tiles)) if *on_tiles == tiles && rows.end == start => {
                    rows.end = start + len
                }
                _ => self.runs.push((start..start + len, tiles)),
            }
        }
    }
}

/// BERT over packed sequences with fused CPU kernels.
pub struct PackedBert {
    /// Read in place from the mapped weights file when possible.
    word_embeddings: Table,
    position_embeddings: Vec<f32>,
    token_type_embedding: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
    path: KernelPath,
    precision: Precision,
    workspace: Mutex<Workspace>,
}

/// Builds the forward pass's layers from the weights file.
struct Loader<'a> {
    file: &'a WeightFile,
    path: KernelPath,
    /// f32 layers as two bf16 halves on AMX tiles.
    split: bool,
}

impl Loader<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.file.floats(name, shape)
    }

    /// A layer whose checkpoint weight is `[out, in]`; several stacked along `out`; int8
    /// codes when `int8`.
    fn linear(
        &self,
        names: &[String],
        inputs: usize,
        outputs: usize,
        int8: bool,
    ) -> Result<Linear> {
        let total = outputs * names.len();
        let mut stacked = Vec::with_capacity(inputs * total);
        let mut bias = Vec::with_capacity(total);
        for name in names {
            stacked.extend(self.get(&format!("{name}.weight"), &[outputs, inputs])?);
            bias.extend(self.get(&format!("{name}.bias"), &[outputs])?);
        }
        let weights = if int8 {
            LinearWeights::Int8(Int8Weights::quantize(&stacked, inputs, total))
        } else {
            let mut weight_t = vec![0.0f32; inputs * total];
            for o in 0..total {
                for i in 0..inputs {
                    weight_t[i * total + o] = stacked[o * inputs + i];
                }
            }
            match self.path.width() {
                width if self.split => LinearWeights::Split {
                    split: SplitWeights::pack(&weight_t, inputs, total),
                    panels: PanelWeights::pack(width, &weight_t, inputs, total),
                },
                Width::Portable => LinearWeights::Transposed(weight_t),
                width => LinearWeights::Panels(PanelWeights::pack(width, &weight_t, inputs, total)),
            }
        };
        Ok(Linear {
            weights,
            bias,
            inputs,
            outputs: total,
        })
    }

    fn norm(&self, name: &str, width: usize) -> Result<Norm> {
        Ok(Norm {
            weight: self.get(&format!("{name}.weight"), &[width])?,
            bias: self.get(&format!("{name}.bias"), &[width])?,
        })
    }
}

impl PackedBert {
    /// Loads the weights of `config.dir` for kernel path `path` (which the CPU must support)
    /// at `precision`; int8 weights are quantised here, from the same file.
    pub fn load(config: &ModelConfig, path: KernelPath, precision: Precision) -> Result<Self> {
        if !path.is_supported() {
            return Err(EmbedError::Unsupported(format!(
                "this CPU cannot run the {path} kernels"
            )));
        }
        let file = WeightFile::open(
            &config.dir.join("model.safetensors"),
            "embeddings.word_embeddings.weight",
        )?;
        let w = Loader {
            file: &file,
            path,
            split: kernels::bf16x3::available(path),
        };
        // Every dense layer runs in int8 at int8 precision: keeping any one of them in f32
        // (benches/README.md, measured per layer) gained little quality for its cost.
        let int8 = precision == Precision::Int8;
        let b = &config.bert;
        let (h, i) = (b.hidden_size, b.intermediate_size);
        if b.hidden_act != candle_transformers::models::bert::HiddenAct::Gelu {
            return Err(EmbedError::Unsupported(format!(
                "hidden_act {:?}: the packed backend implements the exact GELU only (use --backend candle)",
                b.hidden_act
            )));
        }
        let mut layers = Vec::with_capacity(b.num_hidden_layers);
        for n in 0..b.num_hidden_layers {
            let p = format!("encoder.layer.{n}.");
            let qkv = ["query", "key", "value"].map(|m| format!("{p}attention.self.{m}"));
            layers.push(Layer {
                qkv: w.linear(&qkv, h, h, int8)?,
                attn_out: w.linear(&[format!("{p}attention.output.dense")], h, h, int8)?,
                attn_norm: w.norm(&format!("{p}attention.output.LayerNorm"), h)?,
                up: w.linear(&[format!("{p}intermediate.dense")], h, i, int8)?,
                down: w.linear(&[format!("{p}output.dense")], i, h, int8)?,
                out_norm: w.norm(&format!("{p}output.LayerNorm"), h)?,
            });
        }
        let token_types = w.get(
            "embeddings.token_type_embeddings.weight",
            &[b.type_vocab_size, h],
        )?;
        let bert = Self {
            word_embeddings: file.table("embeddings.word_embeddings.weight", b.vocab_size, h)?,
            position_embeddings: w.get(
                "embeddings.position_embeddings.weight",
                &[b.max_position_embeddings, h],
            )?,
            token_type_embedding: token_types[..h].to_vec(),
            embedding_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            hidden: h,
            heads: b.num_attention_heads,
            intermediate: i,
            vocab: b.vocab_size,
            max_positions: b.max_position_embeddings,
            eps: b.layer_norm_eps as f32,
            path,
            precision,
            workspace: Mutex::new(Workspace::default()),
        };
        file.release_pages();
        Ok(bert)
    }

    /// Token, position and segment embeddings, summed and normalised, into `out`.
    fn embed_tokens(&self, batch: &[&[u32]], out: &mut [f32]) -> Result<()> {
        let h = self.hidden;
        let mut row = 0;
        for seq in batch {
            for (position, &id) in seq.iter().enumerate() {
                let dst = &mut out[row * h..(row + 1) * h];
                let word = self.word_embeddings.row(id as usize).ok_or_else(|| {
                    EmbedError::Tokenizer(format!("token id {id} is outside the vocabulary"))
                })?;
                let pos = &self.position_embeddings[position * h..(position + 1) * h];
                for (((d, w), p), t) in dst
                    .iter_mut()
                    .zip(word)
                    .zip(pos)
                    .zip(&self.token_type_embedding)
                {
                    *d = w + p + t;
                }
                row += 1;
            }
        }
        let norm = &self.embedding_norm;
        let width = self.path.width();
        for_rows(out, h, |rows| {
            kernels::math::layer_norm_rows(width, rows, &norm.weight, &norm.bias, self.eps)
        });
        Ok(())
    }

    /// The kernel path the forward pass runs on.
    pub fn kernel_path(&self) -> KernelPath {
        self.path
    }

    /// The precision of the dense layers.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// `dst (+)= x · Wᵀ` for `rows` rows: accumulates into `dst` when `accumulate`, else
    /// overwrites; int8 and split layers re-code `x` into `input` first.
    fn matmul(
        &self,
        input: &mut LayerInput,
        dst: &mut [f32],
        x: &[f32],
        layer: &Linear,
        rows: usize,
        accumulate: bool,
    ) {
        match &layer.weights {
            LinearWeights::Panels(panels) => {
                kernels::matmul::panel_matmul(dst, x, panels, rows, accumulate)
            }
            LinearWeights::Int8(weights) => {
                let kernel = Int8Kernel::of(self.path);
                let quantized = &mut input.quantized;
                quantized.quantize(self.path.width(), kernel, x, rows, layer.inputs);
                kernels::int8::int8_matmul(kernel, dst, quantized, weights, accumulate);
            }
            LinearWeights::Split { split, panels } => {
                debug_assert_eq!(input.runs.last().map_or(0, |r| r.0.end), rows);
                for (run, tiles) in &input.runs {
                    let x = &x[run.start * layer.inputs..run.end * layer.inputs];
                    let dst = &mut dst[run.start * layer.outputs..run.end * layer.outputs];
                    if *tiles {
                        kernels::bf16x3::bf16x3_matmul(
                            self.path,
                            dst,
                            x,
                            split,
                            run.len(),
                            accumulate,
                            &mut input.split,
                        )
                    } else {
                        kernels::matmul::panel_matmul(dst, x, panels, run.len(), accumulate)
                    }
                }
            }
            LinearWeights::Transposed(weight_t) => {
                gemm_matmul(dst, x, weight_t, layer, rows, accumulate)
            }
        }
    }

    /// Multi-head self-attention of each sequence over its own tokens, from the fused
    /// `[tokens, 3·hidden]` projections into `context` (`[tokens, hidden]`).
    fn attention(&self, qkv: &[f32], context: &mut [f32], spans: &[(usize, usize)]) {
        let h = self.hidden;
        let stride = 3 * h;
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let longest = spans.iter().map(|s| s.1).max().unwrap_or(0);
        // Per task: the scores, then the transposed keys.
        let scratch = longest * longest + head_dim * longest;
        let mut pairs: Vec<(usize, usize, usize)> = spans
            .iter()
            .flat_map(|&(start, len)| (0..self.heads).map(move |head| (start, len, head)))
            .collect();
        // Longest first, so that the last tasks to start are short ones.
        pairs.sort_by_key(|p| std::cmp::Reverse(p.1));
        let out = kernels::Shared(context.as_mut_ptr());
        let width = self.path.width();
        let run = |scratch: &mut Vec<f32>, &(start, len, head): &(usize, usize, usize)| {
            let (scores, keys_t) = scratch.split_at_mut(longest * longest);
            let scores = &mut scores[..len * len];
            // SAFETY: every pointer stays inside `qkv` (rows start..start+len, columns of
            // one head) or inside `context` (the same rows, this head's columns); no two
            // tasks write the same element of `context`.
            unsafe {
                let q = qkv.as_ptr().add(start * stride + head * head_dim);
                let k = q.add(h);
                let v = q.add(2 * h);
                let dst = out.get().add(start * h + head * head_dim);
                if width != Width::Portable {
                    // scores = Q · Kᵀ, with Kᵀ copied into `keys_t` ([head_dim, len]) so that
                    // the kernel reads its rows contiguously.
                    for j in 0..len {
                        for d in 0..head_dim {
                            keys_t[d * len + j] = *k.add(j * stride + d);
                        }
                    }
                    kernels::matmul::strided_matmul(
                        width,
                        scores.as_mut_ptr(),
                        len,
                        q,
                        stride,
                        keys_t.as_ptr(),
                        len,
                        len,
                        head_dim,
                        len,
                    );
                    kernels::math::softmax_rows(width, scores, len, scale);
                    // context = softmax(scores) · V, written into this head's columns
                    kernels::matmul::strided_matmul(
                        width,
                        dst,
                        h,
                        scores.as_ptr(),
                        len,
                        v,
                        stride,
                        len,
                        len,
                        head_dim,
                    );
                    return;
                }
                // scores = Q · Kᵀ (K read transposed through its strides)
                let q = Strided {
                    ptr: q,
                    row: stride,
                    col: 1,
                };
                let k_t = Strided {
                    ptr: k,
                    row: 1,
                    col: stride,
                };
                matmul_strided(
                    len,
                    len,
                    head_dim,
                    scores.as_mut_ptr(),
                    len,
                    q,
                    k_t,
                    false,
                    Parallelism::None,
                );
                kernels::math::softmax_rows(width, scores, len, scale);
                // context = softmax(scores) · V, written into this head's columns
                let probs = Strided {
                    ptr: scores.as_ptr(),
                    row: len,
                    col: 1,
                };
                let v = Strided {
                    ptr: v,
                    row: stride,
                    col: 1,
                };
                matmul_strided(
                    len,
                    head_dim,
                    len,
                    dst,
                    h,
                    probs,
                    v,
                    false,
                    Parallelism::None,
                );
            }
        };
        if pairs.len() > 1 && rayon::current_num_threads() > 1 {
            pairs
                .par_iter()
                .for_each(|p| with_scratch(scratch, |buffer| run(buffer, p)));
        } else {
            with_scratch(scratch, |buffer| pairs.iter().for_each(|p| run(buffer, p)));
        }
    }

    /// `out = LayerNorm(residual + input·Wᵀ + b)`, the closing step of both halves of a layer
    /// (attention output and feed-forward): residual and bias go into `out` first, so the
    /// matrix product accumulates onto them in place.
    #[allow(clippy::too_many_arguments)]
    fn residual_dense_norm(
        &self,
        layer_input: &mut LayerInput,
        out: &mut [f32],
        residual: &[f32],
        input: &[f32],
        dense: &Linear,
        norm: &Norm,
    ) {
        let h = self.hidden;
        let tokens = out.len() / h;
        let width = self.path.width();
        for_row_pairs(out, h, residual, h, |dst, src| {
            for (d, s) in dst.chunks_exact_mut(h).zip(src.chunks_exact(h)) {
                kernels::math::add_into(width, d, s, &dense.bias);
            }
        });
        self.matmul(layer_input, out, input, dense, tokens, true);
        for_rows(out, h, |rows| {
            kernels::math::layer_norm_rows(width, rows, &norm.weight, &norm.bias, self.eps)
        });
    }
}

/// `dst (+)= x · Wᵀ` by the gemm crate, for CPUs without AVX2.
fn gemm_matmul(
    dst: &mut [f32],
    x: &[f32],
    weight_t: &[f32],
    layer: &Linear,
    rows: usize,
    accumulate: bool,
) {
    let (k, n) = (layer.inputs, layer.outputs);
    assert!(dst.len() >= rows * n && x.len() >= rows * k);
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && rows * n * k >= PARALLEL_GEMM_FROM {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let x = Strided {
        ptr: x.as_ptr(),
        row: k,
        col: 1,
    };
    let w = Strided {
        ptr: weight_t.as_ptr(),
        row: n,
        col: 1,
    };
    // SAFETY: dst is rows×n, x is rows×k and the transposed weight k×n, all row-major and
    // in bounds.
    unsafe {
        matmul_strided(
            rows,
            n,
            k,
            dst.as_mut_ptr(),
            n,
            x,
            w,
            accumulate,
            parallelism,
        )
    };
}

/// A matrix in memory: element (i, j) is at `ptr + i·row + j·col`.
#[derive(Clone, Copy)]
struct Strided {
    ptr: *const f32,
    row: usize,
    col: usize,
}

/// `dst (+)= lhs · rhs` through gemm, `dst` being `m×n` row-major with row stride `dst_row`.
///
/// # Safety
/// Every element the shapes and strides address must be in bounds.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_row: usize,
    lhs: Strided,
    rhs: Strided,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let alpha = if accumulate { 1.0 } else { 0.0 };
    let (dst_row, lhs_row, lhs_col) = (dst_row as isize, lhs.row as isize, lhs.col as isize);
    let (rhs_row, rhs_col) = (rhs.row as isize, rhs.col as isize);
    #[rustfmt::skip]
    // SAFETY: forwarded from the caller.
    let () = unsafe {
        gemm(
            m, n, k,
            dst, 1, dst_row, accumulate,
            lhs.ptr, lhs_col, lhs_row,
            rhs.ptr, rhs_col, rhs_row,
            alpha, 1.0, false, false, false, parallelism,
        )
    };
}

thread_local! {
    /// Attention's per-thread scratch (scores and transposed keys), kept between calls: a
    /// fresh buffer per task cost page faults (7 % of an int8 forward pass, profiled).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer, grown to at least `len` floats. `f` must not
/// call back into attention on the same thread (it runs single-threaded kernels only).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    SCRATCH.with_borrow_mut(|buffer| {
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        f(buffer)
    })
}

/// Runs `f` over whole rows of `buf`, split across the pool's threads when it is large.
fn for_rows(buf: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync) {
    let threads = rayon::current_num_threads();
    if threads > 1 && buf.len() >= PARALLEL_ROWS_FROM {
        let rows = buf.len() / width;
        let per_task = rows.div_ceil(threads * 4).max(1);
        buf.par_chunks_mut(per_task * width).for_each(&f);
    } else {
        f(buf);
    }
}

/// Runs `f` over matching whole rows of `dst` and `src` (same row count, their own widths).
fn for_row_pairs(
    dst: &mut [f32],
    dst_width: usize,
    src: &[f32],
    src_width: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    let threads = rayon::current_num_threads();
    if threads > 1 && dst.len() >= PARALLEL_ROWS_FROM {
        let rows = dst.len() / dst_width;
        let per_task = rows.div_ceil(threads * 4).max(1);
        dst.par_chunks_mut(per_task * dst_width)
            .zip(src.par_chunks(per_task * src_width))
            .for_each(|(d, s)| f(d, s));
    } else {
        f(dst, src);
    }
}

fn grow(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

impl Backend for PackedBert {
    fn name(&self) -> &'static str {
        "packed"
    }

    fn embed(&self, batch: &[&[u32]], pooling: Pooling, keep_tokens: bool) -> Result<Vec<Output>> {
        let h = self.hidden;
        let tokens: usize = batch.iter().map(|s| s.len()).sum();
        if tokens == 0 {
            return Ok(batch
                .iter()
                .map(|_| Output {
                    pooled: vec![0.0; h],
                    tokens: keep_tokens.then(Vec::new),
                })
                .collect());
        }
        if let Some(seq) = batch.iter().find(|s| s.len() > self.max_positions) {
            return Err(EmbedError::Unsupported(format!(
                "a sequence of {} tokens exceeds the model's {} positions",
                seq.len(),
                self.max_positions
            )));
        }
        if let Some(id) = batch
            .iter()
            .flat_map(|s| s.iter())
            .find(|&&id| id as usize >= self.vocab)
        {
            return Err(EmbedError::Tokenizer(format!(
                "token id {id} is outside the vocabulary"
            )));
        }
        let mut spans = Vec::with_capacity(batch.len());
        let mut at = 0;
        for seq in batch {
            spans.push((at, seq.len()));
            at += seq.len();
        }

        // A concurrent caller gets its own workspace rather than waiting.
        let mut guard = self.workspace.try_lock();
        let mut own = Workspace::default();
        let ws: &mut Workspace = guard.as_deref_mut().unwrap_or(&mut own);
        let x = grow(&mut ws.hidden, tokens * h);
        let qkv = grow(&mut ws.qkv, tokens * 3 * h);
        let context = grow(&mut ws.context, tokens * h);
        let attended = grow(&mut ws.attended, tokens * h);
        let inter = grow(&mut ws.intermediate, tokens * self.intermediate);
        let layer_input = &mut ws.input;
        layer_input.plan_runs(&spans);
        let width = self.path.width();

        self.embed_tokens(batch, x)?;
        for layer in &self.layers {
            // qkv = x·Wqkvᵀ + b
            for_rows(qkv, 3 * h, |rows| {
                for row in rows.chunks_exact_mut(3 * h) {
                    row.copy_from_slice(&layer.qkv.bias);
                }
            });
            self.matmul(layer_input, qkv, x, &layer.qkv, tokens, true);
            self.attention(qkv, context, &spans);
            // attended = LayerNorm(x + context·Woᵀ + b)
            self.residual_dense_norm(
                layer_input,
                attended,
                x,
                context,
                &layer.attn_out,
                &layer.attn_norm,
            );
            // inter = gelu(attended·W1ᵀ + b1)
            self.matmul(layer_input, inter, attended, &layer.up, tokens, false);
            for_rows(inter, self.intermediate, |rows| {
                kernels::math::bias_gelu(width, rows, &layer.up.bias)
            });
            // x = LayerNorm(attended + inter·W2ᵀ + b2)
            self.residual_dense_norm(
                layer_input,
                x,
                attended,
                inter,
                &layer.down,
                &layer.out_norm,
            );
        }
        Ok(spans
            .iter()
            .map(|&(start, len)| {
                let rows = &x[start * h..(start + len) * h];
                Output {
                    pooled: pooling.pool(rows, h),
                    tokens: keep_tokens.then(|| rows.to_vec()),
                }
            })
            .collect())
    }

    fn pads_batches(&self) -> bool {
        false
    }
}
