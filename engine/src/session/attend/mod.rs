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
//! The cache holds each block of keys transposed (`[blocks, kv_heads, head_dim, BLOCK]`, see
//! the KV cache), so a block's keys are widened from one contiguous run as `head_dim` rows of
//! positions, and each score product is a vector of keys times one query value: the same
//! register-blocked kernel for a decoded token's `g` rows as for a prefill tile's, with no
//! shuffles and no sums across lanes.
//!
//! Sequences forked from one prefix hold its keys alike; a batched pass reads them once
//! ([`Shared`]): items over the shared keys (whole blocks of them) stack the query rows of
//! every member and run first; each member's own items then go on from where those left off
//! (the running sums, largest scores and weights: [`Part`]) over the keys after them. A row
//! thus meets the same blocks in the same order, scored by the same kernel, as it would
//! alone, and gets the same bits.
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
/// Keys per block (also the block of the KV cache's key layout).
pub(crate) const BLOCK: usize = 256;
/// Score columns are computed in multiples of this (two vectors of the widest kind).
const COLS: usize = 32;
/// Query rows computed together.
const ROWS: usize = 4;
/// Lanes of the padded head dimension.
const LANE: usize = 16;

/// Keys of every KV head in transposed blocks (`[stride / BLOCK (rounded up), kv_heads,
/// head_dim, BLOCK]`), or values (`[kv_heads, stride, head_dim]`), in their stored dtype.
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
    /// Positions the cache buffers hold per KV head (the value rows from one head to the
    /// next).
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

/// Keys `0..len` that several jobs hold alike (the same bits in each one's cache: the prefix
/// they were all forked from), read once for all their queries: the keys are widened once for
/// all of them, where each decoded token alone would read the whole prefix for its few rows.
/// Every member's queries come after the shared keys, so none of them is masked. Only whole
/// blocks ([`BLOCK`]) of them are read once; the members read the rest themselves.
#[derive(Clone)]
pub(crate) struct Shared<'a> {
    /// Rows of one member's cache (any member: they are the same bits).
    pub keys: Rows<'a>,
    pub values: Rows<'a>,
    /// Positions those buffers hold per KV head.
    pub stride: usize,
    pub len: usize,
    /// The jobs it serves (indices into the jobs of the call): each reads its own rows from
    /// `len` on.
    pub members: Vec<usize>,
}

impl Shared<'_> {
    /// The shared keys read once: their whole blocks (each member reads the rest).
    fn read_once(&self) -> usize {
        self.len / BLOCK * BLOCK
    }
}

/// What one item computes: rows of queries (`group` query heads of one KV head at each of
/// `ends.len()` positions, row `r` at position `r / group`) over keys `from..ends[r / group]`
/// of KV head `head` (buffers of `stride` positions per head, [`Rows`]).
#[derive(Clone, Copy)]
pub(super) struct Work<'a> {
    /// `[rows, head_dim]`, gathered from the jobs.
    pub q: &'a [f32],
    pub keys: Rows<'a>,
    pub values: Rows<'a>,
    pub head: usize,
    pub kv_heads: usize,
    pub stride: usize,
    pub from: usize,
    /// The keys each position sees end before this one.
    pub ends: &'a [usize],
    pub group: usize,
    pub head_dim: usize,
    pub scale: f32,
    /// The rows' state after the keys before `from`, when another item read those.
    pub start: Option<Start<'a>>,
}

/// An item's rows before normalizing: output sums `o` (`[rows, head_dim]`), and each row's
/// largest score `m` (base 2) and sum of weights `l`.
pub(super) struct Part {
    pub o: Vec<f32>,
    pub m: Vec<f32>,
    pub l: Vec<f32>,
}

/// A [`Part`] borrowed, as the state an item starts from.
#[derive(Clone, Copy)]
pub(super) struct Start<'a> {
    pub o: &'a [f32],
    pub m: &'a [f32],
    pub l: &'a [f32],
}

/// One job in the kernels compiled for `isa` (one of [`Isa::available`]).
#[cfg(test)]
fn attend_with(job: &Job, isa: Isa) -> Vec<f32> {
    attend_many_with(std::slice::from_ref(job), &[], isa)
}

/// Several jobs (the sequences of a batched pass, each over its own cache) in one parallel
/// loop over all their items, the keys of each [`Shared`] group read once for all its
/// members. Returns their outputs stacked in order, `[Σ queries, heads·head_dim]`. The jobs
/// have the same number of heads, head size and scale (one model).
pub(crate) fn attend_many(jobs: &[Job], shared: &[Shared]) -> Vec<f32> {
    attend_many_with(jobs, shared, Isa::best())
}

/// Where an item reads its keys.
#[derive(Clone, Copy)]
enum Keys {
    /// A job's own rows, from its `from`.
    Own(usize),
    /// A shared group's.
    Shared(usize),
}

/// A KV head over some query positions, `(job, query)` each.
struct Item {
    keys: Keys,
    head: usize,
    at: Vec<(usize, usize)>,
}

/// [`attend_many`] in the kernels compiled for `isa` (one of [`Isa::available`]).
fn attend_many_with(jobs: &[Job], shared: &[Shared], isa: Isa) -> Vec<f32> {
    let Some(first_job) = jobs.first() else {
        return Vec::new();
    };
    let s0 = first_job.shape;
    let (hd, heads, kvh) = (s0.head_dim, s0.heads, s0.kv_heads);
    let g = heads / kvh;
    assert!(
        jobs.iter()
            .all(
                |j| (j.shape.head_dim, j.shape.heads, j.shape.kv_heads) == (hd, heads, kvh)
                    && j.scale == first_job.scale
            ),
        "attention jobs of one pass share their head shape and scale"
    );
    // The first key each job reads from its own rows: the whole blocks its group reads.
    let mut from = vec![None; jobs.len()];
    for grp in shared {
        let len = grp.read_once();
        for &j in grp.members.iter().filter(|_| len > 0) {
            assert!(
                from[j].is_none() && jobs[j].shape.pos >= grp.len,
                "a job is in one group, and its queries come after the shared keys"
            );
            from[j] = Some(len);
        }
    }
    // The first output row of each job.
    let starts: Vec<usize> = jobs
        .iter()
        .scan(0, |at, j| {
            let s = *at;
            *at += j.shape.queries;
            Some(s)
        })
        .collect();
    let total = jobs.iter().map(|j| j.shape.queries).sum::<usize>();
    let tiles = |at: Vec<(usize, usize)>, keys: Keys, items: &mut Vec<Item>| {
        for part in at.chunks(TILE) {
            items.extend((0..kvh).map(|head| Item {
                keys,
                head,
                at: part.to_vec(),
            }));
        }
    };
    // Items of the first round: the shared keys, and the jobs outside any group.
    let mut first = Vec::new();
    // The second: each member over its own keys, from where the first left its rows.
    let mut then = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let q = job.shape.queries;
        let items = if from[j].is_some() {
            &mut then
        } else {
            &mut first
        };
        for t0 in (0..q).step_by(TILE) {
            let at = (t0..q.min(t0 + TILE)).map(|i| (j, i)).collect();
            tiles(at, Keys::Own(j), items);
        }
    }
    for (k, grp) in shared.iter().enumerate().filter(|(_, s)| s.read_once() > 0) {
        // A row's scores take the same kernel in any tile: stacking changes no bits.
        let at = grp
            .members
            .iter()
            .flat_map(|&j| (0..jobs[j].shape.queries).map(move |i| (j, i)))
            .collect();
        tiles(at, Keys::Shared(k), &mut first);
    }
    // An item's row `r` in the outputs: `[Σ queries, heads]` rows of `hd`.
    let row = |it: &Item, r: usize| {
        let (j, i) = it.at[r / g];
        (starts[j] + i) * heads + it.head * g + r % g
    };
    let run = |it: &Item, start: Option<&Gathered>| {
        let mut q = Vec::with_capacity(it.at.len() * g * hd);
        for &(j, i) in &it.at {
            let at = (i * heads + it.head * g) * hd;
            q.extend_from_slice(&jobs[j].q[at..at + g * hd]);
        }
        let (keys, values, stride, from, ends) = match it.keys {
            Keys::Own(j) => {
                let (job, s) = (&jobs[j], jobs[j].shape);
                let ends = it.at.iter().map(|&(_, i)| s.pos + i + 1).collect();
                (job.keys, job.values, s.stride, from[j].unwrap_or(0), ends)
            }
            Keys::Shared(k) => {
                let grp = &shared[k];
                let len = grp.read_once();
                (grp.keys, grp.values, grp.stride, 0, vec![len; it.at.len()])
            }
        };
        let work = Work {
            q: &q,
            keys,
            values,
            head: it.head,
            kv_heads: kvh,
            stride,
            from,
            ends: &ends,
            group: g,
            head_dim: hd,
            scale: first_job.scale,
            start: start.map(|(o, m, l)| Start { o, m, l }),
        };
        item(&work, isa)
    };
    let mut acc = Acc {
        o: vec![0f32; total * heads * hd],
        m: vec![f32::NEG_INFINITY; total * heads],
        l: vec![0f32; total * heads],
        hd,
    };
    let rows = |it: &Item| -> Vec<usize> { (0..it.at.len() * g).map(|r| row(it, r)).collect() };
    let parts: Vec<Part> = first.par_iter().map(|it| run(it, None)).collect();
    for (it, part) in first.iter().zip(parts) {
        acc.place(&rows(it), part);
    }
    let parts: Vec<Part> = then
        .par_iter()
        .map(|it| run(it, Some(&acc.gather(&rows(it)))))
        .collect();
    for (it, part) in then.iter().zip(parts) {
        acc.place(&rows(it), part);
    }
    let Acc { mut o, l, .. } = acc;
    for (o, l) in o.chunks_exact_mut(hd).zip(&l) {
        for x in o {
            *x /= l;
        }
    }
    o
}

/// Some rows' sums (`[rows, hd]`), largest scores and weights.
type Gathered = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Every output row's state: sums (`[rows, hd]`), largest score and weight.
struct Acc {
    o: Vec<f32>,
    m: Vec<f32>,
    l: Vec<f32>,
    hd: usize,
}

impl Acc {
    /// Sets `rows` to an item's part.
    fn place(&mut self, rows: &[usize], part: Part) {
        let hd = self.hd;
        for (r, &at) in rows.iter().enumerate() {
            self.o[at * hd..(at + 1) * hd].copy_from_slice(&part.o[r * hd..(r + 1) * hd]);
            (self.m[at], self.l[at]) = (part.m[r], part.l[r]);
        }
    }

    /// The state of `rows`, gathered: sums, largest scores, weights.
    fn gather(&self, rows: &[usize]) -> Gathered {
        let (mut o, mut m, mut l) = (vec![], vec![], vec![]);
        for &at in rows {
            o.extend_from_slice(&self.o[at * self.hd..(at + 1) * self.hd]);
            m.push(self.m[at]);
            l.push(self.l[at]);
        }
        (o, m, l)
    }
}
