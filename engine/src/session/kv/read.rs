//! Reading caches in place for attention: the buffers locked for reading ([`KvRead`]), the
//! jobs of a batched pass over them, and the groups of caches that hold a prefix alike and so
//! read it once ([`KvCache`]'s origins; see the parent module).

use candle_core::{CpuStorage, DType, Storage};

use super::{KvCache, Origin};
use crate::error::Result;

/// Shared keys shorter than this are read by each sequence itself (attention reads whole
/// blocks of 256 shared keys once; fewer are not worth a group).
const MIN_SHARED: usize = 256;

impl KvCache {
    /// Causal attention of the last `queries` positions over every held token, read straight
    /// from the buffers (see [`crate::session::attend`]): no f32 copy of the cache and no score matrix
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
    pub(super) fn read(&self) -> Result<Option<KvRead<'_>>> {
        let (nkv, cap, hd) = self.dims()?;
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
}

/// [`KvCache::attend`] for the sequences of a batched pass at once, in one parallel loop over
/// all of them: `q` stacks each one's queries (the last `counts[i]` positions of
/// `caches[i]`), and the result their outputs in the same order. Caches that were copied from
/// one source (sessions forked from one prompt prefix) read the keys they hold alike once, for
/// all their queries together ([`crate::session::attend::Shared`]). `None` when a cache cannot be read
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
    Ok(Some(crate::session::attend::attend_many(&jobs, &shared)))
}

/// The groups of caches that hold at least [`MIN_SHARED`] keys alike before all of their
/// queries (the last `counts[i]` rows of each).
pub(super) fn shared_groups<'a>(
    caches: &[&KvCache],
    counts: &[usize],
    reads: &'a [KvRead<'a>],
) -> Vec<crate::session::attend::Shared<'a>> {
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
            Some(crate::session::attend::Shared {
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
pub(super) struct KvRead<'a> {
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
    fn job<'a>(
        &'a self,
        q: &'a [f32],
        queries: usize,
        num_heads: usize,
        scale: f32,
    ) -> Option<crate::session::attend::Job<'a>> {
        use crate::session::attend::{Job, Shape};
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
        })
    }

    /// Every head's keys (in transposed blocks, see [`KvCache`]) and values (`[kv_heads,
    /// stride, head_dim]`) in their stored dtype, and the `stride` (the capacity); `None` when
    /// stored in neither f16 nor f32.
    fn rows(
        &self,
    ) -> Option<(
        crate::session::attend::Rows<'_>,
        crate::session::attend::Rows<'_>,
        usize,
    )> {
        use crate::session::attend::Rows;
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
