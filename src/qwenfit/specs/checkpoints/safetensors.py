"""Safetensors checkpoints: the 8-byte length and JSON header of each file, never the data."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

from qwenfit.errors import BadFileError, UsageError
from qwenfit.inputs import open_regular, os_reason, parse_json, printable, read_json, shown
from qwenfit.specs.checkpoints.config import check_model_type, number, read_config
from qwenfit.specs.checkpoints.summary import AUX_SUFFIXES, MTP_PREFIXES, VISION_PREFIXES, Summary
from qwenfit.units import MAX_BYTES, MiB

MAX_SAFETENSORS_HEADER = 100 * MiB  # the safetensors format itself caps headers at 100 MB
MAX_INDEX_BYTES = 16 * MiB  # a model.safetensors.index.json is ~100 KB
MAX_RANK = 8  # tensors of these checkpoints have at most 5 dimensions
QUANT_BITS = (2, 3, 4, 8)  # GPTQ / AWQ packings of an int32


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file: the 8-byte length, then the JSON; no data."""
    f, size = open_regular(path, what="safetensors file", max_bytes=MAX_BYTES)
    try:
        with f:
            head = f.read(8)
            if len(head) < 8:
                raise BadFileError(f"{shown(path)}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_SAFETENSORS_HEADER or n + 8 > size:
                raise BadFileError(
                    f"{shown(path)}: corrupt safetensors header (length {n}; the file has "
                    f"{size} bytes, headers are at most {MAX_SAFETENSORS_HEADER})"
                )
            raw = f.read(n)
    except OSError as e:
        raise BadFileError(f"cannot read {shown(path)}: {os_reason(e)}") from None
    header = parse_json(raw, what="safetensors header of", origin=shown(path))
    if not isinstance(header, dict):
        raise BadFileError(f"{shown(path)}: corrupt safetensors header (not an object)")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        _check_tensor_entry(path.name, name, info, data_size)
    return header


def _check_tensor_entry(file: str, name: str, info: Any, data_size: int | None) -> None:
    ok = (
        isinstance(info, dict)
        and isinstance(info.get("dtype"), str)
        and isinstance(info.get("shape"), list)
        and len(info["shape"]) <= MAX_RANK
        and all(type(d) is int and 0 <= d <= MAX_BYTES for d in info["shape"])
        and isinstance(info.get("data_offsets"), list)
        and len(info["data_offsets"]) == 2
        and all(type(o) is int for o in info["data_offsets"])
        and 0 <= info["data_offsets"][0] <= info["data_offsets"][1]
    )
    if not ok:
        raise BadFileError(
            f"{file}: corrupt safetensors header entry for tensor {name!r} (needs dtype, a "
            "shape of at most 8 whole numbers and data_offsets [start, end] with start <= end)"
        )
    if data_size is not None and info["data_offsets"][1] > data_size:
        raise BadFileError(f"{file}: tensor {name!r} lies beyond the end of the file (truncated?)")


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def safetensors_files(folder: Path) -> list[Path]:
    """The shards named by an index file, or every *.safetensors file of the folder."""
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        index = read_json(indexes[0], what="safetensors index", max_bytes=MAX_INDEX_BYTES)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) and _plain_name(v) for v in weight_map.values()
        ):
            raise BadFileError(
                f"safetensors index {shown(indexes[0])}: weight_map must be an object of "
                "tensor name -> shard file name (a file of this folder)"
            )
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (folder / s).exists()]
        if missing:
            raise UsageError(
                f"{printable(folder)}: shard {printable(missing[0])} named by "
                f"{printable(indexes[0].name)} "
                "is missing"
            )
        return [folder / s for s in shards]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UsageError(f"{printable(folder)}: no *.safetensors files next to config.json")
    return files


def summarize_folder(folder: Path) -> Summary:
    """A local Hugging Face checkpoint: config.json plus the headers of its safetensors files."""
    config = read_config(folder)
    check_model_type(config)  # fail before reading any header
    files = safetensors_files(folder)
    headers = {f.name: read_safetensors_header(f) for f in files}
    sizes = sum(f.stat().st_size for f in files)
    return summarize_safetensors(config, headers, str(folder.resolve()), sizes)


def summarize_safetensors(
    config: dict[str, Any],
    headers: dict[str, dict[str, Any]],
    origin: str,
    download_bytes: int | None,
) -> Summary:
    """Sort every tensor of the headers into text / vision / MTP and add up elements and bytes.

    Quantized checkpoints: GPTQ/AWQ `qweight` packs 32/bits values per int32 (counted as that
    many parameters); their zeros, scales and FP8 scale tensors are bytes but not parameters.
    """
    check_model_type(config)
    nested = config.get("text_config")
    text_cfg: dict[str, Any] = nested if isinstance(nested, dict) else {}
    tied = bool(config.get("tie_word_embeddings", text_cfg.get("tie_word_embeddings", False)))
    qcfg = config.get("quantization_config") or text_cfg.get("quantization_config") or {}
    if not isinstance(qcfg, dict):
        qcfg = {}
    bits = number(qcfg.get("bits", 4), "quantization_config.bits", "config.json")
    if bits not in QUANT_BITS:
        raise BadFileError(
            f"config.json: quantization_config.bits is {bits}; allowed: "
            + ", ".join(map(str, QUANT_BITS))
        )
    s = Summary(format="safetensors", origin=origin, config=config, download_bytes=download_bytes)
    seen: set[str] = set()
    for file, header in headers.items():
        for name, info in header.items():
            if name == "__metadata__":
                continue
            _check_tensor_entry(file, name, info, None)
            if name in seen:
                raise UsageError(f"{file}: tensor {name!r} appears in two files")
            seen.add(name)
            if tied and name == "lm_head.weight":
                continue  # tied: transformers reuses the embedding
            dtype = info["dtype"]
            start, end = info["data_offsets"]
            numel = math.prod(info["shape"])
            elements = numel
            if name.endswith(".qweight"):
                s.quant_method = str(qcfg.get("quant_method", "gptq")).lower()
                s.quant_bits = bits
                elements = numel * (32 // bits)
            elif name.endswith(AUX_SUFFIXES):
                elements = 0
            if name.startswith(VISION_PREFIXES):
                s.vision.add(elements, end - start, dtype)
            elif name.startswith(MTP_PREFIXES):
                s.mtp.add(elements, end - start, dtype)
            else:
                s.text.add(elements, end - start, dtype)
                if ".mlp.experts." in name:
                    s.routed.add(elements, end - start, dtype)
                if name.endswith("embed_tokens.weight"):
                    s.embedding.add(elements, end - start, dtype)
    if s.text.elements == 0:
        raise UsageError(f"{origin}: the safetensors files hold no language-model tensors")
    return s


def safetensors_precision(s: Summary) -> str:
    """'gptq-int4' for packed 4-bit weights, 'fp8' for float8 weights, else the main float."""
    if s.quant_method:
        if s.quant_bits != 4:
            raise UsageError(
                f"{s.quant_method} {s.quant_bits}-bit checkpoints are not supported; "
                "qwenfit knows 4-bit GPTQ/AWQ, FP8 and float checkpoints"
            )
        return "gptq-int4" if s.quant_method == "gptq" else f"{s.quant_method}-int4"
    dominant = max(s.text.by_dtype.items(), key=lambda kv: kv[1])[0]
    if dominant.startswith("F8_"):
        return "fp8"
    if dominant in ("BF16", "F16", "F32", "F64"):
        return dominant.lower()
    raise UsageError(f"tensors stored as {dominant} are not supported")
