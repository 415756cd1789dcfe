//! A per-layer key/value cache: `[kv_heads, capacity, head_dim]` buffers written in place.
//!
//! Capacity is reserved up front and doubles (up to the session's context) when a chunk would
//! not fit, so a long prefill reallocates at most a logarithmic number of times. Positions at
//! or beyond `len` hold stale data that is never read; rolling back is setting `len`.
//!
//! The buffers may be stored in a narrower dtype than the model computes in (f16 for GGUF
//! models, as llama.cpp does, halving the cache): rows are rounded on append and widened back
//! on read.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Keys and values of one attention layer.
#[derive(Debug)]
pub struct KvCache {
    k: Tensor,
    v: Tensor,
    len: usize,
    /// Rows `0..written` have been written at some point (rows past `len` may be reused by a
    /// restore; the session decides whether they are still valid).
    written: usize,
    /// Capacity never grows past this (the session's context).
    max_capacity: usize,
    /// The dtype `view` returns (the model's compute dtype).
    compute: DType,
}

impl KvCache {
    /// An empty cache with room for `capacity` tokens, growing up to `max_capacity`, stored
    /// in `store` and read back as `compute`.
    pub fn new(
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        max_capacity: usize,
        store: DType,
        compute: DType,
    ) -> Result<Self> {
        let shape = (kv_heads, capacity.clamp(1, max_capacity.max(1)), head_dim);
        Ok(KvCache {
            k: Tensor::zeros(shape, store, &Device::Cpu)?,
            v: Tensor::zeros(shape, store, &Device::Cpu)?,
            len: 0,
            written: 0,
            max_capacity: max_capacity.max(1),
            compute,
        })
    }

    /// The dtype rows are stored in.
    pub fn store_dtype(&self) -> DType {
        self.k.dtype()
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

    /// Makes room for at least `needed` tokens, keeping every written row.
    pub fn reserve(&mut self, needed: usize) -> Result<()> {
        if needed <= self.capacity() {
            return Ok(());
        }
        if needed > self.max_capacity {
            return Err(crate::Error::ContextFull {
                needed,
                limit: self.max_capacity,
            });
        }
        let cap = needed.max(self.capacity() * 2).min(self.max_capacity);
        let (heads, _, hd) = self.k.dims3()?;
        let grow = |old: &Tensor, len: usize| -> Result<Tensor> {
            let t = Tensor::zeros((heads, cap, hd), old.dtype(), &Device::Cpu)?;
            if len > 0 {
                t.slice_set(&old.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
            }
            Ok(t)
        };
        self.k = grow(&self.k, self.written)?;
        self.v = grow(&self.v, self.written)?;
        Ok(())
    }

    /// Appends `k` and `v` of shape `[kv_heads, T, head_dim]`.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let t = k.dims()[1];
        self.reserve(self.len + t)?;
        let store = self.k.dtype();
        self.k
            .slice_set(&k.to_dtype(store)?.contiguous()?, 1, self.len)?;
        self.v
            .slice_set(&v.to_dtype(store)?.contiguous()?, 1, self.len)?;
        self.len += t;
        self.written = self.written.max(self.len);
        Ok(())
    }

    /// Keys and values of every held token, `[kv_heads, len, head_dim]` each.
    pub fn view(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            self.k
                .narrow(1, 0, self.len)?
                .to_dtype(self.compute)?
                .contiguous()?,
            self.v
                .narrow(1, 0, self.len)?
                .to_dtype(self.compute)?
                .contiguous()?,
        ))
    }

    /// Forgets every token from position `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Sets the length to `len`, which may reach back into rows written before a rollback.
    /// The caller guarantees those rows are still valid.
    pub fn set_len(&mut self, len: usize) -> Result<()> {
        if len > self.written {
            return Err(crate::Error::StaleSnapshot(format!(
                "the KV cache holds {} rows, the snapshot needs {len}",
                self.written
            )));
        }
        self.len = len;
        Ok(())
    }

    /// A deep copy (the buffers are written in place, so a fork must not share them).
    pub fn deep_clone(&self) -> Result<Self> {
        let cap = self.capacity();
        let (heads, _, hd) = self.k.dims3()?;
        let mut c = KvCache::new(
            heads,
            hd,
            cap,
            self.max_capacity,
            self.k.dtype(),
            self.compute,
        )?;
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
