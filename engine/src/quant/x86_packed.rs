//! AVX-512 VNNI kernels over the 8-row groups of `packed.rs`, several tokens at a time.
//!
//! One 64-byte load holds 16 positions of a block of four rows (Q4_0: 4 × 16 bytes of nibbles,
//! low and high nibble being two positions; Q8_0: 4 × 16 bytes, two loads per block);
//! `vpdpbusd` multiplies it by those positions of the token's block broadcast to every 128-bit
//! lane, so each i32 lane sums four products of one row. The weights enter as
//! unsigned bytes (Q4_0 nibbles 0..15; Q8_0 bytes xor 0x80, i.e. w + 128); the offset that
//! adds (8·Σy or 128·Σy per block, an exact integer) is accumulated apart, scaled like the
//! block, and taken off at the end. Lanes of a row are summed once, after the last block.
//! Integer parts are exact, as in the scalar kernels; only the f32 summation order differs.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::act::BlockQ8_0;
use super::packed::group_block_bytes;
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

/// Writes the 8 outputs of one group for every token of `acts` (each a row of Q8_0 blocks):
/// token `t`'s go to `out + t·stride .. + 8`.
///
/// # Safety
/// [`available`] must be true; `group` holds `nblocks` group-blocks of `ty`, every act row
/// holds `nblocks` blocks, and `out + t·stride + 8` is writable for every token, by this
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
    let mut done = 0;
    while done < acts.len() {
        let n = (acts.len() - done).min(6);
        let a = &acts[done..done + n];
        // SAFETY: caller's contract.
        let o = unsafe { Out(out.add(done * stride), stride) };
        // SAFETY: forwarded from the caller.
        unsafe {
            match (ty == GgmlType::Q8_0, n) {
                (false, 1) => packed_dot::<false, 1>(group, nblocks, a, o),
                (false, 2) => packed_dot::<false, 2>(group, nblocks, a, o),
                (false, 3) => packed_dot::<false, 3>(group, nblocks, a, o),
                (false, 4) => packed_dot::<false, 4>(group, nblocks, a, o),
                (false, 5) => packed_dot::<false, 5>(group, nblocks, a, o),
                (false, _) => packed_dot::<false, 6>(group, nblocks, a, o),
                (true, 1) => packed_dot::<true, 1>(group, nblocks, a, o),
                (true, 2) => packed_dot::<true, 2>(group, nblocks, a, o),
                (true, 3) => packed_dot::<true, 3>(group, nblocks, a, o),
                (true, 4) => packed_dot::<true, 4>(group, nblocks, a, o),
                (true, 5) => packed_dot::<true, 5>(group, nblocks, a, o),
                (true, _) => packed_dot::<true, 6>(group, nblocks, a, o),
            }
        }
        done += n;
    }
}

/// Where a group's outputs go: token `t`, row `r` at `self.0 + t·self.1 + r`.
#[derive(Clone, Copy)]
struct Out(*mut f32, usize);

/// Sums each run of 4 lanes of `v` (4 rows in lane order) less the row's offset, into
/// `dst[..4]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn lanes_to_rows(v: __m512, offset: &[f32], dst: *mut f32) {
    let mut lanes = [0f32; 16];
    // SAFETY: `lanes` is 16 f32.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
    for (i, off) in offset.iter().enumerate().take(4) {
        let s: f32 = lanes[4 * i..4 * i + 4].iter().sum();
        // SAFETY: `dst` has room for this group's rows (`group_dot`'s contract).
        unsafe { *dst.add(i) = s - off };
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn spill(v: __m256) -> [f32; 8] {
    let mut a = [0f32; 8];
    // SAFETY: `a` is 8 f32.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
    a
}

/// One group × `NT` tokens, Q4_0 (`Q8 = false`) or Q8_0 (`Q8 = true`). Both layouts give four
/// 64-byte vectors per block, each 16 positions of four rows as unsigned bytes: rows 0..3 at
/// positions 0..16, rows 0..3 at 16..32, then rows 4..7 likewise. Q4_0's are the low and high
/// nibbles (q + 8), Q8_0's the bytes xor 0x80 (w + 128); that offset times Σy comes off at
/// the end, scaled like the block.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c,fma,avx2")]
unsafe fn packed_dot<const Q8: bool, const NT: usize>(
    group: &[u8],
    nblocks: usize,
    acts: &[&[BlockQ8_0]],
    out: Out,
) {
    let m4 = _mm512_set1_epi8(0x0F);
    let flip = _mm512_set1_epi8(0x80u8 as i8);
    let bias: f32 = if Q8 { 128.0 } else { 8.0 };
    let zero = _mm512_setzero_si512();
    let idx0 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    let idx1 = _mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4);
    let mut acc = [[_mm512_setzero_ps(); 2]; NT];
    let mut off = [_mm256_setzero_ps(); NT];
    let gbb = group_block_bytes(if Q8 { GgmlType::Q8_0 } else { GgmlType::Q4_0 });
    for k in 0..nblocks {
        // SAFETY: block k of the group spans gbb bytes inside `group` (caller's contract).
        unsafe {
            let p = group.as_ptr().add(k * gbb);
            let s256 = _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
            let s8 = _mm512_castps256_ps512(s256);
            let sp0 = _mm512_permutexvar_ps(idx0, s8);
            let sp1 = _mm512_permutexvar_ps(idx1, s8);
            let load = |at: usize| _mm512_loadu_si512(p.add(at) as *const _);
            let w: [__m512i; 4] = if Q8 {
                std::array::from_fn(|i| _mm512_xor_si512(load(16 + 64 * i), flip))
            } else {
                let (w0, w1) = (load(16), load(80));
                [
                    _mm512_and_si512(w0, m4),
                    _mm512_and_si512(_mm512_srli_epi16::<4>(w0), m4),
                    _mm512_and_si512(w1, m4),
                    _mm512_and_si512(_mm512_srli_epi16::<4>(w1), m4),
                ]
            };
            for t in 0..NT {
                let y = acts[t].get_unchecked(k);
                let ylo = _mm512_broadcast_i32x4(_mm_loadu_si128(y.qs.as_ptr() as *const __m128i));
                let yhi = _mm512_broadcast_i32x4(_mm_loadu_si128(
                    y.qs.as_ptr().add(16) as *const __m128i
                ));
                let d0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, w[0], ylo), w[1], yhi);
                let d1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, w[2], ylo), w[3], yhi);
                let dy = _mm512_set1_ps(y.d);
                acc[t][0] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), _mm512_mul_ps(sp0, dy), acc[t][0]);
                acc[t][1] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), _mm512_mul_ps(sp1, dy), acc[t][1]);
                off[t] = _mm256_fmadd_ps(s256, _mm256_set1_ps(y.sd), off[t]);
            }
        }
    }
    for t in 0..NT {
        // The offset was summed per unit of `bias` (see `BlockQ8_0::sd`).
        let o = spill(_mm256_mul_ps(off[t], _mm256_set1_ps(bias)));
        // SAFETY: token t's 8 outputs are writable (`group_dot`'s contract).
        let dst = unsafe { out.0.add(t * out.1) };
        lanes_to_rows(acc[t][0], &o[0..4], dst);
        lanes_to_rows(acc[t][1], &o[4..8], unsafe { dst.add(4) });
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
