//! The gated short convolution block.
//!
//! ```text
//! p = in_proj(u)            [T, 3H]  split in order B | C | x
//! y = B ⊙ x                 gate before the conv
//! z_t = Σ_k w[k] ⊙ y_{t-(L-1)+k}     depthwise, causal; w[L-1] multiplies the current token
//! out = out_proj(C ⊙ z)     gate after the conv
//! ```
//! The state is the last `L-1` rows of `y` (zeros before the first token), so a chunk is
//! convolved over `concat(state, y_chunk)`.

use candle_core::{DType, Tensor};

use super::linear::Linear;
use super::Span;
use crate::error::Result;

/// One short-convolution operator.
#[derive(Debug, Clone)]
pub struct ShortConv {
    pub(crate) in_proj: Linear,
    pub(crate) out_proj: Linear,
    /// Taps as rows: `[L, H]`, row `L-1` for the current token.
    pub(crate) taps: Tensor,
    pub(crate) bias: Option<Tensor>,
    pub(crate) hidden: usize,
}

impl ShortConv {
    /// Runs the block over `u` (`[T, H]`), reading and updating `state` (`[L-1, H]`).
    pub fn forward(&self, u: &Tensor, state: &mut Tensor) -> Result<Tensor> {
        let span = Span {
            off: 0,
            len: u.dim(0)?,
            pos: 0,
        };
        self.forward_batch(u, &[span], &mut [state])
    }

    /// The block for stacked sequences: the projections and gates run once over all rows,
    /// the convolution over each span's rows with its own window.
    pub(crate) fn forward_batch(
        &self,
        u: &Tensor,
        spans: &[Span],
        states: &mut [&mut Tensor],
    ) -> Result<Tensor> {
        let h = self.hidden;
        let p = self.in_proj.forward(u)?;
        let b = p.narrow(1, 0, h)?;
        let c = p.narrow(1, h, h)?;
        let x = p.narrow(1, 2 * h, h)?;
        let y = (b * x)?;
        let mut zs = Vec::with_capacity(spans.len());
        for (s, state) in spans.iter().zip(states.iter_mut()) {
            let ys = if spans.len() == 1 {
                y.clone()
            } else {
                y.narrow(0, s.off, s.len)?
            };
            zs.push(self.convolve(&ys, state)?);
        }
        let z = match zs.as_slice() {
            [one] => one.clone(),
            _ => Tensor::cat(&zs, 0)?,
        };
        self.out_proj.forward(&(c * z)?)
    }

    /// The causal depthwise convolution of one sequence's gated rows `y` (`[T, H]`) after its
    /// window `state`, which becomes the last `L-1` rows.
    fn convolve(&self, y: &Tensor, state: &mut Tensor) -> Result<Tensor> {
        let t = y.dim(0)?;
        let l = self.taps.dim(0)?;
        let window = Tensor::cat(&[&*state, y], 0)?; // [L-1+T, H]
                                                     // Accumulate in at least f32 and round once, as a conv1d kernel does for bf16/f16.
        let acc = if y.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let w = window.to_dtype(acc)?;
        let taps = self.taps.to_dtype(acc)?;
        let mut z = w.narrow(0, 0, t)?.broadcast_mul(&taps.narrow(0, 0, 1)?)?;
        for k in 1..l {
            let term = w.narrow(0, k, t)?.broadcast_mul(&taps.narrow(0, k, 1)?)?;
            z = (z + term)?;
        }
        if let Some(bias) = &self.bias {
            z = z.broadcast_add(&bias.to_dtype(acc)?)?;
        }
        let z = z.to_dtype(y.dtype())?;
        let keep = l - 1;
        *state = window
            .narrow(0, window.dim(0)? - keep, keep)?
            .contiguous()?;
        Ok(z)
    }
}
