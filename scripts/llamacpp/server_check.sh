#!/usr/bin/env bash
# The remote backend against llama.cpp's own server: llama-server (built from the PyPI sdist of
# llama-cpp-python by scripts/llamacpp/build.sh) runs a synthetic GGUF, and lfm-agent drives it
# with --backend: the tool-calls eval (tools passed through, calls parsed back) and triage of the
# bundled tickets (tools, then the answer under the triage schema, validated here).
#
#   bash scripts/llamacpp/server_check.sh [--model FILE.gguf] [--parallel 2]
#
# Without --model, a synthetic tiny Q8_0 GGUF is written to target/llamacpp/check/ (its
# 4,096-token training context raised to 16,384 for llama-server with --override-kv). Random
# weights: what is checked is the protocol (every request accepted, every reply read by the
# loop, no run stopped by a backend error or a full context, records that exist valid under
# the triage schema), never answer quality. Exits 1 when a check fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model="" par=2
while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) model="$2"; shift 2 ;;
        --parallel) par="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
bash "$root/scripts/llamacpp/build.sh" >/dev/null
source "$root/target/llamacpp/env.sh"
cargo build --quiet --release -p lfm-agent --manifest-path "$root/Cargo.toml"
bin="$root/target/release/lfm-agent"
work="$root/target/llamacpp/check"
rm -rf "$work"; mkdir -p "$work"
if [[ -z "$model" ]]; then
    model="$work/tiny-q8_0.gguf"
    "$bin" synth --preset tiny --format gguf --quant q8_0 --out "$model" >/dev/null
fi
source "$root/scripts/llamacpp/start_server.sh"
start_llama_server "$work/llama-server.log" -m "$model" -np "$par" -c $((16384 * par)) --jinja \
    --override-kv lfm2.context_length=int:16384
url="$llama_url"
echo "llama-server: $url ($model, $par slots)"
cd "$root"
"$bin" eval tool-calls --limit 8 --backend "$url" --parallel "$par" \
    --results "$work/evals.sqlite" --traces "$work/traces.sqlite" --work "$work/eval" | tee "$work/eval.txt"
grep -q "schema_validity (n=" "$work/eval.txt"
"$bin" triage examples/tickets.jsonl --docs examples/docs --index "$work/index" --out "$work/triaged.jsonl" \
    --backend "$url" --parallel "$par" --traces "$work/traces.sqlite" --max-steps 3 --max-turn-tokens 256 \
    | tee "$work/triage.txt"
python3 - "$work/triaged.jsonl" prompts/tasks/triage/schema.json <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
schema = json.load(open(sys.argv[2]))
props, required = schema["properties"], schema.get("required", [])
bad = []
for r in rows:
    rec = r["record"]
    missing = [k for k in required if k not in rec]
    extra = [k for k in rec if k not in props] if schema.get("additionalProperties") is False else []
    enums = [k for k, v in rec.items() if k in props and "enum" in props[k] and v not in props[k]["enum"]]
    if missing or extra or enums:
        bad.append((r["ticket"], missing, extra, enums))
print(f"{len(rows)} triaged records from llama-server, {len(bad)} outside the schema's required/enum/extra keys")
sys.exit(1 if bad else 0)
PY
# Every run got replies from the server that the loop could read: no run stopped on a backend
# error or a full context (random weights may still run out of tokens or steps, or answer
# outside the schema: that is the model, not the protocol).
"$bin" runs list --traces "$work/traces.sqlite" --limit 1000 --json > "$work/runs.json"
python3 - "$work/runs.json" <<'PY'
import collections, json, sys
runs = json.load(open(sys.argv[1]))
stops = collections.Counter(r["stop"] for r in runs)
print(f"{len(runs)} runs against llama-server, stops: {dict(stops)}")
bad = {k: v for k, v in stops.items() if k in ("backend_error", "context_full")}
if not runs or bad:
    sys.exit(f"FAILED: {bad or 'no runs'}")
PY
echo "server check: PASSED (protocol: requests accepted, replies read; outputs that exist fit the schema)"
