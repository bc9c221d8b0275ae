"""Machine and GPU records, and hypothetical machines for planning.

`probe()` (in `probe.py`) fills these from the real machine; `hypothetical()` builds one from
what the user typed (`--gpu`, `--vram`, `--ram`). Both return the same frozen pydantic model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qwenfit.units import MAX_BYTES, GiB

Vendor = Literal["nvidia", "amd", "apple", "other"]

# What can exist, with room to spare: 1 EiB of memory (units.MAX_BYTES), 1 PB/s of bandwidth
# (HBM3e is about 8 TB/s per GPU), 10^18 FLOP/s per GPU (dense FP16 of the largest GPUs is
# about 2.5 x 10^15). Beyond these a number is a typo or an attack (10^400 overflows a float).
MAX_BANDWIDTH = 10**15
MAX_FLOPS = 10**18
MAX_GPUS = 4096  # devices one machine file may list (an index is below the device count)


class GPU(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    index: int = Field(ge=0, lt=MAX_GPUS)
    name: str
    vendor: Vendor
    uuid: str | None = None
    memory_total_bytes: int = Field(ge=0, le=MAX_BYTES)
    memory_free_bytes: int = Field(
        ge=0, le=MAX_BYTES, description="What a new process can allocate now."
    )
    memory_used_bytes: int | None = Field(None, ge=0, le=MAX_BYTES)
    memory_used_by_others_bytes: int | None = Field(
        None, ge=0, le=MAX_BYTES, description="Held by other processes (NVML process list)."
    )
    compute_capability: str | None = None
    architecture: str | None = None
    bandwidth_bytes_per_s: int | None = Field(None, ge=0, le=MAX_BANDWIDTH)
    fp16_tensor_flops: int | None = Field(
        None,
        ge=0,
        le=MAX_FLOPS,
        description="Dense FP16 tensor throughput, FLOP/s (prefill estimates).",
    )
    unified_memory: bool = Field(False, description="Shares RAM with the CPU (Apple Silicon).")
    mig: bool = Field(False, description="A MIG instance rather than a whole GPU.")
    reserved_bytes: int = Field(
        0,
        ge=0,
        le=MAX_BYTES,
        description="Kept free for the desktop and other programs (--reserve), "
        "already taken off memory_free_bytes.",
    )

    @model_validator(mode="after")
    def _free_within_total(self) -> GPU:
        if self.memory_free_bytes > self.memory_total_bytes:
            raise ValueError(
                f"GPU {self.index}: memory_free_bytes {self.memory_free_bytes} is more than "
                f"memory_total_bytes {self.memory_total_bytes}"
            )
        return self


def apple_gpu_share(ram_total: int) -> int:
    """What Metal lets the GPU wire of unified memory when `iogpu.wired_limit_mb` is unset.

    Metal's recommendedMaxWorkingSetSize, as llama.cpp logs it: about 2/3 of RAM on machines up
    to 36 GiB and 3/4 above.
    """
    return ram_total * 3 // 4 if ram_total > 36 * GiB else ram_total * 2 // 3


class Machine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    source: Literal["probe", "hypothetical", "file"]
    cpu_logical: int | None = Field(None, ge=1)
    cpu_physical: int | None = Field(None, ge=1)
    ram_total_bytes: int = Field(ge=0, le=MAX_BYTES)
    ram_available_bytes: int = Field(ge=0, le=MAX_BYTES)
    swap_total_bytes: int | None = Field(None, ge=0, le=MAX_BYTES)
    cgroup_limit_bytes: int | None = Field(
        None, ge=0, le=MAX_BYTES, description="Container memory limit."
    )
    ram_usable_bytes: int = Field(
        ge=0,
        le=MAX_BYTES,
        description="What a recommendation may use: available RAM, capped by the cgroup limit.",
    )
    ram_bandwidth_bytes_per_s: int | None = Field(None, ge=0, le=MAX_BANDWIDTH)
    ram_bandwidth_note: str | None = Field(
        None,
        description="Where ram_bandwidth_bytes_per_s comes from: when and at what CPU load "
        "it was measured, --ram-bandwidth, or why none could be measured.",
    )
    gpus: list[GPU] = Field(default_factory=list, max_length=MAX_GPUS)
    nvidia_driver_version: str | None = None
    cuda_driver_version: str | None = None
    runtimes: dict[str, str | None] = Field(
        default_factory=dict,
        description="Runtime name -> version found (null: present, version unknown).",
    )
    warnings: list[str] = []

    @model_validator(mode="after")
    def _distinct_gpu_indices(self) -> Machine:
        indices = [g.index for g in self.gpus]
        if len(set(indices)) != len(indices):
            dup = next(i for i in indices if indices.count(i) > 1)
            raise ValueError(f"GPU index {dup} is listed twice; each GPU needs its own index")
        if indices and max(indices) >= len(indices):
            raise ValueError(
                f"GPU index {max(indices)} with {len(indices)} GPU(s): indices count the "
                f"devices from 0, so each must be below {len(indices)}"
            )
        vendors = {g.vendor for g in self.gpus}
        if "apple" in vendors and len(vendors) > 1:
            others = ", ".join(sorted(vendors - {"apple"}))
            raise ValueError(
                f"an Apple GPU (unified memory) and {others} GPUs in one machine: no such "
                "machine exists; describe one or the other"
            )
        return self

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def vram_total_bytes(self) -> int:
        return sum(g.memory_total_bytes for g in self.gpus)
