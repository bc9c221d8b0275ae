"""What a checkpoint's metadata says, reduced to what sizing needs: `Summary`.

Both formats (safetensors headers, GGUF headers) are reduced to this JSON-able record, so the
Hub client can cache it and one builder (`rows`) turns any of them into a spec row.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

_NAME_BAD = re.compile(r"[^A-Za-z0-9._:/\-]+")

# Tensors that hold quantization scales or indices, not parameters (GPTQ/AWQ, FP8 block scales).
AUX_SUFFIXES = (".qzeros", ".scales", ".g_idx", "_scale_inv", ".weight_scale", ".input_scale")
VISION_PREFIXES = ("model.visual.", "visual.", "model.vision_tower.", "vision_tower.")
MTP_PREFIXES = ("mtp.", "model.mtp.")


class TensorGroup(BaseModel):
    """Parameters and bytes of a set of tensors, with bytes per stored dtype."""

    model_config = ConfigDict(defer_build=True)  # built when a checkpoint is read, not at import

    elements: int = 0
    bytes: int = 0
    by_dtype: dict[str, int] = {}

    def add(self, elements: int, nbytes: int, dtype: str) -> None:
        self.elements += elements
        self.bytes += nbytes
        self.by_dtype[dtype] = self.by_dtype.get(dtype, 0) + nbytes


class Summary(BaseModel):
    """What a checkpoint's metadata says, reduced to what sizing needs (cached as JSON)."""

    model_config = ConfigDict(defer_build=True)

    format: Literal["safetensors", "gguf"]
    origin: str  # a local path or a Hub URL, for the spec's source
    config: dict[str, Any]  # config.json, or the GGUF's scalar metadata
    text: TensorGroup = TensorGroup()  # decoder incl. embedding / lm_head, MTP excluded
    routed: TensorGroup = TensorGroup()  # routed experts (part of `text`), for active params
    embedding: TensorGroup = TensorGroup()
    vision: TensorGroup = TensorGroup()
    mtp: TensorGroup = TensorGroup()
    vision_config: dict[str, Any] | None = None  # GGUF: the mmproj's clip.vision.* metadata
    quant_method: str | None = None  # "gptq", "awq" (packed int weights), from the tensors
    quant_bits: int | None = None
    download_bytes: int | None = None


def safe_name(raw: str) -> str:
    """A model name matching ModelSpec's pattern: odd characters become '-'."""
    name = _NAME_BAD.sub("-", raw).strip("-")
    if not name or not name[0].isalnum():
        name = "m" + name
    return name
