//! The vector operations the attention kernels are written in, for AVX-512 (16 lanes), AVX2
//! (8 lanes) and plain scalars (1 lane, the fallback on other CPUs).
//!
//! The methods are `#[inline(always)]` and carry no `target_feature` of their own: they are
//! only called from kernels that a `#[target_feature]` function inlined after checking the CPU,
//! so they compile to the vector instructions of that function.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use half::f16;

/// A vector of `W` f32 lanes.
pub(super) trait Vector: Copy {
    /// Lanes.
    const W: usize;
    /// All lanes zero.
    ///
    /// # Safety
    /// The CPU has the vector's instruction set.
    unsafe fn zero() -> Self;
    /// Every lane `x`.
    ///
    /// # Safety
    /// As [`Vector::zero`].
    unsafe fn splat(x: f32) -> Self;
    /// Reads `W` lanes at `p`.
    ///
    /// # Safety
    /// As [`Vector::zero`], and `p` points at `W` readable floats.
    unsafe fn load(p: *const f32) -> Self;
    /// Writes the lanes at `p`.
    ///
    /// # Safety
    /// As [`Vector::zero`], and `p` points at `W` writable floats.
    unsafe fn store(self, p: *mut f32);
    /// `a·b + c`, lane by lane.
    ///
    /// # Safety
    /// As [`Vector::zero`].
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// Reads `W` half-precision values at `p`, widened.
    ///
    /// # Safety
    /// As [`Vector::zero`], and `p` points at `W` readable values.
    unsafe fn load_f16(p: *const f16) -> Self;
    /// Lane `i` is the sum of the lanes of `parts[i]`.
    ///
    /// # Safety
    /// As [`Vector::zero`], and `parts` holds `W` vectors.
    unsafe fn sums(parts: &[Self]) -> Self;
    /// Writes the `W x W` block of floats at `src` (rows `src_stride` apart) transposed at
    /// `dst` (rows `dst_stride` apart): `dst[j][i] = src[i][j]`.
    ///
    /// # Safety
    /// As [`Vector::zero`]; `W` rows of `W` floats are readable at `src` and writable at
    /// `dst`, and the two blocks do not overlap.
    unsafe fn transpose(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize);
}

/// [`Vector::transpose`] one float at a time.
///
/// # Safety
/// As [`Vector::transpose`] for `W` lanes.
#[inline(always)]
unsafe fn transpose_floats<const W: usize>(
    src: *const f32,
    src_stride: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    for i in 0..W {
        for j in 0..W {
            // SAFETY: the caller's contract bounds both offsets.
            unsafe { *dst.add(j * dst_stride + i) = *src.add(i * src_stride + j) };
        }
    }
}

/// One lane: the portable fallback.
#[derive(Clone, Copy)]
pub(super) struct Scalar(f32);

impl Vector for Scalar {
    const W: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Scalar(0.0)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees one readable float at `p`.
        Scalar(unsafe { *p })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees one writable float at `p`.
        unsafe { *p = self.0 }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Scalar(a.0 * b.0 + c.0)
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> Self {
        // SAFETY: the caller guarantees one readable value at `p`.
        Scalar(unsafe { *p }.to_f32())
    }
    #[inline(always)]
    unsafe fn sums(parts: &[Self]) -> Self {
        parts[0]
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
        // SAFETY: the caller's contract.
        unsafe { transpose_floats::<1>(src, src_stride, dst, dst_stride) }
    }
}

/// `Vector` for an x86 vector type through its intrinsics (the caller checked the CPU for
/// them; pointers as the trait requires).
#[cfg(target_arch = "x86_64")]
macro_rules! x86_vector {
    ($ty:ty, $w:expr, $zero:ident, $splat:ident, $load:ident, $store:ident, $fma:ident,
     $load_f16:ident, $sums:ident, $transpose:ident) => {
        impl Vector for $ty {
            const W: usize = $w;
            #[inline(always)]
            unsafe fn zero() -> Self {
                // SAFETY (all methods): the caller's contract (see the trait).
                unsafe { $zero() }
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> Self {
                unsafe { $splat(x) }
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                unsafe { $load(p) }
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f32) {
                unsafe { $store(p, self) }
            }
            #[inline(always)]
            unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
                unsafe { $fma(a, b, c) }
            }
            #[inline(always)]
            unsafe fn load_f16(p: *const f16) -> Self {
                unsafe { $load_f16(p) }
            }
            #[inline(always)]
            unsafe fn sums(parts: &[Self]) -> Self {
                unsafe { $sums(parts) }
            }
            #[inline(always)]
            unsafe fn transpose(
                src: *const f32,
                src_stride: usize,
                dst: *mut f32,
                dst_stride: usize,
            ) {
                unsafe { $transpose(src, src_stride, dst, dst_stride) }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
x86_vector!(
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_fmadd_ps,
    load_f16_512,
    sums_512,
    transpose_512
);
#[cfg(target_arch = "x86_64")]
x86_vector!(
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_fmadd_ps,
    load_f16_256,
    sums_256,
    transpose_256
);

/// 16 halves at `p`, widened (AVX-512F).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load_f16_512(p: *const f16) -> __m512 {
    // SAFETY: the caller's contract (16 readable values, AVX-512F).
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
}

/// 8 halves at `p`, widened (F16C).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load_f16_256(p: *const f16) -> __m256 {
    // SAFETY: the caller's contract (8 readable values, F16C).
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// Lane sums of 16 vectors, by halving: each step adds two halves of every vector while
/// packing two vectors into one, so 15 vector additions reduce the 256 lanes to 16. The
/// steps leave sum `i` in lane `4·(i % 4) + i / 4`; a last permutation puts it in lane `i`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sums_512(p: &[__m512]) -> __m512 {
    assert!(p.len() >= 16);
    // SAFETY: AVX-512F is the caller's contract.
    unsafe {
        // 128-bit quarters [x0+x2, x1+x3, y0+y2, y1+y3] (no closures: they would not
        // inherit the caller's instruction set).
        const H: i32 = 0b01_00_01_00;
        const H2: i32 = 0b11_10_11_10;
        let mut b = [_mm512_setzero_ps(); 8];
        for (k, v) in b.iter_mut().enumerate() {
            *v = fold_512::<H, H2>(p[2 * k], p[2 * k + 1]);
        }
        // Quarters [x0+x1, x2+x3, y0+y1, y2+y3]: one vector's quarter each.
        let mut c = [_mm512_setzero_ps(); 4];
        for (j, v) in c.iter_mut().enumerate() {
            *v = fold_512::<0b10_00_10_00, 0b11_01_11_01>(b[2 * j], b[2 * j + 1]);
        }
        // The same two steps inside each quarter, on lanes.
        let d0 = fold_lanes_512::<H, H2>(c[0], c[1]);
        let d1 = fold_lanes_512::<H, H2>(c[2], c[3]);
        let e = fold_lanes_512::<0b10_00_10_00, 0b11_01_11_01>(d0, d1);
        let order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
        _mm512_permutexvar_ps(order, e)
    }
}

/// Two 128-bit quarter shuffles of `x` and `y` (quarters 0-1 from `x`, 2-3 from `y`), added.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn fold_512<const A: i32, const B: i32>(x: __m512, y: __m512) -> __m512 {
    // SAFETY: AVX-512F is the caller's contract.
    unsafe {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<A>(x, y),
            _mm512_shuffle_f32x4::<B>(x, y),
        )
    }
}

/// Two lane shuffles of `x` and `y` inside each quarter (lanes 0-1 from `x`, 2-3 from `y`),
/// added.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn fold_lanes_512<const A: i32, const B: i32>(x: __m512, y: __m512) -> __m512 {
    // SAFETY: AVX-512F is the caller's contract.
    unsafe { _mm512_add_ps(_mm512_shuffle_ps::<A>(x, y), _mm512_shuffle_ps::<B>(x, y)) }
}

/// Lane sums of 8 vectors: two rounds of pairwise horizontal adds leave the sums of vectors
/// 0-3 and 4-7 in each 128-bit half; adding the halves gives them in order.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sums_256(p: &[__m256]) -> __m256 {
    assert!(p.len() >= 8);
    // SAFETY: AVX is the caller's contract.
    unsafe {
        let lo = _mm256_hadd_ps(_mm256_hadd_ps(p[0], p[1]), _mm256_hadd_ps(p[2], p[3]));
        let hi = _mm256_hadd_ps(_mm256_hadd_ps(p[4], p[5]), _mm256_hadd_ps(p[6], p[7]));
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(lo, hi),
            _mm256_permute2f128_ps::<0x31>(lo, hi),
        )
    }
}

/// [`Vector::transpose`] of 16 x 16 floats in AVX-512F shuffles (64 of them, against 256 loads
/// and stores one float at a time): pairs of rows interleave as floats, then as pairs of
/// floats, so that 128-bit lane `l` of `u[4g + j]` holds column `4l + j` of rows `4g..4g + 4`;
/// two rounds of lane shuffles gather each column's four lanes.
///
/// # Safety
/// As [`Vector::transpose`], on a CPU with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose_512(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    // SAFETY: the caller's contract bounds every row; the instruction set is the caller's.
    unsafe {
        let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * src_stride)));
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let pd = _mm512_castps_pd;
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let b = 4 * g;
            u[b] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[b]), pd(t[b + 2])));
            u[b + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[b]), pd(t[b + 2])));
            u[b + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[b + 1]), pd(t[b + 3])));
            u[b + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[b + 1]), pd(t[b + 3])));
        }
        for j in 0..4 {
            // Lanes 0 and 2 (`0x88`) or 1 and 3 (`0xdd`) of rows 0..8, then of rows 8..16.
            let v_even = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
            let v_odd = _mm512_shuffle_f32x4::<0xdd>(u[j], u[4 + j]);
            let w_even = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
            let w_odd = _mm512_shuffle_f32x4::<0xdd>(u[8 + j], u[12 + j]);
            for (l, x) in [
                _mm512_shuffle_f32x4::<0x88>(v_even, w_even),
                _mm512_shuffle_f32x4::<0x88>(v_odd, w_odd),
                _mm512_shuffle_f32x4::<0xdd>(v_even, w_even),
                _mm512_shuffle_f32x4::<0xdd>(v_odd, w_odd),
            ]
            .into_iter()
            .enumerate()
            {
                _mm512_storeu_ps(dst.add((4 * l + j) * dst_stride), x);
            }
        }
    }
}

/// [`Vector::transpose`] of 8 x 8 floats, one at a time.
///
/// # Safety
/// As [`Vector::transpose`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose_256(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    // SAFETY: the caller's contract.
    unsafe { transpose_floats::<8>(src, src_stride, dst, dst_stride) }
}
