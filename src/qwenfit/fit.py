"""Does an estimate fit a machine? GPU and RAM budgets, safety margins, and the shortfall.

Budgets start from free memory, not total: another process holding 16 GB is memory we cannot
use. vLLM is special: at start it claims a fixed fraction of the card's *total* memory and
refuses to start when that much is not free.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.estimate_model import Estimate
from qwenfit.hardware import GPU, Machine
from qwenfit.runtimes import LLAMACPP_FIT_TARGET_FREE, VLLM_GPU_MEMORY_UTILIZATION

# Default safety margin per memory pool: what llama-server's --fit leaves free per device.
DEFAULT_MARGIN = LLAMACPP_FIT_TARGET_FREE


class Fit(BaseModel):
    """The verdict for one estimate on one machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fits: bool
    gpu_index: int | None = Field(None, description="The GPU the estimate was placed on.")
    gpu_need_bytes: int
    gpu_budget_bytes: int
    ram_need_bytes: int
    ram_budget_bytes: int
    margin_bytes: int
    missing_bytes: int = Field(description="How much more memory it would need (0 when it fits).")
    reason: str


def best_gpu(machine: Machine) -> GPU | None:
    """The GPU with the most free memory (ties: lowest index)."""
    if not machine.gpus:
        return None
    return max(machine.gpus, key=lambda g: (g.memory_free_bytes, -g.index))


def gpu_budget(gpu: GPU, runtime: str, margin: int) -> int:
    if runtime == "vllm":
        claim = int(gpu.memory_total_bytes * VLLM_GPU_MEMORY_UTILIZATION)
        return claim if gpu.memory_free_bytes >= claim else 0
    return max(0, gpu.memory_free_bytes - margin)


def check_fit(est: Estimate, machine: Machine, margin: int = DEFAULT_MARGIN) -> Fit:
    """Place `est` on `machine` (one GPU, plus host RAM) and say whether it fits."""
    gpu = best_gpu(machine)
    gpu_budget_bytes = gpu_budget(gpu, est.runtime, margin) if gpu else 0
    ram_budget = max(0, machine.ram_usable_bytes - margin)
    if gpu is not None and gpu.unified_memory:
        # Apple Silicon: the GPU's share comes out of the same RAM.
        ram_budget = max(0, ram_budget - est.gpu_bytes)
    gpu_missing = max(0, est.gpu_bytes - gpu_budget_bytes)
    ram_missing = max(0, est.ram_bytes - ram_budget)
    missing = gpu_missing + ram_missing
    if est.gpu_bytes and gpu is None:
        reason = "needs a GPU, and this machine has none"
    elif gpu is not None and est.runtime == "vllm" and gpu_budget_bytes == 0:
        reason = (
            f"vLLM claims {VLLM_GPU_MEMORY_UTILIZATION:.0%} of {gpu.name}'s memory at start, "
            "but less than that is free"
        )
    elif missing:
        where = "GPU" if gpu_missing else "RAM"
        reason = f"{where} is short by {missing} bytes"
    else:
        reason = "fits"
    return Fit(
        fits=missing == 0 and not (est.gpu_bytes and gpu is None),
        gpu_index=gpu.index if gpu else None,
        gpu_need_bytes=est.gpu_bytes,
        gpu_budget_bytes=gpu_budget_bytes,
        ram_need_bytes=est.ram_bytes,
        ram_budget_bytes=ram_budget,
        margin_bytes=margin,
        missing_bytes=missing if gpu is not None or not est.gpu_bytes else est.gpu_bytes,
        reason=reason,
    )


def placement_budget(est: Estimate, machine: Machine, margin: int = DEFAULT_MARGIN) -> int:
    """Bytes available to the pool where `est` puts its growing parts (GPU, else RAM)."""
    gpu = best_gpu(machine)
    if est.gpu_bytes and gpu is not None:
        return gpu_budget(gpu, est.runtime, margin)
    return max(0, machine.ram_usable_bytes - margin)
