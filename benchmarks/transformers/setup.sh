#!/usr/bin/env bash
# Build the transformers measuring rig's venv outside the repo.
# torch goes in first, pinned, so transformers cannot pull a newer or CUDA build.
set -euo pipefail

VENV="${QWENFIT_HF_VENV:-/work/rigs/hf/venv}"

python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install "torch==2.13.0"            # CPU build (2.13.0+cpu here)
"$VENV/bin/pip" install "transformers==5.23.0" "torch==2.13.0" numpy
"$VENV/bin/pip" install ruff                       # only to lint the rig

"$VENV/bin/python" - <<'PY'
import torch, transformers
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert transformers.__version__ == "5.23.0", transformers.__version__
print("torch", torch.__version__, "transformers", transformers.__version__)
PY
