#!/usr/bin/env bash
# The server driven by real clients: the official `openai` Python client, then a load test.
#
#   bash scripts/serve/check.sh [--clients 32] [--seconds 60] [--model DIR|FILE.gguf] [--think-budget N]
#
# Builds the release binary, writes a synthetic tiny model unless --model is given (random
# weights: the protocol and the constraints are checked, never the answers' quality), starts
# `lfm-agent serve --tasks` on a free loopback port, runs scripts/serve/openai_check.py and
# scripts/serve/load_test.py against it, and stops it. The `openai` package goes into a
# virtualenv (.venv-serve; VENV=path to change it, or PYTHON=/path/to/python with openai
# installed). Server log: .lfm-agent/serve-check/server.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
clients=32 seconds=60 model="" think=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --clients) clients="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --model) model="$2"; shift 2 ;;
        --think-budget) think="$2"; shift 2 ;;
        *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [[ -z "${PYTHON:-}" ]]; then
    venv="${VENV:-$root/.venv-serve}"
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "openai>=1.40"
    fi
    PYTHON="$venv/bin/python"
fi
cargo build --release -q -p lfm-agent
bin="$root/target/release/lfm-agent"
work="$root/.lfm-agent/serve-check"
mkdir -p "$work"
if [[ -z "$model" ]]; then
    model="$work/tiny"
    [[ -f "$model/config.json" ]] || "$bin" synth --preset tiny --out "$model" >/dev/null
fi
# The agent-task endpoint runs triage with small limits over the bundled docs.
cat >"$work/lfm-agent.toml" <<EOF
[model]
think_budget = 16
[limits]
max_steps = 3
max_turn_tokens = 128
[index]
path = "index"
[traces]
path = "traces.sqlite"
EOF
"$bin" serve --model "$model" --addr 127.0.0.1:0 --queue 16 --think-budget "$think" \
    --tasks --config "$work/lfm-agent.toml" --docs examples/docs \
    >"$work/server.out" 2>"$work/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    grep -q "listening on" "$work/server.out" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
url="$(awk '/listening on/ {print $3; exit}' "$work/server.out")/v1"
echo "server: $url (model $model, think budget $think)"
"$PYTHON" scripts/serve/openai_check.py --base-url "$url" --agent-tasks
"$PYTHON" scripts/serve/load_test.py --base-url "$url" --clients "$clients" --seconds "$seconds"
echo "metrics after the run:"
curl -s "${url%/v1}/metrics" | grep -E '^lfm_(requests_total|tokens_per_second|time_to_first|cancelled|queue_depth)' || true
