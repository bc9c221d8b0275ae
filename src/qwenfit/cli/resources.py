"""The process's own limits: an address-space limit (`ulimit -v`) too small to run at all is
refused up front, and running out of memory later is recognised in whatever form it takes.

Under a tight RLIMIT_AS an allocation can fail as MemoryError, as an ImportError ("failed to map
segment from shared object"), as a SystemError, or inside pydantic-core's Rust code, which
aborts the process (exit 134) with no chance to print a line. Measured on Linux x86-64 (Python
3.11, `qwenfit recommend --gpu 'RTX 4090' --ram 64GB --json` under `ulimit -v N`): an abort at
40,000 KiB, an ImportError traceback at 20,000 KiB, one-line MemoryErrors between, success from
42,000 KiB. `MIN_ADDRESS_SPACE` is three times that, so the band where the Rust abort can
happen is refused with one line before anything is imported.
"""

from __future__ import annotations

import errno

from qwenfit.units import MiB

MIN_ADDRESS_SPACE = 128 * MiB
OUT_OF_MEMORY = "out of memory (is a memory limit such as ulimit -v set?)"


def address_space_problem() -> str | None:
    """Why this process cannot run under its address-space limit, or None."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft >= MIN_ADDRESS_SPACE:
        return None
    return (
        f"the address-space limit (ulimit -v) is {soft // MiB} MiB; qwenfit needs at least "
        f"{MIN_ADDRESS_SPACE // MiB} MiB"
    )


def is_out_of_memory(e: BaseException) -> bool:
    """Whether `e` is an allocation failure in disguise (see the module docstring)."""
    if isinstance(e, MemoryError):
        return True
    if isinstance(e, OSError) and e.errno == errno.ENOMEM:
        return True
    text = str(e).lower()
    return isinstance(e, (ImportError, SystemError)) and (
        "failed to map segment" in text or "cannot allocate memory" in text or "memory" in text
    )
