#!/usr/bin/env bash
# Regenerate the GGUF parity fixtures in engine/tests/fixtures/gguf/:
#   micro-{f16,q8_0,q4_0}.gguf   written by `lfm-agent synth --preset micro --format gguf`
#   micro-q4_k_m.gguf            llama.cpp's llama-quantize of the f16 file (Q4_K, Q5_K, Q6_K)
#   *.llamacpp.{json,f32}        llama.cpp's logits and tokenizations of each (record_parity.py)
#   tok-lfm2.gguf + .llamacpp.json the same vocabulary as pre-tokenizer "lfm2", tokenized by llama.cpp
#
#   bash scripts/llamacpp/make_fixtures.sh
#
# Needs the llama.cpp build of scripts/llamacpp/build.sh (run first if missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/engine/tests/fixtures/gguf"
bash "$here/build.sh"
source "$root/target/llamacpp/env.sh"
cargo build --release -p lfm-agent --manifest-path "$root/Cargo.toml"
bin="$root/target/release/lfm-agent"
mkdir -p "$out"
for q in f16 q8_0 q4_0; do
    "$bin" synth --preset micro --format gguf --quant "$q" --seed 7 --out "$out/micro-$q.gguf"
done
"$LLAMA_BIN/llama-quantize" "$out/micro-f16.gguf" "$out/micro-q4_k_m.gguf" Q4_K_M > "$out/.quantize.log" 2>&1 \
    || { cat "$out/.quantize.log"; exit 1; }
rm -f "$out/.quantize.log"
"$LLAMA_PY" "$here/record_parity.py" "$out"/micro-{f16,q8_0,q4_0,q4_k_m}.gguf
# The lfm2 pre-tokenizer (published LFM2.5 GGUFs) on the same vocabulary.
(cd "$here" && PYTHONPATH="$root/target/llamacpp/src/vendor/llama.cpp/gguf-py:$PYTHONPATH" \
    "$LLAMA_PY" record_tokenizer.py "$out/micro-f16.gguf" "$out")
