"""Build transformers configs for Qwen3.5 models from data/model_specs.json.

The rig measures transformers' own classes against qwenfit's architecture
table, so every memory-relevant field comes from the table (never hard-coded
here); that way a wrong table entry shows up as a wrong measurement.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS_PATH = REPO_ROOT / "data" / "model_specs.json"

# Not memory-relevant and not in the table: values of the published
# Qwen3.5 config.json files, set so forward passes use the real RoPE layout.
ROPE_PARAMETERS = {
    "rope_type": "default",
    "rope_theta": 10_000_000,
    "partial_rotary_factor": 0.25,
    "mrope_section": [11, 11, 10],
    "mrope_interleaved": True,
}

TEXT_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "linear_num_key_heads",
    "linear_num_value_heads",
    "linear_key_head_dim",
    "linear_value_head_dim",
    "linear_conv_kernel_dim",
    "vocab_size",
    "max_position_embeddings",
    "tie_word_embeddings",
)
MOE_KEYS = (
    "num_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
)
VISION_KEYS = (
    "depth",
    "hidden_size",
    "intermediate_size",
    "num_heads",
    "out_hidden_size",
    "patch_size",
    "temporal_patch_size",
    "spatial_merge_size",
    "in_channels",
    "num_position_embeddings",
)


def load_specs(path: Path = SPECS_PATH) -> list[dict[str, Any]]:
    """Return the `models` list of the spec file."""
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)["models"]


def get_spec(name: str, path: Path = SPECS_PATH) -> dict[str, Any]:
    """Return one model's entry by its qwenfit name (e.g. "qwen3.5-9b")."""
    for spec in load_specs(path):
        if spec["name"] == name:
            return spec
    raise KeyError(f"model {name!r} not in {path}")


def is_moe(spec: dict[str, Any]) -> bool:
    """True for the qwen3_5_moe family."""
    return spec["model_type"] == "qwen3_5_moe"


def layer_types(arch: dict[str, Any]) -> list[str]:
    """Same rule as Qwen3_5TextConfig.__post_init__: every Nth layer is full attention."""
    interval = arch["full_attention_interval"]
    return [
        "linear_attention" if (i + 1) % interval else "full_attention"
        for i in range(arch["num_hidden_layers"])
    ]


def text_config_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for Qwen3_5(Moe)TextConfig."""
    arch = spec["architecture"]
    kwargs: dict[str, Any] = {key: arch[key] for key in TEXT_KEYS}
    kwargs["layer_types"] = layer_types(arch)
    kwargs["rope_parameters"] = dict(ROPE_PARAMETERS)
    if is_moe(spec):
        moe = arch["moe"]
        kwargs.update({key: moe[key] for key in MOE_KEYS})
    else:
        kwargs["intermediate_size"] = arch["intermediate_size"]
    return kwargs


def vision_config_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for Qwen3_5(Moe)VisionConfig."""
    vision = spec["architecture"]["vision"]
    return {key: vision[key] for key in VISION_KEYS}


def build_text_config(spec: dict[str, Any]):
    """Text-only config, for Qwen3_5(Moe)ForCausalLM."""
    if is_moe(spec):
        from transformers import Qwen3_5MoeTextConfig as TextConfig
    else:
        from transformers import Qwen3_5TextConfig as TextConfig
    return TextConfig(**text_config_kwargs(spec))


def build_config(spec: dict[str, Any]):
    """Composite config, for Qwen3_5(Moe)ForConditionalGeneration.

    tie_word_embeddings is set on the top level too: transformers decides
    tying of lm_head from the config of the model class being built.
    """
    if is_moe(spec):
        from transformers import Qwen3_5MoeConfig as Config
    else:
        from transformers import Qwen3_5Config as Config
    return Config(
        text_config=text_config_kwargs(spec),
        vision_config=vision_config_kwargs(spec),
        tie_word_embeddings=spec["architecture"]["tie_word_embeddings"],
    )


def model_classes(spec: dict[str, Any]) -> dict[str, type]:
    """The transformers classes used for this model family."""
    if is_moe(spec):
        from transformers import (
            Qwen3_5MoeForCausalLM as CausalLM,
        )
        from transformers import (
            Qwen3_5MoeForConditionalGeneration as ConditionalGeneration,
        )
        from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import (
            Qwen3_5MoeDecoderLayer as DecoderLayer,
        )
        from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import (
            Qwen3_5MoeRMSNorm as RMSNorm,
        )
    else:
        from transformers import Qwen3_5ForCausalLM as CausalLM
        from transformers import (
            Qwen3_5ForConditionalGeneration as ConditionalGeneration,
        )
        from transformers.models.qwen3_5.modeling_qwen3_5 import (
            Qwen3_5DecoderLayer as DecoderLayer,
        )
        from transformers.models.qwen3_5.modeling_qwen3_5 import (
            Qwen3_5RMSNorm as RMSNorm,
        )
    return {
        "causal_lm": CausalLM,
        "conditional_generation": ConditionalGeneration,
        "decoder_layer": DecoderLayer,
        "rms_norm": RMSNorm,
    }


if __name__ == "__main__":
    for entry in load_specs():
        cfg = build_config(entry)
        print(entry["name"], type(cfg).__name__, cfg.text_config.layer_types[:4])
