//! The token embedding: a dense `[vocab, hidden]` tensor or a ggml-typed matrix whose rows are
//! dequantized on lookup. Tied models reuse it as the output head.

use candle_core::{Device, Tensor};

use super::Linear;
use crate::error::Result;
use crate::quant::QMatrix;

/// The embedding table.
#[derive(Debug, Clone)]
pub enum Embedding {
    /// Dense, in the compute dtype.
    Dense(Tensor),
    /// Quantized rows (GGUF), looked up as f32.
    Quant(QMatrix),
}

impl Embedding {
    /// Rows for `ids` (already range-checked), `[T, hidden]`.
    pub fn lookup(&self, ids: &[u32]) -> Result<Tensor> {
        match self {
            Embedding::Dense(t) => {
                let ids = Tensor::from_vec(ids.to_vec(), ids.len(), &Device::Cpu)?;
                Ok(t.index_select(&ids, 0)?)
            }
            Embedding::Quant(m) => {
                let h = m.cols();
                let mut out = vec![0f32; ids.len() * h];
                for (&id, row) in ids.iter().zip(out.chunks_exact_mut(h)) {
                    m.dequantize_row_into(id as usize, row);
                }
                Ok(Tensor::from_vec(out, (ids.len(), h), &Device::Cpu)?)
            }
        }
    }

    /// The table as an output head (tied embeddings).
    pub fn as_head(&self) -> Linear {
        match self {
            Embedding::Dense(t) => Linear::new(t.clone(), None),
            Embedding::Quant(m) => Linear::Quant(m.clone()),
        }
    }
}
