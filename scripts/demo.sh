#!/usr/bin/env bash
# The main job on bundled data, end to end without a download: build lfm-agent, write a tiny
# random-weight LFM2 model (safetensors and GGUF), chat-generate from it with speed stats, print
# the logits of a committed transformers-checked fixture (output text is meaningless: random
# weights), then index the bundled docs and search them (no model needed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lfm-agent
bin=target/release/lfm-agent
model=target/demo/tiny
[ -f "$model/model.safetensors" ] || "$bin" synth --preset tiny --out "$model"
echo "== generate (tiny synthetic model)"
"$bin" generate --model "$model" --prompt "Disk full on db-1, what should I check?" --max-tokens 32 --seed 1 --stats
echo "== generate --json"
"$bin" generate --model "$model" --prompt "Summarise ticket 42" --max-tokens 16 --seed 2 --json
echo "== generate under a JSON Schema (examples/triage.schema.json): valid by construction"
"$bin" generate --model "$model" --prompt "Checkout returns 502 for EU customers" \
    --json-schema examples/triage.schema.json --max-tokens 400 --seed 2 --json
echo "== the same from a Q4_0 GGUF (llama.cpp's format; tokenizer and template read from the file)"
gguf=target/demo/tiny-q4_0.gguf
[ -f "$gguf" ] || "$bin" synth --preset tiny --format gguf --quant q4_0 --out "$gguf"
"$bin" generate --model "$gguf" --prompt "Disk full on db-1, what should I check?" --max-tokens 16 --seed 1 --stats
echo "== logits on a parity fixture (compare with engine/tests/fixtures/parity/old_style_tied_f32/reference.safetensors)"
"$bin" logits --model engine/tests/fixtures/parity/old_style_tied_f32 --tokens 1,5,9,0,17
echo "== retrieval: index the bundled docs (incremental), search, and pack cited context for the model"
"$bin" index examples/docs --index target/demo/index
"$bin" search "the VPN handshake never completes at a hotel" --index target/demo/index --k 3
"$bin" search "disk full on a server" --index target/demo/index --type md --pack 300
