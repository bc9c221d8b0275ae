"""Byte, bandwidth and token quantities: parsing what users type, and formatting for people.

Units are said once, here: `KB`, `MB`, `GB`, `TB` are powers of 1000 and `KiB`, `MiB`, `GiB`,
`TiB` powers of 1024, for sizes and bandwidths alike (IEC 80000-13). A bare number is bytes.
Sizes are int bytes inside qwenfit; floats appear only in human-readable text. Every parser
bounds its result, so a 400-digit number is a usage error rather than an overflow.
"""

from __future__ import annotations

import math
import re

from qwenfit.errors import UsageError
from qwenfit.settings import MAX_CONTEXT

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4
PiB = 1024**5
KB = 1000
MB = 1000**2
GB = 1000**3
TB = 1000**4

# Larger than any machine or file qwenfit sizes; keeps every product of sizes finite.
MAX_BYTES = 1 << 60

_UNITS = {
    "": 1,
    "b": 1,
    "k": KB,
    "kb": KB,
    "kib": KiB,
    "m": MB,
    "mb": MB,
    "mib": MiB,
    "g": GB,
    "gb": GB,
    "gib": GiB,
    "t": TB,
    "tb": TB,
    "tib": TiB,
}
_NUMBER = r"(\d{1,30}(?:\.\d{1,30})?)"
_SIZE_RE = re.compile(rf"^\s*{_NUMBER}\s*([a-zA-Z]*)\s*$")
_CONTEXT_RE = re.compile(rf"^\s*{_NUMBER}\s*([kKmM]?)\s*$")
_PERCENT_RE = re.compile(rf"^\s*{_NUMBER}\s*%\s*$")


def _number(text: str, what: str, pattern: re.Pattern[str], example: str) -> tuple[float, str]:
    m = pattern.match(text) if len(text) <= 80 else None
    if not m:
        shown = text if len(text) <= 40 else text[:37] + "..."
        if re.match(r"^\s*\d{31,}", text):
            raise UsageError(f"invalid {what} {shown!r}: the number is too large")
        raise UsageError(f"invalid {what} {shown!r}: use {example}")
    value = float(m.group(1))
    if not math.isfinite(value):
        raise UsageError(f"invalid {what} {text!r}: use {example}")
    return value, (m.group(2) if m.lastindex and m.lastindex >= 2 else "").lower()


def parse_size(text: str | int, *, what: str = "size", allow_zero: bool = False) -> int:
    """'24GB' (24 x 10^9), '24GiB' (24 x 2^30), '512MiB' or a plain byte count -> bytes."""
    example = "a number with a unit, e.g. 24GB, 24GiB or 512MiB"
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise UsageError(f"invalid {what} {text!r}: use {example}")
    if isinstance(text, int):
        result = text
    else:
        value, unit = _number(text, what, _SIZE_RE, example)
        if unit not in _UNITS:
            raise UsageError(f"invalid {what} {text!r}: unknown unit {unit!r}; use {example}")
        result = int(value * _UNITS[unit]) if value * _UNITS[unit] <= MAX_BYTES else MAX_BYTES + 1
    if result < 0 or (result == 0 and not allow_zero):
        raise UsageError(f"invalid {what} {text!r}: must be greater than zero")
    if result > MAX_BYTES:
        raise UsageError(f"invalid {what} {text!r}: must be at most 2^60 bytes (1 EiB)")
    return result


def parse_bandwidth(text: str | int, *, what: str = "bandwidth") -> int:
    """'80GB/s' (80 x 10^9 bytes/s), '75GiB/s', or bytes per second -> bytes per second."""
    raw = text.strip().removesuffix("/s") if isinstance(text, str) else text
    return parse_size(raw, what=what)


def parse_percent(text: str, *, what: str) -> float | None:
    """'10%' -> 10.0; None when `text` is not a percentage. Allowed: [0, 100)."""
    if "%" not in text:
        return None
    value, _ = _number(text, what, _PERCENT_RE, "a size (1GiB) or a percentage (10%)")
    if not 0 <= value < 100:
        raise UsageError(f"invalid {what} {text!r}: the percentage must be in [0, 100)")
    return value


def parse_context(text: str | int, *, limit: int = MAX_CONTEXT) -> int:
    """A token count: '32768', '32k', '128K' (k = 1024 tokens, as runtimes count), '1m'."""
    example = "a token count such as 32768, 32k or 128K"
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise UsageError(f"invalid context {text!r}: use {example}")
    if isinstance(text, int):
        tokens = text
    else:
        value, unit = _number(text, "context", _CONTEXT_RE, example)
        scaled = value * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]
        tokens = int(scaled) if scaled <= limit else limit + 1
    if tokens <= 0:
        raise UsageError(f"invalid context {text!r}: must be at least 1 token")
    if tokens > limit:
        raise UsageError(f"invalid context {text!r}: must be at most {limit} tokens")
    return tokens


def format_bytes(n: int) -> str:
    """Human-readable binary size, e.g. '5.24 GiB'."""
    if n >= TiB * 10:
        return f"{n / TiB:.1f} TiB"
    if n >= GiB:
        return f"{n / GiB:.2f} GiB"
    if n >= MiB:
        return f"{n / MiB:.1f} MiB"
    return f"{n / KiB:.0f} KiB"


def format_context(tokens: int) -> str:
    """'32k' for 32768, else the plain number."""
    return f"{tokens // 1024}k" if tokens % 1024 == 0 and tokens >= 1024 else str(tokens)
