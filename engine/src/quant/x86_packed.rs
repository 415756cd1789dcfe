//! AVX-512 VNNI kernels over the 16-row groups of `packed.rs`, several tokens at a time.
//!
//! Each 32-bit lane of a 64-byte weight load is four consecutive positions of one of the
//! group's 16 rows; `vpdpbusd` multiplies it by the token's four activation bytes at those
//! positions broadcast to every lane, so lane `r` sums row `r`'s products and the 16 outputs
//! never need a horizontal reduction. The weights enter as unsigned bytes (Q4_0 nibbles
//! 0..15, i.e. q + 8; Q8_0 bytes stored as w + 128); the offset that adds, 8·Σy or 128·Σy, is
//! an exact integer per token and block, so it starts the block's integer accumulator with
//! the opposite sign. The block's integer dot is then exactly the scalar kernels'; it is
//! converted once and scaled by the row's and the token's block scales. Only the f32
//! summation order over blocks differs from the scalar kernels.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::act::BlockQ8_0;
use super::packed::{even_runs, group_block_bytes, per_count};
use super::GgmlType;

/// Whether this CPU runs the packed kernels (AVX-512 F/BW/VNNI and F16C). Setting
/// `LFM_NO_AVX512` (or `LFM_NO_SIMD`) turns them off, to test the other paths on one machine.
pub(super) fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::env::var_os("LFM_NO_AVX512").is_none()
            && std::env::var_os("LFM_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("f16c")
            && is_x86_feature_detected!("fma")
    })
}

/// Writes the 16 outputs of one group for every token of `acts` (each a row of Q8_0 blocks):
/// token `t`'s go to `out + t·stride .. + 16`.
///
/// # Safety
/// [`available`] must be true; `group` holds `nblocks` group-blocks of `ty`, every act row
/// holds `nblocks` blocks, and `out + t·stride + 16` is writable for every token, by this
/// caller only.
pub(super) unsafe fn group_dot(
    ty: GgmlType,
    group: &[u8],
    nblocks: usize,
    acts: &[&[BlockQ8_0]],
    out: *mut f32,
    stride: usize,
) {
    debug_assert!(group.len() >= nblocks * group_block_bytes(ty));
    // Even runs. Measured as in `CHUNK`'s note, even runs took 0.39-0.40 ms for 12 tokens
    // (8 + 4: 0.40-0.44), 0.59 for 20 (0.61-0.66) and 0.80-0.83 for 28 (0.83-0.88); only 9 was
    // slower (0.33-0.36 against 0.31-0.33).
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

/// Most tokens [`packed_dot`] takes at once. Up to eight, the token loop is unrolled and every
/// accumulator stays in a register; past that the compiler keeps the loop rolled, with the
/// accumulators on the stack, and eight tokens twice over the same group (its weights then in
/// L1/L2) cost less than sixteen at once: 0.53 against 0.64 ms for a 5632 × 2048 Q4_0 matrix
/// on two cores (AVX-512 VNNI Xeon, 2026-12-07).
const CHUNK: usize = 8;

/// How many blocks ahead a group's weights are prefetched.
const PREFETCH_BLOCKS: usize = 16;

/// One group × `NT` tokens, Q4_0 (`Q8 = false`) or Q8_0 (`Q8 = true`): eight weight vectors
/// per block, vector `i` holding positions 4i..4i+4 of the 16 rows (Q4_0's first four are the
/// low nibbles of its four quads, the last four the high nibbles).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c,fma")]
unsafe fn packed_dot<const Q8: bool, const NT: usize>(
    group: &[u8],
    nblocks: usize,
    acts: &[&[BlockQ8_0]],
    out: *mut f32,
    stride: usize,
) {
    let m4 = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); NT];
    let gbb = group_block_bytes(if Q8 { GgmlType::Q8_0 } else { GgmlType::Q4_0 });
    for k in 0..nblocks {
        // SAFETY: block k of the group spans gbb bytes inside `group`, and every token row
        // holds block k (caller's contract).
        unsafe {
            let p = group.as_ptr().add(k * gbb);
            // A prefetch past the end of the matrix is harmless: prefetches never fault.
            let ahead = p.wrapping_add(PREFETCH_BLOCKS * gbb);
            // Only for passes of 4+ tokens: with fewer, the hardware prefetcher keeps up and the
            // extra instructions cost (batch 1 decode measured about 12% slower with them).
            let mut line = if NT >= 4 { 0 } else { gbb };
            while line < gbb {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
                line += 64;
            }
            let scales = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
            let load = |c: usize| _mm512_loadu_si512(p.add(32 + 64 * c) as *const _);
            let w: [__m512i; 8] = if Q8 {
                std::array::from_fn(load)
            } else {
                let raw: [__m512i; 4] = std::array::from_fn(load);
                std::array::from_fn(|i| {
                    if i < 4 {
                        _mm512_and_si512(raw[i], m4)
                    } else {
                        _mm512_and_si512(_mm512_srli_epi16::<4>(raw[i - 4]), m4)
                    }
                })
            };
            for t in 0..NT {
                let y = acts.get_unchecked(t).get_unchecked(k);
                let q = y.qs.as_ptr() as *const i32;
                let yb = |i: usize| _mm512_set1_epi32(q.add(i).read_unaligned());
                let mut d = _mm512_set1_epi32(y.unbias[Q8 as usize]);
                let dot = if NT >= 4 {
                    // Enough tokens interleave for the products to run back to back.
                    for (i, wi) in w.iter().enumerate() {
                        d = _mm512_dpbusd_epi32(d, *wi, yb(i));
                    }
                    d
                } else {
                    // Two chains, so that a lone token's products are not one long dependency.
                    let mut hi = _mm512_setzero_si512();
                    for i in 0..4 {
                        d = _mm512_dpbusd_epi32(d, w[i], yb(i));
                        hi = _mm512_dpbusd_epi32(hi, w[4 + i], yb(4 + i));
                    }
                    _mm512_add_epi32(d, hi)
                };
                let dot = _mm512_cvtepi32_ps(dot);
                let a = acc.get_unchecked_mut(t);
                *a = _mm512_fmadd_ps(dot, _mm512_mul_ps(scales, _mm512_set1_ps(y.d)), *a);
            }
        }
    }
    for (t, a) in acc.iter().enumerate() {
        // SAFETY: token t's 16 outputs are writable (`group_dot`'s contract).
        unsafe { _mm512_storeu_ps(out.add(t * stride), *a) };
    }
}

/// F16 weights × several tokens: 4 rows × `NT` tokens per pass, 16 columns at a time, with
/// activations already rounded through f16 and widened to f32 (`x`, token-major, `cols` each).
/// Writes `out + t·stride + r` for the 4 rows.
///
/// # Safety
/// [`available`] must be true; `w` holds 4 rows of `cols` f16 (`cols` a multiple of 16), `x`
/// holds `NT` rows of `cols`, and the outputs are writable by this caller only.
// `t` and `r` index the accumulators, the activations and the outputs together.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,f16c,fma,avx2")]
pub(super) unsafe fn f16_rows4<const NT: usize>(
    w: &[u8],
    cols: usize,
    x: &[f32],
    out: *mut f32,
    stride: usize,
) {
    debug_assert!(w.len() >= 4 * cols * 2 && x.len() >= NT * cols && cols.is_multiple_of(16));
    let mut acc = [[_mm512_setzero_ps(); NT]; 4];
    let mut c = 0;
    while c < cols {
        // SAFETY: c + 16 <= cols and the buffers hold 4 (resp. NT) rows of `cols`.
        unsafe {
            let wr: [__m512; 4] = std::array::from_fn(|r| {
                _mm512_cvtph_ps(_mm256_loadu_si256(
                    w.as_ptr().add(2 * (r * cols + c)) as *const __m256i
                ))
            });
            for t in 0..NT {
                let xv = _mm512_loadu_ps(x.as_ptr().add(t * cols + c));
                for r in 0..4 {
                    acc[r][t] = _mm512_fmadd_ps(wr[r], xv, acc[r][t]);
                }
            }
        }
        c += 16;
    }
    for r in 0..4 {
        for t in 0..NT {
            // SAFETY: caller's contract.
            unsafe { *out.add(t * stride + r) = _mm512_reduce_add_ps(acc[r][t]) };
        }
    }
}
