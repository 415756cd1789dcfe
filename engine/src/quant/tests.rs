use std::sync::Arc;

use half::f16;

use super::act::QuantizedActs;
use super::*;

/// A deterministic stream of values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Random bytes shaped as valid blocks of `ty`: every bit pattern is a valid K-quant block
/// except the f16 scales, which are set to small finite values.
fn random_blocks(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let row_bytes = ty.row_bytes(cols).unwrap();
    let raw = values(rows * row_bytes, seed);
    let mut bytes: Vec<u8> = raw.iter().map(|v| ((v + 1.0) * 127.9) as u8).collect();
    let scale = |b: &mut [u8], at: usize, v: f32| {
        b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes())
    };
    for (i, blk) in bytes.chunks_exact_mut(ty.block_bytes()).enumerate() {
        let v = 0.001 + (i % 7) as f32 * 0.0005;
        match ty {
            GgmlType::Q4K | GgmlType::Q5K => {
                scale(blk, 0, v);
                scale(blk, 2, v * 0.5);
            }
            GgmlType::Q6K => scale(blk, 208, v),
            GgmlType::Q4_0 | GgmlType::Q8_0 => scale(blk, 0, v * 10.0),
            _ => {}
        }
    }
    if matches!(ty, GgmlType::F16 | GgmlType::BF16 | GgmlType::F32) {
        let m = QMatrix::quantize(ty, rows, cols, &values(rows * cols, seed)).unwrap();
        return m.bytes().to_vec();
    }
    bytes
}

fn owned(ty: GgmlType, rows: usize, cols: usize, bytes: Vec<u8>) -> QMatrix {
    QMatrix::new(ty, rows, cols, Storage::Owned(Arc::new(bytes))).unwrap()
}

const ALL: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

#[test]
fn a_hand_built_q4_0_block_dequantizes_to_its_definition() {
    // d = 0.5; low nibbles 0..15 are elements 0..15, high nibbles (15 - j) are 16..31.
    let mut b = vec![0u8; 18];
    b[..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
    for j in 0..16 {
        b[2 + j] = (j as u8) | ((15 - j as u8) << 4);
    }
    let mut out = [0f32; 32];
    dequantize_row(GgmlType::Q4_0, &b, &mut out);
    for j in 0..16 {
        assert_eq!(out[j], 0.5 * (j as f32 - 8.0));
        assert_eq!(out[16 + j], 0.5 * (7.0 - j as f32));
    }
}

#[test]
fn q8_0_and_q4_0_round_trip_within_their_step() {
    let x = values(4 * 64, 3);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let m = QMatrix::quantize(ty, 4, 64, &x).unwrap();
        let y = m.dequantize();
        for (blk_x, blk_y) in x.chunks(32).zip(y.chunks(32)) {
            let amax = blk_x.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Q8_0 rounds to the nearest of ±127 steps: half a step. Q4_0 maps the extreme
            // value to -8 steps, so the opposite end clips at +7: up to a whole step there.
            let bound = if ty == GgmlType::Q8_0 {
                amax / 127.0 * 0.5
            } else {
                amax / 8.0
            };
            for (a, b) in blk_x.iter().zip(blk_y) {
                assert!((a - b).abs() <= bound + 1e-3 * amax, "{ty}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn every_kernel_matches_the_product_of_dequantized_weights_and_activations() {
    let (rows, cols, t) = (8, 512, 3);
    let x = values(t * cols, 11);
    for ty in ALL {
        let m = owned(ty, rows, cols, random_blocks(ty, rows, cols, 5));
        let w = m.dequantize();
        let mut out = vec![0f32; t * rows];
        m.matmul(&x, t, &mut out);
        for tok in 0..t {
            let xr = &x[tok * cols..(tok + 1) * cols];
            for r in 0..rows {
                let exact: f32 = w[r * cols..(r + 1) * cols]
                    .iter()
                    .zip(xr)
                    .map(|(a, b)| a * b)
                    .sum();
                let norm: f32 = w[r * cols..(r + 1) * cols].iter().map(|v| v.abs()).sum();
                let got = out[tok * rows + r];
                // Activation quantization error: at most half a step of 1/127 of each block's
                // largest |x| (≤ 1) per value, so |Δ| ≤ Σ|w| / 254 (f16/bf16 activations: less).
                assert!(
                    (got - exact).abs() <= norm / 254.0 + 1e-4,
                    "{ty} row {r} token {tok}: {got} vs {exact}"
                );
            }
        }
    }
}

#[test]
fn simd_kernels_agree_with_the_scalar_reference() {
    let cols = 1024;
    let x = values(cols, 21);
    for ty in ALL {
        let bytes = random_blocks(ty, 1, cols, 9);
        let acts = QuantizedActs::quantize(ty.act_format(), &x, 1, cols);
        let fast = dot::kernel(ty)(&bytes, acts.token(0));
        let slow = dot::scalar_kernel(ty)(&bytes, acts.token(0));
        assert!(
            (fast - slow).abs() <= 1e-4 * slow.abs().max(1.0),
            "{ty}: {fast} vs {slow}"
        );
    }
}

#[test]
fn threaded_tiles_cover_every_output_once() {
    // Rows not a multiple of the tile, several tokens (prefill tiles) and one (decode tiles).
    let (rows, cols) = (37, 64);
    let m = QMatrix::quantize(GgmlType::Q8_0, rows, cols, &values(rows * cols, 2)).unwrap();
    for t in [1, 9] {
        let x = values(t * cols, 4);
        let mut out = vec![f32::NAN; t * rows];
        m.matmul(&x, t, &mut out);
        let acts = QuantizedActs::quantize(ActFormat::Q8_0, &x, t, cols);
        for tok in 0..t {
            for r in 0..rows {
                let want = dot::scalar_kernel(GgmlType::Q8_0)(m.row(r), acts.token(tok));
                assert!(
                    (out[tok * rows + r] - want).abs() < 1e-4,
                    "t={t} ({tok},{r})"
                );
            }
        }
    }
}

#[test]
fn a_short_buffer_or_partial_block_is_refused() {
    let e = QMatrix::new(GgmlType::Q4_0, 2, 64, Storage::Owned(Arc::new(vec![0; 71]))).unwrap_err();
    assert_eq!(
        e,
        LayoutError::Truncated {
            needed: 72,
            available: 71
        }
    );
    let e = QMatrix::new(
        GgmlType::Q4K,
        1,
        128,
        Storage::Owned(Arc::new(vec![0; 1000])),
    )
    .unwrap_err();
    assert_eq!(e, LayoutError::PartialBlock { block: 256 });
}

#[test]
fn slicing_rows_shares_the_bytes_of_those_rows() {
    let m = QMatrix::quantize(GgmlType::Q8_0, 6, 32, &values(6 * 32, 8)).unwrap();
    let s = m.slice_rows(2, 3).unwrap();
    assert_eq!(s.dequantize(), m.dequantize()[2 * 32..5 * 32].to_vec());
    assert!(m.slice_rows(4, 3).is_none());
}

#[test]
fn the_fast_layout_gives_the_same_products_and_rows() {
    // Packed on CPUs with AVX-512 VNNI or AVX2, unchanged elsewhere: same results either way. Three
    // 16-row groups; token counts cover the short passes (1 to 3 tokens: two chains, no
    // prefetch), the longer ones, passes split into even runs (9 as 5 + 4, 17 as 6 + 6 + 5, 31
    // as 8 + 8 + 8 + 7), and 40 (past `x86_amx::MIN_TOKENS`: the tile kernels where the CPU has
    // AMX).
    let (rows, cols) = (48, 256);
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
        let plain = owned(ty, rows, cols, random_blocks(ty, rows, cols, 31));
        let fast = plain.clone().into_fast_layout();
        #[cfg(target_arch = "x86_64")]
        if super::packed::kernels_available() {
            assert!(fast.packed, "{ty}: {rows} rows should be packed");
        }
        for r in [0, 7, 15, 16, 31, 47] {
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            plain.dequantize_row_into(r, &mut a);
            fast.dequantize_row_into(r, &mut b);
            assert_eq!(a, b, "{ty} row {r}");
        }
        for t in [1, 3, 4, 8, 9, 17, 31, 40] {
            let x = values(t * cols, 40 + t as u64);
            let (mut a, mut b) = (vec![0f32; t * rows], vec![0f32; t * rows]);
            plain.matmul(&x, t, &mut a);
            fast.matmul(&x, t, &mut b);
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                    "{ty} t={t} #{i}: {p} vs {q}"
                );
            }
        }
        let s = fast.slice_rows(16, 32).unwrap();
        let mut a = vec![0f32; cols];
        let mut b = vec![0f32; cols];
        s.dequantize_row_into(3, &mut a);
        plain.dequantize_row_into(19, &mut b);
        assert_eq!(a, b);
    }
}

#[test]
fn f16_prefill_tiles_match_the_row_kernel() {
    // 4-row tiles plus 2 leftover rows, token counts around the 6-token tile.
    let (rows, cols) = (10, 64);
    let m = QMatrix::quantize(GgmlType::F16, rows, cols, &values(rows * cols, 12)).unwrap();
    for t in [5, 6, 13] {
        let x = values(t * cols, 50 + t as u64);
        let mut out = vec![f32::NAN; t * rows];
        m.matmul(&x, t, &mut out);
        let acts = QuantizedActs::quantize(ActFormat::F16, &x, t, cols);
        for tok in 0..t {
            for r in 0..rows {
                let want = dot::scalar_kernel(GgmlType::F16)(m.row(r), acts.token(tok));
                let got = out[tok * rows + r];
                assert!(
                    (got - want).abs() < 1e-4,
                    "t={t} ({tok},{r}): {got} vs {want}"
                );
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_tile_kernel_gives_the_vnni_kernels_bits() {
    // Where the CPU has AMX, passes of `MIN_TOKENS` (32) or more take the tile kernel and
    // shorter ones the VNNI kernel: both must give the same bits, so that a sequence's logits
    // do not depend on what it shares a pass with. The kernel itself takes any count: these
    // cover a partial run of 16, full runs and remainders, over rows of 35 blocks.
    if !super::x86_amx::available() {
        eprintln!("no AMX-INT8 on this machine (or LFM_NO_AMX): the tile kernel is not run");
        return;
    }
    let (rows, cols) = (32, 35 * 32);
    let nblocks = cols / 32;
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
        let m = owned(ty, rows, cols, random_blocks(ty, rows, cols, 77)).into_fast_layout();
        assert!(m.packed, "{ty}: AMX implies the packed layout");
        let gbytes = nblocks * packed::group_block_bytes(ty);
        for t in [4, 5, 8, 16, 17, 35] {
            let x = values(t * cols, 90 + t as u64);
            let acts = QuantizedActs::quantize(ActFormat::Q8_0, &x, t, cols);
            let tokens = acts.q8_0_rows();
            let tiles = acts.tiles();
            let (mut tile, mut vnni) = (vec![f32::NAN; t * rows], vec![f32::NAN; t * rows]);
            for g in 0..rows / 16 {
                let gb = &m.bytes()[g * gbytes..(g + 1) * gbytes];
                // SAFETY: AMX (hence AVX-512 VNNI) is available, the group holds `nblocks`
                // blocks, every token row `nblocks`, and group g's outputs (16 per token,
                // `rows` apart) lie inside both buffers.
                unsafe {
                    let o = tile.as_mut_ptr().add(16 * g);
                    super::x86_amx::group_dot(ty, gb, tiles, o, rows);
                    let o = vnni.as_mut_ptr().add(16 * g);
                    super::x86_packed::group_dot(ty, gb, nblocks, &tokens, o, rows);
                }
            }
            assert!(
                vnni.iter().all(|v| v.is_finite()),
                "{ty} t={t}: every output written"
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&tile), bits(&vnni), "{ty} t={t}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_avx2_group_kernel_matches_the_reference_and_the_vnni_bits() {
    // The AVX2 kernel over packed groups, called directly (on a VNNI CPU `matmul` takes the
    // VNNI kernel): within f32 rounding of the scalar reference everywhere, and the VNNI
    // kernel's bits where the CPU has it. Runs of 1 to 8 tokens (9 as 5 + 4, 13 as 7 + 6),
    // rows of 35 blocks; the weights cover every byte, Q8_0's -128 included.
    if !super::x86_packed_avx2::available() {
        eprintln!("no AVX2 on this machine (or LFM_NO_SIMD): the AVX2 group kernel is not run");
        return;
    }
    let (rows, cols) = (32, 35 * 32);
    let nblocks = cols / 32;
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
        let plain = owned(ty, rows, cols, random_blocks(ty, rows, cols, 55));
        let bytes = packed::pack(ty, plain.bytes(), rows, plain.row_bytes);
        let gbytes = nblocks * packed::group_block_bytes(ty);
        for t in [1, 2, 3, 5, 8, 9, 13] {
            let x = values(t * cols, 60 + t as u64);
            let acts = QuantizedActs::quantize(ActFormat::Q8_0, &x, t, cols);
            let tokens = acts.q8_0_rows();
            let (mut avx2, mut vnni) = (vec![f32::NAN; t * rows], vec![f32::NAN; t * rows]);
            for g in 0..rows / 16 {
                let gb = &bytes[g * gbytes..(g + 1) * gbytes];
                // SAFETY: AVX2 is available, the group holds `nblocks` blocks, every token row
                // `nblocks`, and group g's outputs (16 per token, `rows` apart) lie inside the
                // buffer.
                unsafe {
                    let o = avx2.as_mut_ptr().add(16 * g);
                    super::x86_packed_avx2::group_dot(ty, gb, nblocks, &tokens, o, rows);
                }
                if super::x86_packed::available() {
                    // SAFETY: as above, with AVX-512 VNNI available.
                    unsafe {
                        let o = vnni.as_mut_ptr().add(16 * g);
                        super::x86_packed::group_dot(ty, gb, nblocks, &tokens, o, rows);
                    }
                }
            }
            for tok in 0..t {
                for r in 0..rows {
                    let got = avx2[tok * rows + r];
                    let want = dot::scalar_kernel(ty)(plain.row(r), acts.token(tok));
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{ty} t={t} ({tok},{r}): {got} vs {want}"
                    );
                }
            }
            if super::x86_packed::available() {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&avx2), bits(&vnni), "{ty} t={t}");
            }
        }
    }
}

#[test]
fn a_token_gets_the_same_bits_whatever_shares_its_product() {
    // The file layout's kernels (AVX2 rows × token runs where the CPU has it, the row kernel
    // elsewhere): each token of a pass of t equals that token alone, bit for bit, and the row
    // kernel's value for it; and the fast layout's (AVX-512 VNNI or AVX2 groups, AMX tiles past
    // 32 tokens, which give the same bits): each token of a pass of t equals that token alone.
    // 37 rows for the file layout (an odd last row, and tiles that do not divide the rows), 48
    // for the fast one; passes split into runs of 1 to 4 tokens (5 as 3 + 2, 9 as 3 + 3 + 3,
    // 13 as 4 + 3 + 3 + 3) and of up to 8.
    for (rows, fast) in [(37, false), (48, true)] {
        same_bits_batched_and_alone(rows, fast);
    }
}

fn same_bits_batched_and_alone(rows: usize, fast: bool) {
    let cols = 256;
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
        let mut m = owned(ty, rows, cols, random_blocks(ty, rows, cols, 77));
        if fast {
            m = m.into_fast_layout();
        }
        for t in [1, 2, 3, 4, 5, 8, 9, 13, 33] {
            let x = values(t * cols, 90 + t as u64);
            let mut all = vec![f32::NAN; t * rows];
            m.matmul(&x, t, &mut all);
            let acts = QuantizedActs::quantize(ty.act_format(), &x, t, cols);
            for tok in 0..t {
                let mut alone = vec![f32::NAN; rows];
                m.matmul(&x[tok * cols..(tok + 1) * cols], 1, &mut alone);
                for r in 0..rows {
                    let got = all[tok * rows + r];
                    assert_eq!(got.to_bits(), alone[r].to_bits(), "{ty} t={t} ({tok},{r})");
                    if !m.packed {
                        let row = dot::kernel(ty)(m.row(r), acts.token(tok));
                        assert_eq!(got.to_bits(), row.to_bits(), "{ty} t={t} ({tok},{r}) row");
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn token_runs_are_even_and_cover_every_token_once() {
    let runs = |len, most| {
        let r: Vec<_> = packed::even_runs(len, most).collect();
        assert_eq!(r.iter().map(|x| x.len()).sum::<usize>(), len);
        assert!(r.windows(2).all(|w| w[0].end == w[1].start));
        r.iter().map(|x| x.len()).collect::<Vec<_>>()
    };
    assert_eq!(runs(0, 8), Vec::<usize>::new());
    assert_eq!(runs(1, 8), [1]);
    assert_eq!(runs(8, 8), [8]);
    assert_eq!(runs(9, 8), [5, 4]);
    assert_eq!(runs(20, 8), [7, 7, 6]);
    assert_eq!(runs(13, 4), [4, 3, 3, 3]);
}
