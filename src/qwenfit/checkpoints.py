"""Size any Qwen3.5-architecture checkpoint from what its files say: folders, GGUFs, Hub repos.

Users run fine-tunes, merges and community quantizations, not only the official repos, so a
model reference that is not in the spec table is read from its files and turned into a
`ModelSpec` appended to a copy of the table. Only metadata is read: config.json and the
safetensors headers (8-byte length + JSON, never the tensor data), or the GGUF header and
tensor table (`gguf.GGUFReader` memory-maps the file and touches only the header pages).

Both formats are first reduced to a `Summary` (JSON-able, so `qwenfit.hub` can cache it), and
one builder turns a summary into a spec. Bytes come from the files; parameters are counted from
tensor shapes; only what the files do not contain (a vision tower left out of a text-only
checkpoint or a GGUF given without its mmproj) falls back to the `qwenfit.arch` formulas, and
the artifact is then marked `exact: false`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from qwenfit import arch
from qwenfit.errors import UnknownModelError, UsageError
from qwenfit.specs import (
    Architecture,
    Artifact,
    Context,
    ModelSpec,
    MoEConfig,
    ParamCounts,
    PrecisionInfo,
    Source,
    SpecTable,
    VisionConfig,
)

# A Qwen3.6 release that keeps the Qwen3.5 architecture is accepted under its own type names.
COMPATIBLE_PREFIXES = ("qwen3_5", "qwen3_6")
GGUF_ARCHS = ("qwen35", "qwen35moe")
MAX_SAFETENSORS_HEADER = 100 * 2**20  # the safetensors format itself caps headers at 100 MB
SPLIT_GGUF = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$")
_NAME_BAD = re.compile(r"[^A-Za-z0-9._:/\-]+")

# Tensors that hold quantization scales or indices, not parameters (GPTQ/AWQ, FP8 block scales).
_AUX_SUFFIXES = (".qzeros", ".scales", ".g_idx", "_scale_inv", ".weight_scale", ".input_scale")
_VISION_PREFIXES = ("model.visual.", "visual.", "model.vision_tower.", "vision_tower.")
_MTP_PREFIXES = ("mtp.", "model.mtp.")


class TensorGroup(BaseModel):
    """Parameters and bytes of a set of tensors, with bytes per stored dtype."""

    elements: int = 0
    bytes: int = 0
    by_dtype: dict[str, int] = {}

    def add(self, elements: int, nbytes: int, dtype: str) -> None:
        self.elements += elements
        self.bytes += nbytes
        self.by_dtype[dtype] = self.by_dtype.get(dtype, 0) + nbytes


class Summary(BaseModel):
    """What a checkpoint's metadata says, reduced to what sizing needs (cached as JSON)."""

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


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------


def resolve_model(
    ref: str, table: SpecTable, *, online: bool = False, mmproj: str | None = None
) -> tuple[SpecTable, ModelSpec]:
    """The spec for `ref`: a table model untouched, or one built from a checkpoint's files.

    `ref` is a spec-table name, a local folder (config.json + *.safetensors), a local .gguf file
    (split GGUFs: any part), or a Hugging Face repo id (`org/name`, `org/name:Q4_K_M`,
    `org/name:file.gguf`). The Hub is read only with `online=True`; without it a repo is sized
    from qwenfit's cache or the local Hugging Face cache. Returns a copy of `table` with the new
    model (and any precision or source it needs) appended, and the model.

    Raises:
        UsageError: not found, not a Qwen3.5 architecture, unreadable files, or a Hub repo that
            needs `--online`; the message is one line.
    """
    try:
        return table, table.get(ref)
    except UnknownModelError:
        pass
    path = _expand(ref)
    mm = _expand(mmproj) if mmproj else None
    if mm is not None and not mm.is_file():
        raise UsageError(f"--mmproj {mmproj}: no such file")
    if path.is_dir():
        summary = summarize_folder(path)
        if mm is not None:
            raise UsageError("--mmproj applies to GGUF files only; a folder carries its vision")
        return add_to_table(table, summary, ref, name=_local_name(path.name))
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UsageError(f"{ref}: not a .gguf file or a folder with config.json")
        summary = summarize_gguf(gguf_parts(path), [mm] if mm else None)
        return add_to_table(table, summary, ref, name=_local_name(_gguf_stem(path.name)))
    if _looks_like_path(ref):
        raise UsageError(f"{ref}: no such file or folder")
    if not _looks_like_repo(ref):
        # Re-raise the table's own message (with its did-you-mean) for a plain unknown name.
        table.get(ref)
    from qwenfit import hub

    summary, name, repo = hub.summarize_repo(ref, online=online, mmproj=mmproj)
    return add_to_table(table, summary, ref, name=name, repo=repo)


def _expand(text: str) -> Path:
    """`~` and `~user` expanded; an unknown user (`~0`) is a usage error, not a traceback."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise UsageError(f"{text}: cannot expand '~' (no such user's home)") from None


def _looks_like_path(ref: str) -> bool:
    if ref.startswith(("/", "./", "../", "~")):
        return True
    # 'file.gguf' or 'dir/file.gguf' are paths; 'org/name/file.gguf' is a Hub file.
    return ref.lower().endswith(".gguf") and ref.count("/") != 2 and ":" not in ref


def _looks_like_repo(ref: str) -> bool:
    repo = ref.split(":", 1)[0]
    parts = repo.split("/")
    return len(parts) >= 2 and all(parts) and ".." not in repo


def _local_name(base: str) -> str:
    return safe_name("local/" + base)


def safe_name(raw: str) -> str:
    """A model name matching ModelSpec's pattern: odd characters become '-'."""
    name = _NAME_BAD.sub("-", raw).strip("-")
    if not name or not name[0].isalnum():
        name = "m" + name
    return name


def _gguf_stem(filename: str) -> str:
    m = SPLIT_GGUF.match(filename)
    return m["stem"] if m else filename.removesuffix(".gguf").removesuffix(".GGUF")


# ---------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file: the 8-byte length, then the JSON; no data."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise UsageError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_SAFETENSORS_HEADER or n + 8 > size:
                raise UsageError(f"{path}: corrupt safetensors header (length {n})")
            raw = f.read(n)
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})") from None
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{path}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise UsageError(f"{path}: corrupt safetensors header (not an object)")
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
        and all(isinstance(d, int) and d >= 0 for d in info["shape"])
        and isinstance(info.get("data_offsets"), list)
        and len(info["data_offsets"]) == 2
        and all(isinstance(o, int) for o in info["data_offsets"])
        and 0 <= info["data_offsets"][0] <= info["data_offsets"][1]
    )
    if not ok:
        raise UsageError(f"{file}: corrupt safetensors header entry for tensor {name!r}")
    if data_size is not None and info["data_offsets"][1] > data_size:
        raise UsageError(f"{file}: tensor {name!r} lies beyond the end of the file (truncated?)")


def safetensors_files(folder: Path) -> list[Path]:
    """The shards named by an index file, or every *.safetensors file of the folder."""
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        try:
            index = json.loads(indexes[0].read_text(encoding="utf-8"))
            shards = sorted(set(index["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise UsageError(f"{indexes[0]}: unreadable safetensors index") from None
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise UsageError(f"{folder}: shard {missing[0]} named by {indexes[0].name} is missing")
        return [folder / s for s in shards]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UsageError(f"{folder}: no *.safetensors files next to config.json")
    return files


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise UsageError(f"{folder}: no config.json (not a Hugging Face checkpoint folder)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{path}: unreadable or not JSON") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path}: not a JSON object")
    return config


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
    bits = int(qcfg.get("bits", 4)) if isinstance(qcfg, dict) else 4
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
            elif name.endswith(_AUX_SUFFIXES):
                elements = 0
            if name.startswith(_VISION_PREFIXES):
                s.vision.add(elements, end - start, dtype)
            elif name.startswith(_MTP_PREFIXES):
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


def check_model_type(config: dict[str, Any]) -> str:
    """The config's model_type, or a UsageError naming what was found."""
    mt = config.get("model_type")
    text_cfg = config.get("text_config")
    if not isinstance(mt, str) and isinstance(text_cfg, dict):
        mt = text_cfg.get("model_type")
    if not isinstance(mt, str):
        raise UsageError("config.json has no model_type; qwenfit sizes Qwen3.5 checkpoints only")
    if not mt.startswith(COMPATIBLE_PREFIXES):
        raise UsageError(f"found model_type {mt!r}; qwenfit sizes Qwen3.5 checkpoints only")
    return mt


def architecture_from_config(
    config: dict[str, Any], table: SpecTable, source: str
) -> tuple[Architecture, bool]:
    """Architecture from the nested (text_config / vision_config) or flat text-only layout.

    Returns the architecture and whether the vision tower came from the config (False: taken
    from the official model with the same text architecture, see `fallback_vision`).
    """
    check_model_type(config)
    nested = isinstance(config.get("text_config"), dict)
    t: dict[str, Any] = config["text_config"] if nested else config
    vcfg = config.get("vision_config")

    def need(key: str) -> Any:
        if key not in t or t[key] is None:
            where = "text_config." if nested else ""
            raise UsageError(f"config.json lacks {where}{key}; cannot size this checkpoint")
        return t[key]

    hidden = int(need("hidden_size"))
    layers = int(need("num_hidden_layers"))
    heads = int(need("num_attention_heads"))
    interval = _full_attention_interval(t, layers)
    moe = None
    if t.get("num_experts"):
        moe = MoEConfig(
            num_experts=int(t["num_experts"]),
            num_experts_per_tok=int(need("num_experts_per_tok")),
            moe_intermediate_size=int(need("moe_intermediate_size")),
            shared_expert_intermediate_size=int(t.get("shared_expert_intermediate_size") or 0),
        )
    tied = config.get("tie_word_embeddings", t.get("tie_word_embeddings", False))
    fields: dict[str, Any] = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "full_attention_interval": interval,
        "num_attention_heads": heads,
        "num_key_value_heads": int(t.get("num_key_value_heads") or heads),
        "head_dim": int(t.get("head_dim") or hidden // heads),
        "linear_num_key_heads": int(need("linear_num_key_heads")),
        "linear_num_value_heads": int(need("linear_num_value_heads")),
        "linear_key_head_dim": int(need("linear_key_head_dim")),
        "linear_value_head_dim": int(need("linear_value_head_dim")),
        "linear_conv_kernel_dim": int(need("linear_conv_kernel_dim")),
        "intermediate_size": None if moe else int(need("intermediate_size")),
        "moe": moe,
        "vocab_size": int(need("vocab_size")),
        "tie_word_embeddings": bool(tied),
        "mtp_num_hidden_layers": int(t.get("mtp_num_hidden_layers") or 0),
        "max_position_embeddings": int(need("max_position_embeddings")),
    }
    vision = vision_from_config(vcfg) if isinstance(vcfg, dict) else None
    return _build_arch(fields, vision, table, source)


def _full_attention_interval(t: dict[str, Any], layers: int) -> int:
    """`full_attention_interval`, checked against `layer_types` when the config lists them."""
    interval = int(t.get("full_attention_interval") or 4)
    types = t.get("layer_types")
    if isinstance(types, list) and types:
        want = [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention"
            for i in range(layers)
        ]
        if types != want:
            raise UsageError(
                "config.json layer_types do not follow one full-attention layer every "
                f"{interval}; qwenfit sizes the regular Qwen3.5 layout only"
            )
    return interval


def vision_from_config(v: dict[str, Any]) -> VisionConfig:
    try:
        return VisionConfig(
            depth=v["depth"],
            hidden_size=v["hidden_size"],
            intermediate_size=v["intermediate_size"],
            num_heads=v["num_heads"],
            out_hidden_size=v["out_hidden_size"],
            patch_size=v.get("patch_size", 16),
            temporal_patch_size=v.get("temporal_patch_size", 2),
            spatial_merge_size=v.get("spatial_merge_size", 2),
            in_channels=v.get("in_channels", 3),
            num_position_embeddings=v.get("num_position_embeddings", 2304),
        )
    except (KeyError, TypeError, ValidationError) as e:
        raise UsageError(f"config.json vision_config is incomplete or invalid ({e})") from None


def fallback_vision(fields: dict[str, Any], table: SpecTable) -> VisionConfig:
    """The vision tower of the official model with the same text shape (else nearest width).

    Used when the files carry no vision description (flat text-only configs, GGUFs without an
    mmproj): fine-tunes keep the tower of the model they started from.
    """
    models = list(table.models)
    if not models:
        raise UsageError("the spec table has no model to take a vision tower from")

    def distance(m: ModelSpec) -> tuple[int, int]:
        a = m.architecture
        same = a.hidden_size == fields["hidden_size"] and (
            a.num_hidden_layers == fields["num_hidden_layers"]
        )
        return (0 if same else 1, abs(a.hidden_size - fields["hidden_size"]))

    best = min(models, key=distance)
    return best.architecture.vision.model_copy(update={"out_hidden_size": fields["hidden_size"]})


def _build_arch(
    fields: dict[str, Any], vision: VisionConfig | None, table: SpecTable, source: str
) -> tuple[Architecture, bool]:
    from_files = vision is not None
    v = vision or fallback_vision(fields, table)
    try:
        return Architecture(**fields, vision=v, source=source), from_files
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "architecture"
        msg = err["msg"].removeprefix("Value error, ")
        raise UsageError(f"not a valid Qwen3.5 architecture: {loc}: {msg}") from None


# ---------------------------------------------------------------------------------------------
# GGUF
# ---------------------------------------------------------------------------------------------


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


def _gguf_fields(meta: dict[str, Any], s: Summary) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------
# precisions
# ---------------------------------------------------------------------------------------------


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


def _bits_per_weight(precision: str) -> float | None:
    """Bits per weight of a GGUF precision's main tensor type (Q4_K for q4_k_m)."""
    import gguf

    base = re.sub(r"_(S|M|L|XL)$", "", precision.upper()) if "_K" in precision.upper() else None
    for cand in (precision.upper(), base):
        if cand and cand in gguf.GGMLQuantizationType.__members__:
            block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[cand]]
            return 8 * size / block
    return None


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


def ensure_precision(
    table: SpecTable, precision: str, fmt: Literal["safetensors", "gguf"]
) -> tuple[dict[str, PrecisionInfo], dict[str, Source]]:
    """Precisions and sources with `precision` defined: a new one borrows the nearest quality.

    Nearest: for GGUF types the known type with the closest bits per weight; for float
    checkpoints BF16 (no loss); for other int4 methods GPTQ-Int4.
    """
    precisions, sources = dict(table.precisions), dict(table.sources)
    if precision in precisions:
        return precisions, sources
    kind: Literal["float", "fp8", "int4", "gguf"]
    if fmt == "gguf":
        kind = "gguf"
        mine = _bits_per_weight(precision)
        known = [
            (abs((_bits_per_weight(p) or 99.0) - (mine or 16.0)), p)
            for p, info in precisions.items()
            if info.kind == "gguf"
        ]
        nearest = min(known)[1] if known else None
    elif precision.endswith("-int4"):
        kind, nearest = "int4", "gptq-int4" if "gptq-int4" in precisions else None
    else:
        kind, nearest = "float", "bf16" if "bf16" in precisions else None
    loss = precisions[nearest].quality_loss if nearest else 0.0
    key = f"precision-{precision}"
    sources[key] = Source(
        title=f"No published accuracy for {precision.upper()}; quality loss taken from "
        f"{nearest.upper() if nearest else 'none (0)'}, the nearest known type",
        note="added by qwenfit when it read a checkpoint of this type",
    )
    precisions[precision] = PrecisionInfo(
        label=precision.upper(), kind=kind, quality_loss=loss, quality_source=key
    )
    return precisions, sources


# ---------------------------------------------------------------------------------------------
# spec building
# ---------------------------------------------------------------------------------------------


def add_to_table(
    table: SpecTable, s: Summary, ref: str, *, name: str, repo: str | None = None
) -> tuple[SpecTable, ModelSpec]:
    """Build the spec from a summary and return a copy of the table with it appended."""
    digest = hashlib.sha256(f"{s.format}:{s.origin}".encode()).hexdigest()[:10]
    source_key = f"checkpoint-{digest}"
    spec_arch, vision_known = _architecture(s, table, source_key)
    params = _params(s, spec_arch, source_key)
    precision = gguf_precision(s.config, s) if s.format == "gguf" else safetensors_precision(s)
    precisions, sources = ensure_precision(table, precision, s.format)
    vision_exact = s.vision.bytes > 0
    vision_bytes = s.vision.bytes if vision_exact else 2 * params.vision
    is_url = s.origin.startswith(("http://", "https://"))
    what = "config.json and safetensors headers" if s.format == "safetensors" else "GGUF header"
    note = None
    if not vision_exact:
        note = (
            "no vision tensors in these files: vision numbers are the official tower's "
            "(formula, BF16/F16 bytes); use --text-only for a text-only model"
            if not vision_known
            else "no vision tensors in these files: vision bytes are 2 x the config's vision "
            "parameters"
        )
    sources[source_key] = Source(
        title=f"Checkpoint {ref} ({what}, read by qwenfit)",
        url=s.origin if is_url else None,
        path=None if is_url else s.origin,
        note=note,
    )
    artifact = Artifact(
        precision=precision,
        format=s.format,
        repo=repo or ref,
        text_bytes=s.text.bytes,
        vision_bytes=vision_bytes,
        mtp_bytes=s.mtp.bytes or None,
        download_bytes=s.download_bytes or None,
        exact=vision_exact,
        source=source_key,
    )
    model_type = "qwen3_5_moe" if spec_arch.moe is not None else "qwen3_5"
    base = name.rsplit("/", 1)[-1]
    try:
        spec = ModelSpec(
            name=name,
            display_name=base,
            hf_repo=repo or ref,
            model_type=model_type,
            transformers_class="Qwen3_5MoeForConditionalGeneration"
            if model_type == "qwen3_5_moe"
            else "Qwen3_5ForConditionalGeneration",
            released="unknown",
            aliases=[ref] if ref.strip().lower() != name.lower() else [],
            architecture=spec_arch,
            params=params,
            context=Context(
                native=spec_arch.max_position_embeddings, extended=None, source=source_key
            ),
            artifacts=[artifact],
        )
    except ValidationError as e:
        msg = e.errors()[0]["msg"]
        raise UsageError(f"{ref}: cannot describe this checkpoint ({msg})") from None
    models = [m for m in table.models if m.name != name]
    new = table.model_copy(
        update={"models": [*models, spec], "precisions": precisions, "sources": sources}
    )
    try:  # re-validate the cross references of the copied table
        new = SpecTable.model_validate(new.model_dump())
    except ValidationError as e:
        raise UsageError(f"{ref}: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return new, spec


def _architecture(s: Summary, table: SpecTable, source: str) -> tuple[Architecture, bool]:
    if s.format == "safetensors":
        return architecture_from_config(s.config, table, source)
    fields = _gguf_fields(s.config, s)
    vision = vision_from_mmproj(s.vision_config) if s.vision_config else None
    return _build_arch(fields, vision, table, source)


def _params(s: Summary, a: Architecture, source: str) -> ParamCounts:
    """Counted from the tensors; the formulas fill in what the files lack (vision, embedding)."""
    text = s.text.elements
    active = text
    if a.moe is not None and s.routed.elements:
        m = a.moe
        active = (
            text - s.routed.elements + s.routed.elements * m.num_experts_per_tok // (m.num_experts)
        )
    vision = s.vision.elements or arch.vision_params(a.vision)
    return ParamCounts(
        text=text,
        text_active=active,
        embedding=s.embedding.elements or arch.embedding_params(a),
        vision=vision,
        mtp=s.mtp.elements,
        total=text + vision + s.mtp.elements,
        source=source,
    )
