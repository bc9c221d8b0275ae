"""The data files qwenfit ships (`data/` of the checkout, `qwenfit/data/` in the wheel).

Every stage reads its reviewed data through `data_text()`, so the packaging rule lives in one
place: the installed wheel's copy first, the checkout's copy for editable installs.
"""

from __future__ import annotations

from pathlib import Path

from qwenfit.errors import SpecError

_PACKAGED = Path(__file__).resolve().parent / "data"
_CHECKOUT = Path(__file__).resolve().parents[2] / "data"


def data_text(name: str) -> str:
    """The text of shipped data file `name` (e.g. 'gpus.json')."""
    for folder in (_PACKAGED, _CHECKOUT):
        path = folder / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise SpecError(f"{name} is missing from this installation; reinstall qwenfit")
