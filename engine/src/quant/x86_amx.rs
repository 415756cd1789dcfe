//! AMX-INT8 kernels over the 16-row groups of `packed.rs`, for passes of several tokens.
//!
//! A group-block (16 rows × 32 positions) is, quad by quad, the layout of the right-hand tile
//! of `tdpbssd`: 8 rows of 64 bytes, tile row `c` holding positions 4c..4c+4 of the 16 weight
//! rows. Each group's weights are copied once per matmul into that layout as signed bytes
//! ([`signed_weights`]), and the activations once into runs of 16 tokens ([`TileActs`]), so
//! that every tile is 512 contiguous bytes. One `tdpbssd` gives a block's 16 × 16 integer
//! dots, which are then converted once and scaled by the row's and the token's block scales,
//! as the VNNI kernel finishes its own. Integer sums are exact, so both kernels give the same
//! bits and a sequence's logits do not depend on which one a pass took.
//!
//! Linux grants a process the tile registers on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`);
//! the kernels are used only where the CPU has AMX-INT8, the OS enables the tile state and the
//! request succeeds. `LFM_NO_AMX` turns them off.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::act::BlockQ8_0;
use super::packed::{group_block_bytes, per_count, MAX_TOKENS};
use super::GgmlType;

/// Tokens a pass needs before the tile kernel pays over the VNNI one.
pub(super) const MIN_TOKENS: usize = 32;

/// How many blocks the tile products run ahead of the finishing of their dots: far enough that
/// a block's dots are in memory (its tile store retired) before they are read back.
const AHEAD: usize = 2;

/// The buffers of dots in flight.
const RING: usize = AHEAD + 1;

/// Whether this CPU and OS run the tile kernels (see the module note).
pub(super) fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::env::var_os("LFM_NO_AMX").is_none()
            && super::x86_packed::available()
            && cpu_has_amx_int8()
            && os_enables_tiles()
            && request_tiles()
    })
}

/// CPUID leaf 7: EDX bit 24 is AMX-TILE, bit 25 AMX-INT8.
fn cpu_has_amx_int8() -> bool {
    let max = __cpuid(0).eax;
    if max < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    edx & (1 << 24) != 0 && edx & (1 << 25) != 0
}

/// XCR0 bits 17 and 18 (tile config and tile data), readable once the OS uses XSAVE (CPUID
/// leaf 1, ECX bit 27).
fn os_enables_tiles() -> bool {
    let osxsave = __cpuid(1).ecx & (1 << 27) != 0;
    if !osxsave {
        return false;
    }
    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        // SAFETY: OSXSAVE is set, so XGETBV is enabled.
        unsafe { _xgetbv(0) }
    }
    // SAFETY: XSAVE is supported (OSXSAVE implies it).
    let x = unsafe { xcr0() };
    x & (3 << 17) == 3 << 17
}

/// Asks Linux for the tile data state (granted per process, for every thread).
#[cfg(target_os = "linux")]
fn request_tiles() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tiles() -> bool {
    false
}

/// The activations of one matmul in tile order: for each run of 16 tokens and each block, the
/// 16 tokens' values (one 32-byte row each, zero past the last token) and scales.
pub(super) struct TileActs {
    tokens: usize,
    nblocks: usize,
    blocks: Vec<TileBlock>,
}

impl std::fmt::Debug for TileActs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileActs")
            .field("tokens", &self.tokens)
            .field("nblocks", &self.nblocks)
            .finish_non_exhaustive()
    }
}

/// One block of a run of 16 tokens (row `t` is token `t` of the run).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct TileBlock {
    qs: [[i8; 32]; MAX_TOKENS],
    d: [f32; MAX_TOKENS],
}

impl TileActs {
    /// `acts`: `tokens` rows of `nblocks` Q8_0 blocks, one after another. Runs are laid out
    /// in parallel when there are several.
    pub(super) fn new(acts: &[BlockQ8_0], tokens: usize, nblocks: usize) -> TileActs {
        assert_eq!(acts.len(), tokens * nblocks, "activation blocks");
        let empty = TileBlock {
            qs: [[0; 32]; MAX_TOKENS],
            d: [0.0; MAX_TOKENS],
        };
        let runs = tokens.div_ceil(MAX_TOKENS);
        let mut blocks = vec![empty; runs * nblocks];
        let lay = |(run, out): (usize, &mut [TileBlock])| {
            let first = run * MAX_TOKENS;
            let rows = acts[first * nblocks..].chunks_exact(nblocks);
            for (t, row) in rows.take(MAX_TOKENS).enumerate() {
                for (b, y) in out.iter_mut().zip(row) {
                    b.qs[t] = y.qs;
                    b.d[t] = y.d;
                }
            }
        };
        if runs > 1 {
            blocks
                .par_chunks_mut(nblocks.max(1))
                .enumerate()
                .for_each(lay);
        } else {
            blocks.chunks_mut(nblocks.max(1)).enumerate().for_each(lay);
        }
        TileActs {
            tokens,
            nblocks,
            blocks,
        }
    }
}

/// The tile configuration for runs of `tokens` tokens: tiles 0..3 and 3..6 are two sets
/// (activations `tokens` × 32 bytes, weights 8 × 64 bytes, dots `tokens` × 16 i32), used by
/// alternate blocks so that one block's products need not wait for the last one's store.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new(tokens: usize) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        for set in [0, 3] {
            for (tile, rows, bytes) in [
                (set, tokens, 32u16),
                (set + 1, 8, 64),
                (set + 2, tokens, 64),
            ] {
                c[16 + 2 * tile..18 + 2 * tile].copy_from_slice(&bytes.to_le_bytes());
                c[48 + tile] = rows as u8;
            }
        }
        TileConfig(c)
    }
}

#[repr(C, align(64))]
struct Aligned<T>(T);

/// Writes the 16 outputs of one group for every token of `acts`: token `t`'s go to
/// `out + t·stride .. + 16`.
///
/// # Safety
/// [`available`] must be true; `group` holds `acts.nblocks` group-blocks of `ty` (Q4_0 or
/// Q8_0), and `out + t·stride + 16` is writable for every token, by this caller only.
pub(super) unsafe fn group_dot(
    ty: GgmlType,
    group: &[u8],
    acts: &TileActs,
    out: *mut f32,
    stride: usize,
) {
    let nblocks = acts.nblocks;
    debug_assert!(group.len() >= nblocks * group_block_bytes(ty));
    SPLIT.with_borrow_mut(|split| {
        split.resize(512 * nblocks, 0);
        // SAFETY: `available` implies AVX-512; the group holds `nblocks` blocks of `ty` and
        // `split` 512 bytes for each.
        unsafe {
            match ty {
                GgmlType::Q8_0 => signed_weights::<true>(group, nblocks, split),
                _ => signed_weights::<false>(group, nblocks, split),
            }
        };
        DOTS.with_borrow_mut(|dots| {
            // SAFETY: forwarded from the caller; `split` holds the group's weights.
            unsafe { runs(ty, group, split, acts, out, stride, dots) }
        })
    })
}

/// The dots of the blocks in flight: [`RING`] buffers of up to 16 tokens × 16 rows.
type Dots = Aligned<[[i32; 16 * MAX_TOKENS]; RING]>;

thread_local! {
    /// The current group's weights as signed bytes (see [`signed_weights`]).
    static SPLIT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The tile kernel's [`Dots`], kept by each thread (every block's are stored by its tile
    /// product before they are read, so they need no zeroing: zeroed for each run of each
    /// group, they were a memset of 3 KiB at every call).
    static DOTS: std::cell::RefCell<Dots> =
        const { std::cell::RefCell::new(Aligned([[0; 16 * MAX_TOKENS]; RING])) };
}

/// [`group_dot`] once the weights are in tile layout.
///
/// # Safety
/// As for [`group_dot`], and `split` holds the group's weights in tile layout.
unsafe fn runs(
    ty: GgmlType,
    group: &[u8],
    split: &[u8],
    acts: &TileActs,
    out: *mut f32,
    stride: usize,
    dots: &mut Dots,
) {
    let nblocks = acts.nblocks;
    let mut configured = 0;
    for (run, blocks) in acts.blocks.chunks_exact(nblocks.max(1)).enumerate() {
        let n = (acts.tokens - run * MAX_TOKENS).min(MAX_TOKENS);
        if n != configured {
            let cfg = TileConfig::new(n);
            // SAFETY: tiles are granted (`available`), and the configuration is valid for
            // palette 1 (at most 16 rows of at most 64 bytes).
            unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
            configured = n;
        }
        // SAFETY: caller's contract.
        let o = unsafe { out.add(run * MAX_TOKENS * stride) };
        // SAFETY: forwarded from the caller; the tiles are configured for n tokens (a run's
        // tokens are the rows of the left-hand and result tiles).
        unsafe {
            per_count!(
                ty == GgmlType::Q8_0,
                n,
                tile_dot(group, split, blocks, o, stride, dots)
            )
        }
    }
    if configured != 0 {
        // SAFETY: tiles were configured above; this returns them to the init state.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// One block's dots into `c` (`NT` rows of 16 i32) on tile set `$a, $b, $c`.
macro_rules! block_tile {
    ($a:literal, $b:literal, $c:literal, $x:expr, $w:expr, $out:expr) => {
        asm!(
            concat!("tileloadd ", $a, ", [{x} + {s32}*1]"),
            concat!("tileloadd ", $b, ", [{w} + {s64}*1]"),
            concat!("tilezero ", $c),
            concat!("tdpbssd ", $c, ", ", $a, ", ", $b),
            concat!("tilestored [{out} + {s64}*1], ", $c),
            x = in(reg) $x,
            w = in(reg) $w,
            out = in(reg) $out,
            s32 = in(reg) 32usize,
            s64 = in(reg) 64usize,
            options(nostack),
        )
    };
}

/// One group × one run of `NT` tokens (`blocks`, one per block of the row) on configured
/// tiles, the weights in `split` (512 bytes a block) and their scales in `group`, Q4_0
/// (`Q8 = false`) or Q8_0 (`Q8 = true`). The tile products run [`AHEAD`] blocks ahead of the
/// finishing of their dots.
#[target_feature(enable = "avx512f,avx512bw,f16c,fma")]
unsafe fn tile_dot<const Q8: bool, const NT: usize>(
    group: &[u8],
    split: &[u8],
    blocks: &[TileBlock],
    out: *mut f32,
    stride: usize,
    dots: &mut Dots,
) {
    let nblocks = blocks.len();
    let gbb = group_block_bytes(if Q8 { GgmlType::Q8_0 } else { GgmlType::Q4_0 });
    let mut acc = [_mm512_setzero_ps(); NT];
    // SAFETY: block k < nblocks of the group spans gbb bytes inside `group` (and 512 inside
    // `split` for Q4_0); the tiles are configured for NT rows.
    let products = |k: usize, c: *mut i32| unsafe {
        let w = split.as_ptr().add(512 * k);
        let x = blocks.get_unchecked(k).qs.as_ptr();
        // The activations stream from L2 (a run's blocks outgrow L1 with the weights): fetch
        // the block after next early. A prefetch past the end is harmless: it never faults.
        let next = (x as *const u8).wrapping_add(2 * std::mem::size_of::<TileBlock>());
        for line in 0..std::mem::size_of::<TileBlock>() / 64 {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(64 * line) as *const i8);
        }
        if k & 1 == 0 {
            block_tile!("tmm0", "tmm1", "tmm2", x, w, c);
        } else {
            block_tile!("tmm3", "tmm4", "tmm5", x, w, c);
        }
    };
    for k in 0..AHEAD.min(nblocks) {
        products(k, dots.0[k % RING].as_mut_ptr());
    }
    for k in 0..nblocks {
        if k + AHEAD < nblocks {
            products(k + AHEAD, dots.0[(k + AHEAD) % RING].as_mut_ptr());
        }
        // SAFETY: as above; `dots[k % RING]` holds block k's NT × 16 dots.
        unsafe {
            let c = dots.0[k % RING].as_ptr();
            let y = blocks.get_unchecked(k);
            let p = group.as_ptr().add(k * gbb);
            let scales = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
            for t in 0..NT {
                let d = _mm512_load_si512(c.add(16 * t) as *const _);
                let a = acc.get_unchecked_mut(t);
                *a = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(d),
                    _mm512_mul_ps(scales, _mm512_set1_ps(y.d[t])),
                    *a,
                );
            }
        }
    }
    for (t, a) in acc.iter().enumerate() {
        // SAFETY: token t's 16 outputs are writable (`group_dot`'s contract).
        unsafe { _mm512_storeu_ps(out.add(t * stride), *a) };
    }
}

/// A group's weights as signed bytes in the right-hand tile's layout, 8 rows of 64 bytes a
/// block: Q8_0 as they were quantized (the packed layout stores them + 128), Q4_0 as q - 8
/// with low nibbles in rows 0..4 (positions 0..16) and high ones in rows 4..8.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn signed_weights<const Q8: bool>(group: &[u8], nblocks: usize, split: &mut [u8]) {
    let gbb = group_block_bytes(if Q8 { GgmlType::Q8_0 } else { GgmlType::Q4_0 });
    let m4 = _mm512_set1_epi8(0x0F);
    let eight = _mm512_set1_epi8(8);
    let bias = _mm512_set1_epi8(0x80u8 as i8);
    for k in 0..nblocks {
        // SAFETY: block k spans gbb bytes of `group` and 512 of `split` (caller's contract).
        unsafe {
            let p = group.as_ptr().add(k * gbb + 32);
            let s = split.as_mut_ptr().add(512 * k);
            let store = |row: usize, v: __m512i| _mm512_storeu_si512(s.add(64 * row) as *mut _, v);
            for c in 0..if Q8 { 8 } else { 4 } {
                let raw = _mm512_loadu_si512(p.add(64 * c) as *const _);
                if Q8 {
                    store(c, _mm512_xor_si512(raw, bias));
                } else {
                    let lo = _mm512_and_si512(raw, m4);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), m4);
                    store(c, _mm512_sub_epi8(lo, eight));
                    store(4 + c, _mm512_sub_epi8(hi, eight));
                }
            }
        }
    }
}
