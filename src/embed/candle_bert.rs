//! The stock path: candle-transformers' `BertModel` on padded batches.
//!
//! Kept as the plain-candle baseline that benchmarks compare the packed backend against, and as
//! a second, independent implementation for agreement tests.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;

use super::backend::{Backend, Output};
use super::config::ModelConfig;
use super::error::Result;
use super::pooling::Pooling;

/// candle-transformers' BERT, fed right-padded batches with an attention mask.
pub struct CandleBert {
    model: BertModel,
    device: Device,
    pad_id: u32,
    hidden: usize,
}

impl CandleBert {
    /// Loads the weights of `config.dir` on the CPU.
    pub fn load(config: &ModelConfig) -> Result<Self> {
        let device = Device::Cpu;
        let tensors =
            candle_core::safetensors::load(config.dir.join("model.safetensors"), &device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config.bert)?;
        Ok(Self {
            model,
            device,
            pad_id: config.bert.pad_token_id as u32,
            hidden: config.bert.hidden_size,
        })
    }
}

impl Backend for CandleBert {
    fn name(&self) -> &'static str {
        "candle-padded"
    }

    fn embed(&self, batch: &[&[u32]], pooling: Pooling, keep_tokens: bool) -> Result<Vec<Output>> {
        let longest = batch.iter().map(|s| s.len()).max().unwrap_or(0);
        if longest == 0 {
            return Ok(batch
                .iter()
                .map(|_| Output {
                    pooled: vec![0.0; self.hidden],
                    tokens: keep_tokens.then(Vec::new),
                })
                .collect());
        }
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for seq in batch {
            ids.extend_from_slice(seq);
            ids.extend(std::iter::repeat_n(self.pad_id, longest - seq.len()));
            mask.extend(std::iter::repeat_n(1u32, seq.len()));
            mask.extend(std::iter::repeat_n(0u32, longest - seq.len()));
        }
        let shape = (batch.len(), longest);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let types = ids.zeros_like()?;
        let states = self.model.forward(&ids, &types, Some(&mask))?;
        let states = states.flatten_all()?.to_vec1::<f32>()?;
        let per_seq = longest * self.hidden;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, seq)| {
                let start = i * per_seq;
                let rows = &states[start..start + seq.len() * self.hidden];
                Output {
                    pooled: pooling.pool(rows, self.hidden),
                    tokens: keep_tokens.then(|| rows.to_vec()),
                }
            })
            .collect())
    }

    fn pads_batches(&self) -> bool {
        true
    }
}
