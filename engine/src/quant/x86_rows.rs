//! AVX2 kernels for Q4_0 and Q8_0 weights in their file layout: two rows by up to four tokens
//! per call. They serve the matrices that are not packed into 16-row groups (rows not a
//! multiple of 16, or not passed through `into_fast_layout`); packed ones take
//! `x86_packed_avx2.rs` or the VNNI kernels.
//!
//! A weight block is unpacked once for all the tokens, and an activation block is loaded once
//! for both rows. One token of one row per call would unpack every weight block again for each
//! token, so a batch of tokens would cost as much per token as one alone.
//!
//! Each output has one accumulator that runs over its blocks in order, and nothing else
//! touches it. So a token's result has the same bits whichever tokens and rows share its call:
//! a sequence gets the same logits in a batched pass as alone.

use std::arch::x86_64::*;

use super::act::BlockQ8_0;
use super::x86::hsum_ps;
use super::GgmlType;

/// Most tokens per call.
pub(super) const MAX_TOKENS: usize = 4;

/// How far ahead of each row's block the weights are prefetched, in bytes. In a C copy of
/// this kernel over 75 MB of Q4_0 rows on a 2-core Zen 3 (AVX2 only), without prefetch it
/// read 6.7 GB/s against 19 GB/s for a plain streaming read; 256 bytes ahead gave 9.3,
/// 1 KiB 11.3, 2-8 KiB 12-13.5.
const PREFETCH: usize = 3072;

/// Whether `ty` has a kernel here and this CPU runs it.
pub(super) fn available(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q8_0) && super::x86::has_avx2()
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_at(p: *const u8) -> f32 {
    // SAFETY: callers pass a pointer to a block's two scale bytes.
    let bits = unsafe { std::ptr::read_unaligned(p as *const u16) };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// `out[j · R + i] = Σ_blocks` row `i` of `w` · token `j` of `toks`.
///
/// # Safety
/// AVX2, FMA and F16C must be present ([`available`]); `ty` is Q4_0 or Q8_0; `w` holds `R`
/// rows of `nblocks` blocks of `ty`, `row_bytes` apart; each of the `N` token rows holds
/// `nblocks` blocks; `out` has room for `N · R` values.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_dot_avx2<const Q8: bool, const R: usize, const N: usize>(
    w: *const u8,
    row_bytes: usize,
    nblocks: usize,
    toks: &[&[BlockQ8_0]],
    out: &mut [f32],
) {
    let bytes = if Q8 { 34 } else { 18 };
    let low = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); R]; N];
    let mut ys = [std::ptr::null::<BlockQ8_0>(); N];
    for (y, t) in ys.iter_mut().zip(toks) {
        *y = t.as_ptr();
    }
    for b in 0..nblocks {
        // Unpacked weights: Q4_0 as unsigned nibbles 0..15 (the offset of 8 comes off through
        // the activations' sums), Q8_0 as |w| with its signs moved onto the activations.
        let mut x = [_mm256_setzero_si256(); R];
        let mut d = [_mm256_setzero_ps(); R];
        for i in 0..R {
            // SAFETY: row i's block b lies inside the `R` rows of `w` (the contract).
            let p = unsafe { w.add(i * row_bytes + b * bytes) };
            // A hint only: an address past the matrix is not read and does not fault.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
            d[i] = _mm256_set1_ps(f16_at(p));
            x[i] = if Q8 {
                // SAFETY: bytes 2..34 of a Q8_0 block.
                unsafe { _mm256_loadu_si256(p.add(2) as *const __m256i) }
            } else {
                // SAFETY: bytes 2..18 of a Q4_0 block.
                let q = unsafe { _mm_loadu_si128(p.add(2) as *const __m128i) };
                let lo = _mm_and_si128(q, low);
                let hi = _mm_and_si128(_mm_srli_epi16(q, 4), low);
                _mm256_set_m128i(hi, lo)
            };
        }
        for j in 0..N {
            // SAFETY: token j holds `nblocks` blocks.
            let y = unsafe { &*ys[j].add(b) };
            // SAFETY: `qs` is 32 bytes.
            let yv = unsafe { _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i) };
            let dy = _mm256_set1_ps(y.d);
            for i in 0..R {
                let p = if Q8 {
                    let ax = _mm256_sign_epi8(x[i], x[i]);
                    let sy = _mm256_sign_epi8(yv, x[i]);
                    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones)
                } else {
                    // Σ over the 8 lanes of (p - Σqs) = Σ q·y - 8·Σy: the weights' offset.
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(x[i], yv), ones);
                    _mm256_sub_epi32(p, _mm256_set1_epi32(y.sum))
                };
                let scale = _mm256_mul_ps(d[i], dy);
                acc[j][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[j][i]);
            }
        }
    }
    for j in 0..N {
        for i in 0..R {
            out[j * R + i] = hsum_ps(acc[j][i]);
        }
    }
}

/// [`rows_dot_avx2`] for `rows` (1 or 2) rows and `toks.len()` (1 to [`MAX_TOKENS`]) tokens.
///
/// # Safety
/// As [`rows_dot_avx2`], with `R = rows` and `N = toks.len()`.
pub(super) unsafe fn dot(
    ty: GgmlType,
    w: *const u8,
    row_bytes: usize,
    rows: usize,
    toks: &[&[BlockQ8_0]],
    out: &mut [f32],
) {
    let nblocks = row_bytes / if ty == GgmlType::Q8_0 { 34 } else { 18 };
    macro_rules! go {
        ($q8:literal) => {
            // SAFETY: the caller's contract, with R and N matched to `rows` and `toks.len()`.
            unsafe {
                match (rows, toks.len()) {
                    (1, 1) => rows_dot_avx2::<$q8, 1, 1>(w, row_bytes, nblocks, toks, out),
                    (1, 2) => rows_dot_avx2::<$q8, 1, 2>(w, row_bytes, nblocks, toks, out),
                    (1, 3) => rows_dot_avx2::<$q8, 1, 3>(w, row_bytes, nblocks, toks, out),
                    (1, 4) => rows_dot_avx2::<$q8, 1, 4>(w, row_bytes, nblocks, toks, out),
                    (2, 1) => rows_dot_avx2::<$q8, 2, 1>(w, row_bytes, nblocks, toks, out),
                    (2, 2) => rows_dot_avx2::<$q8, 2, 2>(w, row_bytes, nblocks, toks, out),
                    (2, 3) => rows_dot_avx2::<$q8, 2, 3>(w, row_bytes, nblocks, toks, out),
                    (2, 4) => rows_dot_avx2::<$q8, 2, 4>(w, row_bytes, nblocks, toks, out),
                    _ => unreachable!("1 or 2 rows and 1 to 4 tokens per call"),
                }
            }
        };
    }
    if ty == GgmlType::Q8_0 {
        go!(true)
    } else {
        go!(false)
    }
}
