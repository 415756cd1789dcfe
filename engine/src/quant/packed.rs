//! Q4_0 and Q8_0 matrices repacked at load into groups of 8 rows, for the AVX-512 VNNI
//! kernels in `x86_packed.rs`.
//!
//! ```text
//! group g (rows 8g..8g+8), block k:  d[8] (f16, one per row), then
//!   Q4_0: qs of rows 0..3 | qs of rows 4..7                 (16 B per row: 64 B per four rows)
//!   Q8_0: first 16 qs of rows 0..3 | last 16 of rows 0..3 | first 16 of rows 4..7 | last 16 …
//! ```
//!
//! The same bytes as the file (18 or 34 per row-block), reordered so that one block of all eight
//! rows is contiguous and every 64-byte load covers the same 16 positions of four rows; the
//! scales of the eight rows arrive in one 16-byte load. Groups follow one another, so a decode step still streams the
//! matrix front to back.

use super::GgmlType;

/// Rows per group.
pub(super) const GROUP: usize = 8;

/// Bytes of one block of one row's quants (scale excluded).
pub(super) fn quant_bytes(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_0 => 16,
        GgmlType::Q8_0 => 32,
        _ => unreachable!("only Q4_0 and Q8_0 are packed"),
    }
}

/// Bytes of one block of a whole group.
pub(super) fn group_block_bytes(ty: GgmlType) -> usize {
    2 * GROUP + GROUP * quant_bytes(ty)
}

/// Whether a matrix of `ty` with `rows` rows can be packed.
pub(super) fn packable(ty: GgmlType, rows: usize) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q8_0) && rows.is_multiple_of(GROUP) && rows > 0
}

/// Where row `r` (0..8) of a group puts quant byte `j` of a block, relative to the block start.
fn quant_offset(ty: GgmlType, r: usize, j: usize) -> usize {
    match ty {
        GgmlType::Q8_0 => 2 * GROUP + (r / 4) * 128 + (j / 16) * 64 + (r % 4) * 16 + j % 16,
        _ => 2 * GROUP + r * quant_bytes(ty) + j,
    }
}

/// Repacks `src` (row-major ggml blocks, `rows × row_bytes`) into groups.
pub(super) fn pack(ty: GgmlType, src: &[u8], rows: usize, row_bytes: usize) -> Vec<u8> {
    let bb = ty.block_bytes();
    let qb = quant_bytes(ty);
    let nblocks = row_bytes / bb;
    let gbb = group_block_bytes(ty);
    let mut out = vec![0u8; src.len()];
    for g in 0..rows / GROUP {
        for k in 0..nblocks {
            let dst = &mut out[(g * nblocks + k) * gbb..(g * nblocks + k + 1) * gbb];
            for r in 0..GROUP {
                let b = &src[(g * GROUP + r) * row_bytes + k * bb..][..bb];
                dst[2 * r..2 * r + 2].copy_from_slice(&b[..2]);
                for j in (0..qb).step_by(16) {
                    let at = quant_offset(ty, r, j);
                    dst[at..at + 16].copy_from_slice(&b[2 + j..2 + j + 16]);
                }
            }
        }
    }
    out
}

/// Row `r` of a packed matrix, as the ggml blocks it came from.
pub(super) fn unpack_row(ty: GgmlType, packed: &[u8], r: usize, row_bytes: usize, out: &mut [u8]) {
    let bb = ty.block_bytes();
    let qb = quant_bytes(ty);
    let nblocks = row_bytes / bb;
    let gbb = group_block_bytes(ty);
    let (g, i) = (r / GROUP, r % GROUP);
    for k in 0..nblocks {
        let src = &packed[(g * nblocks + k) * gbb..][..gbb];
        let b = &mut out[k * bb..(k + 1) * bb];
        b[..2].copy_from_slice(&src[2 * i..2 * i + 2]);
        for j in (0..qb).step_by(16) {
            let at = quant_offset(ty, i, j);
            b[2 + j..2 + j + 16].copy_from_slice(&src[at..at + 16]);
        }
    }
}
