"""Device memory of the runtime's processes on this machine, through NVML where present.

Why: a runtime's own report can leave out the CUDA context and libraries; NVML's per-process
`usedGpuMemory` is what the driver charges it. Processes are picked by their command line
(llama-server, ollama, vllm). None when there is no NVIDIA driver, no pynvml, or no match.
"""

from __future__ import annotations

from typing import Any

from qwenfit.adapters import adapter
from qwenfit.hardware.nvml import nvml_module, process_memory


def device_bytes(runtime: str, lib: Any = None, pids: dict[int, str] | None = None) -> int | None:
    lib = lib if lib is not None else nvml_module()
    if lib is None:
        return None
    used = process_memory(lib)
    if not used:
        return None
    names = pids if pids is not None else _cmdlines(set(used))
    markers = adapter(runtime).executables or (runtime,)
    found = [b for pid, b in used.items() if any(m in names.get(pid, "") for m in markers)]
    return sum(found) if found else None


def _cmdlines(pids: set[int]) -> dict[int, str]:
    import psutil

    out: dict[int, str] = {}
    for pid in pids:
        try:
            out[pid] = " ".join(psutil.Process(pid).cmdline())
        except Exception:
            continue
    return out
