//! AVX2/FMA/F16C row kernels, used when the CPU reports those features at run time.
//!
//! Integer parts are exact (`maddubs` on unsigned × signed bytes never saturates with these
//! value ranges: at most 63·127·2 for Q6_K, 128·127·2 for Q8_0); only the f32 accumulation
//! order differs from the scalar kernels in `dot.rs`.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::act::ActRow;
use super::dot::{q8_0_row, q8_k_row, Kernel};
use super::GgmlType;

/// AVX2, FMA and F16C present (and `LFM_NO_SIMD` unset: the portable kernels for testing).
pub(super) fn has_avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::env::var_os("LFM_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

/// The AVX2 kernel for `ty`, if this CPU has AVX2, FMA and F16C and there is one.
pub(super) fn kernel(ty: GgmlType) -> Option<Kernel> {
    if !has_avx2() {
        return None;
    }
    Some(match ty {
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q6K => q6_k,
        GgmlType::Q4K => q4_k,
        GgmlType::Q5K => q5_k,
        GgmlType::F16 => f16,
        _ => return None,
    })
}

fn q4_0(w: &[u8], a: ActRow<'_>) -> f32 {
    rows_kernel(GgmlType::Q4_0, w, a)
}

fn q8_0(w: &[u8], a: ActRow<'_>) -> f32 {
    rows_kernel(GgmlType::Q8_0, w, a)
}

/// One row by one token on the kernels of `x86_rows`, so that the row kernel and the matrix
/// product give the same bits.
fn rows_kernel(ty: GgmlType, w: &[u8], a: ActRow<'_>) -> f32 {
    let a = q8_0_row(a);
    let n = (w.len() / ty.block_bytes()).min(a.len());
    let mut out = [0f32];
    // SAFETY: `kernel` hands this out only when AVX2, FMA and F16C are present; `w` and `a`
    // both hold `n` blocks (the first `n` of `w`, read as one row).
    unsafe {
        super::x86_rows::dot(
            ty,
            w.as_ptr(),
            n * ty.block_bytes(),
            1,
            &[&a[..n]],
            &mut out,
        )
    };
    out[0]
}

fn q6_k(w: &[u8], a: ActRow<'_>) -> f32 {
    // SAFETY: as above.
    unsafe { q6_k_avx2(w, a) }
}

fn q4_k(w: &[u8], a: ActRow<'_>) -> f32 {
    // SAFETY: as above.
    unsafe { q45_k_avx2::<false>(w, a) }
}

fn q5_k(w: &[u8], a: ActRow<'_>) -> f32 {
    // SAFETY: as above.
    unsafe { q45_k_avx2::<true>(w, a) }
}

fn f16(w: &[u8], a: ActRow<'_>) -> f32 {
    // SAFETY: as above.
    unsafe { f16_avx2(w, a) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn hsum_ps(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_epi32(v: __m256i) -> i32 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256(v, 1);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

#[inline]
#[target_feature(enable = "f16c")]
fn f16_scale(b: &[u8]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(
        u16::from_le_bytes([b[0], b[1]]) as i32,
    )))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_avx2(w: &[u8], a: ActRow<'_>) -> f32 {
    let a = q8_k_row(a);
    let m4 = _mm256_set1_epi8(0x0F);
    let m3 = _mm256_set1_epi8(0x03);
    let m12 = _mm256_set1_epi8(0x0C);
    let m48 = _mm256_set1_epi8(0x30);
    let m192 = _mm256_set1_epi8(0xC0u8 as i8);
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(210).zip(a) {
        let d = f16_scale(&b[208..210]) * y.d;
        let sc = &b[192..208];
        let mut acc = _mm256_setzero_si256();
        let mut corr = 0i32;
        for n in 0..2 {
            // SAFETY: ql spans 0..128, qh 128..192 of the 210-byte block; q8 spans 256 bytes.
            let (ql0, ql1, qh) = unsafe {
                (
                    _mm256_loadu_si256(b.as_ptr().add(64 * n) as *const __m256i),
                    _mm256_loadu_si256(b.as_ptr().add(64 * n + 32) as *const __m256i),
                    _mm256_loadu_si256(b.as_ptr().add(128 + 32 * n) as *const __m256i),
                )
            };
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_slli_epi16(_mm256_and_si256(qh, m12), 2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    _mm256_and_si256(qh, m48),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    _mm256_srli_epi16(_mm256_and_si256(qh, m192), 2),
                ),
            ];
            for (k, qk) in q.iter().enumerate() {
                let g = 8 * n + 2 * k;
                let (sa, sb) = (sc[g] as i8 as i16, sc[g + 1] as i8 as i16);
                let yv = unsafe {
                    _mm256_loadu_si256(y.qs.as_ptr().add(128 * n + 32 * k) as *const __m256i)
                };
                let p = _mm256_maddubs_epi16(*qk, yv);
                let s = _mm256_set_m128i(_mm_set1_epi16(sb), _mm_set1_epi16(sa));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
                corr += sa as i32 * y.bsums[g] as i32 + sb as i32 * y.bsums[g + 1] as i32;
            }
        }
        let isum = hsum_epi32(acc) - 32 * corr;
        sum += d * isum as f32;
    }
    sum
}

/// Q4_K (`FIVE = false`) and Q5_K (`FIVE = true`): per 64 values, the low nibbles are
/// sub-block 2k and the high nibbles 2k+1 (Q5_K adds bit 2k / 2k+1 of `qh` as the fifth bit);
/// `maddubs` then `madd` by the sub-block's 6-bit scale gives exact i32 sums; the mins come off
/// through the activations' 16-value sums.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q45_k_avx2<const FIVE: bool>(w: &[u8], a: ActRow<'_>) -> f32 {
    let a = q8_k_row(a);
    let (bytes, qs_at) = if FIVE { (176, 48) } else { (144, 16) };
    let m4 = _mm256_set1_epi8(0x0F);
    let one = _mm256_set1_epi8(1);
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(bytes).zip(a) {
        let (d, dmin) = (f16_scale(&b[0..2]), f16_scale(&b[2..4]));
        let scales = &b[4..16];
        // SAFETY: qh spans 16..48 of a Q5_K block.
        let qh = if FIVE {
            unsafe { _mm256_loadu_si256(b.as_ptr().add(16) as *const __m256i) }
        } else {
            _mm256_setzero_si256()
        };
        let mut acc = _mm256_setzero_si256();
        let mut msum = 0i32;
        for k in 0..4 {
            let (sc1, m1) = super::blocks::scale_min_k4(2 * k, scales);
            let (sc2, m2) = super::blocks::scale_min_k4(2 * k + 1, scales);
            // SAFETY: qs spans qs_at..qs_at+128; y.qs is 256 bytes.
            let (q, y1, y2) = unsafe {
                (
                    _mm256_loadu_si256(b.as_ptr().add(qs_at + 32 * k) as *const __m256i),
                    _mm256_loadu_si256(y.qs.as_ptr().add(64 * k) as *const __m256i),
                    _mm256_loadu_si256(y.qs.as_ptr().add(64 * k + 32) as *const __m256i),
                )
            };
            let mut lo = _mm256_and_si256(q, m4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if FIVE {
                let h1 =
                    _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k as i32)), one);
                let h2 = _mm256_and_si256(
                    _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k as i32 + 1)),
                    one,
                );
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(h1, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(h2, 4));
            }
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y1), _mm256_set1_epi16(sc1 as i16));
            let p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y2), _mm256_set1_epi16(sc2 as i16));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(p1, p2));
            msum += m1 as i32 * (y.bsums[4 * k] as i32 + y.bsums[4 * k + 1] as i32)
                + m2 as i32 * (y.bsums[4 * k + 2] as i32 + y.bsums[4 * k + 3] as i32);
        }
        sum += y.d * (d * hsum_epi32(acc) as f32 - dmin * msum as f32);
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_avx2(w: &[u8], a: ActRow<'_>) -> f32 {
    let ActRow::F16(x) = a else {
        unreachable!("kernel called with the wrong activation format")
    };
    let n = x.len().min(w.len() / 2);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8k + 8 <= n, and both rows hold n halves.
            let (wv, xv) = unsafe {
                (
                    _mm256_cvtph_ps(_mm_loadu_si128(
                        w.as_ptr().add(2 * (i + 8 * k)) as *const __m128i
                    )),
                    _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(i + 8 * k) as *const __m128i)),
                )
            };
            *acc = _mm256_fmadd_ps(wv, xv, *acc);
        }
        i += 32;
    }
    let mut s = hsum_ps(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    while i < n {
        let wi = half::f16::from_bits(u16::from_le_bytes([w[2 * i], w[2 * i + 1]]));
        s += wi.to_f32() * x[i].to_f32();
        i += 1;
    }
    s
}
