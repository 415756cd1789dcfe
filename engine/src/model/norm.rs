//! RMSNorm as LFM2 computes it: statistics in f64, cast back to the activation dtype, then the
//! weight (no `1 + w` offset).

use candle_core::{DType, Tensor, D};
use rayon::prelude::*;

use super::host::with_f32;
use crate::error::Result;

/// Values from which a row-wise kernel splits its rows over the rayon pool.
pub(crate) const PAR_VALUES: usize = 1 << 16;

/// Root-mean-square normalisation over the last dimension.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    /// The weight as f32 values, for f32 activations (the fused row kernel).
    weight_f32: Option<Vec<f32>>,
    eps: f64,
}

impl RmsNorm {
    /// A norm with the given weight vector.
    pub fn new(weight: Tensor, eps: f64) -> Self {
        let weight_f32 = (weight.dtype() == DType::F32 && weight.rank() == 1)
            .then(|| weight.to_vec1::<f32>().ok())
            .flatten();
        RmsNorm {
            weight,
            weight_f32,
            eps,
        }
    }

    /// Normalises `x` over its last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight_f32 {
            Some(w) if x.dtype() == DType::F32 && x.dims().last() == Some(&w.len()) => {
                self.forward_f32(x, w)
            }
            _ => self.forward_tensors(x),
        }
    }

    /// In tensor operations (any dtype).
    fn forward_tensors(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x64 = x.to_dtype(DType::F64)?;
        let ms = x64.sqr()?.mean_keepdim(D::Minus1)?;
        let inv = (ms + self.eps)?.sqrt()?.recip()?;
        let normed = x64.broadcast_mul(&inv)?.to_dtype(dtype)?;
        Ok(normed.broadcast_mul(&self.weight)?)
    }

    /// One pass per row for f32 activations: the same arithmetic as [`Self::forward_tensors`]
    /// (mean square and scaling in f64, rounded to f32, times the weight) without its eight
    /// intermediate tensors.
    fn forward_f32(&self, x: &Tensor, w: &[f32]) -> Result<Tensor> {
        let h = w.len();
        let eps = self.eps;
        let row = |(o, x): (&mut [f32], &[f32])| {
            // Four running sums, so the additions need not wait on each other.
            let mut s = [0f64; 4];
            let mut quads = x.chunks_exact(4);
            for q in &mut quads {
                for (s, &v) in s.iter_mut().zip(q) {
                    *s += v as f64 * v as f64;
                }
            }
            let tail: f64 = quads.remainder().iter().map(|&v| v as f64 * v as f64).sum();
            let ms = (s[0] + s[1] + s[2] + s[3] + tail) / h as f64;
            let inv = 1.0 / (ms + eps).sqrt();
            for ((o, &v), &w) in o.iter_mut().zip(x).zip(w) {
                *o = (v as f64 * inv) as f32 * w;
            }
        };
        let out = with_f32(x, |xs| {
            let mut out = vec![0f32; xs.len()];
            if xs.len() >= PAR_VALUES {
                out.par_chunks_mut(h).zip(xs.par_chunks(h)).for_each(row);
            } else {
                out.chunks_mut(h).zip(xs.chunks(h)).for_each(row);
            }
            out
        })?;
        Ok(Tensor::from_vec(out, x.dims(), x.device())?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// The fused f32 kernel gives the tensor operations' values (both round the f64 result to
    /// f32 once; the sums differ only in order).
    #[test]
    fn the_f32_kernel_matches_the_tensor_operations() {
        for (rows, h) in [(3, 16), (5, 2048), (40, 2050)] {
            let w: Vec<f32> = (0..h).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
            let x: Vec<f32> = (0..rows * h)
                .map(|i| ((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 3.0)
                .collect();
            let norm = RmsNorm::new(Tensor::new(w.as_slice(), &Device::Cpu).unwrap(), 1e-5);
            assert!(norm.weight_f32.is_some());
            let x = Tensor::from_vec(x, (rows, h), &Device::Cpu).unwrap();
            let fused = norm.forward(&x).unwrap().flatten_all().unwrap();
            let plain = norm.forward_tensors(&x).unwrap().flatten_all().unwrap();
            let (a, b) = (
                fused.to_vec1::<f32>().unwrap(),
                plain.to_vec1::<f32>().unwrap(),
            );
            let worst = a
                .iter()
                .zip(&b)
                .map(|(a, b)| ((a - b) / b.abs().max(1e-6)).abs())
                .fold(0f32, f32::max);
            assert!(
                worst <= f32::EPSILON,
                "{rows}x{h}: relative difference {worst}"
            );
        }
    }
}
