"""Approximate weight bytes of the official Qwen3.5 FP8 and GPTQ-Int4 repos.

No copy of those repos' config.json or safetensors index could be read, so their sizes are
computed from each model's architecture with the published recipe descriptions:
- FP8: "fine-grained FP8, block size 128": every decoder Linear (attention, Gated DeltaNet
  in/out projections, MLP, experts, shared expert) stores float8 weights plus one float32 scale
  per 128 x 128 block; embeddings, lm_head, norms, conv1d, the small in_proj_a/b, routers and the
  vision tower stay BF16.
- GPTQ-Int4 (group size 128): 4-bit weights, one fp16 scale and one packed 4-bit zero per group of
  128 inputs, and an int32 g_idx per input column. MoE repos quantize the routed experts only
  (attention, routers, shared experts, MTP, vision and embeddings stay BF16); for the dense 27B
  every decoder Linear is quantized.
The spec table marks these rows `exact: false`.
Usage: python benchmarks/spec_table/quantized_sizes.py
"""

from __future__ import annotations

import json
import math

from qwenfit.specs import arch
from qwenfit.specs.table import Architecture, load_specs


def _linears(a: Architecture, routed_only: bool) -> list[tuple[int, int, int]]:
    """(out, in, count) of the Linear modules a recipe quantizes, over the whole decoder."""
    h = a.hidden_size
    n_full, n_lin = a.n_full_attention_layers, a.n_linear_attention_layers
    mods: list[tuple[int, int, int]] = []
    if a.moe is not None:
        m = a.moe
        layers = a.num_hidden_layers
        mods += [
            (m.moe_intermediate_size, h, 2 * m.num_experts * layers),
            (h, m.moe_intermediate_size, m.num_experts * layers),
        ]
        if routed_only:
            return mods
        si = m.shared_expert_intermediate_size
        mods += [(si, h, 2 * layers), (h, si, layers)]
    else:
        assert a.intermediate_size is not None
        i = a.intermediate_size
        mods += [(i, h, 2 * a.num_hidden_layers), (h, i, a.num_hidden_layers)]
    d, nh, nkv = a.head_dim, a.num_attention_heads, a.num_key_value_heads
    mods += [(2 * nh * d, h, n_full), (nkv * d, h, 2 * n_full), (h, nh * d, n_full)]
    key_dim = a.linear_num_key_heads * a.linear_key_head_dim
    value_dim = a.linear_num_value_heads * a.linear_value_head_dim
    mods += [(2 * key_dim + value_dim, h, n_lin), (value_dim, h, n_lin), (h, value_dim, n_lin)]
    return mods


def fp8_bytes(out: int, inp: int) -> int:
    return out * inp + 4 * math.ceil(out / 128) * math.ceil(inp / 128)


def gptq_bytes(out: int, inp: int) -> int:
    groups = math.ceil(inp / 128)
    return out * inp // 2 + 2 * groups * out + groups * out // 2 + 4 * inp


def text_bytes(a: Architecture, bf16_text_bytes: int, scheme: str) -> int:
    routed_only = scheme == "gptq-int4" and a.moe is not None
    size = fp8_bytes if scheme == "fp8" else gptq_bytes
    total = bf16_text_bytes
    for out, inp, count in _linears(a, routed_only):
        total += count * (size(out, inp) - 2 * out * inp)
    return total


def main() -> None:
    table = load_specs()
    result = {}
    for m in table.models:
        bf16 = m.artifact("bf16", "safetensors")
        assert bf16 is not None
        result[m.name] = {
            scheme: text_bytes(m.architecture, bf16.text_bytes, scheme)
            for scheme in ("fp8", "gptq-int4")
        }
        result[m.name]["active_params"] = arch.text_active_params(m.architecture)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
