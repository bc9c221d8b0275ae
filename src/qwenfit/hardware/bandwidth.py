"""RAM bandwidth a CPU or offload speed estimate can trust.

A measure taken while other programs keep the CPU busy comes out several times too low (issue
25: 5.4 GB/s measured under load on a machine calibrated at 39 GB/s), and a cached figure
outlives hardware changes. So: several short runs, the best kept; no measure while the 1-minute
load average per CPU is above `MAX_LOAD` (retry later); the figure is stored with its date and
the load it was taken at, and expires after `MAX_AGE_S`. `qwenfit probe --measure` measures
again; `--ram-bandwidth` overrides it everywhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

from qwenfit.cache import cache_dir, read_cache_json, write_atomic
from qwenfit.units import MAX_BYTES, MiB

BUFFER = 32 * MiB  # larger than a desktop L3 cache, small enough to be quick
RUNS = 5  # short runs of `REPEATS` copies each; the best copy of all is kept
REPEATS = 3
MAX_LOAD = 0.5  # 1-minute load average per logical CPU above which no measure is taken
MAX_AGE_S = 30 * 86400
CACHE_NAME = "ram_bandwidth.json"


def measure(size: int = BUFFER, repeats: int = REPEATS) -> int:
    """Single-thread memcpy throughput (bytes read + written per second, best of `repeats`).

    The same measure is taken on the machines whose CPU decode speeds calibrate qwenfit's CPU
    efficiency (data/speed_measurements.json), so the two cancel out.
    """
    src = bytearray(b"\x5a") * size
    dst = bytearray(size)
    dst[:] = src  # fault the destination pages in before timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst[:] = src
        best = min(best, time.perf_counter() - start)
    return int(2 * size / best)


def cpu_load() -> float | None:
    """The 1-minute load average per logical CPU (None where the OS has none: Windows)."""
    try:
        one, _, _ = os.getloadavg()
    except (AttributeError, OSError):
        return None
    return one / (os.cpu_count() or 1)


@dataclass(frozen=True)
class RamBandwidth:
    """A bandwidth figure and where it comes from (None: none could be had; `note` says why)."""

    bytes_per_s: int | None
    note: str


def _key() -> str:
    cpu = ""
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f,
    ):
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return f"{platform.node()}|{platform.machine()}|{os.cpu_count()}|{cpu or platform.processor()}"


def _describe(value: int, when: str, load: float | None) -> str:
    at = "" if load is None else f", load {load:.2f} per CPU"
    return f"{value / 1e9:.1f} GB/s measured {when}{at}"


def _read(now: float) -> tuple[int | None, str | None, bool]:
    """(value, description, expired) of the cache entry for this machine."""
    saved = read_cache_json(cache_dir() / CACHE_NAME)
    if not isinstance(saved, dict) or saved.get("key") != _key():
        return None, None, True
    value, when, load = saved.get("bytes_per_s"), saved.get("measured_at"), saved.get("load")
    if type(value) is not int or not 0 < value <= MAX_BYTES or not isinstance(when, str):
        return None, None, True  # a corrupted or pre-issue-25 entry: measure again
    try:
        taken = dt.datetime.fromisoformat(when).timestamp()
    except ValueError:
        return None, None, True
    load = load if isinstance(load, (int, float)) else None
    return value, _describe(value, when[:16].replace("T", " "), load), now - taken > MAX_AGE_S


def ram_bandwidth(
    force: bool = False,
    *,
    measurer: Callable[[], int] | None = None,
    load: Callable[[], float | None] = cpu_load,
    now: Callable[[], float] = time.time,
) -> RamBandwidth:
    """This machine's RAM bandwidth: the cached figure while it is fresh (unless `force`),
    else a new measure (`RUNS` short runs, the best kept) when the CPU is idle enough, stored
    with its date and load; while the CPU is busy, the old figure if there is one."""
    t = now()
    cached, described, expired = _read(t)
    if cached is not None and not expired and not force:
        return RamBandwidth(cached, described or "")
    busy = load()
    if busy is not None and busy > MAX_LOAD:
        why = (
            f"CPU busy (load {busy:.2f} per CPU, over {MAX_LOAD}): RAM bandwidth not "
            "measured; retry `qwenfit probe --measure` later or give --ram-bandwidth"
        )
        if cached is not None:
            return RamBandwidth(cached, f"{described}, expired; {why}")
        return RamBandwidth(None, why)
    run = measurer or measure
    value = max(run() for _ in range(RUNS))
    when = dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
    with contextlib.suppress(OSError):  # a read-only home must not stop the probe
        write_atomic(
            cache_dir() / CACHE_NAME,
            json.dumps({"key": _key(), "bytes_per_s": value, "measured_at": when, "load": busy}),
        )
    return RamBandwidth(value, _describe(value, when[:16].replace("T", " "), busy))
