"""Does an estimate fit a machine? Per-device budgets, safety margins, and the shortfall.

Budgets start from free memory, not total: another process holding 16 GB is memory we cannot
use. vLLM is special: at start it claims a fixed fraction of each card's *total* memory and
refuses to start when that much is not free. Every GPU the layout uses must hold its share, and
host RAM what is placed there.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import adapter
from qwenfit.errors import UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.memory import layout as layouts
from qwenfit.memory.options import DEFAULT_MARGIN
from qwenfit.memory.record import Estimate, LayoutKind
from qwenfit.settings import MAX_MARGIN
from qwenfit.units import GiB


class DeviceFit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    device: int | None = Field(
        description="GPU index (across nodes: node x GPUs + index); null for host RAM."
    )
    need_bytes: int
    budget_bytes: int
    reserved_bytes: int = Field(
        0, ge=0, description="Kept free for the desktop (--reserve), already off the budget."
    )


class Fit(BaseModel):
    """The verdict for one estimate on one machine."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    fits: bool
    placement: LayoutKind
    devices: list[DeviceFit]
    gpu_need_bytes: int
    gpu_budget_bytes: int = Field(description="Sum of the budgets of the GPUs used.")
    ram_need_bytes: int
    ram_budget_bytes: int
    margin_bytes: int
    missing_bytes: int = Field(description="How much more memory it would need (0 when it fits).")
    reason: str


def check_fit(est: Estimate, machine: Machine, margin: int = DEFAULT_MARGIN) -> Fit:
    """Place `est` (already laid out on devices) on `machine` and say whether it fits."""
    if not isinstance(est, Estimate) or not isinstance(machine, Machine):
        raise UsageError(
            f"check_fit takes an Estimate and a Machine, not {type(est).__name__} and "
            f"{type(machine).__name__}"
        )
    if isinstance(margin, bool) or not isinstance(margin, int) or not 0 <= margin <= MAX_MARGIN:
        raise UsageError(f"invalid margin {margin!r:.60}: must be bytes in [0, {MAX_MARGIN}]")
    gpus = machine.gpus

    def reserved(d: int | None) -> int:
        return gpus[d % len(gpus)].reserved_bytes if d is not None and gpus else 0

    devices = [
        DeviceFit(device=d, need_bytes=need, budget_bytes=budget, reserved_bytes=reserved(d))
        for d, need, budget in layouts.pools(est, machine, margin)
    ]
    ram = devices[-1].budget_bytes
    gpu_missing = sum(
        max(0, d.need_bytes - d.budget_bytes) for d in devices if d.device is not None
    )
    ram_missing = max(0, est.ram_bytes - ram)
    missing = gpu_missing + ram_missing
    if est.gpu_bytes and not machine.gpus:
        reason = "needs a GPU, and this machine has none"
    elif (share := adapter(est.runtime).gpu_share) and any(
        d.device is not None and d.budget_bytes == 0 for d in devices
    ):
        reason = (
            f"{est.runtime} claims {share:.0%} of each GPU's memory at start, "
            "but less than that is free"
        )
    elif missing:
        where = "GPU memory" if gpu_missing >= ram_missing else "RAM"
        reason = f"{where} is short by {missing / GiB:.2f} GiB"
    else:
        reason = "fits"
    gpu_devices = [d for d in devices if d.device is not None]
    return Fit(
        fits=missing == 0 and reason == "fits",
        placement=est.layout.kind,
        devices=devices,
        gpu_need_bytes=est.gpu_bytes,
        gpu_budget_bytes=sum(d.budget_bytes for d in gpu_devices),
        ram_need_bytes=est.ram_bytes,
        ram_budget_bytes=ram,
        margin_bytes=margin,
        missing_bytes=missing,
        reason=reason,
    )


def sequences_that_fit(est: Estimate, fit: Fit) -> int | None:
    """For vLLM: how many sequences at `est.context` the memory left for KV blocks holds on the
    tightest GPU (what --max-num-seqs may be at most). None for other runtimes or no GPU.

    Per device, the budget less everything but the per-sequence KV cache and recurrent state,
    divided by one sequence's share of them.
    """
    if not adapter(est.runtime).gpu_share or not est.gpu_bytes:
        return None
    per_device: dict[int, int] = {}
    for p in est.parts:
        if p.device is not None and p.part in ("kv_cache", "linear_state"):
            per_device[p.device] = per_device.get(p.device, 0) + p.bytes
    seqs = None
    for d in fit.devices:
        if d.device is None or not per_device.get(d.device):
            continue
        state = per_device[d.device]
        fixed = d.need_bytes - state
        per_seq = max(1, state // est.parallel)
        n = max(0, (d.budget_bytes - fixed) // per_seq)
        seqs = n if seqs is None else min(seqs, n)
    return seqs
