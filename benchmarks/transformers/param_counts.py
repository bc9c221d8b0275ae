"""Count Qwen3.5 parameters exactly with transformers' own model classes.

Every model is built on the meta device (no memory, no download), so the
counts are what transformers would allocate, not what a formula predicts.
Writes tests/fixtures/measured/transformers_params.json.

Run: /work/rigs/hf/venv/bin/python benchmarks/transformers/param_counts.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hf_config

OUT_PATH = hf_config.REPO_ROOT / "tests" / "fixtures" / "measured" / "transformers_params.json"
LOAD_DTYPE = torch.bfloat16


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """from_pretrained(dtype=...) builds the empty model under this default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def unique_params(module: nn.Module, prefix: str = "") -> dict[str, nn.Parameter]:
    """Named parameters with shared (tied) tensors listed once, as nn.Module does."""
    return {f"{prefix}{name}": p for name, p in module.named_parameters()}


def numel(params: dict[str, nn.Parameter]) -> int:
    """Total element count."""
    return sum(p.numel() for p in params.values())


def fp32_plan(model: nn.Module, dtype: torch.dtype) -> tuple[re.Pattern | None, dict[str, Any]]:
    """The keep-in-fp32 patterns transformers would apply when loading in `dtype`."""
    plan = model._get_dtype_plan(dtype)
    info = {
        "_keep_in_fp32_modules": sorted(model._keep_in_fp32_modules or []),
        "_keep_in_fp32_modules_strict": sorted(model._keep_in_fp32_modules_strict or []),
        "dtype_plan": {k: str(v) for k, v in plan.items()},
    }
    if not plan:
        return None, info
    from transformers.core_model_loading import build_glob_alternation

    pattern, _, _ = build_glob_alternation(list(plan))
    return pattern, info


def load_dtype_of(name: str, param: nn.Parameter, pattern: re.Pattern | None) -> torch.dtype:
    """Mirror core_model_loading: dtype_plan match wins, else the empty param's dtype."""
    if pattern is not None and pattern.search(name):
        return torch.float32
    return param.dtype


def bytes_by_dtype(
    params: dict[str, nn.Parameter], pattern: re.Pattern | None
) -> tuple[int, dict[str, int], list[str]]:
    """Bytes as loaded, element counts per dtype, and names of non-bf16 params."""
    total = 0
    per_dtype: dict[str, int] = {}
    wide: list[str] = []
    for name, p in params.items():
        dt = load_dtype_of(name, p, pattern)
        total += p.numel() * dt.itemsize
        per_dtype[str(dt).removeprefix("torch.")] = (
            per_dtype.get(str(dt).removeprefix("torch."), 0) + p.numel()
        )
        if dt == torch.float32:
            wide.append(name)
    return total, per_dtype, wide


def active_params(model: nn.Module, text_total: int, top_k: int) -> tuple[int, dict[str, int]]:
    """Parameters read per token: everything except the unrouted experts.

    Taken from the real modules: each layer's fused `experts.gate_up_proj`
    and `experts.down_proj` tensors are [num_experts, ...], so one expert's
    share is numel / num_experts and a token reads top_k of them.
    """
    routed_all = 0
    routed_active = 0
    one_expert = 0
    for layer in model.model.language_model.layers:
        experts = layer.mlp.experts
        n_exp = experts.gate_up_proj.shape[0]
        assert experts.down_proj.shape[0] == n_exp
        layer_routed = experts.gate_up_proj.numel() + experts.down_proj.numel()
        one_expert = layer_routed // n_exp
        assert one_expert * n_exp == layer_routed
        routed_all += layer_routed
        routed_active += top_k * one_expert
    detail = {
        "routed_experts_all": routed_all,
        "routed_experts_active": routed_active,
        "one_expert": one_expert,
    }
    return text_total - routed_all + routed_active, detail


def mtp_block(spec: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    """Parameters of the MTP head transformers does not build (mtp.* keys are dropped on load).

    Checkpoint layout (Qwen3-Next / Qwen3.5): mtp.layers.{i}.* (a full-attention
    decoder layer with the model's FFN or MoE), mtp.fc.weight (Linear 2H->H,
    no bias), mtp.pre_fc_norm_embedding.weight, mtp.pre_fc_norm_hidden.weight,
    mtp.norm.weight (RMSNorm over H each). Embedding and lm_head are shared
    with the main model, so they are not counted again. Built here from
    transformers' own DecoderLayer/RMSNorm classes with the text config.
    """
    arch = spec["architecture"]
    classes = hf_config.model_classes(spec)
    text_cfg = hf_config.build_text_config(spec)
    full_idx = text_cfg.layer_types.index("full_attention")
    hidden = arch["hidden_size"]
    n_layers = arch["mtp_num_hidden_layers"]
    with torch.device("meta"), default_dtype(LOAD_DTYPE):
        block = nn.ModuleDict(
            {
                "layers": nn.ModuleList(
                    [classes["decoder_layer"](text_cfg, full_idx) for _ in range(n_layers)]
                ),
                "fc": nn.Linear(2 * hidden, hidden, bias=False),
                "pre_fc_norm_embedding": classes["rms_norm"](hidden),
                "pre_fc_norm_hidden": classes["rms_norm"](hidden),
                "norm": classes["rms_norm"](hidden),
            }
        )
    params = unique_params(block, "mtp.")
    layer_params = numel(unique_params(block["layers"]))
    nbytes = sum(p.numel() * p.dtype.itemsize for p in params.values())
    detail = {
        "decoder_layers": layer_params,
        "fc": block["fc"].weight.numel(),
        "norms": 3 * hidden,
        "decoder_layer_type": "full_attention",
    }
    return numel(params), nbytes, detail


def count_model(spec: dict[str, Any]) -> dict[str, Any]:
    """All counts for one model entry."""
    classes = hf_config.model_classes(spec)
    config = hf_config.build_config(spec)
    with torch.device("meta"), default_dtype(LOAD_DTYPE):
        model = classes["conditional_generation"](config)
    lm = model.model.language_model
    visual = model.model.visual

    embed = lm.embed_tokens.weight
    tied = model.lm_head.weight is embed
    assert tied == bool(spec["architecture"]["tie_word_embeddings"]), "tying differs from the table"

    all_params = unique_params(model)
    vision_params = unique_params(visual, "model.visual.")
    text_params = {k: v for k, v in all_params.items() if not k.startswith("model.visual.")}
    # Nothing may sit outside the text decoder, lm_head and the vision tower.
    stray = [k for k in text_params if not k.startswith(("model.language_model.", "lm_head."))]
    assert not stray, stray

    pattern, fp32_info = fp32_plan(model, LOAD_DTYPE)
    text_bytes, text_dtypes, text_wide = bytes_by_dtype(text_params, pattern)
    vision_bytes, vision_dtypes, vision_wide = bytes_by_dtype(vision_params, pattern)

    text = numel(text_params)
    vision = numel(vision_params)
    mtp, mtp_bytes, mtp_detail = mtp_block(spec)
    result: dict[str, Any] = {
        "class": type(model).__name__,
        "text": text,
        "embedding": embed.numel(),
        "lm_head": 0 if tied else model.lm_head.weight.numel(),
        "vision": vision,
        "total": text + vision,
        "mtp": mtp,
        "total_with_mtp": text + vision + mtp,
        "text_active_per_token": text,
        "load_bytes_bf16": {"text": text_bytes, "vision": vision_bytes},
        "mtp_bytes_bf16": mtp_bytes,
        "load_elements_by_dtype": {"text": text_dtypes, "vision": vision_dtypes},
        "fp32_params": text_wide + vision_wide,
        "keep_in_fp32": fp32_info,
        "mtp_detail": mtp_detail,
        "tied_word_embeddings": tied,
    }
    if hf_config.is_moe(spec):
        top_k = spec["architecture"]["moe"]["num_experts_per_tok"]
        result["text_active_per_token"], result["moe_detail"] = active_params(model, text, top_k)
    return result


def check_checkpoint_dtypes() -> dict[str, Any]:
    """Round-trip a tiny random model to see what loading does to fp32 tensors.

    Real checkpoints may store A_log / norms in float32; this saves a tiny
    Qwen3.5 with A_log and one RMSNorm upcast to float32, then loads it with
    dtype=bfloat16 and with dtype="auto" and reports the resulting dtypes.
    """
    spec = json.loads(json.dumps(hf_config.get_spec("qwen3.5-0.8b")))
    arch = spec["architecture"]
    arch.update(hidden_size=64, num_hidden_layers=4, vocab_size=128, intermediate_size=128)
    arch.update(num_attention_heads=2, num_key_value_heads=1, head_dim=32)
    arch.update(
        linear_num_key_heads=2,
        linear_num_value_heads=2,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
    )
    arch["vision"].update(
        depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64
    )
    cls = hf_config.model_classes(spec)["conditional_generation"]
    model = cls(hf_config.build_config(spec)).to(torch.bfloat16)
    a_log = "model.language_model.layers.0.linear_attn.A_log"
    norm = "model.language_model.norm.weight"
    with torch.no_grad():
        model.get_parameter(a_log).data = model.get_parameter(a_log).data.float()
        model.get_parameter(norm).data = model.get_parameter(norm).data.float()
    out: dict[str, Any] = {"saved": {a_log: "float32", norm: "float32", "others": "bfloat16"}}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        for label, dtype in (("dtype=bfloat16", torch.bfloat16), ("dtype=auto", "auto")):
            loaded = cls.from_pretrained(tmp, dtype=dtype)
            out[label] = {
                a_log: str(loaded.get_parameter(a_log).dtype).removeprefix("torch."),
                norm: str(loaded.get_parameter(norm).dtype).removeprefix("torch."),
                "lm_head.weight": str(loaded.lm_head.weight.dtype).removeprefix("torch."),
            }
    return out


def main() -> None:
    """Count every model of the table and write the fixture."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    parser.add_argument("--models", nargs="*", help="subset of model names")
    args = parser.parse_args()

    transformers.utils.logging.disable_progress_bar()
    start = time.perf_counter()
    models: dict[str, Any] = {}
    for spec in hf_config.load_specs():
        if args.models and spec["name"] not in args.models:
            continue
        t0 = time.perf_counter()
        models[spec["name"]] = count_model(spec)
        m = models[spec["name"]]
        print(
            f"{spec['name']:>20}: text={m['text']:,} active={m['text_active_per_token']:,} "
            f"vision={m['vision']:,} mtp={m['mtp']:,} ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
    result = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "load_dtype": "bfloat16",
        "method": (
            "ForConditionalGeneration built on the meta device under default dtype bfloat16 "
            "(as from_pretrained(dtype=torch.bfloat16) builds it); counts are "
            "module.named_parameters() (tied tensors once); MTP built from the model's own "
            "DecoderLayer (full_attention) + Linear(2H,H) + 3 RMSNorm(H)"
        ),
        "checkpoint_fp32_roundtrip": check_checkpoint_dtypes(),
        "models": models,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
