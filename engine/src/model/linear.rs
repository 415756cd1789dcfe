//! A linear layer `y = x·Wᵀ (+ b)` with `W` stored `[out, in]`, as in the checkpoints: dense
//! (a candle tensor in the compute dtype) or quantized (a ggml-typed matrix from a GGUF file).

use candle_core::{Device, Tensor};

use super::host::with_f32;
use crate::error::Result;
use crate::quant::{QMatrix, QuantizedActs};

/// A linear layer over the last dimension of a `[T, in]` input.
#[derive(Debug, Clone)]
pub enum Linear {
    /// A dense weight (safetensors checkpoints).
    Dense {
        /// `[out, in]`.
        weight: Tensor,
        /// `[out]`.
        bias: Option<Tensor>,
    },
    /// A weight in a ggml type, multiplied by the kernels of [`crate::quant`]; f32 in and out.
    Quant(QMatrix),
}

impl Linear {
    /// A dense layer from its `[out, in]` weight and optional `[out]` bias.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear::Dense { weight, bias }
    }

    /// Bytes of weights (and bias) one forward pass reads.
    pub fn byte_len(&self) -> usize {
        match self {
            Linear::Dense { weight, bias } => {
                let n = weight.elem_count() + bias.as_ref().map_or(0, Tensor::elem_count);
                n * weight.dtype().size_in_bytes()
            }
            Linear::Quant(m) => m.byte_len(),
        }
    }

    /// Applies the layer to `x` of shape `[T, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Dense { weight, bias } => {
                let y = x.matmul(&weight.t()?)?;
                Ok(match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
            Linear::Quant(m) => {
                let (t, cols) = x.dims2()?;
                let acts = with_f32(x, |xs| {
                    QuantizedActs::quantize(m.ty().act_format(), xs, t, cols)
                })?;
                Ok(Tensor::from_vec(
                    m.product(&acts),
                    (t, m.rows()),
                    &Device::Cpu,
                )?)
            }
        }
    }

    /// Applies several quantized layers that read the same input, quantizing it once (Q/K/V,
    /// gate/up). Falls back to one call each when any layer is dense or formats differ.
    pub fn forward_many(layers: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
        let quants: Option<Vec<&QMatrix>> = layers
            .iter()
            .map(|l| match l {
                Linear::Quant(m) => Some(m),
                Linear::Dense { .. } => None,
            })
            .collect();
        let Some(ms) = quants else {
            return layers.iter().map(|l| l.forward(x)).collect();
        };
        let fmt = ms[0].ty().act_format();
        if ms.iter().any(|m| m.ty().act_format() != fmt) {
            return layers.iter().map(|l| l.forward(x)).collect();
        }
        let (t, cols) = x.dims2()?;
        let acts = with_f32(x, |xs| QuantizedActs::quantize(fmt, xs, t, cols))?;
        ms.iter()
            .map(|m| {
                Ok(Tensor::from_vec(
                    m.product(&acts),
                    (t, m.rows()),
                    &Device::Cpu,
                )?)
            })
            .collect()
    }
}
