"""Hypothetical machines for planning: `--gpu "2x RTX 4090"`, `--vram 24GB`, `--ram 64GB`,
`--machine probe.json`, and the GPU catalog (`data/gpus.json`) behind `--gpu`."""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qwenfit.datafiles import data_text
from qwenfit.errors import ProbeError, SpecError, UsageError, validation_message
from qwenfit.hardware.machine import GPU, Machine, Vendor, apple_gpu_share
from qwenfit.inputs import read_json, shown
from qwenfit.units import GiB, MiB, parse_bandwidth, parse_size


class CatalogGPU(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str
    vendor: Vendor
    vram_gib: int | None = Field(description="None for unified memory (Apple): use --ram.")
    bandwidth_gb_s: int
    compute_capability: str | None
    architecture: str
    unified_memory: bool
    source: str
    fp16_tensor_tflops: float | None = Field(
        None,
        description="Dense FP16 tensor-core TFLOPS (FP16 accumulate where the vendor lists "
        "both), from flops_source; None when the vendor publishes none.",
    )
    flops_source: str | None = None
    gpu_share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Unified-memory chips other than Apple's: the share of RAM the GPU may use "
        "(Apple's follows Metal, `apple_gpu_share`).",
    )
    gpu_share_source: str | None = None
    ram_gib: int | None = Field(
        None,
        gt=0,
        description="Unified-memory devices sold with one memory size (DGX Spark): the "
        "machine's RAM when --ram is not given. From `source`.",
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="Other names people use for the part (a platform name, the GPU's own).",
    )


class GPUCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    note: str
    gpus: list[CatalogGPU]


@functools.cache
def gpu_catalog() -> GPUCatalog:
    try:
        return GPUCatalog.model_validate_json(data_text("gpus.json"))
    except ValidationError as e:
        raise SpecError(f"gpus.json: {validation_message(e)}") from None


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("nvidia", "").replace("geforce", ""))


_COUNT_RE = re.compile(r"^\s*(\d+)\s*[xX\u00d7]\s*(.+)$")


def catalog_gpus(spec: str, ram_total: int = 0) -> list[GPU]:
    """'RTX 4090' or '2x H100' -> GPU records with free memory equal to total.

    Apple chips ('M3 Max') share RAM: their GPU gets Metal's share of `ram_total`.
    """
    count, name = _count_and_name(spec)
    if not 1 <= count <= 64:
        raise UsageError(f"invalid --gpu {spec!r}: count must be between 1 and 64")
    entry = _lookup(name)
    if entry.unified_memory and count != 1:
        raise UsageError(f"invalid --gpu {spec!r}: a unified-memory chip comes one per machine")
    if entry.vram_gib is not None:
        vram = entry.vram_gib * GiB
    elif entry.gpu_share is not None:
        vram = int(ram_total * entry.gpu_share)
    else:
        vram = apple_gpu_share(ram_total)
    return [
        GPU(
            index=i,
            name=entry.name,
            vendor=entry.vendor,
            memory_total_bytes=vram,
            memory_free_bytes=vram,
            compute_capability=entry.compute_capability,
            architecture=entry.architecture,
            unified_memory=entry.unified_memory,
            bandwidth_bytes_per_s=entry.bandwidth_gb_s * 10**9,
            fp16_tensor_flops=None
            if entry.fp16_tensor_tflops is None
            else int(entry.fp16_tensor_tflops * 10**12),
        )
        for i in range(count)
    ]


@functools.cache
def catalog_index() -> dict[str, CatalogGPU]:
    """The catalog by normalised name and alias, built once per process."""
    return {_key(n): g for g in gpu_catalog().gpus for n in (g.name, *g.aliases)}


def _count_and_name(spec: str) -> tuple[int, str]:
    """'2x H100' -> (2, 'H100'); 'RTX 4090' -> (1, 'RTX 4090')."""
    m = _COUNT_RE.match(spec)
    return (int(m.group(1)), m.group(2)) if m else (1, spec)


def _lookup(name: str) -> CatalogGPU:
    entries = catalog_index()
    entry = entries.get(_key(name)) or entries.get(_key("apple " + name))
    if entry is None:
        names = [g.name for g in gpu_catalog().gpus]
        close = difflib.get_close_matches(name, names, n=8, cutoff=0.4)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        near = f"nearest known: {', '.join(close)}; " if close else ""
        raise UsageError(
            f"unknown GPU {name!r}{hint}; {near}{len(names)} GPUs in the catalog "
            "(data/gpus.json); or give --vram SIZE and --gpu-bandwidth"
        )
    return entry


MAX_MACHINE_FILE = 4 * MiB  # a probe document is a few KB


def load_machine(path: str | Path) -> Machine:
    """A machine saved with `qwenfit probe --json` (the `machine` object, or the whole document).

    GPUs are put in index order; two GPUs with one index are an error (each index is a device).
    Raises UsageError (the file is the value of `--machine`) with one line naming the file.
    """
    if not isinstance(path, (str, Path)):
        raise UsageError(f"invalid machine file {path!r}: must be a str or Path")
    raw = read_json(path, what="--machine file", max_bytes=MAX_MACHINE_FILE, error=UsageError)
    if isinstance(raw, dict) and "machine" in raw:
        raw = raw["machine"]
    try:
        machine = Machine.model_validate(raw)
    except ValidationError as e:
        raise UsageError(f"--machine file {shown(path)}: {validation_message(e)}") from None
    gpus = sorted(machine.gpus, key=lambda g: g.index)
    return machine.model_copy(update={"source": "file", "gpus": gpus})


def with_overrides(
    base: Machine | None,
    *,
    gpu: str | None = None,
    vram: str | int | None = None,
    ram: str | int | None = None,
    ram_bandwidth: str | int | None = None,
    reserve: str | int | None = None,
    gpu_bandwidth: str | int | None = None,
) -> Machine:
    """`base` (or an empty machine) with GPUs and RAM replaced by what the user stated.

    `--vram` alone means one GPU of that size; with `--gpu` it sets each listed GPU's memory.
    `--vram 0` means no GPU. Without `base`, a GPU or VRAM override needs `ram` (UsageError
    naming it otherwise). `ram_bandwidth` ('80GB/s') sets the RAM's bandwidth, which speed
    estimates need for CPU and offloaded runs; `gpu_bandwidth` the memory bandwidth of every
    GPU (for a GPU the catalog does not know: `--vram 24GB --gpu-bandwidth 936GB/s`).
    """
    if base is not None and not isinstance(base, Machine):
        raise UsageError(f"invalid base {base!r:.60}: must be a Machine or None")
    if gpu is not None and not isinstance(gpu, str):
        raise UsageError(f"invalid --gpu {gpu!r:.60}: must be a GPU name such as '2x RTX 4090'")
    if base is None and ram is None and (gpu is not None or vram is not None):
        # Planning with 0 bytes of RAM would blame the GPU for what RAM lacks.
        raise UsageError(
            "with_overrides: a GPU without ram has no RAM to plan with; pass ram='64GB' "
            "(or base=probe() to take the RAM of this machine)"
        )
    m = base or Machine(
        source="hypothetical", ram_total_bytes=0, ram_available_bytes=0, ram_usable_bytes=0
    )
    update: dict[str, object] = {}
    ram_total = m.ram_total_bytes
    if ram is not None:
        ram_total = parse_size(ram, what="--ram")
        update.update(
            ram_total_bytes=ram_total,
            ram_available_bytes=ram_total,
            ram_usable_bytes=ram_total,
            cgroup_limit_bytes=None,
        )
    stated = m.gpus
    if gpu is not None and ram is None:
        ram_total = _unified_ram(gpu, m, update) or ram_total
    if gpu is not None or vram is not None:
        stated = update["gpus"] = _stated_gpus(gpu, vram, ram_total)
    if gpu_bandwidth is not None:
        bw = parse_bandwidth(gpu_bandwidth, what="--gpu-bandwidth")
        if not stated:
            raise UsageError("--gpu-bandwidth needs a GPU: give --gpu or --vram with it")
        update["gpus"] = [g.model_copy(update={"bandwidth_bytes_per_s": bw}) for g in stated]
    if ram_bandwidth is not None:
        update["ram_bandwidth_bytes_per_s"] = parse_bandwidth(ram_bandwidth, what="--ram-bandwidth")
        update["ram_bandwidth_note"] = "given with --ram-bandwidth"
    if m.source == "probe" and ram is None and m.ram_total_bytes == 0:
        # The probe could not read RAM at all: no plan can be right, so say so, not "no fit".
        reasons = "; ".join(w for w in m.warnings if w.startswith("RAM")) or "no figure"
        raise ProbeError(
            f"the probe could not read this machine's RAM ({reasons}); pass --ram (and --vram or "
            "--gpu) to plan without probing"
        )
    if update:
        update["source"] = "hypothetical" if m.source == "probe" else m.source
    m = m.model_copy(update=update)
    return m if reserve is None else _reserve(m, reserve)


def _unified_ram(gpu: str, base: Machine, update: dict[str, object]) -> int | None:
    """The RAM of a unified-memory device named by `--gpu` without `--ram`: its one size when
    the catalog has it (set in `update`); None (keep the base's RAM) when the base itself has a
    unified-memory GPU (run on that machine) or the device is not unified. Otherwise the probed
    RAM belongs to another machine, and planning with it would be silently wrong: UsageError."""
    entry = _lookup(_count_and_name(gpu)[1])
    if not entry.unified_memory:
        return None
    if entry.ram_gib is not None:
        size = entry.ram_gib * GiB
        update.update(
            ram_total_bytes=size,
            ram_available_bytes=size,
            ram_usable_bytes=size,
            cgroup_limit_bytes=None,
        )
        return size
    if base.source != "probe" or any(g.unified_memory for g in base.gpus):
        return None
    raise UsageError(
        f"--gpu {gpu!r} shares its machine's RAM, and this machine has none of it: give the "
        f"{entry.name}'s memory with --ram (e.g. --ram 64GB)"
    )


def _stated_gpus(gpu: str | None, vram: str | int | None, ram_total: int) -> list[GPU]:
    """The GPUs `--gpu` and `--vram` state: catalog GPUs, resized by `--vram`; `--vram` alone
    is one GPU of that size, `--vram 0` none."""
    gpus = [] if gpu is None else catalog_gpus(gpu, ram_total)
    if vram is None:
        return gpus
    size = parse_size(vram, what="--vram", allow_zero=True)
    if size == 0:
        return []
    if gpu is not None:
        return [
            g.model_copy(update={"memory_total_bytes": size, "memory_free_bytes": size})
            for g in gpus
        ]
    return [
        GPU(
            index=0,
            name=f"GPU with {size / GiB:g} GiB",
            vendor="other",
            memory_total_bytes=size,
            memory_free_bytes=size,
        )
    ]


def _reserve(m: Machine, reserve: str | int) -> Machine:
    """`m` with memory kept free: 'SIZE' on every GPU, 'SIZE@N' on GPU N (comma-separated)."""
    per_gpu: dict[int | None, int] = {}
    for item in [reserve] if isinstance(reserve, int) else str(reserve).split(","):
        size, _, index = str(item).strip().partition("@")
        if index and not index.strip().isdigit():
            raise UsageError(f"invalid --reserve {reserve!r}: after @ comes a GPU index")
        key = int(index) if index else None
        per_gpu[key] = parse_size(size, what="--reserve", allow_zero=True)
    known = {g.index for g in m.gpus}
    bad = [i for i in per_gpu if i is not None and i not in known]
    if bad:
        raise UsageError(
            f"invalid --reserve {reserve!r}: no GPU {bad[0]}; GPUs: {sorted(known) or 'none'}"
        )
    if not m.gpus:
        amount = per_gpu.get(None, 0)
        return m.model_copy(update={"ram_usable_bytes": max(0, m.ram_usable_bytes - amount)})
    gpus = []
    for g in m.gpus:
        amount = per_gpu.get(g.index, per_gpu.get(None, 0))
        gpus.append(
            g.model_copy(
                update={
                    "memory_free_bytes": max(0, g.memory_free_bytes - amount),
                    "reserved_bytes": g.reserved_bytes + amount,
                }
            )
        )
    return m.model_copy(update={"gpus": gpus})
