//! Q4_0 and Q8_0 matrices repacked at load into groups of 16 rows, for the AVX-512 VNNI
//! kernels in `x86_packed.rs` and the AVX2 ones in `x86_packed_avx2.rs` (which read each
//! 64-byte quad as two 32-byte halves of eight rows).
//!
//! ```text
//! group g (rows 16g..16g+16), block k:  d[16] (f16, one per row), then 64-byte quads:
//!   quad c = for each row r in 0..16: 4 quant bytes of row r starting at byte 4c
//!   Q4_0: 4 quads (16 B of nibbles per row; a quad's low nibbles are positions 4c..4c+4,
//!         its high nibbles positions 16+4c..16+4c+4)
//!   Q8_0: 8 quads (32 B per row, each byte stored xor 0x80, i.e. as the unsigned w + 128)
//! ```
//!
//! The same information as the file (18 or 34 bytes per row-block), reordered so that one
//! block of all sixteen rows is contiguous and each 32-bit lane of a 64-byte load is four
//! consecutive positions of one row: `vpdpbusd` against four activation bytes broadcast to
//! every lane sums four products for each of the 16 rows at once, and a row's sum never has
//! to be gathered across lanes. The sixteen scales arrive in one 32-byte load. Groups follow
//! one another, so a decode step still streams the matrix front to back.

use super::GgmlType;

/// Rows per group.
pub(super) const GROUP: usize = 16;

/// Most tokens the tile kernels take in one pass over a group (one tile row each; the VNNI
/// kernels take at most `x86_packed::CHUNK`).
#[cfg(target_arch = "x86_64")]
pub(super) const MAX_TOKENS: usize = 16;

/// `$kernel::<Q8, N> $args` for the run-time weight type (`$q8`: Q8_0, else Q4_0) and token
/// count `$n` (1..=[`MAX_TOKENS`], or the counts listed after a `;`), which the kernels take as
/// constants.
#[cfg(target_arch = "x86_64")]
macro_rules! per_count {
    ($q8:expr, $n:expr, $kernel:ident $args:tt) => {
        $crate::quant::packed::per_count!(@arms $q8, $n, $kernel $args;
            1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
    };
    ($q8:expr, $n:expr, $kernel:ident $args:tt; $($nt:literal)*) => {
        $crate::quant::packed::per_count!(@arms $q8, $n, $kernel $args; $($nt)*)
    };
    (@arms $q8:expr, $n:expr, $kernel:ident $args:tt; $($nt:literal)*) => {
        match ($q8, $n) {
            $((false, $nt) => $kernel::<false, $nt> $args,)*
            $((true, $nt) => $kernel::<true, $nt> $args,)*
            _ => unreachable!("a token count the kernel is instantiated for"),
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(super) use per_count;

/// `0..len` in consecutive runs of at most `most`, as even as they can be (20 as 7 + 7 + 6, not
/// 8 + 8 + 4): a short last run would pay the unpacking of a weight block for few tokens.
#[cfg(target_arch = "x86_64")]
pub(super) fn even_runs(len: usize, most: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut done = 0;
    std::iter::from_fn(move || {
        let left = len - done;
        (left > 0).then(|| {
            let n = left.div_ceil(left.div_ceil(most));
            done += n;
            done - n..done
        })
    })
}

/// Whether this CPU has kernels for the packed layout (AVX-512 VNNI, or else AVX2).
#[cfg(target_arch = "x86_64")]
pub(super) fn kernels_available() -> bool {
    super::x86_packed::available() || super::x86_packed_avx2::available()
}

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

/// Where row `r` (0..16) of a group puts quant byte `j` of a block, relative to the block
/// start (bytes `4c..4c + 4` of a row are contiguous, in quad `c`).
fn quant_offset(r: usize, j: usize) -> usize {
    2 * GROUP + 64 * (j / 4) + 4 * r + j % 4
}

/// What a stored quant byte is xor-ed with (Q8_0 is kept as unsigned `w + 128`).
fn flip(ty: GgmlType) -> u8 {
    if ty == GgmlType::Q8_0 {
        0x80
    } else {
        0
    }
}

/// Repacks `src` (row-major ggml blocks, `rows × row_bytes`) into groups.
pub(super) fn pack(ty: GgmlType, src: &[u8], rows: usize, row_bytes: usize) -> Vec<u8> {
    let bb = ty.block_bytes();
    let qb = quant_bytes(ty);
    let nblocks = row_bytes / bb;
    let gbb = group_block_bytes(ty);
    let x = flip(ty);
    let mut out = vec![0u8; src.len()];
    for g in 0..rows / GROUP {
        for k in 0..nblocks {
            let dst = &mut out[(g * nblocks + k) * gbb..(g * nblocks + k + 1) * gbb];
            for r in 0..GROUP {
                let b = &src[(g * GROUP + r) * row_bytes + k * bb..][..bb];
                dst[2 * r..2 * r + 2].copy_from_slice(&b[..2]);
                for (j, quad) in b[2..2 + qb].chunks_exact(4).enumerate() {
                    let at = quant_offset(r, 4 * j);
                    for (d, &q) in dst[at..at + 4].iter_mut().zip(quad) {
                        *d = q ^ x;
                    }
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
    let x = flip(ty);
    let (g, i) = (r / GROUP, r % GROUP);
    for k in 0..nblocks {
        let src = &packed[(g * nblocks + k) * gbb..][..gbb];
        let b = &mut out[k * bb..(k + 1) * bb];
        b[..2].copy_from_slice(&src[2 * i..2 * i + 2]);
        for (j, quad) in b[2..2 + qb].chunks_exact_mut(4).enumerate() {
            let at = quant_offset(i, 4 * j);
            for (q, &s) in quad.iter_mut().zip(&src[at..at + 4]) {
                *q = s ^ x;
            }
        }
    }
}
