//! The work of one item (a KV head and a query tile): online softmax over key blocks, with
//! register-blocked products in the CPU's vectors.

use std::cell::Cell;

use half::slice::HalfFloatSliceExt;

use super::simd::{Scalar, Vector};
use super::{Part, Rows, Work, BLOCK, COLS, LANE, ROWS};

/// The instruction sets the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// Every set this CPU runs, the widest last.
    pub(super) fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut sets = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                sets.push(Isa::Avx2);
            }
            if has!("avx512f") && has!("fma") && has!("f16c") {
                sets.push(Isa::Avx512);
            }
        }
        sets
    }

    /// The widest set this CPU runs.
    pub(super) fn best() -> Isa {
        Isa::available().pop().unwrap_or(Isa::Scalar)
    }
}

/// The rows of `work` over its keys, in the kernels of `isa` (one of [`Isa::available`]).
pub(super) fn item(work: &Work, isa: Isa) -> Part {
    match isa {
        // SAFETY: `isa` is available (the caller's contract, checked by `Isa::available`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { item_avx512(work) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { item_avx2(work) },
        // SAFETY: scalars need no instruction set.
        Isa::Scalar => unsafe { item_in::<Scalar, 8, 8>(work) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma,f16c")]
unsafe fn item_avx512(work: &Work) -> Part {
    // SAFETY: the caller checked AVX-512F.
    unsafe { item_in::<std::arch::x86_64::__m512, 2, 4>(work) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn item_avx2(work: &Work) -> Part {
    // SAFETY: the caller checked AVX2 and FMA.
    unsafe { item_in::<std::arch::x86_64::__m256, 1, 2>(work) }
}

/// The buffers an item widens and scores its key blocks in, kept by each thread from one item
/// to the next: allocated and zeroed afresh they cost a memset of up to 256 KiB per item, and a
/// decoded token's items (one per KV head and layer, a few rows each) are mostly that.
#[derive(Default)]
struct Scratch {
    /// A block's keys, `[hdp, BLOCK]`.
    kt: Vec<f32>,
    /// A block's values, `[BLOCK, hdp]`.
    vb: Vec<f32>,
    /// A block's scores, `[rows, BLOCK]`.
    sc: Vec<f32>,
}

thread_local! {
    /// This thread's [`Scratch`], taken by an item while it runs (a nested item, were there
    /// one, would find it empty and allocate its own).
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

/// The first `n` values of `v`, grown (zero-filled) to at least `n`. What an earlier item left
/// in them is overwritten before it is read (see [`item_in`]).
fn fit(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// The item's work in vectors `V`: score tiles `NS` vectors wide, output chunks `NA` vectors
/// wide (what fits the CPU's registers).
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
unsafe fn item_in<V: Vector, const NS: usize, const NA: usize>(work: &Work) -> Part {
    let Work {
        q,
        keys,
        values,
        head,
        kv_heads,
        stride,
        from,
        ends,
        group: g,
        head_dim: hd,
        scale,
        start,
    } = *work;
    let hdp = hd.next_multiple_of(LANE);
    let rows = g * ends.len();
    assert!(q.len() == rows * hd, "queries of every row");
    let rows_p = rows.next_multiple_of(ROWS);
    // Queries in base 2, zero-padded to `hdp` columns and `rows_p` rows.
    let q2 = scale * std::f32::consts::LOG2_E;
    let mut qt = vec![0f32; rows_p * hdp];
    for (r, qr) in q.chunks_exact(hd).enumerate() {
        for (d, x) in qr.iter().enumerate() {
            qt[r * hdp + d] = x * q2;
        }
    }
    // Rows past `rows` (padding to a multiple of ROWS) score 0 against every key and are
    // accumulated like the others, but never read.
    let mut o = vec![0f32; rows_p * hdp];
    let mut m = vec![f32::NEG_INFINITY; rows];
    let mut l = vec![0f32; rows];
    if let Some(st) = start {
        assert!(st.o.len() == rows * hd && st.m.len() == rows && st.l.len() == rows);
        for (a, b) in o.chunks_exact_mut(hdp).zip(st.o.chunks_exact(hd)) {
            a[..hd].copy_from_slice(b);
        }
        m.copy_from_slice(st.m);
        l.copy_from_slice(st.l);
    }
    // Reused buffers hold an earlier item's numbers until written. Each block overwrites the
    // keys' first `hd` rows up to its `cols` columns (the only ones scored), the values' first
    // `kb` rows (the rest up to `cols` are zeroed below) and the scores of all `rows_p` rows up
    // to `cols`. The keys' padding rows `hd..hdp` meet the queries' zero padding, and must be
    // zero (not stale, possibly non-finite) for the products to be: zeroed here. The values'
    // padding columns only reach the output's, which are dropped.
    let mut scratch = SCRATCH.take();
    let kt = fit(&mut scratch.kt, hdp * BLOCK);
    kt[hd * BLOCK..].fill(0.0);
    let vb = fit(&mut scratch.vb, BLOCK * hdp);
    let sc = fit(&mut scratch.sc, rows_p * BLOCK);
    let end = ends.iter().copied().max().unwrap_or(from); // keys the last row sees
    assert!(
        from.is_multiple_of(BLOCK),
        "items start at a block of the cache's keys"
    );
    for k0 in (from..end).step_by(BLOCK) {
        let kb = BLOCK.min(end - k0);
        let cols = kb.next_multiple_of(COLS);
        // SAFETY (the four calls): the CPU has `V`'s instruction set (this function's
        // contract).
        let block = (k0 / BLOCK * kv_heads + head) * hd * BLOCK;
        unsafe { widen_keys::<V>(keys, block, kb, hd, kt) };
        unsafe { widen::<V>(values, head * stride + k0, kb, (hd, hdp), vb) };
        vb[kb * hdp..cols * hdp].fill(0.0);
        unsafe { scores::<V, NS>(&qt, kt, sc, rows_p, hdp, cols) };
        for r in 0..rows {
            // Keys this row may see in the block.
            let live = ends[r / g].saturating_sub(k0).min(kb);
            let row = &mut sc[r * BLOCK..r * BLOCK + cols];
            if live == 0 {
                row.fill(0.0);
                continue;
            }
            let mx = max(&row[..live]);
            let m_new = m[r].max(mx);
            let alpha = exp2(m[r] - m_new);
            m[r] = m_new;
            let (seen, masked) = row.split_at_mut(live);
            let sum = exp2_shift(seen, m_new);
            masked.fill(0.0);
            l[r] = l[r] * alpha + sum;
            if alpha != 1.0 {
                for x in &mut o[r * hdp..(r + 1) * hdp] {
                    *x *= alpha;
                }
            }
        }
        // SAFETY: as above.
        unsafe { accumulate::<V, NA>(sc, vb, &mut o, rows_p, hdp, cols) };
    }
    SCRATCH.set(scratch);
    let mut out = vec![0f32; rows * hd];
    for (a, b) in out.chunks_exact_mut(hd).zip(o.chunks_exact(hdp)) {
        a.copy_from_slice(&b[..hd]);
    }
    Part { o: out, m, l }
}

/// `sc[r, c] = qt[r, :] · kt[:, c]` for `rows` rows (a multiple of [`ROWS`]) and `cols`
/// columns (a multiple of `NS` vectors, at most [`BLOCK`]); `sc` rows are [`BLOCK`] long.
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
unsafe fn scores<V: Vector, const NS: usize>(
    qt: &[f32],
    kt: &[f32],
    sc: &mut [f32],
    rows: usize,
    hdp: usize,
    cols: usize,
) {
    let step = NS * V::W;
    assert!(rows.is_multiple_of(ROWS) && cols.is_multiple_of(step) && cols <= BLOCK);
    assert!(qt.len() >= rows * hdp && kt.len() >= hdp * BLOCK && sc.len() >= rows * BLOCK);
    // Twice the rows per pass where there are enough, for more products per load.
    let main = rows / (2 * ROWS) * (2 * ROWS);
    for r0 in (0..main).step_by(2 * ROWS) {
        // SAFETY: the asserts above bound every offset; the instruction set is the caller's
        // guarantee.
        unsafe { scores_rows::<V, NS, { 2 * ROWS }>(qt, kt, sc, r0, hdp, cols) };
    }
    for r0 in (main..rows).step_by(ROWS) {
        // SAFETY: as above.
        unsafe { scores_rows::<V, NS, ROWS>(qt, kt, sc, r0, hdp, cols) };
    }
}

/// Widens the first `n` keys of a transposed block (`[hd, BLOCK]` at `from[at..]`) into the
/// rows of `kt` (`[hdp, BLOCK]`), and zeroes each row's columns from `n` to the next multiple
/// of [`COLS`] (scored, then masked).
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
unsafe fn widen_keys<V: Vector>(from: Rows, at: usize, n: usize, hd: usize, kt: &mut [f32]) {
    let cols = n.next_multiple_of(COLS);
    assert!(cols <= BLOCK && kt.len() >= hd * BLOCK);
    let whole = n / V::W * V::W;
    for d in 0..hd {
        let out = &mut kt[d * BLOCK..d * BLOCK + cols];
        let src = at + d * BLOCK;
        match from {
            Rows::F16(x) => {
                let x = &x[src..src + n];
                for c in (0..whole).step_by(V::W) {
                    // SAFETY: `x` holds `n` halves and `out` at least `n` floats, `c + W <= n`;
                    // the instruction set is the caller's guarantee.
                    unsafe { V::load_f16(x.as_ptr().add(c)).store(out.as_mut_ptr().add(c)) };
                }
                x[whole..].convert_to_f32_slice(&mut out[whole..n]);
            }
            Rows::F32(x) => out[..n].copy_from_slice(&x[src..src + n]),
        }
        out[n..].fill(0.0);
    }
}

/// [`Rows::widen`] in `V`'s instructions where a stored row is whole vectors of halves.
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
unsafe fn widen<V: Vector>(
    from: Rows,
    row: usize,
    n: usize,
    (hd, hdp): (usize, usize),
    out: &mut [f32],
) {
    match from {
        Rows::F16(d) if hd.is_multiple_of(V::W) => {
            let src = &d[row * hd..(row + n) * hd];
            assert!(out.len() >= n * hdp && hd <= hdp);
            for i in 0..n {
                for j in (0..hd).step_by(V::W) {
                    // SAFETY: `src` holds `n` rows of `hd`, `out` `n` rows of `hdp >= hd`;
                    // the instruction set is the caller's guarantee.
                    unsafe {
                        V::load_f16(src.as_ptr().add(i * hd + j))
                            .store(out.as_mut_ptr().add(i * hdp + j))
                    };
                }
            }
        }
        _ => from.widen(row, n, hd, hdp, out),
    }
}

/// [`scores`] for rows `r0..r0 + R`.
///
/// # Safety
/// As [`scores`], whose asserts bound the offsets.
#[inline(always)]
unsafe fn scores_rows<V: Vector, const NS: usize, const R: usize>(
    qt: &[f32],
    kt: &[f32],
    sc: &mut [f32],
    r0: usize,
    hdp: usize,
    cols: usize,
) {
    let (qp, kp, sp) = (qt.as_ptr(), kt.as_ptr(), sc.as_mut_ptr());
    for c0 in (0..cols).step_by(NS * V::W) {
        // SAFETY: the caller's contract.
        unsafe {
            let mut acc = [[V::zero(); NS]; R];
            for d in 0..hdp {
                let mut k = [V::zero(); NS];
                for (n, x) in k.iter_mut().enumerate() {
                    *x = V::load(kp.add(d * BLOCK + c0 + n * V::W));
                }
                for (rr, a) in acc.iter_mut().enumerate() {
                    let qv = V::splat(*qp.add((r0 + rr) * hdp + d));
                    for n in 0..NS {
                        a[n] = V::fma(qv, k[n], a[n]);
                    }
                }
            }
            for (rr, a) in acc.iter().enumerate() {
                for (n, x) in a.iter().enumerate() {
                    x.store(sp.add((r0 + rr) * BLOCK + c0 + n * V::W));
                }
            }
        }
    }
}

/// `o[r, :] += Σ_c p[r, c] · vb[c, :]` over `cols` columns, for `rows` rows (a multiple of
/// [`ROWS`]); `p` rows are [`BLOCK`] long, `o` and `vb` rows `hdp` (a multiple of [`LANE`]).
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
unsafe fn accumulate<V: Vector, const NA: usize>(
    p: &[f32],
    vb: &[f32],
    o: &mut [f32],
    rows: usize,
    hdp: usize,
    cols: usize,
) {
    assert!(rows.is_multiple_of(ROWS) && hdp.is_multiple_of(LANE) && cols <= BLOCK);
    assert!(p.len() >= rows * BLOCK && vb.len() >= cols * hdp && o.len() >= rows * hdp);
    let main = hdp / (NA * V::W) * (NA * V::W);
    for r0 in (0..rows).step_by(ROWS) {
        for d0 in (0..main).step_by(NA * V::W) {
            // SAFETY: the asserts above bound every offset; the instruction set is the
            // caller's guarantee.
            unsafe { accumulate_chunk::<V, NA>(p, vb, o, (r0, d0), hdp, cols) };
        }
        for d0 in (main..hdp).step_by(V::W) {
            // SAFETY: as above.
            unsafe { accumulate_chunk::<V, 1>(p, vb, o, (r0, d0), hdp, cols) };
        }
    }
}

/// [`accumulate`] for rows `r0..r0 + ROWS` and the `N` vectors of columns from `d0`.
///
/// # Safety
/// As [`accumulate`], whose asserts bound the offsets.
#[inline(always)]
unsafe fn accumulate_chunk<V: Vector, const N: usize>(
    p: &[f32],
    vb: &[f32],
    o: &mut [f32],
    (r0, d0): (usize, usize),
    hdp: usize,
    cols: usize,
) {
    let (pp, vp, op) = (p.as_ptr(), vb.as_ptr(), o.as_mut_ptr());
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [[V::zero(); N]; ROWS];
        for (rr, a) in acc.iter_mut().enumerate() {
            for (n, x) in a.iter_mut().enumerate() {
                *x = V::load(op.add((r0 + rr) * hdp + d0 + n * V::W));
            }
        }
        for c in 0..cols {
            let mut v = [V::zero(); N];
            for (n, x) in v.iter_mut().enumerate() {
                *x = V::load(vp.add(c * hdp + d0 + n * V::W));
            }
            for (rr, a) in acc.iter_mut().enumerate() {
                let pv = V::splat(*pp.add((r0 + rr) * BLOCK + c));
                for n in 0..N {
                    a[n] = V::fma(pv, v[n], a[n]);
                }
            }
        }
        for (rr, a) in acc.iter().enumerate() {
            for (n, x) in a.iter().enumerate() {
                x.store(op.add((r0 + rr) * hdp + d0 + n * V::W));
            }
        }
    }
}

/// The largest value of `x` (not empty), in [`LANE`] lanes.
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANE];
    let mut chunks = x.chunks_exact(LANE);
    for c in &mut chunks {
        for i in 0..LANE {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    let tail = chunks.remainder().iter().copied();
    lanes
        .into_iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Replaces each `x` by `2^(x - m)` and returns their sum.
#[inline(always)]
fn exp2_shift(x: &mut [f32], m: f32) -> f32 {
    let mut lanes = [0f32; LANE];
    let mut chunks = x.chunks_exact_mut(LANE);
    for c in &mut chunks {
        for i in 0..LANE {
            c[i] = exp2(c[i] - m);
            lanes[i] += c[i];
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp2(*v - m);
        sum += *v;
    }
    sum
}

/// `2^x` for `x <= 0` (within a few f32 roundings; 0 below -126, including `-inf`), in
/// operations the compiler vectorizes: `2^round(x)` from the exponent bits times the degree-7
/// Taylor polynomial of `e^y`, `y = f·ln 2`, `|f| <= 1/2` (truncation error under 1e-8).
#[inline(always)]
pub(super) fn exp2(x: f32) -> f32 {
    let x = x.max(-127.0);
    let n = (x + 0.5).floor();
    let y = (x - n) * std::f32::consts::LN_2;
    let p = 1.0
        + y * (1.0
            + y * (1.0 / 2.0
                + y * (1.0 / 6.0
                    + y * (1.0 / 24.0
                        + y * (1.0 / 120.0 + y * (1.0 / 720.0 + y * (1.0 / 5040.0)))))));
    // n is an integer in -127..=0, so the biased exponent n + 127 (0, the value 0, to 127)
    // sits in the low mantissa bits of n + 127 + 2^23 (a conversion that vectorizes).
    let e = (n + (127.0 + 8_388_608.0)).to_bits() - 0x4B00_0000;
    f32::from_bits(e << 23) * p
}
