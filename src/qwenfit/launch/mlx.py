"""The MLX launch command: `mlx_lm.server` for text, `mlx_vlm.server` when images are wanted.

Flags checked against the packages' own `--help` (mlx-lm 0.32.2, mlx-vlm 0.7.10;
`tests/fixtures/runtime_help/mlx_lm-server.txt`, `mlx_vlm-server.txt`). Neither server takes a
context length: mlx-lm's KV cache grows as the conversation does (steps of 256 tokens), so the
estimate's context is what the memory budget allows, stated in a note.
"""

from __future__ import annotations

from qwenfit.adapters import MLX, adapter
from qwenfit.launch.common import Task, num, sampling_preset
from qwenfit.launch.record import LaunchCommand, Step
from qwenfit.memory.mlx import MLX_KV_BITS, MLX_KV_GROUP_SIZE
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import ModelSpec, SpecTable

MLX_PORT = 8080  # both servers' default --port


def mlx_command(
    est: Estimate, spec: ModelSpec, table: SpecTable, task: Task = "chat"
) -> LaunchCommand:
    """The command that serves `est` (runtime mlx) with mlx-lm, or mlx-vlm for images; the
    card's preset for `task` (code: the precise-coding one)."""
    artifact = spec.artifact(est.quant, adapter(MLX).format)
    assert artifact is not None and artifact.repo is not None
    preset = sampling_preset(table, spec, task)
    s = preset.values
    kv = []
    if est.kv_cache in MLX_KV_BITS:
        kv = ["--kv-bits", str(MLX_KV_BITS[est.kv_cache]), "--kv-group-size"]
        kv.append(str(MLX_KV_GROUP_SIZE))
    notes = [
        f"neither server takes a context length; {est.context} tokens per sequence is what "
        "this estimate sized",
        f"sampling: {preset.origin}",
        "presence_penalty from the model card has no server flag; send "
        f"presence_penalty={num(s['presence_penalty'])} with each request",
    ]
    if est.text_only:
        argv = [
            "mlx_lm.server",
            "--model",
            artifact.repo,
            "--port",
            str(MLX_PORT),
            "--temp",
            num(s["temperature"]),
            "--top-p",
            num(s["top_p"]),
            "--top-k",
            num(s["top_k"]),
            "--min-p",
            num(s["min_p"]),
            *kv,
        ]
        if est.parallel > 1:
            argv += ["--decode-concurrency", str(est.parallel)]
        purpose = f"download (first run) and serve an OpenAI-compatible API on :{MLX_PORT}"
        install = ["pip", "install", "mlx-lm"]
    else:
        argv = ["mlx_vlm.server", "--model", artifact.repo, "--port", str(MLX_PORT), *kv]
        if est.parallel > 1:
            argv += ["--max-num-seqs", str(est.parallel)]
        purpose = f"serve text and images (OpenAI-compatible) on :{MLX_PORT}"
        install = ["pip", "install", "mlx-vlm"]
        notes.append(
            "mlx_vlm.server takes sampling only per request: send "
            + ", ".join(f"{k}={num(s[k])}" for k in ("temperature", "top_p", "top_k", "min_p"))
        )
    return LaunchCommand(
        runtime=MLX,
        model=spec.name,
        steps=[
            Step(argv=install, purpose="install the MLX server (Apple Silicon, macOS)"),
            Step(argv=argv, purpose=purpose),
        ],
        notes=notes,
    )
