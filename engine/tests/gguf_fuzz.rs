//! A bounded mutation fuzz of GGUF loading, run with the tests: the committed fixtures with
//! bytes flipped, fields overwritten with extreme values, and cuts at random points, each
//! loaded end to end. Any panic fails the test and prints the mutation to reproduce it. (The
//! coverage-guided target is `fuzz/`, run by `scripts/fuzz-gguf.sh`.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// xorshift64*: deterministic, so a failure reproduces from its case number.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Header-heavy mutations: most of what can go wrong is in the first few KB (counts, lengths,
/// types, dims, offsets), so positions are drawn from there more often than from the data.
fn mutate(base: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let mut b = base.to_vec();
    let header = b.len().min(64 * 1024);
    let pos = |rng: &mut Rng, len: usize| {
        if rng.below(4) == 0 {
            rng.below(len)
        } else {
            rng.below(header)
        }
    };
    match rng.below(5) {
        0 => {
            let p = pos(rng, b.len());
            let bit = rng.below(8);
            b[p] ^= 1 << bit;
            (b, format!("flip bit {bit} of byte {p}"))
        }
        1 => {
            let p = pos(rng, b.len().saturating_sub(8));
            let v = [u64::MAX, 0, 1 << 32, 1 << 62, 0x8000_0000, 255, 31][rng.below(7)];
            b[p..p + 8].copy_from_slice(&v.to_le_bytes());
            (b, format!("u64 {v:#x} at {p}"))
        }
        2 => {
            let p = pos(rng, b.len().saturating_sub(4));
            let v = [u32::MAX, 0, 13, 9, 12, 30, 2, 8][rng.below(8)];
            b[p..p + 4].copy_from_slice(&v.to_le_bytes());
            (b, format!("u32 {v} at {p}"))
        }
        3 => {
            let n = pos(rng, b.len());
            b.truncate(n);
            (b, format!("cut at {n}"))
        }
        _ => {
            let p = pos(rng, b.len());
            let n = rng.below(64).min(b.len() - p);
            for x in &mut b[p..p + n] {
                *x = rng.next() as u8;
            }
            (b, format!("{n} random bytes at {p}"))
        }
    }
}

#[test]
fn mutated_gguf_files_load_or_fail_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf");
    let cases: usize = std::env::var("LFM_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    for name in ["micro-q4_0.gguf", "micro-q4_k_m.gguf"] {
        let base = std::fs::read(dir.join(name)).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ base.len() as u64);
        for case in 0..cases {
            let (bytes, what) = mutate(&base, &mut rng);
            let r = catch_unwind(AssertUnwindSafe(|| lfm_engine::gguf::exercise(&bytes)));
            assert!(r.is_ok(), "{name} case {case} ({what}) panicked");
        }
    }
}
