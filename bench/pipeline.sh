#!/usr/bin/env bash
# Tickets per minute: the triage pipeline one ticket at a time, N at a time (batched), and N at a
# time against llama.cpp's server (llama-server -np N) as the backend, on one GGUF file.
#
#   bash bench/pipeline.sh MODEL.gguf [--tickets 200] [--parallel 8] [--threads 2] [--max-steps 2]
#                                     [--max-turn-tokens 96] [--think-budget 0] [--skip-llamacpp]
#                                     [--llamacpp-tickets N]
#
# The tickets are the first --tickets of the bundled triage eval suite (evals/suites/triage, 100
# tickets; more wrap around with new ids). Every run uses the same flags (--temperature 0,
# --think-budget, 0 unless given, the bundled docs) and writes its own output and traces under
# target/bench/pipeline/. Prints tickets per minute for each. --llamacpp-tickets N gives the
# server only the first N tickets (200 took it 67 minutes on two cores, against 8 for ours).
# On random weights the records mean nothing; the work (turns, tool calls, tokens) is what is
# measured.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
[[ $# -ge 1 ]] || { sed -n 2,15p "$0"; exit 2; }
model="$(realpath "$1")"; shift
n=200 par=8 threads=2 steps=2 turn=96 think=0 llama=1 llama_n=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tickets) n="$2"; shift 2 ;;
        --parallel) par="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --max-steps) steps="$2"; shift 2 ;;
        --max-turn-tokens) turn="$2"; shift 2 ;;
        --think-budget) think="$2"; shift 2 ;;
        --skip-llamacpp) llama=0; shift ;;
        --llamacpp-tickets) llama_n="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
cargo build --quiet --release -p lfm-agent --manifest-path "$root/Cargo.toml"
bin="$root/target/release/lfm-agent"
work="$root/target/bench/pipeline"
rm -rf "$work"; mkdir -p "$work"
python3 - "$root/evals/suites/triage/cases.jsonl" "$n" > "$work/tickets.jsonl" <<'PY'
import json, sys
cases = [json.loads(l)["input"] for l in open(sys.argv[1]) if l.strip()]
for i in range(int(sys.argv[2])):
    t = dict(cases[i % len(cases)])
    t["id"] = f"{t['id']}-{i}"
    print(json.dumps(t))
PY
common=(triage "$work/tickets.jsonl" --docs "$root/examples/docs" --index "$work/index"
        --temperature 0 --think-budget "$think" --max-steps "$steps" --max-turn-tokens "$turn" --ctx 8192)
export RAYON_NUM_THREADS="$threads"
run() { # name, tickets file, count, extra args...
    local name="$1" tickets="$2" count="$3"; shift 3
    local t0 t1
    common[1]="$tickets"
    t0=$(date +%s.%N)
    "$bin" "${common[@]}" --out "$work/$name.jsonl" --traces "$work/$name.sqlite" "$@" > "$work/$name.log" 2>&1 \
        || { tail -20 "$work/$name.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    python3 -c "import sys; n=int(sys.argv[1]); s=float(sys.argv[3])-float(sys.argv[2]); print(f'{sys.argv[4]:<24} {n:4d} tickets {s:8.1f} s {n/s*60:8.2f} tickets/min')" "$count" "$t0" "$t1" "$name" | tee -a "$work/table.txt"
    grep -E "^(triaged|parallel|KV budget)" "$work/$name.log" | sed 's/^/    /'
}
echo "model $model, $n tickets, threads $threads, max steps $steps, max turn tokens $turn, think budget $think"
run "ours-parallel-1" "$work/tickets.jsonl" "$n" --model "$model" --parallel 1
run "ours-parallel-$par" "$work/tickets.jsonl" "$n" --model "$model" --parallel "$par"
if [[ "$llama" == 1 ]]; then
    bash "$root/scripts/llamacpp/build.sh" >/dev/null
    source "$root/target/llamacpp/env.sh"
    source "$root/scripts/llamacpp/start_server.sh"
    start_llama_server "$work/llama-server.log" -m "$model" -np "$par" -c $((8192 * par)) -t "$threads" --jinja
    llama_n="${llama_n:-$n}"
    head -n "$llama_n" "$work/tickets.jsonl" > "$work/tickets-llamacpp.jsonl"
    run "llama-server-np-$par" "$work/tickets-llamacpp.jsonl" "$llama_n" --backend "$llama_url" --parallel "$par"
fi
