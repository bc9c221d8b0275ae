"""config.json of a Qwen3.5-architecture checkpoint -> `Architecture`, refusing other layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qwenfit.errors import BadFileError, UsageError, validation_message
from qwenfit.inputs import checked_int, read_json, shown
from qwenfit.specs.architecture import Architecture, MoEConfig, VisionConfig
from qwenfit.specs.checkpoints.support import unsupported_reason
from qwenfit.specs.table import (
    ModelSpec,
    SpecTable,
)
from qwenfit.units import MiB

# A Qwen3.6 release that keeps the Qwen3.5 architecture is accepted under its own type names.
COMPATIBLE_PREFIXES = ("qwen3_5", "qwen3_6")
MAX_CONFIG_BYTES = 4 * MiB  # a config.json is ~10 KB

# Ceilings of each architecture number a checkpoint may claim: far above any released model
# (Qwen3.5-397B-A17B: hidden 4096, 60 layers, 512 experts, vocab 248320, 262144 positions),
# low enough that every product the memory model forms stays small and every loop short.
FIELD_CEILINGS: dict[str, int] = {
    "hidden_size": 1 << 16,
    "num_hidden_layers": 1024,
    "full_attention_interval": 1024,
    "num_attention_heads": 1024,
    "num_key_value_heads": 1024,
    "head_dim": 4096,
    "linear_num_key_heads": 1024,
    "linear_num_value_heads": 1024,
    "linear_key_head_dim": 4096,
    "linear_value_head_dim": 4096,
    "linear_conv_kernel_dim": 64,
    "intermediate_size": 1 << 20,
    "vocab_size": 1 << 22,
    "mtp_num_hidden_layers": 64,
    "max_position_embeddings": 1 << 24,
    "num_experts": 1 << 14,
    "num_experts_per_tok": 1 << 14,
    "moe_intermediate_size": 1 << 20,
    "shared_expert_intermediate_size": 1 << 20,
    "depth": 1024,
    "out_hidden_size": 1 << 16,
    "num_heads": 1024,
    "patch_size": 1024,
    "temporal_patch_size": 64,
    "spatial_merge_size": 64,
    "in_channels": 64,
    "num_position_embeddings": 1 << 24,
    "bits": 8,
}
# Fields that may be zero (absent parts).
ZERO_ALLOWED = {"mtp_num_hidden_layers", "shared_expert_intermediate_size"}


def number(
    value: Any, field: str, origin: str, *, zero: bool = False, ceiling: str | None = None
) -> int:
    """A whole-number architecture field within its ceiling (positive unless it may be 0).

    `ceiling` names the Architecture field whose bounds apply (default: the last part of
    `field`)."""
    key = ceiling or field.rsplit(".", 1)[-1]
    return checked_int(
        value,
        field=field,
        origin=origin,
        low=0 if zero or key in ZERO_ALLOWED else 1,
        high=FIELD_CEILINGS[key],
    )


def check_divisible(fields: dict[str, Any], origin: str) -> None:
    """The divisions the memory model performs, checked before it runs."""
    pairs = [
        ("hidden_size", "num_attention_heads"),
        ("num_attention_heads", "num_key_value_heads"),
        ("linear_num_value_heads", "linear_num_key_heads"),
        ("num_hidden_layers", "full_attention_interval"),
    ]
    for a, b in pairs:
        if fields[a] % fields[b]:
            raise BadFileError(
                f"{origin}: {a} ({fields[a]}) must be a multiple of {b} ({fields[b]})"
            )


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.exists():
        raise UsageError(f"{shown(folder)}: no config.json (not a Hugging Face checkpoint folder)")
    config = read_json(path, what="config.json", max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(config, dict):
        raise BadFileError(f"config.json {shown(path)}: not a JSON object")
    return config


def check_model_type(config: dict[str, Any]) -> str:
    """The config's model_type, or a UsageError naming what was found."""
    mt = config.get("model_type")
    text_cfg = config.get("text_config")
    if not isinstance(mt, str) and isinstance(text_cfg, dict):
        mt = text_cfg.get("model_type")
    if not isinstance(mt, str):
        raise UsageError("config.json has no model_type; qwenfit sizes Qwen3.5 checkpoints only")
    reason = unsupported_reason(config)  # a known other layout, or a component we cannot size
    if reason is not None:
        raise UsageError(f"config.json: {reason}")
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

    where = "text_config." if nested else ""
    origin = "config.json"

    def need(key: str) -> int:
        if key not in t or t[key] is None:
            raise UsageError(f"config.json lacks {where}{key}; cannot size this checkpoint")
        return number(t[key], where + key, origin)

    def opt(key: str, default: int) -> int:
        value = t.get(key)
        return default if value is None else number(value, where + key, origin)

    hidden = need("hidden_size")
    layers = need("num_hidden_layers")
    heads = need("num_attention_heads")
    if hidden % heads and t.get("head_dim") is None:
        raise BadFileError(
            f"config.json: {where}hidden_size ({hidden}) must be a multiple of "
            f"num_attention_heads ({heads}) when head_dim is not given"
        )
    interval = _full_attention_interval(t, layers, where)
    moe = None
    if t.get("num_experts") not in (None, 0):
        moe = _moe(
            {
                "num_experts": need("num_experts"),
                "num_experts_per_tok": need("num_experts_per_tok"),
                "moe_intermediate_size": need("moe_intermediate_size"),
                "shared_expert_intermediate_size": opt("shared_expert_intermediate_size", 0),
            }
        )
    tied = config.get("tie_word_embeddings", t.get("tie_word_embeddings", False))
    if not isinstance(tied, bool):
        raise BadFileError(f"config.json: tie_word_embeddings is {tied!r}; must be true or false")
    fields: dict[str, Any] = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "full_attention_interval": interval,
        "num_attention_heads": heads,
        "num_key_value_heads": opt("num_key_value_heads", heads),
        "head_dim": opt("head_dim", hidden // heads),
        "linear_num_key_heads": need("linear_num_key_heads"),
        "linear_num_value_heads": need("linear_num_value_heads"),
        "linear_key_head_dim": need("linear_key_head_dim"),
        "linear_value_head_dim": need("linear_value_head_dim"),
        "linear_conv_kernel_dim": need("linear_conv_kernel_dim"),
        "intermediate_size": None if moe else need("intermediate_size"),
        "moe": moe,
        "vocab_size": need("vocab_size"),
        "tie_word_embeddings": tied,
        "mtp_num_hidden_layers": opt("mtp_num_hidden_layers", 0),
        "max_position_embeddings": need("max_position_embeddings"),
    }
    check_divisible(fields, "config.json")
    vision = vision_from_config(vcfg) if isinstance(vcfg, dict) else None
    return build_arch(fields, vision, table, source)


def _moe(values: dict[str, int]) -> MoEConfig:
    if values["num_experts_per_tok"] > values["num_experts"]:
        raise BadFileError(
            f"config.json: num_experts_per_tok ({values['num_experts_per_tok']}) exceeds "
            f"num_experts ({values['num_experts']})"
        )
    return MoEConfig(**values)


def _full_attention_interval(t: dict[str, Any], layers: int, where: str = "") -> int:
    """`full_attention_interval`, checked against `layer_types` when the config lists them."""
    raw = t.get("full_attention_interval")
    interval = 4 if raw is None else number(raw, where + "full_attention_interval", "config.json")
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


VISION_DEFAULTS: dict[str, int | None] = {
    "depth": None,
    "hidden_size": None,
    "intermediate_size": None,
    "num_heads": None,
    "out_hidden_size": None,
    "patch_size": 16,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "in_channels": 3,
    "num_position_embeddings": 2304,
}


def vision_from_config(v: dict[str, Any]) -> VisionConfig:
    values: dict[str, int] = {}
    for key, default in VISION_DEFAULTS.items():
        raw = v.get(key, default)
        if raw is None:
            raise UsageError(f"config.json lacks vision_config.{key}; cannot size the vision tower")
        values[key] = number(raw, "vision_config." + key, "config.json")
    try:
        return VisionConfig(**values)
    except ValidationError as e:
        msg = validation_message(e)
        raise BadFileError(f"config.json vision_config: {msg}") from None


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


def build_arch(
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
