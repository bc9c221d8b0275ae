#!/usr/bin/env bash
# Capture `mlx_lm.server --help` into tests/fixtures/runtime_help/mlx_lm-server.txt.
# Needs a venv with mlx[cpu] and mlx-lm (Linux CPU wheels on PyPI): PY=/path/to/python.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=tests/fixtures/runtime_help/mlx_lm-server.txt
VERSION=$("$PY" -c 'import mlx_lm, mlx.core as mx; print(f"mlx-lm {mlx_lm.__version__}, mlx {mx.__version__}")')
{
  echo "# $VERSION: python -m mlx_lm server --help"
  COLUMNS=100 "$PY" -m mlx_lm server --help 2>/dev/null | sed 's/[[:space:]]*$//'
} > "$OUT"
echo "wrote $OUT ($VERSION)"
# mlx-vlm (images): pip install mlx-vlm
OUT=tests/fixtures/runtime_help/mlx_vlm-server.txt
VLM=$("$PY" -c 'import importlib.metadata as m; print("mlx-vlm", m.version("mlx-vlm"))')
{
  echo "# $VLM: python -m mlx_vlm.server --help"
  COLUMNS=100 "$PY" -m mlx_vlm.server --help 2>/dev/null | sed 's/[[:space:]]*$//'
} > "$OUT"
echo "wrote $OUT ($VLM)"
