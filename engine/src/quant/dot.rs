//! Dot products of one weight row with one activation row: the portable reference kernels,
//! and the dispatch that picks a SIMD version when the CPU has one.
//!
//! Every kernel sums exact integer products per block and scales each block's sum in f32, as
//! ggml does, so SIMD and scalar versions differ only in the order of the f32 additions.

use half::{bf16, f16};

use super::act::{ActRow, BlockQ8K, BlockQ8_0};
use super::blocks::{f16_at, scale_min_k4};
use super::GgmlType;

/// A row kernel: `Σ w·x` for one weight row (whole blocks of its type) and one activation row.
pub(super) type Kernel = fn(&[u8], ActRow<'_>) -> f32;

/// The fastest kernel this CPU runs for `ty`.
pub(super) fn kernel(ty: GgmlType) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = super::x86::kernel(ty) {
        return k;
    }
    scalar_kernel(ty)
}

/// The portable kernel for `ty` (also the reference the SIMD kernels are tested against).
pub(super) fn scalar_kernel(ty: GgmlType) -> Kernel {
    match ty {
        GgmlType::F32 => dot_f32,
        GgmlType::F16 => dot_f16,
        GgmlType::BF16 => dot_bf16,
        GgmlType::Q4_0 => dot_q4_0,
        GgmlType::Q8_0 => dot_q8_0,
        GgmlType::Q4K => dot_q4_k,
        GgmlType::Q5K => dot_q5_k,
        GgmlType::Q6K => dot_q6_k,
    }
}

// The activation row always has the weight type's partner format: `QMatrix::matmul_quantized`
// asserts it before any kernel runs.
pub(super) fn q8_0_row(a: ActRow<'_>) -> &[BlockQ8_0] {
    match a {
        ActRow::Q8_0(a) => a,
        _ => unreachable!("kernel called with the wrong activation format"),
    }
}

pub(super) fn q8_k_row(a: ActRow<'_>) -> &[BlockQ8K] {
    match a {
        ActRow::Q8K(a) => a,
        _ => unreachable!("kernel called with the wrong activation format"),
    }
}

fn dot_f32(w: &[u8], a: ActRow<'_>) -> f32 {
    let ActRow::F32(x) = a else {
        unreachable!("kernel called with the wrong activation format")
    };
    w.chunks_exact(4)
        .zip(x)
        .map(|(b, &x)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * x)
        .sum()
}

fn dot_f16(w: &[u8], a: ActRow<'_>) -> f32 {
    let ActRow::F16(x) = a else {
        unreachable!("kernel called with the wrong activation format")
    };
    w.chunks_exact(2)
        .zip(x)
        .map(|(b, x)| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32() * x.to_f32())
        .sum()
}

fn dot_bf16(w: &[u8], a: ActRow<'_>) -> f32 {
    let ActRow::BF16(x) = a else {
        unreachable!("kernel called with the wrong activation format")
    };
    w.chunks_exact(2)
        .zip(x)
        .map(|(b, x)| bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32() * x.to_f32())
        .sum()
}

fn dot_q4_0(w: &[u8], a: ActRow<'_>) -> f32 {
    let a = q8_0_row(a);
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(18).zip(a) {
        let mut isum = 0i32;
        for j in 0..16 {
            isum += (b[2 + j] & 15) as i32 * y.qs[j] as i32;
            isum += (b[2 + j] >> 4) as i32 * y.qs[j + 16] as i32;
        }
        isum -= 8 * y.sum;
        sum += isum as f32 * (f16_at(b, 0) * y.d);
    }
    sum
}

fn dot_q8_0(w: &[u8], a: ActRow<'_>) -> f32 {
    let a = q8_0_row(a);
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(34).zip(a) {
        let isum: i32 = (0..32)
            .map(|j| (b[2 + j] as i8) as i32 * y.qs[j] as i32)
            .sum();
        sum += isum as f32 * (f16_at(b, 0) * y.d);
    }
    sum
}

/// Σ over sub-blocks of `m_j · (bsum_2j + bsum_2j+1)`, the min correction of Q4_K/Q5_K.
fn k4_min_sum(scales: &[u8], y: &BlockQ8K) -> i32 {
    (0..8)
        .map(|j| {
            let (_, m) = scale_min_k4(j, scales);
            m as i32 * (y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32)
        })
        .sum()
}

fn dot_q4_k(w: &[u8], a: ActRow<'_>) -> f32 {
    let a = q8_k_row(a);
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(144).zip(a) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[4..16];
        let qs = &b[16..144];
        let mut isum = 0i32;
        for k in 0..4 {
            let (sc1, _) = scale_min_k4(2 * k, scales);
            let (sc2, _) = scale_min_k4(2 * k + 1, scales);
            let (mut s1, mut s2) = (0i32, 0i32);
            for l in 0..32 {
                s1 += (qs[32 * k + l] & 15) as i32 * y.qs[64 * k + l] as i32;
                s2 += (qs[32 * k + l] >> 4) as i32 * y.qs[64 * k + 32 + l] as i32;
            }
            isum += sc1 as i32 * s1 + sc2 as i32 * s2;
        }
        let msum = k4_min_sum(scales, y);
        sum += y.d * (d * isum as f32 - dmin * msum as f32);
    }
    sum
}

fn dot_q5_k(w: &[u8], a: ActRow<'_>) -> f32 {
    let a = q8_k_row(a);
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(176).zip(a) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[4..16];
        let qh = &b[16..48];
        let qs = &b[48..176];
        let mut isum = 0i32;
        for k in 0..4 {
            let (sc1, _) = scale_min_k4(2 * k, scales);
            let (sc2, _) = scale_min_k4(2 * k + 1, scales);
            let (u1, u2) = (1u8 << (2 * k), 2u8 << (2 * k));
            let (mut s1, mut s2) = (0i32, 0i32);
            for l in 0..32 {
                let lo = (qs[32 * k + l] & 15) as i32 + if qh[l] & u1 != 0 { 16 } else { 0 };
                let hi = (qs[32 * k + l] >> 4) as i32 + if qh[l] & u2 != 0 { 16 } else { 0 };
                s1 += lo * y.qs[64 * k + l] as i32;
                s2 += hi * y.qs[64 * k + 32 + l] as i32;
            }
            isum += sc1 as i32 * s1 + sc2 as i32 * s2;
        }
        let msum = k4_min_sum(scales, y);
        sum += y.d * (d * isum as f32 - dmin * msum as f32);
    }
    sum
}

fn dot_q6_k(w: &[u8], a: ActRow<'_>) -> f32 {
    let a = q8_k_row(a);
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(210).zip(a) {
        let d = f16_at(b, 208);
        let mut isum = 0i32;
        for n in 0..2 {
            let ql = &b[64 * n..64 * n + 64];
            let qh = &b[128 + 32 * n..128 + 32 * n + 32];
            let sc = &b[192 + 8 * n..192 + 8 * n + 8];
            let q8 = &y.qs[128 * n..128 * n + 128];
            // Products per 16-value group, then scaled: group g covers values 16g..16g+16 of
            // this half; the four 32-value quarters use sc[is], sc[is+2], sc[is+4], sc[is+6].
            let mut groups = [0i32; 8];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                groups[is] += q1 * q8[l] as i32;
                groups[is + 2] += q2 * q8[l + 32] as i32;
                groups[is + 4] += q3 * q8[l + 64] as i32;
                groups[is + 6] += q4 * q8[l + 96] as i32;
            }
            for (g, s) in groups.iter().enumerate() {
                isum += (sc[g] as i8) as i32 * s;
            }
        }
        sum += d * y.d * isum as f32;
    }
    sum
}
