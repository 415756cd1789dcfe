//! SwiGLU feed-forward: `w2(silu(w1·x) ⊙ w3·x)`.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::host::with_f32;
use super::linear::Linear;
use super::norm::PAR_VALUES;
use crate::error::Result;

/// The feed-forward block of every decoder layer.
#[derive(Debug, Clone)]
pub struct FeedForward {
    pub(crate) w1: Linear,
    pub(crate) w2: Linear,
    pub(crate) w3: Linear,
}

impl FeedForward {
    /// Applies the block to `[T, H]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut gu = Linear::forward_many(&[&self.w1, &self.w3], x)?.into_iter();
        let (Some(gate), Some(up)) = (gu.next(), gu.next()) else {
            unreachable!("forward_many returns one output per layer")
        };
        self.w2.forward(&silu_mul(&gate, &up)?)
    }
}

/// `silu(gate) ⊙ up`; for f32, one pass with candle's formula (`x / (1 + e^-x)`).
fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dtype() != DType::F32 || up.dtype() != DType::F32 || gate.dims() != up.dims() {
        return Ok((gate.silu()? * up)?);
    }
    let f = |(&g, &u): (&f32, &f32)| g / (1.0 + (-g).exp()) * u;
    let out: Vec<f32> = with_f32(gate, |g| {
        with_f32(up, |u| {
            if g.len() >= PAR_VALUES {
                g.par_iter().zip(u.par_iter()).map(f).collect()
            } else {
                g.iter().zip(u).map(f).collect()
            }
        })
    })??;
    Ok(Tensor::from_vec(out, gate.dims(), gate.device())?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn the_f32_pass_gives_candles_bits() {
        let n = 3 * 70_001; // above the parallel threshold, not a multiple of anything
        let g: Vec<f32> = (0..n).map(|i| (i % 2003) as f32 / 100.0 - 10.0).collect();
        let u: Vec<f32> = (0..n).map(|i| (i % 17) as f32 / 8.0 - 1.0).collect();
        let g = Tensor::from_vec(g, (3, n / 3), &Device::Cpu).unwrap();
        let u = Tensor::from_vec(u, (3, n / 3), &Device::Cpu).unwrap();
        let fused = silu_mul(&g, &u).unwrap().flatten_all().unwrap();
        let plain = (g.silu().unwrap() * &u).unwrap().flatten_all().unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            t.to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        assert_eq!(bits(&fused), bits(&plain));
    }
}
