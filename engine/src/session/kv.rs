//! A per-layer key/value cache: `[kv_heads, capacity, head_dim]` buffers written in place.
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

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};

use crate::error::Result;

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

/// A zeroed buffer of `[heads, cap, head_dim]`, counted as held.
fn buffer(heads: usize, cap: usize, head_dim: usize, dtype: DType) -> Result<Tensor> {
    let t = Tensor::zeros((heads, cap, head_dim), dtype, &Device::Cpu)?;
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

/// Shared keys shorter than this are read by each sequence itself (too few to pay for the
/// merge).
const MIN_SHARED: usize = 256;

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
            k: buffer(kv_heads, cap, head_dim, store)?,
            v: buffer(kv_heads, cap, head_dim, store)?,
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
        self.k.dims()[1]
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
        let (heads, _, hd) = self.k.dims3()?;
        let written = self.written;
        let grow = |old: &mut Tensor| -> Result<()> {
            let t = buffer(heads, cap, hd, old.dtype())?;
            if written > 0 {
                t.slice_set(&old.narrow(1, 0, written)?.contiguous()?, 1, 0)?;
            }
            freed(old);
            *old = t;
            Ok(())
        };
        grow(&mut self.k)?;
        grow(&mut self.v)
    }

    /// Frees the buffers (the cache is empty and holds no room afterwards).
    pub fn release(&mut self) -> Result<()> {
        let (heads, _, hd) = self.k.dims3()?;
        for t in [&mut self.k, &mut self.v] {
            let empty = buffer(heads, 0, hd, t.dtype())?;
            freed(t);
            *t = empty;
        }
        self.len = 0;
        self.written = 0;
        self.generation += 1;
        self.origin = None;
        Ok(())
    }

    /// Which rows this cache holds alike with which others: caches with the same `(id,
    /// generation)` hold the same bits in rows `0..n`, the least of their `n`.
    fn share_key(&self) -> Origin {
        match self.origin {
            Some(o) => Origin {
                len: o.len.min(self.len),
                ..o
            },
            None => Origin {
                id: self.id,
                generation: self.generation,
                len: self.len,
            },
        }
    }

    /// Makes `dst` hold this cache's rows (bitwise), growing it to exactly what they need
    /// when it is smaller. Both must have the same shape and dtypes.
    pub fn copy_into(&self, dst: &mut KvCache) -> Result<()> {
        if self.k.dims()[0] != dst.k.dims()[0]
            || self.k.dims()[2] != dst.k.dims()[2]
            || self.k.dtype() != dst.k.dtype()
        {
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
            dst.k
                .slice_set(&self.k.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
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

    /// Causal attention of the last `queries` positions over every held token, read straight
    /// from the buffers (see [`super::attend`]): no f32 copy of the cache and no score matrix
    /// is made, at any context length. `q` is `[queries, num_heads, head_dim]`, already
    /// rotated (query head `i` reads KV head `i / (num_heads / kv_heads)`); the result is
    /// `[queries, num_heads·head_dim]`. `None` when the model does not compute in f32 or the
    /// cache is stored in neither f16 nor f32 (the caller then goes through [`Self::view`]).
    pub fn attend(
        &self,
        q: &[f32],
        queries: usize,
        num_heads: usize,
        scale: f32,
    ) -> Result<Option<Vec<f32>>> {
        attend_all(&[self], q, &[queries], num_heads, scale)
    }

    /// The buffers held for reading in place, or `None` when the model does not compute in
    /// f32 (a cache stored in neither f16 nor f32 gives no job, [`KvRead::job`]).
    pub(crate) fn read(&self) -> Result<Option<KvRead<'_>>> {
        let (nkv, cap, hd) = self.k.dims3()?;
        if self.compute != DType::F32 {
            return Ok(None);
        }
        let (ks, kl) = self.k.storage_and_layout();
        let (vs, vl) = self.v.storage_and_layout();
        if !kl.is_contiguous() || !vl.is_contiguous() {
            return Ok(None);
        }
        Ok(Some(KvRead {
            k: (Box::new(ks), kl.start_offset()),
            v: (Box::new(vs), vl.start_offset()),
            dims: (nkv, cap, hd),
            len: self.len,
        }))
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
        let (heads, _, hd) = self.k.dims3()?;
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
        2 * self.k.elem_count() * self.k.dtype().size_in_bytes()
    }
}

impl Drop for KvCache {
    fn drop(&mut self) {
        freed(&self.k);
        freed(&self.v);
    }
}

/// [`KvCache::attend`] for the sequences of a batched pass at once, in one parallel loop over
/// all of them: `q` stacks each one's queries (the last `counts[i]` positions of
/// `caches[i]`), and the result their outputs in the same order. Caches that were copied from
/// one source (sessions forked from one prompt prefix) read the keys they hold alike once, for
/// all their queries together ([`super::attend::Shared`]). `None` when a cache cannot be read
/// in place or the shapes do not fit (the caller takes the general path).
pub(crate) fn attend_all(
    caches: &[&KvCache],
    q: &[f32],
    counts: &[usize],
    num_heads: usize,
    scale: f32,
) -> Result<Option<Vec<f32>>> {
    if counts.len() != caches.len() {
        return Ok(None);
    }
    let mut reads = Vec::with_capacity(caches.len());
    for c in caches {
        match c.read()? {
            Some(r) => reads.push(r),
            None => return Ok(None),
        }
    }
    let mut jobs = Vec::with_capacity(reads.len());
    let mut at = 0;
    for (r, &n) in reads.iter().zip(counts) {
        let w = n * num_heads * r.dims.2;
        let Some(qs) = q.get(at..at + w) else {
            return Ok(None);
        };
        match r.job(qs, n, num_heads, scale) {
            Some(job) => jobs.push(job),
            None => return Ok(None),
        }
        at += w;
    }
    if at != q.len() || jobs.len() != caches.len() {
        return Ok(None);
    }
    let shared = shared_groups(caches, counts, &reads);
    for grp in &shared {
        for &j in &grp.members {
            jobs[j].from = grp.len;
        }
    }
    Ok(Some(super::attend::attend_many(&jobs, &shared)))
}

/// The groups of caches that hold at least [`MIN_SHARED`] keys alike before all of their
/// queries (the last `counts[i]` rows of each).
fn shared_groups<'a>(
    caches: &[&KvCache],
    counts: &[usize],
    reads: &'a [KvRead<'a>],
) -> Vec<super::attend::Shared<'a>> {
    let mut groups: Vec<((u64, u64), usize, Vec<usize>)> = Vec::new();
    for (i, (c, &n)) in caches.iter().zip(counts).enumerate() {
        let key = c.share_key();
        let len = key.len.min(c.len.saturating_sub(n));
        match groups.iter_mut().find(|g| g.0 == (key.id, key.generation)) {
            Some(g) => {
                g.1 = g.1.min(len);
                g.2.push(i);
            }
            None => groups.push(((key.id, key.generation), len, vec![i])),
        }
    }
    groups
        .into_iter()
        .filter(|(_, len, members)| members.len() > 1 && *len >= MIN_SHARED)
        .filter_map(|(_, len, members)| {
            let (keys, values, stride) = reads[members[0]].rows()?;
            Some(super::attend::Shared {
                keys,
                values,
                stride,
                len,
                members,
            })
        })
        .collect()
}

/// A read lock on a buffer's storage (candle's lock type, named by what it gives).
type Guard<'a> = Box<dyn std::ops::Deref<Target = Storage> + 'a>;

/// A cache's buffers read-locked in place (see [`KvCache::read`]).
pub(crate) struct KvRead<'a> {
    k: (Guard<'a>, usize),
    v: (Guard<'a>, usize),
    /// `[kv_heads, capacity, head_dim]`.
    dims: (usize, usize, usize),
    len: usize,
}

impl KvRead<'_> {
    /// The attention job of the last `queries` held positions over every held token, for
    /// queries `q` (`[queries, num_heads, head_dim]`, rotated): see [`KvCache::attend`].
    /// `None` when the shapes do not fit or the cache is stored in neither f16 nor f32 (the
    /// caller takes the general path).
    pub(crate) fn job<'a>(
        &'a self,
        q: &'a [f32],
        queries: usize,
        num_heads: usize,
        scale: f32,
    ) -> Option<super::attend::Job<'a>> {
        use super::attend::{Job, Shape};
        let (nkv, cap, hd) = self.dims;
        if queries == 0
            || queries > self.len
            || !num_heads.is_multiple_of(nkv)
            || q.len() != queries * num_heads * hd
        {
            return None;
        }
        let (keys, values, _) = self.rows()?;
        Some(Job {
            q,
            keys,
            values,
            shape: Shape {
                heads: num_heads,
                kv_heads: nkv,
                head_dim: hd,
                stride: cap,
                queries,
                pos: self.len - queries,
            },
            scale,
            from: 0,
        })
    }

    /// Every head's keys and values in their stored dtype, and the rows from one head to the
    /// next; `None` when stored in neither f16 nor f32.
    fn rows(&self) -> Option<(super::attend::Rows<'_>, super::attend::Rows<'_>, usize)> {
        use super::attend::Rows;
        let ((ks, k0), (vs, v0)) = (&self.k, &self.v);
        let (keys, values) = match (&***ks, &***vs) {
            (Storage::Cpu(CpuStorage::F16(k)), Storage::Cpu(CpuStorage::F16(v))) => {
                (Rows::F16(&k[*k0..]), Rows::F16(&v[*v0..]))
            }
            (Storage::Cpu(CpuStorage::F32(k)), Storage::Cpu(CpuStorage::F32(v))) => {
                (Rows::F32(&k[*k0..]), Rows::F32(&v[*v0..]))
            }
            _ => return None,
        };
        Some((keys, values, self.dims.1))
    }
}

#[cfg(test)]
mod attend_tests {
    use super::*;

    /// `attend` of one query against the widened copy and plain softmax attention, with GQA
    /// (8 query heads over 2 KV heads) and a capacity larger than the length.
    #[test]
    fn attend_matches_attention_over_the_widened_cache() {
        let (nkv, nh, hd, len) = (2, 8, 16, 37);
        let mut c = KvCache::new(nkv, hd, 64, 64, DType::F16, DType::F32).unwrap();
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        let k: Vec<f32> = (0..nkv * len * hd).map(val).collect();
        let v: Vec<f32> = (0..nkv * len * hd).map(|i| val(i + 13)).collect();
        let kt = Tensor::from_vec(k, (nkv, len, hd), &Device::Cpu).unwrap();
        let vt = Tensor::from_vec(v, (nkv, len, hd), &Device::Cpu).unwrap();
        c.append(&kt, &vt).unwrap();
        let q: Vec<f32> = (0..nh * hd).map(|i| val(i + 101)).collect();
        let scale = 0.25f32;
        let got = c.attend(&q, 1, nh, scale).unwrap().unwrap();
        let (kw, vw) = c.view().unwrap();
        let kw: Vec<Vec<Vec<f32>>> = kw.to_vec3().unwrap();
        let vw: Vec<Vec<Vec<f32>>> = vw.to_vec3().unwrap();
        let g = nh / nkv;
        let mut worst = 0f32;
        for i in 0..nh {
            let h = i / g;
            let qi = &q[i * hd..(i + 1) * hd];
            let s: Vec<f32> = (0..len)
                .map(|t| qi.iter().zip(&kw[h][t]).map(|(a, b)| a * b).sum::<f32>() * scale)
                .collect();
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            for d in 0..hd {
                let want: f32 = (0..len).map(|t| e[t] / sum * vw[h][t][d]).sum();
                worst = worst.max((want - got[i * hd + d]).abs());
            }
        }
        assert!(worst < 1e-5, "max difference {worst}");
        // Not f32 compute: the caller takes the general path.
        let mut f = KvCache::new(nkv, hd, 64, 64, DType::F16, DType::F16).unwrap();
        f.append(
            &kt.to_dtype(DType::F16).unwrap(),
            &vt.to_dtype(DType::F16).unwrap(),
        )
        .unwrap();
        assert!(f.attend(&q, 1, nh, scale).unwrap().is_none());
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;

    fn rows(n: usize, seed: usize) -> (Tensor, Tensor) {
        let val = |i: usize| (((i + seed) * 7919 % 2003) as f32 / 1001.0) - 1.0;
        let k: Vec<f32> = (0..2 * n * 64).map(val).collect();
        let v: Vec<f32> = (0..2 * n * 64).map(|i| val(i + 5)).collect();
        (
            Tensor::from_vec(k, (2, n, 64), &Device::Cpu).unwrap(),
            Tensor::from_vec(v, (2, n, 64), &Device::Cpu).unwrap(),
        )
    }

    fn cache() -> KvCache {
        KvCache::new(2, 64, 16, 2048, DType::F16, DType::F32).unwrap()
    }

    fn push(c: &mut KvCache, n: usize, seed: usize) {
        let (k, v) = rows(n, seed);
        c.append(&k, &v).unwrap();
    }

    /// `(len of the group, members)` of each shared group, for `counts` queries each.
    fn groups(caches: &[&KvCache], counts: &[usize]) -> Vec<(usize, Vec<usize>)> {
        let reads: Vec<KvRead> = caches.iter().map(|c| c.read().unwrap().unwrap()).collect();
        shared_groups(caches, counts, &reads)
            .into_iter()
            .map(|g| (g.len, g.members))
            .collect()
    }

    /// Copies of one prefix (and copies of copies) group for the rows they hold alike, the
    /// source too; a copy that rewrites a prefix row holds only the rows before it alike, and
    /// copies made after the source rewrote its rows group apart from the earlier ones.
    #[test]
    fn copies_of_one_prefix_group_until_their_rows_differ() {
        let mut src = cache();
        push(&mut src, 600, 1);
        let mut a = src.deep_clone(700).unwrap();
        let mut b = cache();
        src.copy_into(&mut b).unwrap();
        let mut c = a.deep_clone(700).unwrap(); // a copy of a copy
        push(&mut a, 1, 2);
        push(&mut b, 40, 3);
        push(&mut c, 1, 4);
        push(&mut src, 1, 5);
        // Every query comes after the 600 rows they share.
        assert_eq!(
            groups(&[&a, &b, &c, &src], &[1, 40, 1, 1]),
            [(600, vec![0, 1, 2, 3])]
        );
        // Queries that reach into the prefix shorten the shared part.
        assert_eq!(groups(&[&a, &b], &[1, 300]), [(340, vec![0, 1])]);
        // `b` goes back to 500 and writes there: it holds 500 rows alike.
        b.truncate(500);
        push(&mut b, 2, 6);
        assert_eq!(groups(&[&a, &b], &[1, 2]), [(500, vec![0, 1])]);
        // Under the threshold nothing is shared.
        b.truncate(200);
        push(&mut b, 1, 7);
        assert!(groups(&[&a, &b], &[1, 1]).is_empty());
        // The source rewrites its rows: a copy made now is of other rows than `a`'s.
        src.truncate(10);
        push(&mut src, 700, 8);
        let d = src.deep_clone(800).unwrap();
        assert_eq!(groups(&[&a, &d, &src], &[1, 1, 1]), [(709, vec![1, 2])]);
        // A cache that other rows are copied into leaves its old group.
        let mut e = d.deep_clone(800).unwrap();
        assert_eq!(groups(&[&d, &e], &[1, 1]).len(), 1);
        a.copy_into(&mut e).unwrap();
        assert!(groups(&[&d, &e], &[1, 1]).is_empty());
        e.release().unwrap();
        push(&mut e, 600, 1);
        assert!(groups(&[&a, &e], &[1, 1]).is_empty());
    }

    /// The batched attention of copies of one prefix (read once through a group) gives what
    /// each cache gives alone.
    #[test]
    fn forked_caches_attend_as_each_alone() {
        let mut src = cache();
        push(&mut src, 700, 1);
        let mut forks: Vec<KvCache> = (0..3).map(|_| src.deep_clone(800).unwrap()).collect();
        let counts = [1, 5, 1];
        for (i, (f, &n)) in forks.iter_mut().zip(&counts).enumerate() {
            push(f, 3 * i + n, 10 + i);
        }
        let refs: Vec<&KvCache> = forks.iter().collect();
        assert_eq!(groups(&refs, &counts), [(700, vec![0, 1, 2])]);
        let nh = 8;
        let q: Vec<f32> = (0..7 * nh * 64)
            .map(|i| ((i * 31 % 97) as f32 / 48.0) - 1.0)
            .collect();
        let got = attend_all(&refs, &q, &counts, nh, 0.125).unwrap().unwrap();
        let mut at = 0;
        let mut want = Vec::new();
        for (f, &n) in forks.iter().zip(&counts) {
            let w = n * nh * 64;
            want.extend(f.attend(&q[at..at + w], n, nh, 0.125).unwrap().unwrap());
            at += w;
        }
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(got.len() == want.len() && worst < 1e-6, "{worst}");
    }
}
