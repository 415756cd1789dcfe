//! ggml's block layouts: dequantization of every supported type, quantization of the types
//! `synth` writes (F32, F16, BF16, Q8_0, Q4_0), in ggml's reference rounding.
//!
//! Layouts (little-endian, `d`/`dmin` are f16):
//!
//! ```text
//! Q4_0  18 B / 32:  d | qs[16]          x[j] = d·((qs[j] & 15) − 8), x[j+16] = d·((qs[j] >> 4) − 8)
//! Q8_0  34 B / 32:  d | qs[32] (i8)     x[j] = d·qs[j]
//! Q4_K 144 B / 256: d | dmin | scales[12] | qs[128]
//!                   8 sub-blocks of 32, 6-bit scale sc and min m each:
//!                   x = d·sc·q − dmin·m, q the 4-bit value (64 values per 32 bytes of qs:
//!                   low nibbles first, then high nibbles)
//! Q5_K 176 B / 256: d | dmin | scales[12] | qh[32] | qs[128]   as Q4_K with a 5th bit from qh
//! Q6_K 210 B / 256: ql[128] | qh[64] | scales[16] (i8) | d
//!                   x = d·scale·(q − 32), q 6-bit (4 low bits in ql, 2 high bits in qh)
//! ```

use half::{bf16, f16};

use super::GgmlType;

pub(super) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block.
pub(super) fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Dequantizes one row (`src` holds whole blocks of `ty`) into `out`.
pub fn dequantize_row(ty: GgmlType, src: &[u8], out: &mut [f32]) {
    let bb = ty.block_bytes();
    let bl = ty.block_len();
    for (b, y) in src.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
        match ty {
            GgmlType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            GgmlType::F16 => y[0] = f16_at(b, 0),
            GgmlType::BF16 => y[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
            GgmlType::Q4_0 => {
                let d = f16_at(b, 0);
                for j in 0..16 {
                    y[j] = d * ((b[2 + j] & 15) as i32 - 8) as f32;
                    y[j + 16] = d * ((b[2 + j] >> 4) as i32 - 8) as f32;
                }
            }
            GgmlType::Q8_0 => {
                let d = f16_at(b, 0);
                for j in 0..32 {
                    y[j] = d * (b[2 + j] as i8) as f32;
                }
            }
            GgmlType::Q4K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qs = &b[16..144];
                for k in 0..4 {
                    let (sc1, m1) = scale_min_k4(2 * k, scales);
                    let (sc2, m2) = scale_min_k4(2 * k + 1, scales);
                    let q = &qs[32 * k..32 * k + 32];
                    for l in 0..32 {
                        y[64 * k + l] = d * sc1 as f32 * (q[l] & 15) as f32 - dmin * m1 as f32;
                        y[64 * k + 32 + l] = d * sc2 as f32 * (q[l] >> 4) as f32 - dmin * m2 as f32;
                    }
                }
            }
            GgmlType::Q5K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qh = &b[16..48];
                let qs = &b[48..176];
                for k in 0..4 {
                    let (sc1, m1) = scale_min_k4(2 * k, scales);
                    let (sc2, m2) = scale_min_k4(2 * k + 1, scales);
                    let q = &qs[32 * k..32 * k + 32];
                    let (u1, u2) = (1u8 << (2 * k), 2u8 << (2 * k));
                    for l in 0..32 {
                        let lo = (q[l] & 15) + if qh[l] & u1 != 0 { 16 } else { 0 };
                        let hi = (q[l] >> 4) + if qh[l] & u2 != 0 { 16 } else { 0 };
                        y[64 * k + l] = d * sc1 as f32 * lo as f32 - dmin * m1 as f32;
                        y[64 * k + 32 + l] = d * sc2 as f32 * hi as f32 - dmin * m2 as f32;
                    }
                }
            }
            GgmlType::Q6K => {
                let ql = &b[0..128];
                let qh = &b[128..192];
                let sc = &b[192..208];
                let d = f16_at(b, 208);
                for n in 0..2 {
                    let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
                    let y = &mut y[128 * n..];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                }
            }
        }
    }
}

/// Quantizes one row into `dst` with ggml's reference rounding. Returns `false` for types
/// with no quantizer here (the K-quants: llama.cpp's `llama-quantize` makes those).
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    let bb = ty.block_bytes();
    let bl = ty.block_len();
    for (x, b) in src.chunks_exact(bl).zip(dst.chunks_exact_mut(bb)) {
        match ty {
            GgmlType::F32 => b.copy_from_slice(&x[0].to_le_bytes()),
            GgmlType::F16 => b.copy_from_slice(&f16::from_f32(x[0]).to_bits().to_le_bytes()),
            GgmlType::BF16 => b.copy_from_slice(&bf16::from_f32(x[0]).to_bits().to_le_bytes()),
            GgmlType::Q8_0 => {
                let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                b[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
                for j in 0..32 {
                    b[2 + j] = ((x[j] * id).round() as i32).clamp(-128, 127) as i8 as u8;
                }
            }
            GgmlType::Q4_0 => {
                let mut amax = 0f32;
                let mut max = 0f32;
                for &v in x {
                    if v.abs() > amax {
                        amax = v.abs();
                        max = v;
                    }
                }
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                b[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
                for j in 0..16 {
                    let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
                    let q1 = ((x[j + 16] * id + 8.5) as i8).min(15) as u8;
                    b[2 + j] = q0 | (q1 << 4);
                }
            }
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => return false,
        }
    }
    true
}
