//! Activations quantized for a product with a weight type, as llama.cpp's `vec_dot_type`.

use half::{bf16, f16};
use rayon::prelude::*;

/// Blocks from which Q8_0 quantization is split over the rayon pool (smaller inputs, such as
/// a few decoded tokens, cost less than handing out the work).
const PAR_BLOCKS: usize = 1024;

/// The format activations take before a dot product with a weight row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActFormat {
    /// Plain f32 (F32 weights).
    F32,
    /// f16 (F16 weights).
    F16,
    /// bf16 (BF16 weights).
    BF16,
    /// Blocks of 32 int8 with an f16-rounded scale (Q4_0, Q8_0 weights).
    Q8_0,
    /// Blocks of 256 int8 with an f32 scale and sums of each 16 (K-quant weights).
    Q8K,
}

/// One Q8_0 activation block: `x ≈ d · qs`. `sum` is `Σ qs`, which lets Q4_0 kernels fold the
/// weights' offset of 8 into one multiply.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// The scale, already rounded through f16 as ggml stores it.
    pub d: f32,
    /// `Σ qs`.
    pub sum: i32,
    /// `-8 · Σ qs` and `-128 · Σ qs`: what a kernel whose weights enter as unsigned bytes
    /// (Q4_0 as q + 8, Q8_0 as w + 128) adds to the block's integer dot, kept here so that it
    /// is broadcast from memory.
    pub unbias: [i32; 2],
    /// The quantized values.
    pub qs: [i8; 32],
}

/// One Q8_K activation block.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8K {
    /// The scale.
    pub d: f32,
    /// The quantized values.
    pub qs: [i8; 256],
    /// Sums of each run of 16 values.
    pub bsums: [i16; 16],
}

/// The activations of one matmul call, `tokens` rows of `cols`, in one [`ActFormat`].
#[derive(Debug)]
pub struct QuantizedActs {
    format: ActFormat,
    tokens: usize,
    cols: usize,
    data: ActData,
    /// The Q8_0 rows in the tile kernels' order, made by the first product that wants them
    /// and shared by the others that read the same input (Q/K/V, gate/up).
    #[cfg(target_arch = "x86_64")]
    tiles: std::sync::OnceLock<super::x86_amx::TileActs>,
}

#[derive(Debug)]
enum ActData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    Q8_0(Vec<BlockQ8_0>),
    Q8K(Vec<BlockQ8K>),
}

/// One token's activations, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum ActRow<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values.
    F16(&'a [f16]),
    /// bf16 values.
    BF16(&'a [bf16]),
    /// Q8_0 blocks.
    Q8_0(&'a [BlockQ8_0]),
    /// Q8_K blocks.
    Q8K(&'a [BlockQ8K]),
}

impl QuantizedActs {
    /// Quantizes `x` (`tokens` rows of `cols`) to `format`. `cols` must be a multiple of the
    /// format's block length (the weight's, which the caller has checked).
    pub fn quantize(format: ActFormat, x: &[f32], tokens: usize, cols: usize) -> Self {
        assert_eq!(x.len(), tokens * cols, "activation length");
        let data = match format {
            ActFormat::F32 => ActData::F32(x.to_vec()),
            ActFormat::F16 => ActData::F16(x.iter().map(|&v| f16::from_f32(v)).collect()),
            ActFormat::BF16 => ActData::BF16(x.iter().map(|&v| bf16::from_f32(v)).collect()),
            ActFormat::Q8_0 if x.len() >= PAR_BLOCKS * 32 => {
                ActData::Q8_0(x.par_chunks_exact(32).map(quantize_q8_0).collect())
            }
            ActFormat::Q8_0 => ActData::Q8_0(x.chunks_exact(32).map(quantize_q8_0).collect()),
            ActFormat::Q8K => ActData::Q8K(x.chunks_exact(256).map(quantize_q8_k).collect()),
        };
        QuantizedActs {
            format,
            tokens,
            cols,
            data,
            #[cfg(target_arch = "x86_64")]
            tiles: std::sync::OnceLock::new(),
        }
    }

    /// The Q8_0 rows in tile order (built on first use). Panics for other formats.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn tiles(&self) -> &super::x86_amx::TileActs {
        self.tiles.get_or_init(|| match &self.data {
            ActData::Q8_0(v) => super::x86_amx::TileActs::new(v, self.tokens, self.cols / 32),
            _ => panic!("tile order is for Q8_0 activations"),
        })
    }

    /// Every token's row of Q8_0 blocks, for the kernels that take several tokens at once.
    /// Panics for other formats.
    pub(super) fn q8_0_rows(&self) -> Vec<&[BlockQ8_0]> {
        let ActData::Q8_0(v) = &self.data else {
            panic!("Q8_0 rows of {:?} activations", self.format);
        };
        v.chunks_exact(self.cols / 32).collect()
    }

    /// The format.
    pub fn format(&self) -> ActFormat {
        self.format
    }

    /// Number of token rows.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Width of a row, in values.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `t`.
    pub fn token(&self, t: usize) -> ActRow<'_> {
        let c = self.cols;
        match &self.data {
            ActData::F32(v) => ActRow::F32(&v[t * c..(t + 1) * c]),
            ActData::F16(v) => ActRow::F16(&v[t * c..(t + 1) * c]),
            ActData::BF16(v) => ActRow::BF16(&v[t * c..(t + 1) * c]),
            ActData::Q8_0(v) => ActRow::Q8_0(&v[t * c / 32..(t + 1) * c / 32]),
            ActData::Q8K(v) => ActRow::Q8K(&v[t * c / 256..(t + 1) * c / 256]),
        }
    }
}

/// Round to nearest, ties to even, as ggml's `nearest_int` (valid for |v| < 2^22; the values
/// here are within ±128). Inline arithmetic, not a libm call.
#[inline(always)]
fn nearest_int(v: f32) -> i32 {
    let val = v + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// ggml's Q8_0 activation quantization: `d = max|x| / 127` (stored as f16), values rounded to
/// nearest, ties to even (as the AVX path rounds).
fn quantize_q8_0(x: &[f32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; 32];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let r = nearest_int(v * id);
        *q = r.clamp(-127, 127) as i8;
        sum += *q as i32;
    }
    let d = f16::from_f32(d).to_f32();
    BlockQ8_0 {
        d,
        sum,
        unbias: [-8 * sum, -128 * sum],
        qs,
    }
}

/// ggml's `quantize_row_q8_K_ref`: the value of largest magnitude maps to -127.
fn quantize_q8_k(x: &[f32]) -> BlockQ8K {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let mut b = BlockQ8K {
        d: 0.0,
        qs: [0; 256],
        bsums: [0; 16],
    };
    if amax == 0.0 {
        return b;
    }
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (j, s) in b.bsums.iter_mut().enumerate() {
        *s = b.qs[j * 16..(j + 1) * 16].iter().map(|&q| q as i16).sum();
    }
    b.d = 1.0 / iscale;
    b
}
