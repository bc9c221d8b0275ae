"""Byte and token quantities: parsing what users type, and formatting for people.

Sizes are always int bytes inside qwenfit; floats appear only in human-readable text.
"""

from __future__ import annotations

import re

from qwenfit.errors import UsageError

KiB = 1024
MiB = 1024**2
GiB = 1024**3

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": KiB,
    "kb": KiB,
    "kib": KiB,
    "m": MiB,
    "mb": MiB,
    "mib": MiB,
    "g": GiB,
    "gb": GiB,
    "gib": GiB,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_CONTEXT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Parse '24GB', '24G', '24GiB', '512MiB' or a plain byte count into bytes.

    Memory is sold in binary units (a "24 GB" card and a "32 GB" DIMM hold 24 and 32 GiB), so
    GB and GiB both mean 2^30 bytes here, as in JEDEC's usage. A bare number is bytes.
    """
    if isinstance(text, int):
        value: float = text
        unit = ""
    else:
        m = _SIZE_RE.match(text)
        if not m or m.group(2).lower() not in _SIZE_UNITS:
            raise UsageError(
                f"invalid {what} {text!r}: use a number with a unit, e.g. 24GB, 24GiB or 512MiB"
            )
        value, unit = float(m.group(1)), m.group(2).lower()
    result = int(value * _SIZE_UNITS[unit])
    if result <= 0:
        raise UsageError(f"invalid {what} {text!r}: must be greater than zero")
    return result


def parse_context(text: str | int) -> int:
    """Parse a token count: '32768', '32k', '128K' (k = 1024 tokens, as runtimes count), '1m'."""
    if isinstance(text, int):
        tokens = text
    else:
        m = _CONTEXT_RE.match(text)
        if not m:
            raise UsageError(
                f"invalid context {text!r}: use a token count such as 32768, 32k or 128K"
            )
        scale = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
        tokens = int(float(m.group(1)) * scale)
    if tokens <= 0:
        raise UsageError(f"invalid context {text!r}: must be at least 1 token")
    return tokens


def format_bytes(n: int) -> str:
    """Human-readable binary size, e.g. '5.24 GiB'."""
    if n >= GiB:
        return f"{n / GiB:.2f} GiB"
    if n >= MiB:
        return f"{n / MiB:.1f} MiB"
    return f"{n / KiB:.0f} KiB"


def format_context(tokens: int) -> str:
    """'32k' for 32768, else the plain number."""
    return f"{tokens // 1024}k" if tokens % 1024 == 0 and tokens >= 1024 else str(tokens)
