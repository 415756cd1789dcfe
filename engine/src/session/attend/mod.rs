//! Causal attention read straight from the KV cache, for any number of queries.
//!
//! The work is split into items of one KV head and a tile of up to [`TILE`] query positions
//! (the `g` query heads of the group at each position: `g·TILE` rows). An item walks the keys
//! it may see in blocks of [`BLOCK`]: each block of keys and values is widened from the cache's
//! storage (f16 or f32) into small f32 buffers, the block's scores are computed into a
//! `rows x BLOCK` tile, and a running (online) softmax folds them into the output. Nothing
//! larger than a block is ever written: no f32 copy of the cache, no `T x S` score matrix, so
//! the working set of an item stays in the core's L2 cache at any context length.
//!
//! The scores of many rows (a prefill tile) take the block's keys transposed, so that each
//! product is a vector of keys times one query value; a few rows (a decoded token: `g` heads)
//! take the keys' rows as they are and sum each product across lanes, sixteen keys at a time,
//! since transposing a block costs more than their products. Decoding is then bound by reading
//! the cache.
//!
//! Scores are kept in base 2 (the queries are pre-multiplied by `scale · log2 e`) and turned
//! into probabilities with a polynomial `2^x` that the compiler vectorizes. The two products
//! (scores, and probabilities times values) are register-blocked kernels over the vector type of
//! the CPU (AVX-512, AVX2, or scalars elsewhere; see `simd`).

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use kernels::{item, Isa};

mod kernels;
mod simd;
#[cfg(test)]
mod tests;

/// Query positions per work item.
const TILE: usize = 32;
/// Keys per block.
const BLOCK: usize = 256;
/// Score columns are computed in multiples of this (two vectors of the widest kind).
const COLS: usize = 32;
/// Query rows computed together.
const ROWS: usize = 4;
/// Lanes of the padded head dimension.
const LANE: usize = 16;
/// Query rows (query heads of a tile) up to which an item scores keys from their stored rows
/// rather than from a transposed copy of each block (decoding: one position's `g` heads).
const FEW_ROWS: usize = 16;

/// Keys or values of every KV head, `[kv_heads, stride, head_dim]`, in their stored dtype.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    F16(&'a [f16]),
    F32(&'a [f32]),
}

impl Rows<'_> {
    /// Widens `n` rows of `hd` values starting at row `row` into `out` (`n` rows of `hdp`).
    fn widen(&self, row: usize, n: usize, hd: usize, hdp: usize, out: &mut [f32]) {
        for (i, o) in out.chunks_exact_mut(hdp).take(n).enumerate() {
            let at = (row + i) * hd;
            match self {
                Rows::F16(d) => d[at..at + hd].convert_to_f32_slice(&mut o[..hd]),
                Rows::F32(d) => o[..hd].copy_from_slice(&d[at..at + hd]),
            }
        }
    }
}

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` is a multiple).
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Rows between one KV head and the next in the cache buffers.
    pub stride: usize,
    /// Queries, at positions `pos..pos + queries`; the cache holds keys `0..pos + queries`.
    pub queries: usize,
    pub pos: usize,
}

/// One attention call: queries `q` (`[queries, heads, head_dim]`, rotated) over the cached
/// `keys` and `values`, scores scaled by `scale`.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a> {
    pub q: &'a [f32],
    pub keys: Rows<'a>,
    pub values: Rows<'a>,
    pub shape: Shape,
    pub scale: f32,
}

/// One job in the kernels compiled for `isa` (one of [`Isa::available`]).
#[cfg(test)]
fn attend_with(job: &Job, isa: Isa) -> Vec<f32> {
    attend_many_with(std::slice::from_ref(job), isa)
}

/// Several jobs (the sequences of a batched pass, each over its own cache) in one parallel
/// loop over all their items. Returns their outputs stacked in order, `[Σ queries,
/// heads·head_dim]`. The jobs have the same number of heads and head size (one model).
pub(crate) fn attend_many(jobs: &[Job]) -> Vec<f32> {
    attend_many_with(jobs, Isa::best())
}

/// [`attend_many`] in the kernels compiled for `isa` (one of [`Isa::available`]).
fn attend_many_with(jobs: &[Job], isa: Isa) -> Vec<f32> {
    let Some(first) = jobs.first() else {
        return Vec::new();
    };
    let (hd, row) = (
        first.shape.head_dim,
        first.shape.heads * first.shape.head_dim,
    );
    assert!(
        jobs.iter()
            .all(|j| j.shape.head_dim == hd && j.shape.heads * hd == row),
        "attention jobs of one pass share their head shape"
    );
    // (job, KV head, first query of the tile, the job's first output row)
    let mut items: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut rows = 0;
    for (j, job) in jobs.iter().enumerate() {
        let s = job.shape;
        for h in 0..s.kv_heads {
            items.extend((0..s.queries.div_ceil(TILE)).map(|t| (j, h, t * TILE, rows)));
        }
        rows += s.queries;
    }
    let parts: Vec<Vec<f32>> = items
        .par_iter()
        .map(|&(j, h, i0, _)| item(&jobs[j], h, i0, isa))
        .collect();
    let mut out = vec![0f32; rows * row];
    for (&(j, h, i0, base), part) in items.iter().zip(&parts) {
        let g = jobs[j].shape.heads / jobs[j].shape.kv_heads;
        for (r, o) in part.chunks_exact(hd).enumerate() {
            let (i, k) = (base + i0 + r / g, r % g);
            let at = i * row + (h * g + k) * hd;
            out[at..at + hd].copy_from_slice(o);
        }
    }
    out
}
