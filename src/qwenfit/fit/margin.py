"""`--margin`: memory kept free per pool, as a size or as a share of the pool.

One parser for the CLI, the REST API and the MCP server, so `10%` means the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenfit.hardware.machine import Machine
from qwenfit.units import parse_percent, parse_size


@dataclass(frozen=True)
class Margin:
    """Bytes kept free on every pool, or a share of each pool."""

    bytes: int = 0
    percent: float | None = None

    def apply(self, machine: Machine) -> tuple[Machine, int]:
        """The machine to plan on and the bytes to keep free on each of its pools.

        Bytes are kept free on every GPU and in RAM alike. A percentage is taken of each pool
        on its own: every GPU keeps that share of its total memory free and RAM that share of
        its usable memory, so `--margin 50%` never takes a GPU's share from RAM. It is applied
        by lowering each pool's free memory, with no further margin.
        """
        if self.percent is None:
            return machine, self.bytes
        share = self.percent / 100
        gpus = [
            g.model_copy(
                update={
                    "memory_free_bytes": max(
                        0, g.memory_free_bytes - int(g.memory_total_bytes * share)
                    )
                }
            )
            for g in machine.gpus
        ]
        ram = machine.ram_usable_bytes - int(machine.ram_usable_bytes * share)
        return machine.model_copy(update={"gpus": gpus, "ram_usable_bytes": ram}), 0


def parse_margin(value: str | int) -> Margin:
    """'1GiB', '0', '10%' or a byte count; a bad value is a UsageError naming it."""
    if isinstance(value, str):
        percent = parse_percent(value, what="--margin")
        if percent is not None:
            return Margin(percent=percent)
    return Margin(bytes=parse_size(value, what="--margin", allow_zero=True))
