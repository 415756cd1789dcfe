#!/usr/bin/env bash
# Batched decode and prefill at depth, lfm-agent beside llama.cpp on one GGUF file, in one run.
#
#   bash bench/compare-batch.sh MODEL.gguf [--threads 2] [--batch 1,2,4,8,16] [--prompt-tokens 128]
#                                          [--gen-tokens 32] [--depth 0,8192,30720] [--depth-tokens 512]
#                                          [--skip-depth] [--skip-batch] [--shared-prompt] [--avx2]
#
# Batch table: llama.cpp's llama-batched-bench (-npp PROMPT -ntg GEN -npl BATCH) and
# `lfm-agent bench --batch BATCH` (each of B sequences prefilled with PROMPT tokens, then GEN
# decode steps of all B together): aggregate decode tok/s (S_TG), per-sequence tok/s, and the
# ratio ours / llama.cpp (above 1: lfm-agent is faster). --shared-prompt: ours prefills the prompt
# once and forks it into the B sequences, whose attention then reads its keys once for all; llama.cpp
# still prefills one copy per sequence (its -pps fails on LFM2 in the 0.3.36 sdist: "inconsistent
# sequence positions"), which changes its prefill, not its decode steps (S_TG).
# Depth table: llama-bench -p DEPTH_TOKENS -n 0 -d DEPTHS and `lfm-agent bench --depth DEPTHS`:
# prefill tok/s of DEPTH_TOKENS more tokens after a context of each depth.
# llama.cpp comes from scripts/llamacpp/build.sh (the PyPI sdist of llama-cpp-python).
# --avx2: both on AVX2 only, on a CPU that has more: llama.cpp built by `LLAMACPP_ISA=avx2
# scripts/llamacpp/build.sh` (no AVX-512, no AMX), ours with LFM_NO_AVX512=1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
[[ $# -ge 1 ]] || { sed -n 2,15p "$0"; exit 2; }
model="$1"; shift
threads=2 batch=1,2,4,8,16 pp=128 tg=32 depth=0,8192,30720 dtok=512 do_depth=1 do_batch=1 shared=0 isa=native
while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --prompt-tokens) pp="$2"; shift 2 ;;
        --gen-tokens) tg="$2"; shift 2 ;;
        --depth) depth="$2"; shift 2 ;;
        --depth-tokens) dtok="$2"; shift 2 ;;
        --skip-depth) do_depth=0; shift ;;
        --skip-batch) do_batch=0; shift ;;
        --shared-prompt) shared=1; shift ;;
        --avx2) isa=avx2; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ -f "$model" ]] || { echo "no such file: $model" >&2; exit 2; }
bash "$root/scripts/llamacpp/build.sh" >/dev/null
source "$root/target/llamacpp/env.sh"
if [[ "$isa" == avx2 ]]; then
    LLAMACPP_ISA=avx2 bash "$root/scripts/llamacpp/build.sh" >/dev/null
    source "$root/target/llamacpp/env-avx2.sh"
    export LFM_NO_AVX512=1
    echo "AVX2 only: llama.cpp built with -DGGML_NATIVE=OFF (no AVX-512, no AMX), ours with LFM_NO_AVX512=1"
fi
cargo build --quiet --release -p lfm-agent --manifest-path "$root/Cargo.toml"
ours="$root/target/release/lfm-agent"
exec "$LLAMA_PY" - "$model" "$threads" "$batch" "$pp" "$tg" "$depth" "$dtok" "$do_depth" "$do_batch" "$ours" "$LLAMA_BIN" "$shared" <<'PY'
import json, subprocess, sys
model, threads, batch, pp, tg, depth, dtok, do_depth, do_batch, ours, llama, shared = sys.argv[1:]
shared = shared == "1"
sizes = [int(b) for b in batch.split(",")]
depths = [int(d) for d in depth.split(",")]

def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r.stdout

if do_batch == "1":
    ctx = max(sizes) * (int(pp) + int(tg)) + 256
    out = run([f"{llama}/llama-batched-bench", "-m", model, "-t", threads, "-c", str(ctx), "-b", "2048",
               "-ub", "512", "-npp", pp, "-ntg", tg, "-npl", batch])
    lrows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0].isdigit():
            b, t_tg, s_tg = int(cells[2]), float(cells[6]), float(cells[7])
            lrows[b] = s_tg
    o = [json.loads(l) for l in run([ours, "bench", "--model", model, "--threads", threads, "--batch", batch,
                                      "--prompt-tokens", pp, "--gen-tokens", tg, "--json"]
                                     + (["--shared-prompt"] if shared else [])).splitlines() if l.startswith("{")]
    how = "(ours: prefilled once, forked)" if shared else "per sequence"
    print(f"batched decode, {model}, {threads} threads, pp{pp} {how} + tg{tg} per sequence (aggregate tok/s)")
    print(f"{'batch':>5} {'lfm-agent':>11} {'llama.cpp':>11} {'ratio':>7} {'ours vs b1':>11} {'per-seq ours':>13}")
    base = o[0]["aggregate_tok_s"]
    for r in o:
        l = lrows.get(r["batch"])
        ratio = f"{r['aggregate_tok_s'] / l:7.2f}" if l else "      -"
        print(f"{r['batch']:>5} {r['aggregate_tok_s']:>11.2f} {l if l else float('nan'):>11.2f} {ratio} "
              f"{r['aggregate_tok_s'] / base:>10.2f}x {r['per_seq_tok_s']:>13.2f}")

if do_depth == "1":
    out = run([f"{llama}/llama-bench", "-m", model, "-t", threads, "-p", dtok, "-n", "0", "-r", "1",
               "-d", depth, "-o", "json"])
    lrows = {r["n_depth"]: r["avg_ts"] for r in json.loads(out) if r["n_prompt"] > 0}
    print("llama.cpp pp%s at depths: %s" % (dtok, ", ".join(f"{d}: {v:.1f} tok/s" for d, v in sorted(lrows.items()))), flush=True)
    ctx = str(max(depths) + int(dtok) + 64)
    o = [json.loads(l) for l in run([ours, "bench", "--model", model, "--threads", threads, "--depth", depth,
                                      "--prompt-tokens", dtok, "--repetitions", "1", "--ctx", ctx, "--json"]).splitlines()
         if l.startswith("{")]
    print(f"prefill at depth, {model}, {threads} threads, pp{dtok} after each depth (tok/s)")
    print(f"{'depth':>6} {'lfm-agent':>11} {'llama.cpp':>11} {'ratio':>7}")
    for r in o:
        l = lrows.get(r["depth"])
        ratio = f"{r['prefill_tok_s'] / l:7.2f}" if l else "      -"
        print(f"{r['depth']:>6} {r['prefill_tok_s']:>11.1f} {l if l else float('nan'):>11.1f} {ratio}")
PY
