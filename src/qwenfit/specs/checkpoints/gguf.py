"""GGUF files: the header and tensor table (`gguf.GGUFReader` memory-maps the file and touches
only the header pages), split files, and the mmproj's vision metadata.

Over 400 lines because the bounded header pre-scan (every count checked against the file size
before the `gguf` library allocates) belongs with the reader it guards.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

from qwenfit.errors import BadFileError, UsageError
from qwenfit.inputs import confine, open_regular, printable, shown
from qwenfit.specs.architecture import MoEConfig, VisionConfig
from qwenfit.specs.checkpoints.config import FIELD_CEILINGS, check_divisible, number
from qwenfit.specs.checkpoints.summary import Summary
from qwenfit.units import MAX_BYTES

GGUF_ARCHS = ("qwen35", "qwen35moe")
# Bounds of the header pre-scan (llama.cpp's gguf.cpp: GGML_MAX_DIMS = 4).
MAX_GGUF_DIMS = 4
MAX_GGUF_ARRAY_NESTING = 4
MAX_GGUF_ELEMENTS = 1 << 50  # elements of one tensor
MAX_SPLIT_PARTS = 1000
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
SPLIT_GGUF = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$")


def gguf_stem(filename: str) -> str:
    m = SPLIT_GGUF.match(filename)
    return m["stem"] if m else filename.removesuffix(".gguf").removesuffix(".GGUF")


def gguf_parts(path: Path) -> list[Path]:
    """All parts of a split GGUF (`name-00001-of-00003.gguf`, any part given), else [path]."""
    m = SPLIT_GGUF.match(path.name)
    if not m:
        return [path]
    count, part = int(m["count"]), int(m["part"])
    if not 1 <= part <= count <= MAX_SPLIT_PARTS:
        raise BadFileError(
            f"{shown(path)}: split name says part {part} of {count}; parts are numbered "
            f"1 to the count, at most {MAX_SPLIT_PARTS}"
        )
    names = [f"{m['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    parts = [path.with_name(n) for n in names]
    missing = [p.name for p in parts if not p.exists()]
    if missing:
        raise UsageError(f"{printable(path)}: split part {printable(missing[0])} is missing")
    return parts


def _field_value(field: Any) -> Any:
    """A GGUF metadata value as plain JSON: numbers, strings, bools and lists of them."""
    value = field.contents()
    if isinstance(value, list):
        return [v.item() if hasattr(v, "item") else v for v in value]
    return value.item() if hasattr(value, "item") else value


class _Scan:
    """A bounded walk over a GGUF header: every length is checked against the bytes left
    before anything is read or allocated, so a 50-byte file cannot claim 2^40 entries."""

    def __init__(self, buf: Any, size: int, origin: str) -> None:
        self.buf, self.size, self.origin, self.pos = buf, size, origin, 0

    def fail(self, what: str) -> BadFileError:
        return BadFileError(f"{self.origin}: not a valid GGUF file ({what} at byte {self.pos})")

    def take(self, n: int, what: str) -> int:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"{what} runs past the end of the file ({self.size} bytes)")
        start = self.pos
        self.pos += n
        return start

    def u(self, fmt: str, what: str) -> int:
        start = self.take(struct.calcsize(fmt), what)
        return int(struct.unpack_from(fmt, self.buf, start)[0])

    def string(self, what: str) -> None:
        self.take(self.u("<Q", what + " length"), what)

    def count(self, n: int, least: int, what: str) -> int:
        """`n` items of at least `least` bytes each must fit in what is left of the file."""
        if n * least > self.size - self.pos:
            raise self.fail(f"{what} claims {n} entries, more than the file can hold")
        return n

    def value(self, vtype: int, what: str, depth: int = 0) -> None:
        if vtype in _SCALAR_SIZES:
            self.take(_SCALAR_SIZES[vtype], what)
        elif vtype == _STRING:
            self.string(what)
        elif vtype == _ARRAY:
            if depth >= MAX_GGUF_ARRAY_NESTING:
                raise self.fail(f"{what}: arrays nested deeper than {MAX_GGUF_ARRAY_NESTING}")
            etype = self.u("<I", what + " type")
            n = self.u("<Q", what + " length")
            least = _SCALAR_SIZES.get(etype, 8 if etype == _STRING else 12)
            if etype not in _SCALAR_SIZES and etype not in (_STRING, _ARRAY):
                raise self.fail(f"{what}: unknown array type {etype}")
            self.count(n, least, what)
            if etype in _SCALAR_SIZES:
                self.take(n * least, what)
            else:
                for _ in range(n):
                    self.value(etype, what, depth + 1)
        else:
            raise self.fail(f"{what}: unknown value type {vtype}")


def prescan_gguf(path: Path) -> None:
    """Check a GGUF header's every length against the file size before gguf reads it."""
    import mmap

    f, size = open_regular(path, what="GGUF file", max_bytes=MAX_BYTES)
    with f:
        if size < 24:
            raise BadFileError(f"{shown(path)}: not a GGUF file (only {size} bytes)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            scan = _Scan(buf, size, shown(path))
            if bytes(buf[:4]) != b"GGUF":
                raise BadFileError(f"{shown(path)}: not a GGUF file (no GGUF magic)")
            scan.pos = 4
            version = scan.u("<I", "version")
            if version not in (2, 3):
                raise BadFileError(f"{shown(path)}: GGUF version {version}; qwenfit reads 2 and 3")
            n_tensors = scan.count(scan.u("<Q", "tensor count"), 24, "tensor table")
            n_kv = scan.count(scan.u("<Q", "metadata count"), 12, "metadata")
            for _ in range(n_kv):
                scan.string("metadata key")
                scan.value(scan.u("<I", "metadata type"), "metadata value")
            for _ in range(n_tensors):
                scan.string("tensor name")
                dims = scan.u("<I", "tensor dimensions")
                if not 1 <= dims <= MAX_GGUF_DIMS:
                    raise scan.fail(f"a tensor has {dims} dimensions (1 to {MAX_GGUF_DIMS})")
                elements = 1
                for _ in range(dims):
                    elements *= scan.u("<Q", "tensor shape")
                if elements > MAX_GGUF_ELEMENTS:
                    raise scan.fail(f"a tensor claims {elements} elements")
                scan.take(4 + 8, "tensor type and offset")


def read_gguf(path: Path) -> tuple[dict[str, Any], list[tuple[str, str, int, int]], int]:
    """(metadata without the tokenizer arrays, [(name, type, elements, bytes)], data offset)."""
    import gguf

    prescan_gguf(path)
    try:
        reader = gguf.GGUFReader(confine(path, what="GGUF file"))
    except (OSError, ValueError, IndexError, KeyError, TypeError, struct.error) as e:
        raise BadFileError(f"{shown(path)}: not a readable GGUF file ({e})") from None
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
    blocks = meta.get(f"{arch_name}.block_count", 0)
    nextn = meta.get(f"{arch_name}.nextn_predict_layers", 0) or 0
    first_mtp = (
        blocks - nextn
        if type(blocks) is int and type(nextn) is int
        else FIELD_CEILINGS["num_hidden_layers"]
    )
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
    """Architecture numbers from GGUF metadata, each range-checked (`config.number`)."""
    a = meta["general.architecture"]
    origin = f"GGUF {s.origin!r}" if len(s.origin) < 100 else "GGUF"

    def num(key: str, field: str, value: Any) -> int:
        if isinstance(value, list):  # per-layer arrays (head_count_kv of hybrid models)
            if len(value) > FIELD_CEILINGS["num_hidden_layers"]:
                raise BadFileError(f"{origin}: {a}.{key} lists {len(value)} values")
            nums = [number(v, f"{a}.{key}", origin, zero=True, ceiling=field) for v in value]
            nonzero = [v for v in nums if v]
            if not nonzero:
                raise BadFileError(f"{origin}: {a}.{key} lists no non-zero value")
            return max(nonzero)
        return number(value, f"{a}.{key}", origin, ceiling=field)

    def need(key: str, field: str) -> int:
        value = meta.get(f"{a}.{key}")
        if value is None:
            raise UsageError(f"GGUF lacks {a}.{key}; cannot size this checkpoint")
        return num(key, field, value)

    def opt(key: str, field: str, default: int) -> int:
        value = meta.get(f"{a}.{key}")
        return default if value is None or value == 0 else num(key, field, value)

    hidden = need("embedding_length", "hidden_size")
    blocks = need("block_count", "num_hidden_layers")
    nextn = opt("nextn_predict_layers", "mtp_num_hidden_layers", 0)
    if nextn >= blocks:
        raise BadFileError(
            f"{origin}: {a}.nextn_predict_layers ({nextn}) must be below block_count ({blocks})"
        )
    heads = need("attention.head_count", "num_attention_heads")
    value_heads = need("ssm.time_step_rank", "linear_num_value_heads")
    inner = need("ssm.inner_size", "intermediate_size")
    if inner % value_heads:
        raise BadFileError(
            f"{origin}: {a}.ssm.inner_size ({inner}) must be a multiple of "
            f"ssm.time_step_rank ({value_heads})"
        )
    head_dim = opt("attention.key_length", "head_dim", 0)
    if not head_dim:
        if hidden % heads:
            raise BadFileError(
                f"{origin}: embedding_length ({hidden}) must be a multiple of "
                f"attention.head_count ({heads}) when attention.key_length is not given"
            )
        head_dim = hidden // heads
    moe = None
    if a == "qwen35moe":
        experts = need("expert_count", "num_experts")
        used = need("expert_used_count", "num_experts_per_tok")
        if used > experts:
            raise BadFileError(
                f"{origin}: {a}.expert_used_count ({used}) exceeds expert_count ({experts})"
            )
        moe = MoEConfig(
            num_experts=experts,
            num_experts_per_tok=used,
            moe_intermediate_size=need("expert_feed_forward_length", "moe_intermediate_size"),
            shared_expert_intermediate_size=opt(
                "expert_shared_feed_forward_length", "shared_expert_intermediate_size", 0
            ),
        )
    vocab = s.embedding.elements // hidden
    if not 1 <= vocab <= FIELD_CEILINGS["vocab_size"] or s.embedding.elements % hidden:
        raise BadFileError(
            f"{origin}: token_embd.weight has {s.embedding.elements} elements, not a whole "
            f"number of rows of {hidden} within {FIELD_CEILINGS['vocab_size']} rows"
        )
    fields = {
        "hidden_size": hidden,
        "num_hidden_layers": blocks - nextn,
        "full_attention_interval": opt("full_attention_interval", "full_attention_interval", 4),
        "num_attention_heads": heads,
        "num_key_value_heads": opt("attention.head_count_kv", "num_key_value_heads", heads),
        "head_dim": head_dim,
        "linear_num_key_heads": need("ssm.group_count", "linear_num_key_heads"),
        "linear_num_value_heads": value_heads,
        "linear_key_head_dim": need("ssm.state_size", "linear_key_head_dim"),
        "linear_value_head_dim": inner // value_heads,
        "linear_conv_kernel_dim": need("ssm.conv_kernel", "linear_conv_kernel_dim"),
        "intermediate_size": None if moe else need("feed_forward_length", "intermediate_size"),
        "moe": moe,
        "vocab_size": vocab,
        "tie_word_embeddings": not meta.get("qwenfit.has_output", False),
        "mtp_num_hidden_layers": nextn if s.mtp.elements else 0,
        "max_position_embeddings": need("context_length", "max_position_embeddings"),
    }
    check_divisible(fields, origin)
    return fields


def vision_from_mmproj(mm: dict[str, Any]) -> VisionConfig:
    fields = {
        "embedding_length": "hidden_size",
        "patch_size": "patch_size",
        "image_size": "num_position_embeddings",
        "block_count": "depth",
        "feed_forward_length": "intermediate_size",
        "attention.head_count": "num_heads",
        "projection_dim": "out_hidden_size",
        "spatial_merge_size": "spatial_merge_size",
    }

    def need(key: str) -> int:
        value = mm.get(f"clip.vision.{key}")
        if value is None:
            raise UsageError(f"mmproj GGUF lacks clip.vision.{key}")
        return number(value, f"clip.vision.{key}", "mmproj GGUF", ceiling=fields[key])

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
        spatial_merge_size=need("spatial_merge_size")
        if "clip.vision.spatial_merge_size" in mm
        else 2,
        in_channels=3,
        num_position_embeddings=pos,
    )


def gguf_precision(meta: dict[str, Any], s: Summary) -> str:
    """The GGUF's `general.file_type` as a precision name ('q4_k_m', 'bf16', 'iq2_xxs')."""
    import gguf

    ftype = meta.get("general.file_type")
    if ftype is not None:
        try:
            name = gguf.LlamaFileType(ftype).name if type(ftype) is int else ""
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
