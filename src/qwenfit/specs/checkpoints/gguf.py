"""GGUF files: the header and tensor table (`gguf.GGUFReader` memory-maps the file and touches
only the header pages), split files, and the mmproj's vision metadata."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

from qwenfit.errors import UsageError
from qwenfit.specs.architecture import MoEConfig, VisionConfig
from qwenfit.specs.checkpoints.summary import Summary

GGUF_ARCHS = ("qwen35", "qwen35moe")
SPLIT_GGUF = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$")


def gguf_stem(filename: str) -> str:
    m = SPLIT_GGUF.match(filename)
    return m["stem"] if m else filename.removesuffix(".gguf").removesuffix(".GGUF")


def gguf_parts(path: Path) -> list[Path]:
    """All parts of a split GGUF (`name-00001-of-00003.gguf`, any part given), else [path]."""
    m = SPLIT_GGUF.match(path.name)
    if not m:
        return [path]
    count = int(m["count"])
    names = [f"{m['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    parts = [path.with_name(n) for n in names]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise UsageError(f"{path}: split part {missing[0]} is missing")
    return parts


def _field_value(field: Any) -> Any:
    """A GGUF metadata value as plain JSON: numbers, strings, bools and lists of them."""
    value = field.contents()
    if isinstance(value, list):
        return [v.item() if hasattr(v, "item") else v for v in value]
    return value.item() if hasattr(value, "item") else value


def read_gguf(path: Path) -> tuple[dict[str, Any], list[tuple[str, str, int, int]], int]:
    """(metadata without the tokenizer arrays, [(name, type, elements, bytes)], data offset)."""
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError, IndexError, KeyError, TypeError, struct.error) as e:
        raise UsageError(f"{path}: not a readable GGUF file ({e})") from None
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith(("tokenizer.", "GGUF.")):
            continue
        try:
            meta[key] = _field_value(field)
        except (ValueError, TypeError, IndexError):
            continue
    tensors = [
        (t.name, t.tensor_type.name, int(t.n_elements), int(t.n_bytes)) for t in reader.tensors
    ]
    return meta, tensors, int(reader.data_offset)


def summarize_gguf(
    parts: list[Path],
    mmproj: list[Path] | None = None,
    *,
    origin: str | None = None,
    download_bytes: int | None = None,
) -> Summary:
    """A text GGUF (all split parts) and optionally its mmproj, from headers only."""
    meta, tensors = {}, []
    for i, p in enumerate(parts):
        m, t, _ = read_gguf(p)
        if i == 0:
            meta = m
        tensors += t
    mm = None
    if mmproj:
        mm_meta: dict[str, Any] = {}
        mm_tensors: list[tuple[str, str, int, int]] = []
        for i, p in enumerate(mmproj):
            m, t, _ = read_gguf(p)
            mm_meta = m if i == 0 else mm_meta
            mm_tensors += t
        mm = (mm_meta, mm_tensors)
    size = download_bytes
    if size is None:
        size = sum(p.stat().st_size for p in parts)
    return summarize_gguf_metadata(meta, tensors, mm, origin or str(parts[0].resolve()), size)


def summarize_gguf_metadata(
    meta: dict[str, Any],
    tensors: list[tuple[str, str, int, int]],
    mmproj: tuple[dict[str, Any], list[tuple[str, str, int, int]]] | None,
    origin: str,
    download_bytes: int | None,
) -> Summary:
    """Sort GGUF tensors: blk.N for N >= block_count - nextn_predict_layers is the MTP block.

    llama.cpp's converter appends the MTP layers after the decoder and counts them in
    `{arch}.block_count` (conversion/qwen.py, `_QwenMtpMixin`).
    """
    arch_name = meta.get("general.architecture")
    if arch_name == "clip":
        raise UsageError(f"{origin}: this is an mmproj (vision) GGUF; give the model file")
    if arch_name not in GGUF_ARCHS:
        raise UsageError(
            f"found GGUF architecture {arch_name!r}; qwenfit sizes Qwen3.5 checkpoints only"
        )
    blocks = int(meta.get(f"{arch_name}.block_count", 0))
    nextn = int(meta.get(f"{arch_name}.nextn_predict_layers", 0) or 0)
    first_mtp = blocks - nextn
    has_output = any(t[0] == "output.weight" for t in tensors)
    config = {**meta, "qwenfit.has_output": has_output}  # untied lm_head, for the architecture
    s = Summary(format="gguf", origin=origin, config=config, download_bytes=download_bytes)
    for name, qtype, elements, nbytes in tensors:
        m = re.match(r"blk\.(\d+)\.", name)
        if m and int(m.group(1)) >= first_mtp:
            s.mtp.add(elements, nbytes, qtype)
            continue
        s.text.add(elements, nbytes, qtype)
        if "_exps." in name:
            s.routed.add(elements, nbytes, qtype)
        if name == "token_embd.weight":
            s.embedding.add(elements, nbytes, qtype)
    if s.embedding.elements == 0:
        raise UsageError(f"{origin}: GGUF has no token_embd.weight tensor")
    if mmproj is not None:
        mm_meta, mm_tensors = mmproj
        if mm_meta.get("general.architecture") != "clip" or not any(
            k.startswith("clip.vision.") for k in mm_meta
        ):
            raise UsageError("--mmproj file is not a vision mmproj GGUF")
        for name, qtype, elements, nbytes in mm_tensors:
            s.vision.add(elements, nbytes, qtype)
            if name == "v.position_embd.weight":
                mm_meta = {**mm_meta, "qwenfit.position_embd_elements": elements}
        s.vision_config = mm_meta
    return s


def gguf_fields(meta: dict[str, Any], s: Summary) -> dict[str, Any]:
    a = meta["general.architecture"]

    def need(key: str) -> Any:
        value = meta.get(f"{a}.{key}")
        if value is None:
            raise UsageError(f"GGUF lacks {a}.{key}; cannot size this checkpoint")
        return value

    def one(value: Any) -> int:
        """Per-layer arrays (head_count_kv of hybrid models): the attention layers' value."""
        if isinstance(value, list):
            nonzero = [int(v) for v in value if int(v)]
            return max(nonzero) if nonzero else 0
        return int(value)

    hidden = int(need("embedding_length"))
    nextn = int(meta.get(f"{a}.nextn_predict_layers", 0) or 0)
    heads = one(need("attention.head_count"))
    value_heads = int(need("ssm.time_step_rank"))
    moe = None
    if a == "qwen35moe":
        moe = MoEConfig(
            num_experts=int(need("expert_count")),
            num_experts_per_tok=int(need("expert_used_count")),
            moe_intermediate_size=int(need("expert_feed_forward_length")),
            shared_expert_intermediate_size=int(
                meta.get(f"{a}.expert_shared_feed_forward_length", 0) or 0
            ),
        )
    return {
        "hidden_size": hidden,
        "num_hidden_layers": int(need("block_count")) - nextn,
        "full_attention_interval": int(meta.get(f"{a}.full_attention_interval", 4)),
        "num_attention_heads": heads,
        "num_key_value_heads": one(meta.get(f"{a}.attention.head_count_kv", heads)),
        "head_dim": int(meta.get(f"{a}.attention.key_length") or hidden // heads),
        "linear_num_key_heads": int(need("ssm.group_count")),
        "linear_num_value_heads": value_heads,
        "linear_key_head_dim": int(need("ssm.state_size")),
        "linear_value_head_dim": int(need("ssm.inner_size")) // value_heads,
        "linear_conv_kernel_dim": int(need("ssm.conv_kernel")),
        "intermediate_size": None if moe else one(need("feed_forward_length")),
        "moe": moe,
        "vocab_size": s.embedding.elements // hidden,
        "tie_word_embeddings": not meta.get("qwenfit.has_output", False),
        "mtp_num_hidden_layers": nextn if s.mtp.elements else 0,
        "max_position_embeddings": int(need("context_length")),
    }


def vision_from_mmproj(mm: dict[str, Any]) -> VisionConfig:
    def need(key: str) -> int:
        value = mm.get(f"clip.vision.{key}")
        if value is None:
            raise UsageError(f"mmproj GGUF lacks clip.vision.{key}")
        return int(value)

    hidden = need("embedding_length")
    pos = int(mm.get("qwenfit.position_embd_elements", 0)) // hidden
    patch = need("patch_size")
    if pos == 0:
        pos = (need("image_size") // patch) ** 2
    return VisionConfig(
        depth=need("block_count"),
        hidden_size=hidden,
        intermediate_size=need("feed_forward_length"),
        num_heads=need("attention.head_count"),
        out_hidden_size=need("projection_dim"),
        patch_size=patch,
        temporal_patch_size=2,  # the converter supports only 2 (split into two conv2d kernels)
        spatial_merge_size=int(mm.get("clip.vision.spatial_merge_size", 2)),
        in_channels=3,
        num_position_embeddings=pos,
    )


def gguf_precision(meta: dict[str, Any], s: Summary) -> str:
    """The GGUF's `general.file_type` as a precision name ('q4_k_m', 'bf16', 'iq2_xxs')."""
    import gguf

    ftype = meta.get("general.file_type")
    if ftype is not None:
        try:
            name = gguf.LlamaFileType(int(ftype)).name
        except ValueError:
            name = ""
        if name and name != "GUESSED":
            return name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()
    # No file type: the type holding most bytes.
    dominant = max(s.text.by_dtype.items(), key=lambda kv: kv[1])[0]
    return dominant.lower()


def bits_per_weight(precision: str) -> float | None:
    """Bits per weight of a GGUF precision's main tensor type (Q4_K for q4_k_m)."""
    import gguf

    base = re.sub(r"_(S|M|L|XL)$", "", precision.upper()) if "_K" in precision.upper() else None
    for cand in (precision.upper(), base):
        if cand and cand in gguf.GGMLQuantizationType.__members__:
            block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[cand]]
            return 8 * size / block
    return None
