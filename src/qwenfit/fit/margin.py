"""`--margin`: memory kept free per pool, as a size or as a share of the pool.

One parser for the CLI, the REST API and the MCP server, so `10%` means the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenfit.hardware.machine import Machine
from qwenfit.memory.layout import best_gpu
from qwenfit.units import parse_percent, parse_size


@dataclass(frozen=True)
class Margin:
    """Bytes, or a percentage of the largest pool the plan will use."""

    bytes: int = 0
    percent: float | None = None

    def resolve(self, machine: Machine) -> int:
        """Bytes to keep free on `machine`."""
        if self.percent is None:
            return self.bytes
        gpu = best_gpu(machine)
        pool = gpu.memory_total_bytes if gpu else machine.ram_usable_bytes
        return int(pool * self.percent / 100)


def parse_margin(value: str | int) -> Margin:
    """'1GiB', '0', '10%' or a byte count; a bad value is a UsageError naming it."""
    if isinstance(value, str):
        percent = parse_percent(value, what="--margin")
        if percent is not None:
            return Margin(percent=percent)
    return Margin(bytes=parse_size(value, what="--margin", allow_zero=True))
