//! A per-layer key/value cache: `[kv_heads, capacity, head_dim]` buffers written in place.
//!
//! Capacity is reserved up front and doubles (up to the session's context) when a chunk would
//! not fit, so a long prefill reallocates at most a logarithmic number of times. Positions at
//! or beyond `len` hold stale data that is never read; rolling back is setting `len`.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Keys and values of one attention layer.
#[derive(Debug)]
pub struct KvCache {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl KvCache {
    /// An empty cache with room for `capacity` tokens.
    pub fn new(kv_heads: usize, head_dim: usize, capacity: usize, dtype: DType) -> Result<Self> {
        let shape = (kv_heads, capacity.max(1), head_dim);
        Ok(KvCache {
            k: Tensor::zeros(shape, dtype, &Device::Cpu)?,
            v: Tensor::zeros(shape, dtype, &Device::Cpu)?,
            len: 0,
        })
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens that fit without reallocating.
    pub fn capacity(&self) -> usize {
        self.k.dims()[1]
    }

    /// Makes room for at least `needed` tokens, keeping the first `len`.
    pub fn reserve(&mut self, needed: usize) -> Result<()> {
        if needed <= self.capacity() {
            return Ok(());
        }
        let cap = needed.max(self.capacity() * 2);
        let (heads, _, hd) = self.k.dims3()?;
        let grow = |old: &Tensor, len: usize| -> Result<Tensor> {
            let t = Tensor::zeros((heads, cap, hd), old.dtype(), &Device::Cpu)?;
            if len > 0 {
                t.slice_set(&old.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
            }
            Ok(t)
        };
        self.k = grow(&self.k, self.len)?;
        self.v = grow(&self.v, self.len)?;
        Ok(())
    }

    /// Appends `k` and `v` of shape `[kv_heads, T, head_dim]`.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let t = k.dims()[1];
        self.reserve(self.len + t)?;
        self.k.slice_set(&k.contiguous()?, 1, self.len)?;
        self.v.slice_set(&v.contiguous()?, 1, self.len)?;
        self.len += t;
        Ok(())
    }

    /// Keys and values of every held token, `[kv_heads, len, head_dim]` each.
    pub fn view(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            self.k.narrow(1, 0, self.len)?.contiguous()?,
            self.v.narrow(1, 0, self.len)?.contiguous()?,
        ))
    }

    /// Forgets every token from position `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// A deep copy (the buffers are written in place, so a fork must not share them).
    pub fn deep_clone(&self) -> Result<Self> {
        let cap = self.capacity();
        let (heads, _, hd) = self.k.dims3()?;
        let mut c = KvCache::new(heads, hd, cap, self.k.dtype())?;
        if self.len > 0 {
            let (k, v) = self.view()?;
            c.append(&k, &v)?;
        }
        Ok(c)
    }

    /// Bytes held by the buffers.
    pub fn bytes(&self) -> usize {
        2 * self.k.elem_count() * self.k.dtype().size_in_bytes()
    }
}
