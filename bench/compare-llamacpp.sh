#!/usr/bin/env bash
# Side-by-side speed of lfm-agent and llama.cpp on one GGUF file, in one run.
#
#   bash bench/compare-llamacpp.sh MODEL.gguf [--threads N] [--prompt-tokens 512] [--gen-tokens 128]
#                                              [--repetitions 3] [--json]
#
# Runs llama.cpp's llama-bench (pp<prompt> and tg<gen>, built by scripts/llamacpp/build.sh from the
# PyPI sdist of llama-cpp-python) and `lfm-agent bench --model` with the same file, thread count,
# prompt and generation lengths, one after the other, and prints both and the ratio
# (ours / llama.cpp; above 1 means lfm-agent is faster, or for RSS, uses more).
# Peak RSS is the ru_maxrss of each process, measured the same way for both.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
[[ $# -ge 1 ]] || { sed -n 2,11p "$0"; exit 2; }
model="$1"; shift
threads="$(nproc)"; pp=512; tg=128; reps=3; json=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --prompt-tokens) pp="$2"; shift 2 ;;
        --gen-tokens) tg="$2"; shift 2 ;;
        --repetitions) reps="$2"; shift 2 ;;
        --json) json=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ -f "$model" ]] || { echo "no such file: $model" >&2; exit 2; }
bash "$root/scripts/llamacpp/build.sh" >/dev/null
source "$root/target/llamacpp/env.sh"
cargo build --quiet --release -p lfm-agent --manifest-path "$root/Cargo.toml"
exec "$LLAMA_PY" - "$model" "$threads" "$pp" "$tg" "$reps" "$json" "$root/target/release/lfm-agent" "$LLAMA_BIN" <<'PY'
import json, os, resource, subprocess, sys, time
model, threads, pp, tg, reps, as_json, ours_bin, llama_bin = sys.argv[1:]

# llama.cpp first, then ours: each process's peak is read from its own wait status.
def maxrss_of(cmd):
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        out = os.open(f"/tmp/.cmp-{os.getppid()}.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1); os.dup2(fd, 2)
        os.execv(cmd[0], cmd)
    _, status, ru = os.wait4(pid, 0)
    text = open(f"/tmp/.cmp-{os.getpid()}.out").read()
    os.unlink(f"/tmp/.cmp-{os.getpid()}.out")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed with status {os.waitstatus_to_exitcode(status)}")
    return text, ru.ru_maxrss / 1024.0

t0 = time.time()
llama_out, llama_rss = maxrss_of([f"{llama_bin}/llama-bench", "-m", model, "-t", threads,
                                  "-p", pp, "-n", tg, "-r", reps, "-o", "json"])
rows = json.loads(llama_out)
l_pp = next(r for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
l_tg = next(r for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
ours_out, ours_rss = maxrss_of([ours_bin, "bench", "--model", model, "--threads", threads,
                                "--prompt-tokens", pp, "--gen-tokens", tg,
                                "--repetitions", reps, "--json"])
o = json.loads(ours_out.strip().splitlines()[-1])
llama = {
    "prefill_tok_s": l_pp["avg_ts"], "decode_tok_s": l_tg["avg_ts"],
    "ttft_ms": 1000.0 * int(pp) / l_pp["avg_ts"], "peak_rss_mib": llama_rss,
    "decode_gb_s": o["weight_bytes_per_token"] * l_tg["avg_ts"] / 1e9,
    "build": f'{l_pp.get("build_commit", "?")} ({l_pp.get("cpu_info", "").strip()})',
}
ours = {k: o[k] for k in ("prefill_tok_s", "decode_tok_s", "ttft_ms", "decode_gb_s")}
ours["peak_rss_mib"] = ours_rss
ratio = {k: ours[k] / llama[k] for k in ours}
result = {"model": model, "synthetic": o["synthetic"], "threads": int(threads),
          "prompt_tokens": int(pp), "gen_tokens": int(tg), "repetitions": int(reps),
          "lfm_agent": ours, "llama_cpp": llama, "ratio": ratio,
          "seconds": round(time.time() - t0, 1)}
if as_json == "1":
    print(json.dumps(result))
    sys.exit(0)
print(f"model    {model}{' (random weights)' if o['synthetic'] else ''}")
print(f"threads  {threads}   pp{pp} / tg{tg}, mean of {reps}; llama.cpp {llama['build']}")
print(f"{'':16}{'lfm-agent':>12}{'llama.cpp':>12}{'ratio':>8}")
for k, label, fmt in [("prefill_tok_s", "prefill tok/s", "{:.1f}"), ("decode_tok_s", "decode tok/s", "{:.2f}"),
                      ("ttft_ms", "ttft ms", "{:.0f}"), ("peak_rss_mib", "peak RSS MiB", "{:.0f}"),
                      ("decode_gb_s", "decode GB/s", "{:.1f}")]:
    print(f"{label:16}{fmt.format(ours[k]):>12}{fmt.format(llama[k]):>12}{ratio[k]:>8.2f}")
print("(ratio: lfm-agent / llama.cpp; for ttft and RSS lower is better)")
PY
