#!/usr/bin/env bash
# Container entrypoint: refuse to start a vLLM server that would not fit this pod.
set -euo pipefail
model=${QWEN_MODEL:-9b}
context=${QWEN_CONTEXT:-32k}
qwenfit check "$model" --runtime vllm --context "$context" --margin 10% \
    || { echo "qwenfit: $model does not fit this pod" >&2; exit 1; }
qwenfit launch "$model" --runtime vllm --context "$context" --json > /tmp/launch.json
exec python3 -c 'import json, os
argv = json.load(open("/tmp/launch.json"))["launch"]["launch"]["steps"][-1]["argv"]
os.execvp(argv[0], argv)'
