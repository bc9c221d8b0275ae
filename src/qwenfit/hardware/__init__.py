"""Stage 1, hardware: what the machine has (probed, from a file, or hypothetical).

`probing` reads NVML, sysfs, cgroups and psutil; `bandwidth` measures RAM bandwidth when the
CPU is idle; `catalog` knows GPUs by name and applies overrides; `machine` holds the records
every later stage reads. Nothing here knows about models.
"""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.hardware.bandwidth import ram_bandwidth
    from qwenfit.hardware.catalog import catalog_gpus, gpu_catalog, load_machine, with_overrides
    from qwenfit.hardware.machine import GPU, Machine
    from qwenfit.hardware.probing import probe

__all__ = [
    "GPU",
    "Machine",
    "catalog_gpus",
    "gpu_catalog",
    "load_machine",
    "probe",
    "ram_bandwidth",
    "with_overrides",
]
__getattr__, __dir__ = attach(
    __name__,
    {
        "GPU": ".machine",
        "Machine": ".machine",
        "catalog_gpus": ".catalog",
        "gpu_catalog": ".catalog",
        "load_machine": ".catalog",
        "with_overrides": ".catalog",
        "probe": ".probing",
        "ram_bandwidth": ".bandwidth",
    },
)
