#!/usr/bin/env bash
# Coverage-guided fuzzing of the GGUF reader and model loader for a bounded time.
#
#   bash scripts/fuzz-gguf.sh [SECONDS]        (default 300)
#
# Installs cargo-fuzz if missing, seeds the corpus with the committed GGUF fixtures and runs
# libFuzzer on fuzz/fuzz_targets/gguf.rs (lfm_engine::gguf::exercise). Crashes are written to
# fuzz/artifacts/gguf/; reproduce one with `cargo fuzz run gguf fuzz/artifacts/gguf/<file>`.
# The stable toolchain is enough: no sanitizer (Rust code is memory-safe outside its few
# `unsafe` kernels, which the tests cover), RUSTC_BOOTSTRAP for the coverage flags cargo-fuzz uses.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
secs="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus="$root/target/fuzz-corpus/gguf"
mkdir -p "$corpus"
cp "$root"/engine/tests/fixtures/gguf/*.gguf "$corpus/"
cd "$root/fuzz"
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none gguf "$corpus" -- \
    -max_total_time="$secs" -max_len=1200000 -rss_limit_mb=4096 -timeout=20 -print_final_stats=1
