//! AVX2 kernels over the 16-row groups of `packed.rs`, several tokens at a time, for CPUs
//! without AVX-512 VNNI.
//!
//! A group's 64-byte quad is four consecutive positions of each of 16 rows, so its two
//! 32-byte halves are the same four positions of rows 0..8 and rows 8..16. Each 32-bit lane of
//! a half is one row: `maddubs` against the token's four activation bytes at those positions,
//! broadcast to every lane, sums them in pairs for eight rows at once, and a block's eight
//! quads add up lane by lane, so a row's block dot never needs a horizontal reduction, and its
//! conversion and scaling are done for eight rows by one instruction each. The row-by-row
//! kernels of `x86_rows.rs` do both once per row, and end each output with a horizontal sum.
//!
//! - Q4_0: the nibbles enter as unsigned bytes (q + 8, 0..15). A `maddubs` pair is at most
//!   2·15·127 = 3,810 in magnitude (activations are within ±127), so a block's eight quads
//!   sum in 16-bit lanes (at most 30,480) before one widening; the offset this adds, 8·Σy,
//!   is taken off with the activation block's `unbias` (−8·Σy).
//! - Q8_0: stored as w + 128, which `maddubs` would saturate (2·255·127). The weights are
//!   flipped back to w, and enter as |w| with their signs moved onto the activations (a pair
//!   at most 2·128·127 = 32,512), each quad widened on its own.
//!
//! The block's integer dot is exact, so it equals the VNNI kernels' (`x86_packed.rs`); it is
//! converted and scaled as they do (`fma(dot, d_w · d_y, acc)`, blocks in order, one
//! accumulator per output), so the two give the same bits, and a token gets the same bits
//! whatever shares its pass.

use std::arch::x86_64::*;

use super::act::BlockQ8_0;
use super::packed::{even_runs, group_block_bytes, per_count};
use super::GgmlType;

/// Whether this CPU runs these kernels (AVX2, FMA and F16C; `LFM_NO_SIMD` turns them off).
pub(super) fn available() -> bool {
    super::x86::has_avx2()
}

/// Most tokens [`packed_dot`] takes at once. Past four, the accumulators no longer fit the
/// sixteen AVX2 registers beside a half's eight weight vectors, but a spilled accumulator
/// costs a load and a store per block, against the unpacking of the weights that a second
/// run pays: with `LFM_NO_AVX512` on a 2-core Xeon, bench --batch 8 (pp64, tg16) gave 108-112
/// tok/s with 8 against 92-98 with 4, and pp512 126 against 116-123 (2026-12-07).
const CHUNK: usize = 8;

/// How many blocks ahead a group's weights are prefetched (passes of 4+ tokens only, as in
/// `x86_packed.rs`).
const PREFETCH_BLOCKS: usize = 16;

/// Writes the 16 outputs of one group for every token of `acts` (each a row of Q8_0 blocks):
/// token `t`'s go to `out + t·stride .. + 16`.
///
/// # Safety
/// [`available`] must be true; `group` holds `nblocks` group-blocks of `ty` (Q4_0 or Q8_0),
/// every act row holds `nblocks` blocks, and `out + t·stride + 16` is writable for every
/// token, by this caller only.
pub(super) unsafe fn group_dot(
    ty: GgmlType,
    group: &[u8],
    nblocks: usize,
    acts: &[&[BlockQ8_0]],
    out: *mut f32,
    stride: usize,
) {
    debug_assert!(group.len() >= nblocks * group_block_bytes(ty));
    for run in even_runs(acts.len(), CHUNK) {
        // SAFETY: caller's contract.
        let o = unsafe { out.add(run.start * stride) };
        let (n, a) = (run.len(), &acts[run]);
        // SAFETY: forwarded from the caller.
        unsafe {
            per_count!(
                ty == GgmlType::Q8_0,
                n,
                packed_dot(group, nblocks, a, o, stride);
                1 2 3 4 5 6 7 8
            )
        }
    }
}

/// One group × `NT` tokens, Q4_0 (`Q8 = false`) or Q8_0 (`Q8 = true`), half by half: eight
/// weight vectors per half-block, vector `i` holding positions 4i..4i+4 of its eight rows
/// (Q4_0's first four are the low nibbles of its four quads, the last four the high nibbles).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn packed_dot<const Q8: bool, const NT: usize>(
    group: &[u8],
    nblocks: usize,
    acts: &[&[BlockQ8_0]],
    out: *mut f32,
    stride: usize,
) {
    let low = _mm256_set1_epi8(0x0F);
    let flip = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); NT]; 2];
    let gbb = group_block_bytes(if Q8 { GgmlType::Q8_0 } else { GgmlType::Q4_0 });
    for k in 0..nblocks {
        // SAFETY: block k of the group spans gbb bytes inside `group`, and every token row
        // holds block k (caller's contract).
        unsafe {
            let p = group.as_ptr().add(k * gbb);
            // A prefetch past the end of the matrix is harmless: prefetches never fault.
            let ahead = p.wrapping_add(PREFETCH_BLOCKS * gbb);
            let mut line = if NT >= 4 { 0 } else { gbb };
            while line < gbb {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
                line += 64;
            }
            for (h, acc) in acc.iter_mut().enumerate() {
                let scales = _mm256_cvtph_ps(_mm_loadu_si128(p.add(16 * h) as *const __m128i));
                let load = |c: usize| _mm256_loadu_si256(p.add(32 + 64 * c + 32 * h) as *const _);
                let w: [__m256i; 8] = if Q8 {
                    std::array::from_fn(|i| _mm256_xor_si256(load(i), flip))
                } else {
                    let raw: [__m256i; 4] = std::array::from_fn(load);
                    std::array::from_fn(|i| {
                        if i < 4 {
                            _mm256_and_si256(raw[i], low)
                        } else {
                            _mm256_and_si256(_mm256_srli_epi16::<4>(raw[i - 4]), low)
                        }
                    })
                };
                // Q8_0: |w|, the unsigned operand; the signs go onto the activations below.
                let aw: [__m256i; 8] = if Q8 {
                    std::array::from_fn(|i| _mm256_sign_epi8(w[i], w[i]))
                } else {
                    w
                };
                for (t, a) in acc.iter_mut().enumerate() {
                    let y = acts.get_unchecked(t).get_unchecked(k);
                    let q = y.qs.as_ptr() as *const i32;
                    let yb = |i: usize| _mm256_set1_epi32(q.add(i).read_unaligned());
                    let dot = if Q8 {
                        let mut d = _mm256_setzero_si256();
                        for i in 0..8 {
                            let pairs = _mm256_maddubs_epi16(aw[i], _mm256_sign_epi8(yb(i), w[i]));
                            d = _mm256_add_epi32(d, _mm256_madd_epi16(pairs, ones));
                        }
                        d
                    } else {
                        let mut s = _mm256_maddubs_epi16(aw[0], yb(0));
                        for (i, wi) in aw.iter().enumerate().skip(1) {
                            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(*wi, yb(i)));
                        }
                        let d = _mm256_madd_epi16(s, ones);
                        _mm256_add_epi32(d, _mm256_set1_epi32(y.unbias[0]))
                    };
                    let dot = _mm256_cvtepi32_ps(dot);
                    *a = _mm256_fmadd_ps(dot, _mm256_mul_ps(scales, _mm256_set1_ps(y.d)), *a);
                }
            }
        }
    }
    for (h, acc) in acc.iter().enumerate() {
        for (t, a) in acc.iter().enumerate() {
            // SAFETY: token t's 16 outputs are writable (`group_dot`'s contract).
            unsafe { _mm256_storeu_ps(out.add(t * stride + 8 * h), *a) };
        }
    }
}
