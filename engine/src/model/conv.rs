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

use candle_core::{DType, Device, Tensor};

use super::host::with_f32;
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
        let p = self.in_proj.forward(u)?;
        let f32_rows = p.dtype() == DType::F32
            && self.taps.dtype() == DType::F32
            && self.bias.as_ref().is_none_or(|b| b.dtype() == DType::F32)
            && states.iter().all(|s| s.dtype() == DType::F32);
        let gated = if f32_rows {
            self.gate_convolve_f32(&p, spans, states)?
        } else {
            self.gate_convolve(&p, spans, states)?
        };
        self.out_proj.forward(&gated)
    }

    /// `C ⊙ z` from the projections `p` (`[N, 3H]`) in tensor operations (any dtype),
    /// updating each sequence's window.
    fn gate_convolve(
        &self,
        p: &Tensor,
        spans: &[Span],
        states: &mut [&mut Tensor],
    ) -> Result<Tensor> {
        let h = self.hidden;
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
        Ok((c * z)?)
    }

    /// `C ⊙ z` for f32 rows in one pass per sequence (`p`: `[N, 3H]`), updating each window:
    /// the operations of the tensor path (`B ⊙ x`, each tap's product added in turn, the bias,
    /// `C ⊙ z`) in the same order, so the same bits, without a tensor per tap and sequence.
    fn gate_convolve_f32(
        &self,
        p: &Tensor,
        spans: &[Span],
        states: &mut [&mut Tensor],
    ) -> Result<Tensor> {
        let l = self.taps.dim(0)?;
        let mut rows = |taps: &[f32], bias: Option<&[f32]>| -> Result<Tensor> {
            with_f32(p, |pv| {
                self.gate_convolve_rows(pv, (taps, l, bias), p.device(), spans, states)
            })?
        };
        // Every operand is read in place.
        with_f32(&self.taps, |taps| match &self.bias {
            Some(b) => with_f32(b, |bias| rows(taps, Some(bias)))?,
            None => rows(taps, None),
        })?
    }

    /// [`Self::gate_convolve_f32`] over the rows' values `pv`, with the `l` taps (`[l, H]`) and
    /// the bias.
    fn gate_convolve_rows(
        &self,
        pv: &[f32],
        (taps, l, bias): (&[f32], usize, Option<&[f32]>),
        device: &Device,
        spans: &[Span],
        states: &mut [&mut Tensor],
    ) -> Result<Tensor> {
        let h = self.hidden;
        let keep = l - 1;
        let n = pv.len() / (3 * h);
        let mut out = vec![0f32; n * h];
        for (s, state) in spans.iter().zip(states.iter_mut()) {
            // The window: the state's rows, then this span's gated rows `B ⊙ x`.
            let mut win = state.flatten_all()?.to_vec1::<f32>()?;
            win.reserve(s.len * h);
            for row in pv[s.off * 3 * h..(s.off + s.len) * 3 * h].chunks_exact(3 * h) {
                let (b, x) = (&row[..h], &row[2 * h..]);
                win.extend(b.iter().zip(x).map(|(b, x)| b * x));
            }
            for t in 0..s.len {
                let c = &pv[(s.off + t) * 3 * h + h..][..h];
                let o = &mut out[(s.off + t) * h..][..h];
                let tap = |k: usize| (&win[(t + k) * h..][..h], &taps[k * h..][..h]);
                let (w0, t0) = tap(0);
                for ((o, w), t) in o.iter_mut().zip(w0).zip(t0) {
                    *o = w * t;
                }
                for k in 1..l {
                    let (wk, tk) = tap(k);
                    for ((o, w), t) in o.iter_mut().zip(wk).zip(tk) {
                        *o += w * t;
                    }
                }
                if let Some(b) = bias {
                    for (o, b) in o.iter_mut().zip(b) {
                        *o += b;
                    }
                }
                for (o, c) in o.iter_mut().zip(c) {
                    *o *= c;
                }
            }
            let tail = win[s.len * h..].to_vec();
            **state = Tensor::from_vec(tail, (keep, h), device)?;
        }
        Ok(Tensor::from_vec(out, (n, h), device)?)
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

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// The f32 pass gives the tensor operations' bits, outputs and windows, for several
    /// sequences of different lengths, with and without a bias.
    #[test]
    fn the_f32_pass_gives_the_tensor_paths_bits() -> Result<()> {
        let (h, l) = (24, 3);
        let dev = Device::Cpu;
        let vals = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0 - 1.0)
                .collect()
        };
        let spans = [
            Span {
                off: 0,
                len: 1,
                pos: 9,
            },
            Span {
                off: 1,
                len: 5,
                pos: 0,
            },
            Span {
                off: 6,
                len: 2,
                pos: 3,
            },
        ];
        let n = 8;
        let p = Tensor::from_vec(vals(n * 3 * h, 1), (n, 3 * h), &dev)?;
        for bias in [None, Some(Tensor::from_vec(vals(h, 5), h, &dev)?)] {
            let dense = |seed| -> Result<_> {
                Ok(crate::model::linear::Linear::Dense {
                    weight: Tensor::from_vec(vals(h * h, seed), (h, h), &dev)?,
                    bias: None,
                })
            };
            let op = ShortConv {
                in_proj: dense(2)?,
                out_proj: dense(3)?,
                taps: Tensor::from_vec(vals(l * h, 4), (l, h), &dev)?,
                bias,
                hidden: h,
            };
            let windows = |seed: usize| -> Result<Vec<Tensor>> {
                (0..spans.len())
                    .map(|i| {
                        Ok(Tensor::from_vec(
                            vals((l - 1) * h, seed + i),
                            (l - 1, h),
                            &dev,
                        )?)
                    })
                    .collect()
            };
            let (mut a, mut b) = (windows(10)?, windows(10)?);
            let fast = {
                let mut refs: Vec<&mut Tensor> = a.iter_mut().collect();
                op.gate_convolve_f32(&p, &spans, &mut refs)?
            };
            let plain = {
                let mut refs: Vec<&mut Tensor> = b.iter_mut().collect();
                op.gate_convolve(&p, &spans, &mut refs)?
            };
            let bits = |t: &Tensor| -> Result<Vec<u32>> {
                let v = t.flatten_all()?.to_vec1::<f32>()?;
                Ok(v.iter().map(|x| x.to_bits()).collect())
            };
            assert_eq!(bits(&fast)?, bits(&plain)?);
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(bits(x)?, bits(y)?, "windows");
            }
        }
        Ok(())
    }
}
