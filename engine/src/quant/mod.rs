//! Quantized weight matrices in ggml's block formats, and the matrix products over them.
//!
//! A [`QMatrix`] is a `[rows, cols]` weight whose rows are stored back to back in one of the
//! ggml types llama.cpp's GGUF files use ([`GgmlType`]): F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K
//! and Q6_K. The bytes are borrowed from the memory-mapped file, never copied.
//!
//! The product follows llama.cpp's numerics so that logits agree with it closely: activations
//! are first quantized to the weight type's partner format ([`ActFormat`]: Q8_0 blocks of 32 for
//! Q4_0/Q8_0, Q8_K blocks of 256 for the K-quants, f16 for F16, bf16 for BF16), then each
//! output is an integer dot per block scaled in f32. `blocks` holds the bit layouts and the
//! scalar reference kernels; `x86` holds AVX2 versions, chosen at run time, that give the
//! same integer sums, and `x86_rows` the AVX2 Q4_0 and Q8_0 products over several rows and
//! tokens at once (the path on CPUs without AVX-512 VNNI, whose matrices stay in the file
//! layout).
//!
//! Work is split over output rows on the rayon pool: each task owns a disjoint range of rows
//! and walks every token for them, so a weight tile is read from memory once per call.

mod act;
mod blocks;
mod dot;
mod packed;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_amx;
#[cfg(target_arch = "x86_64")]
mod x86_packed;
#[cfg(target_arch = "x86_64")]
mod x86_packed_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_rows;

use std::fmt;
use std::sync::Arc;

use rayon::prelude::*;

pub use act::{ActFormat, QuantizedActs};
pub use blocks::{dequantize_row, quantize_row};

/// A ggml tensor type (the numbering is ggml's and appears in GGUF files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// 4-bit, blocks of 32 with one f16 scale.
    Q4_0,
    /// 8-bit, blocks of 32 with one f16 scale.
    Q8_0,
    /// 4-bit k-quant, super-blocks of 256 with 6-bit sub-block scales and mins.
    Q4K,
    /// 5-bit k-quant.
    Q5K,
    /// 6-bit k-quant.
    Q6K,
    /// bfloat16.
    BF16,
}

impl GgmlType {
    /// The type for ggml's numeric id, or `None` for one this engine does not run (the caller
    /// names the tensor in its error).
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    /// ggml's numeric id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// ggml's name for ids this engine does not run, for error messages.
    pub fn name_of_id(id: u32) -> String {
        let known = [
            (3, "Q4_1"),
            (6, "Q5_0"),
            (7, "Q5_1"),
            (9, "Q8_1"),
            (10, "Q2_K"),
            (11, "Q3_K"),
            (15, "Q8_K"),
            (16, "IQ2_XXS"),
            (17, "IQ2_XS"),
            (18, "IQ3_XXS"),
            (19, "IQ1_S"),
            (20, "IQ4_NL"),
            (21, "IQ3_S"),
            (22, "IQ2_S"),
            (23, "IQ4_XS"),
            (29, "IQ1_M"),
            (34, "TQ1_0"),
            (35, "TQ2_0"),
            (39, "MXFP4"),
        ];
        match GgmlType::from_id(id) {
            Some(t) => t.to_string(),
            None => known
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|| format!("ggml type {id}")),
        }
    }

    /// Elements per block.
    pub fn block_len(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q8_0 => 32,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4K => 144,
            GgmlType::Q5K => 176,
            GgmlType::Q6K => 210,
        }
    }

    /// Bytes of a row of `cols` elements; `None` if `cols` is not a whole number of blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        if !cols.is_multiple_of(self.block_len()) {
            return None;
        }
        Some(cols / self.block_len() * self.block_bytes())
    }

    /// The format activations are quantized to before a product with this weight type.
    pub fn act_format(self) -> ActFormat {
        match self {
            GgmlType::F32 => ActFormat::F32,
            GgmlType::F16 => ActFormat::F16,
            GgmlType::BF16 => ActFormat::BF16,
            GgmlType::Q4_0 | GgmlType::Q8_0 => ActFormat::Q8_0,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => ActFormat::Q8K,
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
            GgmlType::BF16 => "BF16",
        })
    }
}

/// Where a matrix's bytes live.
#[derive(Clone)]
pub enum Storage {
    /// A range of a memory-mapped file.
    Mapped {
        /// The map (shared by every tensor of the file).
        map: Arc<memmap2::Mmap>,
        /// Byte offset of the first row.
        offset: usize,
    },
    /// Bytes owned by the matrix (tests, quantized in memory).
    Owned(Arc<Vec<u8>>),
}

/// A `[rows, cols]` weight matrix in a ggml type.
#[derive(Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    storage: Storage,
    /// Rows are stored in the 16-row groups of `packed.rs`, not one after another.
    packed: bool,
}

impl fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layout = if self.packed {
            ", packed in 16-row groups"
        } else {
            ""
        };
        write!(
            f,
            "QMatrix({} [{}, {}]{layout})",
            self.ty, self.rows, self.cols
        )
    }
}

/// Why a matrix could not be built over some bytes (the caller adds the file and tensor name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// `cols` is not a multiple of the type's block length.
    PartialBlock {
        /// The block length.
        block: usize,
    },
    /// There is no quantizer for the type here (the K-quants come from llama.cpp's tools).
    NoQuantizer,
    /// The storage holds fewer bytes than `rows × row bytes`.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::PartialBlock { block } => {
                write!(
                    f,
                    "row length is not a multiple of the block length {block}"
                )
            }
            LayoutError::NoQuantizer => f.write_str("no quantizer for this type"),
            LayoutError::Truncated { needed, available } => {
                write!(f, "needs {needed} bytes but only {available} remain")
            }
        }
    }
}

impl QMatrix {
    /// A matrix over `storage`, checking that the bytes cover `rows` rows of `cols`.
    pub fn new(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        storage: Storage,
    ) -> Result<Self, LayoutError> {
        let row_bytes = ty.row_bytes(cols).ok_or(LayoutError::PartialBlock {
            block: ty.block_len(),
        })?;
        let available = match &storage {
            Storage::Mapped { map, offset } => map.len().saturating_sub(*offset),
            Storage::Owned(v) => v.len(),
        };
        let needed = rows.checked_mul(row_bytes).ok_or(LayoutError::Truncated {
            needed: usize::MAX,
            available,
        })?;
        if needed > available {
            return Err(LayoutError::Truncated { needed, available });
        }
        Ok(QMatrix {
            ty,
            rows,
            cols,
            row_bytes,
            storage,
            packed: false,
        })
    }

    /// This matrix in the layout the fastest kernels on this CPU read: Q4_0 and Q8_0 with a
    /// multiple of 16 rows become 16-row groups (an owned copy) when the CPU has AVX-512 VNNI
    /// or AVX2; anything else is returned as it is. The source pages of a mapped matrix are
    /// released (`MADV_DONTNEED`) once copied, so the file is not held in memory twice.
    pub fn into_fast_layout(self) -> QMatrix {
        #[cfg(target_arch = "x86_64")]
        if !self.packed && packed::kernels_available() && packed::packable(self.ty, self.rows) {
            let bytes = packed::pack(self.ty, self.bytes(), self.rows, self.row_bytes);
            if let Storage::Mapped { map, offset } = &self.storage {
                // SAFETY: the map is a read-only file mapping; DONTNEED only drops clean pages,
                // which the kernel re-reads from the file if anything touches them again.
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        *offset,
                        self.byte_len(),
                    )
                };
            }
            return QMatrix {
                storage: Storage::Owned(Arc::new(bytes)),
                packed: true,
                ..self
            };
        }
        self
    }

    /// Quantizes an f32 `[rows, cols]` matrix (row-major) into `ty`, in memory.
    pub fn quantize(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: &[f32],
    ) -> Result<Self, LayoutError> {
        let row_bytes = ty.row_bytes(cols).ok_or(LayoutError::PartialBlock {
            block: ty.block_len(),
        })?;
        let mut bytes = vec![0u8; rows * row_bytes];
        for (src, dst) in data
            .chunks_exact(cols)
            .zip(bytes.chunks_exact_mut(row_bytes))
        {
            if !quantize_row(ty, src, dst) {
                return Err(LayoutError::NoQuantizer);
            }
        }
        QMatrix::new(ty, rows, cols, Storage::Owned(Arc::new(bytes)))
    }

    /// The storage type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Output features (rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (columns).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of the whole matrix.
    pub fn byte_len(&self) -> usize {
        self.rows * self.row_bytes
    }

    fn bytes(&self) -> &[u8] {
        let len = self.rows * self.row_bytes;
        match &self.storage {
            Storage::Mapped { map, offset } => &map[*offset..*offset + len],
            Storage::Owned(v) => &v[..len],
        }
    }

    /// Row `r`'s bytes (row-major layout only).
    fn row(&self, r: usize) -> &[u8] {
        debug_assert!(!self.packed);
        &self.bytes()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Rows `start..start + n` as a matrix sharing these bytes (splitting a fused QKV weight).
    pub fn slice_rows(&self, start: usize, n: usize) -> Option<QMatrix> {
        if start.checked_add(n)? > self.rows {
            return None;
        }
        // Packed groups are 16 rows × row_bytes too, so whole groups slice the same way.
        if self.packed && !(start.is_multiple_of(packed::GROUP) && n.is_multiple_of(packed::GROUP))
        {
            return None;
        }
        let storage = match &self.storage {
            Storage::Mapped { map, offset } => Storage::Mapped {
                map: map.clone(),
                offset: offset + start * self.row_bytes,
            },
            Storage::Owned(v) => Storage::Owned(Arc::new(
                v[start * self.row_bytes..(start + n) * self.row_bytes].to_vec(),
            )),
        };
        Some(QMatrix {
            ty: self.ty,
            rows: n,
            cols: self.cols,
            row_bytes: self.row_bytes,
            storage,
            packed: self.packed,
        })
    }

    /// Row `r` as f32 (embedding lookups).
    pub fn dequantize_row_into(&self, r: usize, out: &mut [f32]) {
        if self.packed {
            let mut row = vec![0u8; self.row_bytes];
            packed::unpack_row(self.ty, self.bytes(), r, self.row_bytes, &mut row);
            dequantize_row(self.ty, &row, out);
        } else {
            dequantize_row(self.ty, self.row(r), out);
        }
    }

    /// The whole matrix as f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, dst) in out.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row_into(r, dst);
        }
        out
    }

    /// `out[t, r] = Σ_c x[t, c] · W[r, c]` for `x` of `t` rows of `cols` and `out` of `t` rows
    /// of `rows`.
    pub fn matmul(&self, x: &[f32], t: usize, out: &mut [f32]) {
        assert_eq!(x.len(), t * self.cols, "matmul input length");
        assert_eq!(out.len(), t * self.rows, "matmul output length");
        let acts = QuantizedActs::quantize(self.ty.act_format(), x, t, self.cols);
        self.matmul_quantized(&acts, out);
    }

    /// As [`QMatrix::matmul`] over activations already quantized (shared by several matrices
    /// that read the same input, such as Q, K and V).
    pub fn matmul_quantized(&self, acts: &QuantizedActs, out: &mut [f32]) {
        assert_eq!(out.len(), acts.tokens() * self.rows, "matmul output length");
        // SAFETY: `out` holds the `t × rows` outputs.
        unsafe { self.matmul_into(acts, SharedOut(out.as_mut_ptr())) }
    }

    /// The `t × rows` outputs of [`QMatrix::matmul_quantized`] in a new vector, which is not
    /// zeroed first: every kernel writes each output exactly once.
    pub fn product(&self, acts: &QuantizedActs) -> Vec<f32> {
        let n = acts.tokens() * self.rows;
        let mut out = Vec::with_capacity(n);
        // SAFETY: the vector has room for the `n` outputs, and `matmul_into` writes every one
        // of them (each path covers all rows of all tokens: row tiles to `rows`, packed groups
        // to `rows`, a multiple of the group size, F16 quads and then the rows past them)
        // before the length is set.
        unsafe {
            self.matmul_into(acts, SharedOut(out.as_mut_ptr()));
            out.set_len(n);
        }
        out
    }

    /// Writes every output `out[t·rows + r]` once.
    ///
    /// # Safety
    /// `out` points to room for `t × rows` values that nothing else reads or writes meanwhile.
    unsafe fn matmul_into(&self, acts: &QuantizedActs, out_ptr: SharedOut) {
        let t = acts.tokens();
        assert_eq!(acts.format(), self.ty.act_format(), "activation format");
        assert_eq!(acts.cols(), self.cols, "activation width");
        if self.packed {
            return self.matmul_packed(acts, out_ptr);
        }
        #[cfg(target_arch = "x86_64")]
        if self.ty == GgmlType::F16 && self.cols.is_multiple_of(16) && x86_packed::available() {
            return self.matmul_f16_tiles(acts, out_ptr);
        }
        #[cfg(target_arch = "x86_64")]
        if x86_rows::available(self.ty) {
            return self.matmul_rows_avx2(acts, out_ptr);
        }
        let kernel = dot::kernel(self.ty);
        let rows = self.rows;
        // Tiles of rows small enough that a tile's weights stay in L1/L2 while every token
        // passes over them, and numerous enough to balance the threads.
        let tile = tile_rows(rows, t);
        let n_tiles = rows.div_ceil(tile);
        let body = |i: usize| {
            let r0 = i * tile;
            let r1 = (r0 + tile).min(rows);
            for tok in 0..t {
                let a = acts.token(tok);
                for r in r0..r1 {
                    let v = kernel(self.row(r), a);
                    // SAFETY: tiles are disjoint row ranges, so each (tok, r) is written by one
                    // task only, and `out` outlives the parallel loop.
                    unsafe { out_ptr.write(tok * rows + r, v) };
                }
            }
        };
        if n_tiles == 1 || rayon::current_num_threads() == 1 {
            (0..n_tiles).for_each(body);
        } else {
            (0..n_tiles).into_par_iter().for_each(body);
        }
    }
}

impl QMatrix {
    #[cfg(not(target_arch = "x86_64"))]
    fn matmul_packed(&self, _acts: &QuantizedActs, _out: SharedOut) {
        unreachable!("matrices are packed only on x86_64")
    }

    #[cfg(target_arch = "x86_64")]
    fn matmul_packed(&self, acts: &QuantizedActs, out_ptr: SharedOut) {
        let t = acts.tokens();
        let rows = self.rows;
        let nblocks = self.cols / self.ty.block_len();
        let gbytes = nblocks * packed::group_block_bytes(self.ty);
        let tokens = acts.q8_0_rows();
        assert!(
            rows.is_multiple_of(packed::GROUP),
            "packed rows come in whole groups"
        );
        let groups = rows / packed::GROUP;
        let per_task = if t <= 4 {
            groups
                .div_ceil(rayon::current_num_threads().max(1) * 4)
                .max(1)
        } else {
            1
        };
        // Passes of 32+ tokens take the tile kernels where the CPU has them (same bits).
        let tiles = (t >= x86_amx::MIN_TOKENS && x86_amx::available()).then(|| acts.tiles());
        let vnni = x86_packed::available();
        let bytes = self.bytes();
        let body = |task: usize| {
            let g0 = task * per_task;
            for g in g0..(g0 + per_task).min(groups) {
                let gb = &bytes[g * gbytes..(g + 1) * gbytes];
                // SAFETY: `into_fast_layout` packs only when `packed::kernels_available()`
                // (the VNNI or the AVX2 kernels), and `tiles` exist only when the tile kernels
                // are available; the group holds `nblocks` blocks and every token row
                // `nblocks` activation blocks; groups are disjoint row ranges, each written by
                // one task, inside `out` (t × rows).
                unsafe {
                    let o = out_ptr.at(g * packed::GROUP);
                    match &tiles {
                        Some(tiles) => x86_amx::group_dot(self.ty, gb, tiles, o, rows),
                        None if vnni => {
                            x86_packed::group_dot(self.ty, gb, nblocks, &tokens, o, rows)
                        }
                        None => x86_packed_avx2::group_dot(self.ty, gb, nblocks, &tokens, o, rows),
                    }
                };
            }
        };
        let tasks = groups.div_ceil(per_task);
        if tasks == 1 || rayon::current_num_threads() == 1 {
            (0..tasks).for_each(body);
        } else {
            (0..tasks).into_par_iter().for_each(body);
        }
    }
}

impl QMatrix {
    /// Q4_0 and Q8_0 in the file layout on AVX2: row tiles as in `matmul_into`; within a tile,
    /// the tokens in even runs of at most four, and the rows two at a time over each run.
    #[cfg(target_arch = "x86_64")]
    fn matmul_rows_avx2(&self, acts: &QuantizedActs, out_ptr: SharedOut) {
        let (t, rows) = (acts.tokens(), self.rows);
        let tokens = acts.q8_0_rows();
        let tile = tile_rows(rows, t);
        let n_tiles = rows.div_ceil(tile);
        let bytes = self.bytes();
        let body = |i: usize| {
            let r0 = i * tile;
            let r1 = (r0 + tile).min(rows);
            let mut out = [0f32; 2 * x86_rows::MAX_TOKENS];
            for run in packed::even_runs(t, x86_rows::MAX_TOKENS) {
                let (t0, n) = (run.start, run.len());
                let toks = &tokens[run];
                let mut r = r0;
                while r < r1 {
                    let k = (r1 - r).min(2);
                    // SAFETY: `available` holds; rows r..r+k are inside the matrix and each
                    // token row holds the matrix's blocks; `out` has room for 2 × 4 values.
                    unsafe {
                        x86_rows::dot(
                            self.ty,
                            bytes[r * self.row_bytes..].as_ptr(),
                            self.row_bytes,
                            k,
                            toks,
                            &mut out,
                        )
                    };
                    for (j, row) in out.chunks_exact(k).take(n).enumerate() {
                        for (di, &v) in row.iter().enumerate() {
                            // SAFETY: tiles are disjoint row ranges, so each (token, row) is
                            // written by this task only, inside `out` (t × rows).
                            unsafe { out_ptr.write((t0 + j) * rows + r + di, v) };
                        }
                    }
                    r += k;
                }
            }
        };
        if n_tiles == 1 || rayon::current_num_threads() == 1 {
            (0..n_tiles).for_each(body);
        } else {
            (0..n_tiles).into_par_iter().for_each(body);
        }
    }

    /// F16: 4-row × up-to-6-token register tiles (rows past a multiple of 4 by the row kernel).
    #[cfg(target_arch = "x86_64")]
    fn matmul_f16_tiles(&self, acts: &QuantizedActs, out_ptr: SharedOut) {
        let (t, rows, cols) = (acts.tokens(), self.rows, self.cols);
        // The activations as rounded f16, widened back to f32 once.
        let x: Vec<f32> = (0..t)
            .flat_map(|i| match acts.token(i) {
                act::ActRow::F16(v) => v.iter().map(|h| h.to_f32()),
                _ => unreachable!("F16 weights take f16 activations"),
            })
            .collect();
        let kernel = dot::kernel(self.ty);
        let bytes = self.bytes();
        let quads = rows / 4;
        // A task owns 8 quads (32 rows): their weights stay in L2 while each 6-token chunk of
        // activations, read once from memory per task, passes over all eight.
        const QUADS_PER_TASK: usize = 8;
        let body = |task: usize| {
            let q0 = task * QUADS_PER_TASK;
            let q1 = (q0 + QUADS_PER_TASK).min(quads);
            let mut t0 = 0;
            while t0 < t {
                let n = (t - t0).min(6);
                let xs = &x[t0 * cols..(t0 + n) * cols];
                for q in q0..q1 {
                    let w = &bytes[q * 4 * self.row_bytes..(q + 1) * 4 * self.row_bytes];
                    // SAFETY: `available()` holds; `w` is 4 rows, `xs` n rows of `cols`, and
                    // rows 4q..4q+4 of tokens t0..t0+n are this task's alone.
                    unsafe {
                        let o = out_ptr.at(t0 * rows + 4 * q);
                        match n {
                            1 => x86_packed::f16_rows4::<1>(w, cols, xs, o, rows),
                            2 => x86_packed::f16_rows4::<2>(w, cols, xs, o, rows),
                            3 => x86_packed::f16_rows4::<3>(w, cols, xs, o, rows),
                            4 => x86_packed::f16_rows4::<4>(w, cols, xs, o, rows),
                            5 => x86_packed::f16_rows4::<5>(w, cols, xs, o, rows),
                            _ => x86_packed::f16_rows4::<6>(w, cols, xs, o, rows),
                        }
                    }
                }
                t0 += n;
            }
        };
        (0..quads.div_ceil(QUADS_PER_TASK))
            .into_par_iter()
            .for_each(body);
        for r in quads * 4..rows {
            for tok in 0..t {
                let v = kernel(self.row(r), acts.token(tok));
                // SAFETY: in bounds; the parallel loop above has finished.
                unsafe { out_ptr.write(tok * rows + r, v) };
            }
        }
    }
}

fn tile_rows(rows: usize, tokens: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    // Decode: few, large tiles (one per thread and a little slack). Prefill: 16-row tiles.
    if tokens <= 4 {
        rows.div_ceil(threads * 4).max(1)
    } else {
        16.min(rows.max(1))
    }
}

#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only used for disjoint writes inside `matmul_quantized`.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}
impl SharedOut {
    /// The pointer `i` elements in.
    ///
    /// # Safety
    /// `i` must be within the buffer.
    #[cfg(target_arch = "x86_64")]
    unsafe fn at(self, i: usize) -> *mut f32 {
        self.0.add(i)
    }

    /// # Safety
    /// `i` must be in bounds and written by one thread only.
    unsafe fn write(self, i: usize, v: f32) {
        *self.0.add(i) = v;
    }
}
