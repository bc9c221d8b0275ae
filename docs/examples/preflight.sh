#!/usr/bin/env bash
# Pull a Qwen3.5 model with Ollama only if it fits this machine.
set -uo pipefail
model=${1:-27b}
qwenfit check "$model" --runtime ollama --context 32k --json > check.json
status=$?
case $status in
    0) tag=$(qwenfit launch "$model" --runtime ollama --context 32k --json \
             | python3 -c 'import json,sys; print(next(s["argv"][-1] for s in json.load(sys.stdin)["launch"]["launch"]["steps"] if s["argv"][:2] == ["ollama", "pull"]))')
       ollama pull "$tag" ;;
    3) python3 -c 'import json; c = json.load(open("check.json"))["check"]; print("does not fit:", c["fit"]["reason"], "| nearest:", c["nearest"])'
       exit 3 ;;
    *) echo "qwenfit could not answer (exit $status)" >&2
       exit 1 ;;
esac
