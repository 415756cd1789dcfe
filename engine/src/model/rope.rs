//! Rotary position embedding, half-rotation (NeoX `rotate_half`) form.
//!
//! `inv_freq_j = θ^(-2j/d)`, angles `pos · inv_freq` and their cos/sin are computed in f32 and
//! then cast to the activation dtype, as transformers does.

use candle_core::{DType, Device, Tensor, D};

use crate::error::Result;

/// Precomputed inverse frequencies for one head width.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    head_dim: usize,
}

impl Rope {
    /// RoPE for heads of width `head_dim` with base `theta`.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let base = theta as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|j| (1.0 / (base as f64).powf(((2 * j) as f32 / head_dim as f32) as f64)) as f32)
            .collect();
        Rope { inv_freq, head_dim }
    }

    /// `(cos, sin)` of shape `[T, 1, head_dim]` for positions `start..start+len`.
    pub fn tables(&self, start: usize, len: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let half = self.head_dim / 2;
        let mut cos = Vec::with_capacity(len * self.head_dim);
        let mut sin = Vec::with_capacity(len * self.head_dim);
        for p in start..start + len {
            let pos = p as f32;
            for _ in 0..2 {
                for &f in &self.inv_freq {
                    let a = pos * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        debug_assert_eq!(cos.len(), len * 2 * half);
        let shape = (len, 1, self.head_dim);
        let cos = Tensor::from_vec(cos, shape, &Device::Cpu)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, shape, &Device::Cpu)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// Rotates `x` of shape `[T, heads, head_dim]` with tables from [`Rope::tables`].
    pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
    }
}
