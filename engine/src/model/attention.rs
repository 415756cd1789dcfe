//! Grouped-query attention with per-head q/k RMSNorm applied before RoPE.
//!
//! Query head `h` reads key/value head `h / g` (`g = heads / kv_heads`). The query heads of one
//! group are stacked so that one batched matmul per KV head serves all of them:
//! `q [heads, T, d] -> [kv_heads, g·T, d]`, scores `[kv_heads, g·T, S]`.

use candle_core::{DType, Device, Tensor};

use super::host::with_f32;
use super::linear::Linear;
use super::norm::RmsNorm;
use super::rope::Rope;
use super::Span;
use crate::error::Result;
use crate::session::{attend_all, KvCache};

/// Query rows per attention tile on the general path (a model that does not compute in f32):
/// bounds the score matrix to `heads x 64 x S` values.
const QUERY_TILE: usize = 64;

/// One attention operator.
#[derive(Debug, Clone)]
pub struct Attention {
    pub(crate) q_proj: Linear,
    pub(crate) k_proj: Linear,
    pub(crate) v_proj: Linear,
    pub(crate) out_proj: Linear,
    pub(crate) q_norm: RmsNorm,
    pub(crate) k_norm: RmsNorm,
    pub(crate) num_heads: usize,
    pub(crate) num_kv_heads: usize,
    pub(crate) head_dim: usize,
}

impl Attention {
    /// Runs attention over `u` (`[T, H]`) whose first token sits at position `pos`, appending
    /// its keys and values to `cache`.
    pub fn forward(
        &self,
        u: &Tensor,
        pos: usize,
        rope: (&Tensor, &Tensor),
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let span = Span {
            off: 0,
            len: u.dim(0)?,
            pos,
        };
        self.forward_batch(u, &[span], rope, &mut [cache])
    }

    /// Attention for stacked sequences: `u` holds each span's rows, `rope` their tables, and
    /// `caches` their KV caches. The projections run once over all rows; each sequence
    /// attends over its own cache.
    pub(crate) fn forward_batch(
        &self,
        u: &Tensor,
        spans: &[Span],
        rope: (&Tensor, &Tensor),
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let (n, _) = u.dims2()?;
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let mut qkv =
            Linear::forward_many(&[&self.q_proj, &self.k_proj, &self.v_proj], u)?.into_iter();
        let (Some(q), Some(k), Some(v)) = (qkv.next(), qkv.next(), qkv.next()) else {
            unreachable!("forward_many returns one output per layer")
        };
        let q = q.reshape((n, nh, hd))?;
        let k = k.reshape((n, nkv, hd))?;
        let v = v.reshape((n, nkv, hd))?;
        let q = Rope::apply(&self.q_norm.forward(&q)?, rope.0, rope.1)?;
        let k = Rope::apply(&self.k_norm.forward(&k)?, rope.0, rope.1)?;
        let part = |x: &Tensor, s: &Span| match spans.len() {
            1 => Ok(x.clone()),
            _ => x.narrow(0, s.off, s.len),
        };
        // Every sequence's keys and values go into its cache first.
        for (s, cache) in spans.iter().zip(caches.iter_mut()) {
            if cache.len() != s.pos {
                return Err(crate::Error::arg(
                    "state",
                    format!(
                        "KV cache holds {} tokens but the chunk starts at position {}",
                        cache.len(),
                        s.pos
                    ),
                ));
            }
            cache.append(
                &part(&k, s)?.transpose(0, 1)?,
                &part(&v, s)?.transpose(0, 1)?,
            )?;
        }
        let scale = (hd as f64).powf(-0.5);
        if q.dtype() == DType::F32 {
            // Every sequence reads its cache in place, all in one parallel loop (see
            // `KvCache::attend`).
            let readers: Vec<&KvCache> = caches.iter().map(|c| &**c).collect();
            let counts: Vec<usize> = spans.iter().map(|s| s.len).collect();
            let all = with_f32(&q, |qv| attend_all(&readers, qv, &counts, nh, scale as f32))??;
            if let Some(out) = all {
                return self
                    .out_proj
                    .forward(&Tensor::from_vec(out, (n, nh * hd), q.device())?);
            }
        }
        let mut outs = Vec::with_capacity(spans.len());
        for (s, cache) in spans.iter().zip(caches.iter()) {
            outs.push(self.attend(&part(&q, s)?, s.pos, cache)?);
        }
        let out = match outs.as_slice() {
            [one] => one.clone(),
            _ => Tensor::cat(&outs, 0)?,
        };
        self.out_proj.forward(&out)
    }

    /// One sequence's attention through tensor operations (a model that does not compute in
    /// f32): the heads' outputs `[T, heads·d]` for queries `q` (`[T, heads, d]`) at `pos`, over
    /// `cache`, which already holds their keys and values.
    fn attend(&self, q: &Tensor, pos: usize, cache: &KvCache) -> Result<Tensor> {
        let t = q.dim(0)?;
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let g = nh / nkv;
        let scale = (hd as f64).powf(-0.5);
        let (keys, values) = cache.view()?; // [nkv, S, hd]
                                            // Queries go in tiles so a long chunk never materialises a T x S score matrix.
        let mut outs = Vec::with_capacity(t.div_ceil(QUERY_TILE));
        for i0 in (0..t).step_by(QUERY_TILE) {
            let tl = QUERY_TILE.min(t - i0);
            let visible = pos + i0 + tl;
            let qt = q
                .narrow(0, i0, tl)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((nkv, g * tl, hd))?;
            let (kt, vt) = if visible == keys.dim(1)? {
                (keys.clone(), values.clone())
            } else {
                (
                    keys.narrow(1, 0, visible)?.contiguous()?,
                    values.narrow(1, 0, visible)?.contiguous()?,
                )
            };
            let scores = qt.matmul(&kt.t()?)?.to_dtype(DType::F32)?;
            let probs = causal_softmax(&scores, scale as f32, tl, pos + i0)?.to_dtype(q.dtype())?;
            let out = probs.matmul(&vt)?; // [nkv, g·tl, hd]
            outs.push(out.reshape((nh, tl, hd))?.transpose(0, 1)?);
        }
        Ok(Tensor::cat(&outs, 0)?.contiguous()?.reshape((t, nh * hd))?)
    }
}

/// Softmax of `scale · scores` over the last dimension, causal: `scores` is `[kv_heads, g·T, S]`
/// f32, row `j·T + i` the query at position `pos + i`, which may read keys `0..=pos + i` (the
/// rest get probability 0). One pass per row over a copy of the scores, in place: at long
/// contexts the score tiles are hundreds of MB, and separate mask, scale, max, exp, sum and
/// divide passes over them were most of the prefill time.
fn causal_softmax(scores: &Tensor, scale: f32, t: usize, pos: usize) -> Result<Tensor> {
    use rayon::prelude::*;
    let dims = scores.dims().to_vec();
    let s = dims[dims.len() - 1];
    let mut v = scores.flatten_all()?.to_vec1::<f32>()?;
    v.par_chunks_mut(s).enumerate().for_each(|(r, row)| {
        let visible = (pos + r % t + 1).min(s);
        let (live, masked) = row.split_at_mut(visible);
        let max = live.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) * scale;
        let mut sum = 0f32;
        for x in live.iter_mut() {
            *x = (*x * scale - max).exp();
            sum += *x;
        }
        for x in live.iter_mut() {
            *x /= sum;
        }
        masked.fill(0.0);
    });
    Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
}
