"""Does the download fit the disk? The folder each runtime stores models in, its free space,
and how long the download takes at a given speed.

Folders: the Hugging Face cache for llama.cpp `-hf`, vLLM, transformers and mlx-lm
(`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`, as huggingface_hub's
`constants.py` resolves it; for llama.cpp `LLAMA_CACHE` overrides it), and Ollama's models folder
(`OLLAMA_MODELS`, else `~/.ollama/models`, Ollama's `envconfig/config.go`). `--disk PATH`
checks another folder, `--disk SIZE` a stated amount of free space.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import adapter
from qwenfit.errors import UsageError
from qwenfit.units import GB, parse_size


class DiskFit(BaseModel):
    """The download against the free space where it will land."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    folder: str | None = Field(description="Where the files land; null for --disk SIZE.")
    download_bytes: int = Field(ge=0)
    download_exact: bool
    free_bytes: int = Field(ge=0)
    fits: bool
    missing_bytes: int = Field(ge=0, description="How much more free space it needs.")
    download_seconds: float | None = Field(None, description="At --download-speed, when given.")
    reason: str


def model_folder(runtime: str, env: dict[str, str] | None = None) -> Path | None:
    """Where `runtime` downloads models to on this machine; None when that depends on a home
    folder this process does not have (HOME unset and no passwd entry for the uid)."""
    e = os.environ if env is None else env
    if e.get("HOME"):
        home = Path(e["HOME"])
    else:
        try:
            home = Path.home()
        except (RuntimeError, KeyError, OSError):
            home = None
    a = adapter(runtime)
    if a.model_folder_env and e.get(a.model_folder_env):
        return Path(e[a.model_folder_env])
    if a.home_model_folder:
        return None if home is None else home / a.home_model_folder
    if e.get("HF_HUB_CACHE"):
        return Path(e["HF_HUB_CACHE"])
    if e.get("HF_HOME"):
        return Path(e["HF_HOME"]) / "hub"
    xdg = e.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "huggingface" / "hub"
    return None if home is None else home / ".cache" / "huggingface" / "hub"


def free_space(folder: Path) -> int:
    """Free bytes on the file system that holds `folder` (or its nearest existing parent)."""
    p = folder.expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError as e:
        raise UsageError(f"cannot read the free space of {str(folder)!r} ({e.strerror})") from None


def parse_disk(value: str) -> tuple[Path | None, int | None]:
    """`--disk`: a folder (free space read from it) or a size ('200GB')."""
    try:
        return None, parse_size(value, what="--disk", allow_zero=True)
    except UsageError:
        return Path(value), None


def check_disk(
    download_bytes: int,
    download_exact: bool,
    runtime: str,
    *,
    disk: str | None = None,
    download_speed: int | None = None,
) -> DiskFit:
    """Whether `download_bytes` fit the runtime's model folder, or `disk` (a folder or size)."""
    folder, size = parse_disk(disk) if disk is not None else (model_folder(runtime), None)
    free = size if size is not None else free_space(folder)  # type: ignore[arg-type]
    missing = max(0, download_bytes - free)
    seconds = download_bytes / download_speed if download_speed else None
    where = str(folder) if folder is not None else "the stated disk"
    reason = (
        "fits"
        if not missing
        else f"the download needs {missing / GB:.2f} GB more free space in {where}"
    )
    return DiskFit(
        folder=None if folder is None else str(folder),
        download_bytes=download_bytes,
        download_exact=download_exact,
        free_bytes=free,
        fits=not missing,
        missing_bytes=missing,
        download_seconds=None if seconds is None else round(seconds, 1),
        reason=reason,
    )
