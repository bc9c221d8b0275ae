"""config.json of a Qwen3.5-architecture checkpoint -> `Architecture`, refusing other layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qwenfit.errors import UsageError
from qwenfit.specs.architecture import Architecture, MoEConfig, VisionConfig
from qwenfit.specs.table import (
    ModelSpec,
    SpecTable,
)

# A Qwen3.6 release that keeps the Qwen3.5 architecture is accepted under its own type names.
COMPATIBLE_PREFIXES = ("qwen3_5", "qwen3_6")


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
    return build_arch(fields, vision, table, source)


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
