#!/usr/bin/env bash
# Build one venv per peer tool under /work/rigs/peers (outside the repo).
# Each peer gets its own venv: whichllm needs typer<0.29, accelerate needs torch +
# transformers (CPU torch from the local wheel), the others are small.
# Versions are pinned to what benchmarks/peers/README.md reports.
set -euo pipefail

ROOT="${QWENFIT_PEERS_DIR:-/work/rigs/peers}"
PY="$(command -v python3.11 || command -v python3)"
mkdir -p "$ROOT"

make_venv() {  # make_venv NAME PACKAGE...
    local name="$1"; shift
    local venv="$ROOT/venv-$name"
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    "$venv/bin/pip" install --quiet "$@"
    echo "$name: $("$venv/bin/pip" freeze | tr '\n' ' ' | cut -c1-300)"
}

# llmfit: PyPI ships the Rust binary inside a wheel (llmfit/bin/llmfit).
make_venv llmfit "llmfit==1.1.17"
# whichllm breaks with typer 0.29 (click_type TypeError), so pin an older typer.
make_venv whichllm "whichllm==0.5.21" "typer<0.29"
make_venv hf-mem "hf-mem==0.5.6"
make_venv vllm-wizard "vllm-wizard==0.2.0"
# accelerate estimate-memory needs transformers (Qwen3.5 classes) and torch.
make_venv accelerate "accelerate==1.15.0" "torch==2.13.0" "transformers==5.23.0"

# Does llmfit also exist as a Rust crate? crates.io is not among the reachable
# registries; record the answer instead of failing.
if command -v cargo >/dev/null; then
    if timeout 60 cargo info llmfit >"$ROOT/cargo_info_llmfit.txt" 2>&1; then
        echo "cargo info llmfit: ok (see $ROOT/cargo_info_llmfit.txt)"
    else
        echo "cargo info llmfit: failed (see $ROOT/cargo_info_llmfit.txt)"
    fi
fi
# Is there an npm package named llmfit?
if command -v npm >/dev/null; then
    timeout 60 npm view llmfit name version >"$ROOT/npm_view_llmfit.txt" 2>&1 \
        && echo "npm view llmfit: ok" || echo "npm view llmfit: not found"
fi
echo "peers installed under $ROOT"
