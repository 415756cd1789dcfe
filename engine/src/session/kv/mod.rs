//! A per-layer key/value cache written in place: values in a `[kv_heads, capacity, head_dim]`
//! buffer; keys in blocks of [`BLOCK`] positions, each KV head's block transposed,
//! `[blocks, kv_heads, head_dim, BLOCK]`. Attention reads keys a block at a time, as the
//! `head_dim` runs of positions its score kernel multiplies (one vector of keys times one query
//! value), for one query row as for many: one contiguous read, no transposing.
//!
//! Capacity is reserved up front and doubles (up to the session's context) when a chunk would
//! not fit, so a long prefill reallocates at most a logarithmic number of times. Positions at
//! or beyond `len` hold stale data that is never read; rolling back is setting `len`.
//!
//! The buffers may be stored in a narrower dtype than the model computes in (f16 for GGUF
//! models, as llama.cpp does, halving the cache): rows are rounded on append and widened back
//! on read.
//!
//! Every buffer a cache allocates and frees is counted ([`kv_memory`]): the bytes of KV held
//! in the process now, and the most held at once, which is what a KV budget is checked by.
//!
//! A cache whose rows were copied from another (a fork) remembers which cache and which
//! generation of it they came from, up to the first row it rewrites; a cache's generation
//! moves on whenever it rewrites a row. Caches with the same origin hold those rows bit for bit
//! alike, and a batched pass reads them once for all of them (`read.rs`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use candle_core::{DType, Device, Shape, Tensor};

use crate::error::Result;
use crate::session::attend::BLOCK;

mod read;
#[cfg(test)]
mod tests;

pub(crate) use read::attend_all;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Bytes of KV cache buffers held in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvMemory {
    /// Held now.
    pub live: usize,
    /// The most held at once since the start, or since [`reset_kv_peak`].
    pub peak: usize,
}

/// What the process's KV caches hold now, and the most they held at once.
pub fn kv_memory() -> KvMemory {
    KvMemory {
        live: LIVE.load(Ordering::SeqCst),
        peak: PEAK.load(Ordering::SeqCst),
    }
}

/// Starts the peak over from what is held now.
pub fn reset_kv_peak() {
    PEAK.store(LIVE.load(Ordering::SeqCst), Ordering::SeqCst);
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

/// A zeroed buffer of `dims`, counted as held.
fn buffer(dims: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
    let t = Tensor::zeros(dims, dtype, &Device::Cpu)?;
    let now = LIVE.fetch_add(tensor_bytes(&t), Ordering::SeqCst) + tensor_bytes(&t);
    PEAK.fetch_max(now, Ordering::SeqCst);
    Ok(t)
}

/// Counts `t` as freed (the caller drops it).
fn freed(t: &Tensor) {
    LIVE.fetch_sub(tensor_bytes(t), Ordering::SeqCst);
}

/// Keys and values of one attention layer.
#[derive(Debug)]
pub struct KvCache {
    /// Keys, `[capacity / BLOCK (rounded up), kv_heads, head_dim, BLOCK]`.
    k: Tensor,
    /// Values: `[kv_heads, capacity, head_dim]`.
    v: Tensor,
    len: usize,
    /// Rows `0..written` have been written at some point (rows past `len` may be reused by a
    /// restore; the session decides whether they are still valid).
    written: usize,
    /// Capacity never grows past this (the session's context).
    max_capacity: usize,
    /// The dtype `view` returns (the model's compute dtype).
    compute: DType,
    /// Names this cache's rows as a source of copies ([`KvCache::copy_into`]).
    id: u64,
    /// Bumped whenever rows that were written are written again (the copies made before no
    /// longer match them).
    generation: u64,
    /// What the first rows were copied from, when they were.
    origin: Option<Origin>,
}

/// Rows `0..len` of a cache are the same bits as rows `0..len` of cache `id` in its
/// `generation` (and so as those of every other copy of it then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Origin {
    id: u64,
    generation: u64,
    len: usize,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl KvCache {
    /// An empty cache with room for `capacity` tokens (none is allowed), growing up to
    /// `max_capacity`, stored in `store` and read back as `compute`.
    pub fn new(
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        max_capacity: usize,
        store: DType,
        compute: DType,
    ) -> Result<Self> {
        let cap = capacity.min(max_capacity.max(1));
        Ok(KvCache {
            k: buffer(key_dims(kv_heads, head_dim, cap), store)?,
            v: buffer((kv_heads, cap, head_dim), store)?,
            len: 0,
            written: 0,
            max_capacity: max_capacity.max(1),
            compute,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: 0,
            origin: None,
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
        self.v.dims()[1]
    }

    /// `[kv_heads, capacity, head_dim]`.
    fn dims(&self) -> Result<(usize, usize, usize)> {
        Ok(self.v.dims3()?)
    }

    /// Makes room for at least `needed` tokens, keeping every written row; growing, it
    /// doubles the capacity (up to the maximum) so that appends reallocate rarely.
    pub fn reserve(&mut self, needed: usize) -> Result<()> {
        if needed <= self.capacity() {
            return Ok(());
        }
        self.grow_to(
            needed.max(self.capacity() * 2).min(self.max_capacity),
            needed,
        )
    }

    /// Makes room for at least `needed` tokens, growing to exactly that many.
    pub fn reserve_exact(&mut self, needed: usize) -> Result<()> {
        if needed <= self.capacity() {
            return Ok(());
        }
        self.grow_to(needed, needed)
    }

    /// New buffers of `cap` tokens holding every written row (`needed` is what the caller
    /// asked for, for the error).
    fn grow_to(&mut self, cap: usize, needed: usize) -> Result<()> {
        if needed > self.max_capacity {
            return Err(crate::Error::ContextFull {
                needed,
                limit: self.max_capacity,
            });
        }
        let (heads, _, hd) = self.dims()?;
        let written = self.written;
        // Values hold positions along dimension 1; keys, whole blocks along dimension 0.
        let grow = |old: &mut Tensor, dims: Shape, at: usize, n: usize| -> Result<()> {
            let t = buffer(dims, old.dtype())?;
            if n > 0 {
                t.slice_set(&old.narrow(at, 0, n)?.contiguous()?, at, 0)?;
            }
            freed(old);
            *old = t;
            Ok(())
        };
        let blocks = written.div_ceil(BLOCK);
        grow(&mut self.k, key_dims(heads, hd, cap).into(), 0, blocks)?;
        grow(&mut self.v, (heads, cap, hd).into(), 1, written)
    }

    /// Frees the buffers (the cache is empty and holds no room afterwards).
    pub fn release(&mut self) -> Result<()> {
        let (heads, _, hd) = self.dims()?;
        let empty: [(_, Shape); 2] = [
            (&mut self.k, key_dims(heads, hd, 0).into()),
            (&mut self.v, (heads, 0, hd).into()),
        ];
        for (t, dims) in empty {
            let empty = buffer(dims, t.dtype())?;
            freed(t);
            *t = empty;
        }
        self.len = 0;
        self.written = 0;
        self.generation += 1;
        self.origin = None;
        Ok(())
    }

    /// Makes `dst` hold this cache's rows (bitwise), growing it to exactly what they need
    /// when it is smaller. Both must have the same shape and dtypes.
    pub fn copy_into(&self, dst: &mut KvCache) -> Result<()> {
        let ((heads, _, hd), (dst_heads, _, dst_hd)) = (self.dims()?, dst.dims()?);
        if heads != dst_heads || hd != dst_hd || self.k.dtype() != dst.k.dtype() {
            return Err(crate::Error::arg(
                "session",
                "the KV caches differ in shape or dtype",
            ));
        }
        // Whatever `dst` held is gone from here on, even if a step below fails.
        dst.len = 0;
        dst.written = 0;
        dst.generation += 1;
        dst.origin = None;
        dst.reserve_exact(self.len)?;
        if self.len > 0 {
            // Whole blocks: the last one's rows past `len` are stale in both.
            let blocks = self.len.div_ceil(BLOCK);
            dst.k
                .slice_set(&self.k.narrow(0, 0, blocks)?.contiguous()?, 0, 0)?;
            dst.v
                .slice_set(&self.v.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
        }
        dst.len = self.len;
        dst.written = self.len;
        // A copy of a copy holds its source's origin rows (all it holds, when it has added
        // none), so forks of forks still group with the first copies.
        dst.origin = Some(match self.origin {
            Some(o) if o.len >= self.len => Origin { len: self.len, ..o },
            _ => Origin {
                id: self.id,
                generation: self.generation,
                len: self.len,
            },
        });
        Ok(())
    }

    /// Appends `k` and `v` of shape `[kv_heads, T, head_dim]`.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let t = k.dims()[1];
        self.reserve(self.len + t)?;
        if self.len < self.written {
            // Rows written before are overwritten: copies of them no longer match, and this
            // cache's own copied rows end here.
            self.generation += 1;
        }
        if let Some(o) = &mut self.origin {
            o.len = o.len.min(self.len);
        }
        let store = self.k.dtype();
        // `[1, kv_heads, head_dim, T]`, written a block's part at a time.
        let kt = k
            .to_dtype(store)?
            .transpose(1, 2)?
            .unsqueeze(0)?
            .contiguous()?;
        let mut p = self.len;
        while p < self.len + t {
            let n = (BLOCK - p % BLOCK).min(self.len + t - p);
            let part = kt.narrow(3, p - self.len, n)?.contiguous()?;
            self.k
                .narrow(0, p / BLOCK, 1)?
                .slice_set(&part, 3, p % BLOCK)?;
            p += n;
        }
        self.v
            .slice_set(&v.to_dtype(store)?.contiguous()?, 1, self.len)?;
        self.len += t;
        self.written = self.written.max(self.len);
        Ok(())
    }

    /// Keys and values of every held token, `[kv_heads, len, head_dim]` each.
    pub fn view(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            {
                // Only the blocks that hold tokens, not the whole capacity.
                let (_, heads, hd, _) = self.k.dims4()?;
                let blocks = self.len.div_ceil(BLOCK);
                self.k
                    .narrow(0, 0, blocks)?
                    .permute((1, 0, 3, 2))?
                    .contiguous()?
                    .reshape((heads, blocks * BLOCK, hd))?
                    .narrow(1, 0, self.len)?
                    .to_dtype(self.compute)?
                    .contiguous()?
            },
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

    /// A deep copy with room for `capacity` tokens (at least its length): the buffers are
    /// written in place, so a fork must not share them.
    pub fn deep_clone(&self, capacity: usize) -> Result<Self> {
        let (heads, _, hd) = self.dims()?;
        let mut c = KvCache::new(
            heads,
            hd,
            capacity.max(self.len),
            self.max_capacity,
            self.k.dtype(),
            self.compute,
        )?;
        self.copy_into(&mut c)?;
        Ok(c)
    }

    /// Bytes held by the buffers.
    pub fn bytes(&self) -> usize {
        tensor_bytes(&self.k) + tensor_bytes(&self.v)
    }
}

/// The keys' buffer for `cap` positions: `[blocks, kv_heads, head_dim, BLOCK]`.
fn key_dims(kv_heads: usize, head_dim: usize, cap: usize) -> (usize, usize, usize, usize) {
    (cap.div_ceil(BLOCK), kv_heads, head_dim, BLOCK)
}

impl Drop for KvCache {
    fn drop(&mut self) {
        freed(&self.k);
        freed(&self.v);
    }
}
