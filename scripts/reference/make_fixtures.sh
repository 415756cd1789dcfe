#!/usr/bin/env bash
# Regenerate the LFM2 parity fixtures (engine/tests/fixtures/parity/) with Hugging Face transformers.
#
#   bash scripts/reference/make_fixtures.sh [--out DIR] [--only CASE ...]
#
# Creates a CPU-only virtualenv (default .venv-ref in the repo root; override with VENV=path, or point
# PYTHON=/path/to/python at an interpreter that already has torch, transformers==5.23.0 and safetensors)
# and runs make_fixtures.py. Arguments are passed through; --out defaults to engine/tests/fixtures/parity.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ -z "${PYTHON:-}" ]]; then
    venv="${VENV:-$root/.venv-ref}"
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --upgrade pip
        # Plain PyPI wheels (the reference runs on CPU). TORCH_INDEX_URL may name another index.
        if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
            "$venv/bin/pip" install --index-url "$TORCH_INDEX_URL" torch
        else
            "$venv/bin/pip" install torch
        fi
        "$venv/bin/pip" install "transformers==5.23.0" safetensors
    fi
    PYTHON="$venv/bin/python"
fi

cd "$root"
exec "$PYTHON" "$here/make_fixtures.py" "$@"
