"""MLX (mlx-lm / mlx-vlm): MLX conversions on Apple Silicon's Metal, unified memory.

Runs on Apple Silicon only (ml-explore/mlx README); the trained context is the default;
mlx_lm.server serves text only, mlx_vlm.server with the vision tower, and mlx_vlm.server takes
sampling only per request.
"""

from __future__ import annotations

from qwenfit.adapters.base import Adapter

ADAPTER = Adapter(
    name="mlx",
    aliases=("mlx-lm", "mlx_lm"),
    format="mlx",
    sizing="arrays",
    default_quant="mlx-4bit",
    search_kv_types=("bf16",),  # --kv-bits 8 / 4 have no published quality measurement
    drops_vision=True,  # mlx_lm instead of mlx_vlm
    vendors=("apple",),
    context_default="trained",
    python_module=("mlx_lm", "mlx-lm"),
    per_request_sampling=True,
)
