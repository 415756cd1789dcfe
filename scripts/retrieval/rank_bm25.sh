#!/usr/bin/env bash
# Ranks the example docs' chunks for the labelled questions with the Python package rank-bm25
# (installed into .venv-bm25/), on the tokens our analyzer produces, and writes the committed
# fixture evals/retrieval/rank-bm25-rankings.json. Then prints both rankers side by side.
# Rerun it whenever chunking or the analyzer changes (the eval says when the fixture is stale).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-bm25
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "rank-bm25==0.2.2"
fi
cargo build -q --release -p lfm-agent
B=target/release/lfm-agent
mkdir -p target/retrieval
$B eval retrieval --dump-ranker-input target/retrieval/ranker-input.json >/dev/null
"$venv/bin/python" scripts/retrieval/rank_with_bm25.py target/retrieval/ranker-input.json evals/retrieval/rank-bm25-rankings.json
$B eval retrieval
