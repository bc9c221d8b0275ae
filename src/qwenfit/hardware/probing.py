"""`probe()`: the machine as it is now: GPUs, RAM and its container limit, installed runtimes.

Each source is read on its own and a failing source becomes a warning in the result, never an
exception. RAM bandwidth (for CPU and offload speed estimates) comes from `hardware.bandwidth`
(measured when the CPU is idle, cached with its date, expiring). The seams (`root`, `environ`,
`nvml`, `system`) let tests point the probe at temporary sysfs / cgroup trees and fake NVML
modules.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qwenfit.adapters import ADAPTERS, LLAMACPP
from qwenfit.hardware.bandwidth import RamBandwidth, ram_bandwidth
from qwenfit.hardware.machine import GPU, Machine, apple_gpu_share
from qwenfit.units import MAX_BYTES, MiB

UNLIMITED = MAX_BYTES  # cgroup v1 reports "no limit" as a huge page-aligned number
AMD_PCI_VENDOR = "0x1002"
# Python packages reported beside the runtimes (which their adapters declare): the name qwenfit
# reports -> (import name, distribution name).
PYTHON_PACKAGES = {
    "torch": ("torch", "torch"),
    "llama_cpp_python": ("llama_cpp", "llama-cpp-python"),
}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _limit_value(text: str | None) -> int | None:
    if text is None or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 < value < UNLIMITED else None


def cgroup_memory_limit(root: Path) -> tuple[int | None, list[str]]:
    """The tightest memory limit on this process's cgroup and its ancestors (v2, else v1)."""
    warnings: list[str] = []
    membership = _read(root / "proc/self/cgroup")
    if membership is None:
        return None, []
    limits: list[int] = []
    for line in membership.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # cgroup v2 unified hierarchy
            base, name = root / "sys/fs/cgroup", "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root / "sys/fs/cgroup/memory", "memory.limit_in_bytes"
        else:
            continue
        here = base / rel.lstrip("/")
        while True:
            raw = _read(here / name)
            if raw is not None and raw != "max" and _limit_value(raw) is None and not raw.isdigit():
                warnings.append(f"unreadable cgroup limit {raw[:40]!r} in {here / name}")
            value = _limit_value(raw)
            if value is not None:
                limits.append(value)
            if here == base or base not in here.parents:
                break
            here = here.parent
    return (min(limits) if limits else None), warnings


def amd_gpus(root: Path, start: int, environ: Mapping[str, str] | None = None) -> list[GPU]:
    """AMD GPUs from amdgpu's sysfs files (no ROCm library needed), as a ROCm process sees
    them under ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES (`amd_visible`)."""
    found: list[GPU] = []
    for card in sorted((root / "sys/class/drm").glob("card[0-9]*")):
        dev = card / "device"
        if _read(dev / "vendor") != AMD_PCI_VENDOR:
            continue
        total = _limit_value(_read(dev / "mem_info_vram_total"))
        if total is None:
            continue
        used = _limit_value(_read(dev / "mem_info_vram_used")) or 0
        name = _read(dev / "product_name") or f"AMD GPU ({card.name})"
        unique = (_read(dev / "unique_id") or "").lower()
        found.append(
            GPU(
                index=len(found),
                name=name,
                vendor="amd",
                # ROCm names a GPU 'GPU-' + amdgpu's unique_id (rocm-smi; ROCR_VISIBLE_DEVICES)
                uuid=f"GPU-{unique}" if re.fullmatch(r"[0-9a-f]{1,32}", unique) else None,
                memory_total_bytes=total,
                memory_free_bytes=max(0, min(total, total - used)),
                memory_used_bytes=min(used, total),
            )
        )
    visible = amd_visible(found, environ or {})
    return [g.model_copy(update={"index": start + i}) for i, g in enumerate(visible)]


def _select(gpus: list[GPU], value: str | None) -> list[GPU]:
    """`gpus` filtered and ordered by one visibility variable: indices into `gpus` or UUID
    prefixes, ending at the first entry that names no device (or several)."""
    if value is None:
        return gpus
    chosen: list[GPU] = []
    for entry in (e.strip() for e in value.split(",")):
        if entry.isdigit() and int(entry) < len(gpus):
            matches = [gpus[int(entry)]]
        elif entry.upper().startswith("GPU-"):
            matches = [g for g in gpus if g.uuid and g.uuid.lower().startswith(entry.lower())]
        else:
            break
        if len(matches) != 1:
            break
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def amd_visible(gpus: list[GPU], environ: Mapping[str, str]) -> list[GPU]:
    """The AMD GPUs a ROCm process sees: ROCR_VISIBLE_DEVICES (indices or UUIDs) applies first,
    then HIP_VISIBLE_DEVICES (indices among what is left), as the ROCm documentation's 'GPU
    isolation techniques' page describes the two."""
    return _select(
        _select(gpus, environ.get("ROCR_VISIBLE_DEVICES")), environ.get("HIP_VISIBLE_DEVICES")
    )


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def apple_gpu(ram_total: int, sysctl: Any = _sysctl) -> GPU:
    """Apple Silicon: the GPU shares RAM; `iogpu.wired_limit_mb` (> 0) or Metal's default share."""
    wired = sysctl("iogpu.wired_limit_mb")
    if wired and wired.isdigit() and int(wired) > 0:
        usable = int(wired) * MiB
    else:
        usable = apple_gpu_share(ram_total)
    name = sysctl("machdep.cpu.brand_string") or "Apple Silicon GPU"
    return GPU(
        index=0,
        name=name,
        vendor="apple",
        memory_total_bytes=usable,
        memory_free_bytes=usable,
        unified_memory=True,
    )


def installed_runtimes(
    which: Any = shutil.which, run: Any = subprocess.run
) -> dict[str, str | None]:
    """Runtimes found: binaries on PATH, Python packages by metadata, and llama-server's build
    number from `llama-server --version` (it prints and exits without loading a model)."""
    found: dict[str, str | None] = {}
    packages: dict[str, tuple[str, str]] = {}
    for a in ADAPTERS.values():  # a Python package by its metadata, else a command on PATH
        if a.python_module is not None:
            packages[a.name] = a.python_module
        elif any(which(exe) for exe in a.executables):
            found[a.name] = None
    server = which("llama-server")
    if server and LLAMACPP in found:
        found[LLAMACPP] = llama_server_build(server, run)
    for key, (module, dist) in {**packages, **PYTHON_PACKAGES}.items():
        version = _installed_version(module, dist)
        if version is not None:
            found[key] = version
    return found


# common/build-info.cpp.in: "version: 0.6.0-dev (build 11434, commit unknown)"; builds before
# that file's current form print "version: 9776 (ac4105d68)".
_LLAMA_VERSION = re.compile(r"version:\s*(?:\S+\s+\(build (\d+),|(\d+) \()")


def llama_server_build(path: str, run: Any = subprocess.run) -> str | None:
    """The build number `llama-server --version` prints, as text; None when it cannot say."""
    try:
        out = run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    m = _LLAMA_VERSION.search(f"{out.stdout or ''}\n{out.stderr or ''}")
    build = m and (m[1] or m[2])
    return build if build and build != "0" else None


def _installed_version(module: str, dist: str) -> str | None:
    """`dist`'s version when `module` can be imported, else None; without importing it.

    `importlib.metadata.version()` scans every distribution on sys.path (about 20 ms per call in
    a large environment, five calls per probe); `find_spec` answers "is it there" from the
    import system's cached directory listings, and the version is then read from the
    `.dist-info` folder beside the package.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    where = spec.submodule_search_locations or ([spec.origin] if spec.origin else [])
    wanted = re.sub(r"[-_.]+", "_", dist).lower()
    for location in where:
        for info in Path(location).parent.glob("*.dist-info"):
            name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]  # NAME-VERSION
            if re.sub(r"[-_.]+", "_", name).lower() != wanted:
                continue
            for line in (_read(info / "METADATA") or "").splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    from importlib import metadata  # ~15 ms to import: only for layouts the fast path misses

    try:  # an install layout without a neighbouring .dist-info: ask the slow way
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _nvml_module() -> Any:
    import pynvml

    return pynvml


def probe(
    *,
    root: str | Path = "/",
    environ: Mapping[str, str] | None = None,
    nvml: Any = None,
    system: str | None = None,
    bandwidth: Callable[[], RamBandwidth | int | None] = ram_bandwidth,
) -> Machine:
    """Read this machine. Never raises for a failing source: see `Machine.warnings`."""
    import psutil

    from qwenfit.hardware.nvml import list_gpus

    root = Path(root)
    environ = os.environ if environ is None else environ
    system = system or platform.system()
    warnings: list[str] = []

    try:
        vm = psutil.virtual_memory()
        ram_total, ram_avail = int(vm.total), int(vm.available)
    except Exception as e:
        warnings.append(f"RAM could not be read ({e}); assuming none")
        ram_total = ram_avail = 0
    try:
        swap: int | None = int(psutil.swap_memory().total)
    except Exception:
        swap = None
    limit, cg_warn = cgroup_memory_limit(root) if system == "Linux" else (None, [])
    warnings += cg_warn
    usable = min(ram_avail, limit) if limit is not None else ram_avail
    if limit is not None and limit < ram_avail:
        warnings.append(f"container memory limit {limit // MiB} MiB caps usable RAM")

    gpus: list[GPU] = []
    versions: dict[str, str | None] = {}
    # No NVIDIA kernel driver on Linux: nothing for NVML to find, and importing it costs time.
    no_driver = system == "Linux" and nvml is None and not (root / "proc/driver/nvidia").exists()
    if system != "Darwin" and not no_driver:
        try:
            lib = nvml if nvml is not None else _nvml_module()
        except ImportError:
            lib = None
            warnings.append("nvidia-ml-py is not installed; NVIDIA GPUs not probed")
        if lib is not None:
            gpus, nv_warn, versions = list_gpus(lib, environ)
            warnings += nv_warn
    if system == "Linux":
        gpus += amd_gpus(root, len(gpus), environ)
    elif system == "Darwin" and platform.machine() == "arm64":
        gpus.append(apple_gpu(ram_total))

    from qwenfit.cache import cache_note

    home_note = cache_note()
    if home_note:
        warnings.append(home_note)
    note = None
    try:
        got = bandwidth()
        value = got.bytes_per_s if isinstance(got, RamBandwidth) else got
        note = got.note if isinstance(got, RamBandwidth) else None
    except Exception as e:
        value = None
        warnings.append(f"RAM bandwidth could not be measured ({e})")
    try:
        logical = psutil.cpu_count(logical=True)
        physical = psutil.cpu_count(logical=False)
    except Exception:
        logical = physical = None
    return Machine(
        source="probe",
        cpu_logical=logical,
        cpu_physical=physical,
        ram_total_bytes=ram_total,
        ram_available_bytes=ram_avail,
        swap_total_bytes=swap,
        cgroup_limit_bytes=limit,
        ram_usable_bytes=usable,
        ram_bandwidth_bytes_per_s=value,
        ram_bandwidth_note=note,
        gpus=gpus,
        nvidia_driver_version=versions.get("driver"),
        cuda_driver_version=versions.get("cuda"),
        runtimes=installed_runtimes(),
        warnings=warnings,
    )
