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

    Entries are indices or (prefixes of) UUIDs such as GPU-3f2a... or MIG-9b1c...; which of them
    CUDA honours depends on the devices (`cuda_order`). An empty entry ends the list.
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
        if not item:
            break
        entries.append(item)
    return entries


def cuda_order(
    devices: list[tuple[int, str, bool]], visible: list[str] | None
) -> tuple[list[int], list[str]]:
    """Which of `devices` ((NVML index, UUID, is a MIG instance), in NVML order) one CUDA process
    sees, in CUDA's order (positions into `devices`), and warnings.

    As the CUDA C Programming Guide ("CUDA Environment Variables") describes the variable: entries
    are enumerated in order, and the first invalid one ends the list (an index that is not a
    GPU, '-1', a name that is neither a number nor a UUID, a UUID prefix that matches no device
    or more than one); a device named twice is seen once. A CUDA process enumerates a single MIG
    device (NVIDIA MIG User Guide, "Running CUDA Applications on Bare-Metal": CUDA can only
    enumerate a single compute instance), so MIG instances after the first are dropped.
    """
    warnings: list[str] = []
    chosen: list[int] = []
    if visible is None:
        chosen = list(range(len(devices)))
    else:
        gpu_count = len({index for index, _, _ in devices})
        for entry in visible:
            if entry.isdigit():
                n = int(entry)
                if n >= gpu_count:
                    break
                found = [p for p, (i, _, mig) in enumerate(devices) if i == n and not mig]
            elif entry.upper().startswith(("GPU-", "MIG-")):
                found = [p for p, (_, u, _) in enumerate(devices) if u.startswith(entry)]
                if len(found) != 1:
                    what = "no device" if not found else f"{len(found)} devices"
                    warnings.append(
                        f"CUDA_VISIBLE_DEVICES entry {entry!r} matches {what}; CUDA stops there"
                    )
                    break
            else:
                break
            chosen += [p for p in found if p not in chosen]
    migs = [p for p in chosen if devices[p][2]]
    if len(migs) > 1:
        warnings.append(
            f"{len(migs)} MIG devices are visible, but a CUDA process uses one: only "
            f"{devices[migs[0]][1]} is planned for"
        )
        chosen = [p for p in chosen if not devices[p][2] or p == migs[0]]
    return chosen, warnings


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
    # Every device NVML lists (GPUs, or the MIG instances of a GPU in MIG mode), then the ones
    # CUDA shows this process, in CUDA's order: how llama.cpp's --main-gpu counts them too.
    found: list[tuple[int, Any, str, str, bool, str | None, int | None]] = []
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
                    found.append((i, handle, name, uuid, False, cc, bandwidth))
                for mh in migs:
                    mig_uuid = _text(lib.nvmlDeviceGetUUID(mh))
                    found.append((i, mh, f"{name} MIG", mig_uuid, True, cc, None))
            except Exception as e:
                warnings.append(
                    f"NVIDIA GPU {i} could not be read ({_text(e) or type(e).__name__})"
                )
        order, notes = cuda_order([(f[0], f[3], f[4]) for f in found], visible)
        warnings += notes
        gpus = [
            _record(lib, handle, position, name, uuid, mig, cc, bandwidth)
            for position, (_, handle, name, uuid, mig, cc, bandwidth) in enumerate(
                found[p] for p in order
            )
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
            for getter in (
                "nvmlDeviceGetComputeRunningProcesses",
                "nvmlDeviceGetGraphicsRunningProcesses",
            ):
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
