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
}

/// `Vector` for an x86 vector type through its intrinsics (the caller checked the CPU for
/// them; pointers as the trait requires).
#[cfg(target_arch = "x86_64")]
macro_rules! x86_vector {
    ($ty:ty, $w:expr, $zero:ident, $splat:ident, $load:ident, $store:ident, $fma:ident,
     $load_f16:ident) => {
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
    load_f16_512
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
    load_f16_256
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
