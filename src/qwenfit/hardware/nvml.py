"""NVIDIA GPUs through NVML: the only module that imports `pynvml` (the nvidia-ml-py package).

`list_gpus(lib)` takes the NVML module as a parameter so tests pass a fake. It never raises:
every failure becomes a warning next to whatever GPUs could be read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from qwenfit.hardware.machine import GPU

# Compute capability major.minor -> NVIDIA architecture (CUDA programming guide, table of
# compute capabilities).
ARCHITECTURES = {
    "7.0": "Volta",
    "7.2": "Volta",
    "7.5": "Turing",
    "8.0": "Ampere",
    "8.6": "Ampere",
    "8.7": "Ampere",
    "8.9": "Ada Lovelace",
    "9.0": "Hopper",
    "10.0": "Blackwell",
    "10.3": "Blackwell",
    "12.0": "Blackwell",
    "12.1": "Blackwell",
}


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def visible_filter(environ: Mapping[str, str]) -> list[str] | None:
    """Entries of CUDA_VISIBLE_DEVICES (else NVIDIA_VISIBLE_DEVICES); None means all visible.

    Entries are indices or (prefixes of) UUIDs such as GPU-3f2a... or MIG-9b1c...; CUDA stops at
    the first invalid entry, so '-1' hides every GPU.
    """
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        raw = environ.get("NVIDIA_VISIBLE_DEVICES")
        if raw is None or raw.strip().lower() == "all":
            return None
        if raw.strip().lower() in ("none", "void", ""):
            return []
    entries: list[str] = []
    for item in raw.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        entries.append(item)
    return entries


def _rank(index: int, uuid: str, mig: bool, visible: list[str] | None) -> int | None:
    """The CUDA device number the process will see this GPU as (its position in
    CUDA_VISIBLE_DEVICES), the NVML index when every GPU is visible, None when hidden."""
    if visible is None:
        return index
    for position, v in enumerate(visible):
        if v.isdigit():
            if not mig and int(v) == index:
                return position
        elif uuid and uuid.startswith(v):
            return position
    return None


def _bandwidth(lib: Any, handle: Any) -> int | None:
    """Peak memory bandwidth: bus width (bits) x max memory clock (MHz) x 2 transfers per clock."""
    try:
        bus_bits = int(lib.nvmlDeviceGetMemoryBusWidth(handle))
        mhz = int(lib.nvmlDeviceGetMaxClockInfo(handle, lib.NVML_CLOCK_MEM))
    except Exception:
        return None
    return bus_bits * mhz * 1_000_000 * 2 // 8 if bus_bits and mhz else None


def _others(lib: Any, handle: Any) -> int | None:
    try:
        procs = lib.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception:
        return None
    return sum(int(getattr(p, "usedGpuMemory", 0) or 0) for p in procs)


def _record(
    lib: Any,
    handle: Any,
    index: int,
    name: str,
    uuid: str,
    mig: bool,
    cc: str | None,
    bandwidth: int | None,
) -> GPU:
    mem = lib.nvmlDeviceGetMemoryInfo(handle)
    return GPU(
        index=index,
        name=name,
        vendor="nvidia",
        uuid=uuid or None,
        memory_total_bytes=int(mem.total),
        memory_free_bytes=int(mem.free),
        memory_used_bytes=int(mem.used),
        memory_used_by_others_bytes=_others(lib, handle),
        compute_capability=cc,
        architecture=ARCHITECTURES.get(cc or ""),
        bandwidth_bytes_per_s=bandwidth,
        mig=mig,
    )


def _mig_instances(lib: Any, handle: Any) -> list[Any]:
    try:
        current, _pending = lib.nvmlDeviceGetMigMode(handle)
    except Exception:
        return []
    if current != getattr(lib, "NVML_DEVICE_MIG_ENABLE", 1):
        return []
    found = []
    for i in range(int(lib.nvmlDeviceGetMaxMigDeviceCount(handle))):
        try:
            found.append(lib.nvmlDeviceGetMigDeviceHandleByIndex(handle, i))
        except Exception:
            continue  # unused slot
    return found


def list_gpus(
    lib: Any, environ: Mapping[str, str]
) -> tuple[list[GPU], list[str], dict[str, str | None]]:
    """(GPUs visible to this process, warnings, driver and CUDA versions) read through `lib`."""
    warnings: list[str] = []
    try:
        lib.nvmlInit()
    except Exception as e:  # library missing, driver not loaded, no permission...
        name = type(e).__name__
        if "LibraryNotFound" in name or "DriverNotLoaded" in name:
            return [], [], {}
        return [], [f"NVML could not start ({_text(e) or name}); NVIDIA GPUs not probed"], {}
    versions: dict[str, str | None] = {"driver": None, "cuda": None}
    try:
        versions["driver"] = _text(lib.nvmlSystemGetDriverVersion())
        cuda = int(lib.nvmlSystemGetCudaDriverVersion())
        versions["cuda"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
    except Exception:
        pass
    visible = visible_filter(environ)
    # (CUDA device number, MIG slot, what _record needs): CUDA numbers the devices in the order
    # CUDA_VISIBLE_DEVICES lists them, which is how llama.cpp's --main-gpu counts them too.
    seen: list[tuple[int, int, Any, str, str, bool, str | None, int | None]] = []
    try:
        count = int(lib.nvmlDeviceGetCount())
        for i in range(count):
            try:
                handle = lib.nvmlDeviceGetHandleByIndex(i)
                name = _text(lib.nvmlDeviceGetName(handle))
                uuid = _text(lib.nvmlDeviceGetUUID(handle))
                try:
                    major, minor = lib.nvmlDeviceGetCudaComputeCapability(handle)
                    cc: str | None = f"{major}.{minor}"
                except Exception:
                    cc = None
                bandwidth = _bandwidth(lib, handle)
                migs = _mig_instances(lib, handle)
                if not migs:
                    rank = _rank(i, uuid, False, visible)
                    if rank is not None:
                        seen.append((rank, 0, handle, name, uuid, False, cc, bandwidth))
                    continue
                for slot, mh in enumerate(migs):
                    mig_uuid = _text(lib.nvmlDeviceGetUUID(mh))
                    rank = _rank(i, mig_uuid, True, visible)
                    if rank is not None:
                        seen.append((rank, slot, mh, f"{name} MIG", mig_uuid, True, cc, None))
            except Exception as e:
                warnings.append(
                    f"NVIDIA GPU {i} could not be read ({_text(e) or type(e).__name__})"
                )
        seen.sort(key=lambda s: (s[0], s[1]))
        gpus = [
            _record(lib, handle, position, name, uuid, mig, cc, bandwidth)
            for position, (_, _, handle, name, uuid, mig, cc, bandwidth) in enumerate(seen)
        ]
    except Exception as e:
        gpus = []
        warnings.append(f"NVML device count failed ({_text(e) or type(e).__name__})")
    finally:
        with contextlib.suppress(Exception):
            lib.nvmlShutdown()
    return gpus, warnings, versions


def process_memory(lib: Any) -> dict[int, int]:
    """Device memory each process uses, summed over the GPUs: {pid: bytes}.

    NVML's running-process lists (`nvmlDeviceGetComputeRunningProcesses`, and the graphics list)
    give `usedGpuMemory` per process and GPU; None there (no permission, some MIG setups) is
    left out. Empty when NVML cannot be initialised. Never raises.
    """
    out: dict[int, int] = {}
    try:
        lib.nvmlInit()
    except Exception:
        return out
    try:
        for i in range(int(lib.nvmlDeviceGetCount())):
            handle = lib.nvmlDeviceGetHandleByIndex(i)
            seen: set[int] = set()
            for getter in ("nvmlDeviceGetComputeRunningProcesses",
                           "nvmlDeviceGetGraphicsRunningProcesses"):
                with contextlib.suppress(Exception):
                    for p in getattr(lib, getter)(handle):
                        used = getattr(p, "usedGpuMemory", None)
                        if used is not None and int(p.pid) not in seen:
                            seen.add(int(p.pid))
                            out[int(p.pid)] = out.get(int(p.pid), 0) + int(used)
    except Exception:
        pass
    finally:
        with contextlib.suppress(Exception):
            lib.nvmlShutdown()
    return out


def nvml_module() -> Any:
    """pynvml, or None when nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml
