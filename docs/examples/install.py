"""An installer step: pick the best Qwen3.5 for this machine and pull it with Ollama."""

import subprocess
import sys

from qwenfit import probe, recommend

rec = recommend(probe(), runtime="ollama", context=32768)
if not rec.recommendations:
    sys.exit(f"no Qwen3.5 model fits: {rec.closest.advice if rec.closest else 'no memory'}")
best = rec.recommendations[0]
speed = f"~{best.tokens_per_second:.0f} tok/s" if best.tokens_per_second else "speed unknown"
print(f"installing {best.display_name} ({best.quant}, {speed})")
for step in best.launch.steps:
    if step.argv[:2] == ["ollama", "pull"]:
        subprocess.run(step.argv, check=True)  # an argv list: no shell, nothing to quote
