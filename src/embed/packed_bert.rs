//! The packed ("varlen") BERT: every token of a batch in one matrix, no padding.
//!
//! Linear layers — nearly all of the FLOPs — run once over the `[total_tokens, hidden]` matrix
//! of the whole batch, so a batch costs the sum of its lengths, not `count × longest`. Only
//! attention looks at sequence boundaries, one sequence at a time.

use std::collections::HashMap;

use candle_core::{D, Device, Tensor};

use super::backend::Backend;
use super::config::ModelConfig;
use super::error::{EmbedError, Result};
use super::pooling::Pooling;

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

struct Layer {
    /// Query, key and value projections fused into one `[3·hidden, hidden]` matrix.
    qkv_weight: Tensor,
    qkv_bias: Tensor,
    out_weight: Tensor,
    out_bias: Tensor,
    attn_norm: Norm,
    up_weight: Tensor,
    up_bias: Tensor,
    down_weight: Tensor,
    down_bias: Tensor,
    out_norm: Norm,
}

/// BERT over packed sequences.
pub struct PackedBert {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    token_type_embedding: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    eps: f32,
    device: Device,
}

struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: String,
}

impl Weights {
    fn get(&self, name: &str) -> Result<Tensor> {
        let key = format!("{}{name}", self.prefix);
        self.tensors
            .get(&key)
            .cloned()
            .ok_or_else(|| EmbedError::Unsupported(format!("weights lack tensor {key}")))
    }

    fn norm(&self, name: &str) -> Result<Norm> {
        Ok(Norm {
            weight: self.get(&format!("{name}.weight"))?,
            bias: self.get(&format!("{name}.bias"))?,
        })
    }
}

impl PackedBert {
    /// Loads the weights of `config.dir` on the CPU.
    pub fn load(config: &ModelConfig) -> Result<Self> {
        let device = Device::Cpu;
        let tensors =
            candle_core::safetensors::load(config.dir.join("model.safetensors"), &device)?;
        // Checkpoints saved from BertForX carry a `bert.` prefix.
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert.".to_string()
        } else {
            String::new()
        };
        let w = Weights { tensors, prefix };
        let bert = &config.bert;
        let mut layers = Vec::with_capacity(bert.num_hidden_layers);
        for i in 0..bert.num_hidden_layers {
            let p = format!("encoder.layer.{i}.");
            let attn = format!("{p}attention.");
            let qkv_weight = Tensor::cat(
                &[
                    w.get(&format!("{attn}self.query.weight"))?,
                    w.get(&format!("{attn}self.key.weight"))?,
                    w.get(&format!("{attn}self.value.weight"))?,
                ],
                0,
            )?;
            let qkv_bias = Tensor::cat(
                &[
                    w.get(&format!("{attn}self.query.bias"))?,
                    w.get(&format!("{attn}self.key.bias"))?,
                    w.get(&format!("{attn}self.value.bias"))?,
                ],
                0,
            )?;
            layers.push(Layer {
                qkv_weight,
                qkv_bias,
                out_weight: w.get(&format!("{attn}output.dense.weight"))?,
                out_bias: w.get(&format!("{attn}output.dense.bias"))?,
                attn_norm: w.norm(&format!("{attn}output.LayerNorm"))?,
                up_weight: w.get(&format!("{p}intermediate.dense.weight"))?,
                up_bias: w.get(&format!("{p}intermediate.dense.bias"))?,
                down_weight: w.get(&format!("{p}output.dense.weight"))?,
                down_bias: w.get(&format!("{p}output.dense.bias"))?,
                out_norm: w.norm(&format!("{p}output.LayerNorm"))?,
            });
        }
        let token_types = w.get("embeddings.token_type_embeddings.weight")?;
        Ok(Self {
            word_embeddings: w.get("embeddings.word_embeddings.weight")?,
            position_embeddings: w.get("embeddings.position_embeddings.weight")?,
            token_type_embedding: token_types.get(0)?,
            embedding_norm: w.norm("embeddings.LayerNorm")?,
            layers,
            hidden: bert.hidden_size,
            heads: bert.num_attention_heads,
            eps: bert.layer_norm_eps as f32,
            device,
        })
    }

    fn layer_norm(&self, x: &Tensor, norm: &Norm) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(
            x,
            &norm.weight,
            &norm.bias,
            self.eps,
        )?)
    }

    fn attention(&self, qkv: &Tensor, spans: &[(usize, usize)]) -> Result<Tensor> {
        let head_dim = self.hidden / self.heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut contexts = Vec::with_capacity(spans.len());
        for &(start, len) in spans {
            let rows = qkv.narrow(0, start, len)?;
            let split = |part: usize| -> Result<Tensor> {
                Ok(rows
                    .narrow(1, part * self.hidden, self.hidden)?
                    .reshape((len, self.heads, head_dim))?
                    .transpose(0, 1)?
                    .contiguous()?)
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(0, 1)?
                .reshape((len, self.hidden))?;
            contexts.push(context);
        }
        Ok(Tensor::cat(&contexts, 0)?)
    }
}

fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&weight.t()?)?.broadcast_add(bias)?)
}

impl Backend for PackedBert {
    fn name(&self) -> &'static str {
        "packed"
    }

    fn embed(&self, batch: &[&[u32]], pooling: Pooling) -> Result<Vec<Vec<f32>>> {
        let total: usize = batch.iter().map(|s| s.len()).sum();
        if total == 0 {
            return Ok(batch.iter().map(|_| vec![0.0; self.hidden]).collect());
        }
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(batch.len());
        for seq in batch {
            spans.push((ids.len(), seq.len()));
            ids.extend_from_slice(seq);
            positions.extend(0..seq.len() as u32);
        }
        let ids = Tensor::from_vec(ids, total, &self.device)?;
        let positions = Tensor::from_vec(positions, total, &self.device)?;
        let x = (self.word_embeddings.index_select(&ids, 0)?
            + self.position_embeddings.index_select(&positions, 0)?)?
        .broadcast_add(&self.token_type_embedding)?;
        let mut x = self.layer_norm(&x, &self.embedding_norm)?;
        for layer in &self.layers {
            let qkv = linear(&x, &layer.qkv_weight, &layer.qkv_bias)?;
            let context = self.attention(&qkv, &spans)?;
            let attended = (linear(&context, &layer.out_weight, &layer.out_bias)? + &x)?;
            let attended = self.layer_norm(&attended, &layer.attn_norm)?;
            let up = linear(&attended, &layer.up_weight, &layer.up_bias)?.gelu_erf()?;
            let down = (linear(&up, &layer.down_weight, &layer.down_bias)? + &attended)?;
            x = self.layer_norm(&down, &layer.out_norm)?;
        }
        debug_assert_eq!(x.dim(D::Minus1)?, self.hidden);
        let states = x.flatten_all()?.to_vec1::<f32>()?;
        Ok(spans
            .iter()
            .map(|&(start, len)| {
                pooling.pool(
                    &states[start * self.hidden..(start + len) * self.hidden],
                    self.hidden,
                )
            })
            .collect())
    }

    fn pads_batches(&self) -> bool {
        false
    }
}
