"""What MLX (mlx-lm's `mlx_lm.server`, mlx-vlm for images) allocates for a Qwen3.5 model on a Mac.

Every constant names the mlx / mlx-lm source it comes from (mlx-lm 0.32.2, mlx 0.32.4); the
rig `benchmarks/mlx/measure_memory.py` builds the same architecture with mlx-lm's own classes
on MLX's CPU backend and reads MLX's allocator, and `tests/test_mlx.py` holds this model to
what it measured (`tests/fixtures/measured/mlx_memory.json`).

- Weights: the mlx-community conversions are `mlx_lm.convert -q` output. Every `nn.Linear`,
  `nn.Embedding` and `SwitchLinear` whose input width is a multiple of the group size (64) is
  stored as packed uint32 words plus one scale and one bias per group of 64, in the model dtype
  (bfloat16) (`mlx_lm/utils.py` quantize_model, `mlx/nn/layers/quantized.py`). MoE router
  gates are kept at 8 bits (`qwen3_5.py` quant_predicate). Norms, the depthwise conv and
  `dt_bias` stay bfloat16; `A_log` stays float32 (`cast_predicate`). The MTP block is dropped
  on load (`sanitize`), and mlx-lm drops the vision tower too; mlx-vlm keeps it, unquantized.
- KV cache (`mlx_lm/models/cache.py` KVCache): only the full-attention layers have one; it grows
  in steps of 256 tokens, keys and values in the model dtype. With `--kv-bits 8|4` it becomes a
  QuantizedKVCache (group 64, a bfloat16 scale and bias per group) once the prompt passes
  `--quantized-kv-start` (5000 tokens).
- Gated DeltaNet state (`qwen3_5.py` GatedDeltaNet, `gated_delta.py`): per sequence and layer,
  the conv window of kernel - 1 inputs in the model dtype and a float32 [Hv, Dv, Dk] state.
- Compute: the prefill runs in chunks of `--prefill-step-size` (2048) tokens; MLX frees each
  layer's temporaries once evaluated, so the peak adds one chunk's widest activations.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenfit.errors import UnsupportedError
from qwenfit.hardware.machine import Machine
from qwenfit.memory.hf import weight_read_share
from qwenfit.memory.record import Layout, Part, PartName, parts_by_device
from qwenfit.memory.runtimes import is_apple
from qwenfit.specs import arch
from qwenfit.specs.architecture import Architecture
from qwenfit.specs.table import ModelSpec

# mlx_lm/utils.py quantize_model / mlx_lm.convert: default q_group_size 64.
MLX_GROUP_SIZE = 64
# Bits of each mlx-community precision (bf16: not quantized).
PRECISION_BITS = {"mlx-4bit": 4, "mlx-6bit": 6, "mlx-8bit": 8, "bf16": 16}
# mlx_lm/models/qwen3_5.py quant_predicate: mlp.gate and shared_expert_gate at 8 bits.
MLX_ROUTER_BITS = 8
# Model dtype of the conversions (config.json torch_dtype bfloat16): scales, biases, norms,
# activations, KV cache and conv state.
MLX_DTYPE_BYTES = 2
# mlx_lm/models/cache.py: KVCache.step / QuantizedKVCache.step.
MLX_KV_STEP = 256
# mlx_lm.server --kv-bits / --kv-group-size / --quantized-kv-start defaults.
MLX_KV_BITS = {"mlx-q8": 8, "mlx-q4": 4}
MLX_KV_GROUP_SIZE = 64
MLX_QUANTIZED_KV_START = 5000
# mlx_lm.server --prefill-step-size default (also generate_step's prefill_step_size).
MLX_PREFILL_STEP = 2048
# gated_delta.py gated_delta_update: the recurrent state is created float32.
MLX_STATE_BYTES = 4


def check_machine(machine: Machine | None) -> None:
    """MLX runs on Apple Silicon only (Metal); a machine without an Apple GPU cannot run it."""
    if machine is not None and not is_apple(machine):
        raise UnsupportedError(
            "--runtime mlx needs an Apple Silicon Mac (MLX runs on Metal); this machine has "
            "no Apple GPU; plan for one with --gpu 'M3 Max' --ram 64GB, or pick another --runtime"
        )


def _linear(out: int, inp: int, bits: int, n: int = 1) -> int:
    """Bytes of `n` [out, inp] weight matrices as mlx stores them at `bits`."""
    if bits == 16 or inp % MLX_GROUP_SIZE:
        return n * out * inp * MLX_DTYPE_BYTES
    groups = inp // MLX_GROUP_SIZE
    return n * out * (inp * bits // 8 + 2 * groups * MLX_DTYPE_BYTES)


def text_weight_bytes(a: Architecture, bits: int) -> int:
    """The language model (no MTP, no vision) as mlx-lm holds it, tensor by tensor."""
    h, d = a.hidden_size, a.head_dim
    key_dim = a.linear_num_key_heads * a.linear_key_head_dim
    value_dim = a.linear_num_value_heads * a.linear_value_head_dim
    conv_dim = 2 * key_dim + value_dim
    n_v = a.linear_num_value_heads
    gdn = (
        _linear(conv_dim, h, bits)  # in_proj_qkv
        + _linear(value_dim, h, bits)  # in_proj_z
        + 2 * _linear(n_v, h, bits)  # in_proj_b, in_proj_a
        + _linear(h, value_dim, bits)  # out_proj
        + conv_dim * a.linear_conv_kernel_dim * MLX_DTYPE_BYTES  # depthwise conv1d
        + n_v * MLX_DTYPE_BYTES  # dt_bias
        + n_v * 4  # A_log, float32
        + a.linear_value_head_dim * MLX_DTYPE_BYTES  # gated RMSNorm
    )
    attn = (
        _linear(2 * a.num_attention_heads * d, h, bits)  # q_proj with its output gate
        + 2 * _linear(a.num_key_value_heads * d, h, bits)  # k_proj, v_proj
        + _linear(h, a.num_attention_heads * d, bits)  # o_proj
        + 2 * d * MLX_DTYPE_BYTES  # q_norm, k_norm
    )
    if a.moe is None:
        assert a.intermediate_size is not None
        i = a.intermediate_size
        ffn = 2 * _linear(i, h, bits) + _linear(h, i, bits)
    else:
        m = a.moe
        router_bits = bits if bits == 16 else MLX_ROUTER_BITS
        expert = 2 * _linear(m.moe_intermediate_size, h, bits) + _linear(
            h, m.moe_intermediate_size, bits
        )
        s = m.shared_expert_intermediate_size
        ffn = (
            _linear(m.num_experts, h, router_bits)  # router
            + m.num_experts * expert  # switch_mlp gate/up/down
            + 2 * _linear(s, h, bits)
            + _linear(h, s, bits)  # shared expert
            + _linear(1, h, router_bits)  # shared_expert_gate
        )
    norms = 2 * h * MLX_DTYPE_BYTES
    embed = _linear(a.vocab_size, h, bits)
    head = 0 if a.tie_word_embeddings else _linear(a.vocab_size, h, bits)
    total = (
        a.n_linear_attention_layers * gdn
        + a.n_full_attention_layers * attn
        + a.num_hidden_layers * (ffn + norms)
        + embed
        + head
        + h * MLX_DTYPE_BYTES  # final norm
    )
    return total


def vision_bytes(spec: ModelSpec) -> int:
    """mlx-vlm keeps the vision tower in the model dtype (its converter skips it when
    quantizing)."""
    return arch.vision_params(spec.architecture.vision) * MLX_DTYPE_BYTES


def kv_capacity(context: int) -> int:
    """Token slots a KVCache holds after `context` tokens: whole steps of 256."""
    return -(-context // MLX_KV_STEP) * MLX_KV_STEP


def kv_cache_bytes(a: Architecture, context: int, kv_cache: str, parallel: int) -> int:
    slots = kv_capacity(context) * parallel
    elements = arch.kv_elements_per_token(a) * slots
    bits = MLX_KV_BITS.get(kv_cache)
    if bits is None or context <= MLX_QUANTIZED_KV_START:
        return elements * MLX_DTYPE_BYTES
    groups = elements // MLX_KV_GROUP_SIZE
    return elements * bits // 8 + 2 * groups * MLX_DTYPE_BYTES


def linear_state_bytes(a: Architecture, parallel: int) -> int:
    conv = arch.conv_state_elements(a) * MLX_DTYPE_BYTES
    state = arch.recurrent_state_elements(a) * MLX_STATE_BYTES
    return (conv + state) * parallel


def compute_bytes(a: Architecture, context: int, parallel: int) -> int:
    """One prefill chunk's widest live activations (MLX frees each layer's temporaries).

    The widest layer is the FFN: its input, gate and up projections and their SwiGLU product
    for every token of the chunk, in the model dtype; for MoE mlx-lm's SwitchGLU gathers the
    top-k experts' rows (`switch_layers.py`), so k times the expert width.
    """
    tokens = min(MLX_PREFILL_STEP, context) * parallel
    if a.moe is None:
        assert a.intermediate_size is not None
        width = a.intermediate_size
    else:
        width = a.moe.num_experts_per_tok * a.moe.moe_intermediate_size
    return tokens * (a.hidden_size + 3 * width) * MLX_DTYPE_BYTES


@dataclass(frozen=True)
class MLXRequest:
    spec: ModelSpec
    quant: str
    context: int
    parallel: int
    kv_cache: str
    text_only: bool
    layout: Layout


def parts(r: MLXRequest) -> list[Part]:
    """Every allocation on the Apple GPU (device 0: Metal's share of unified memory)."""
    a = r.spec.architecture
    if r.kv_cache in MLX_KV_BITS and r.parallel > 1:
        raise UnsupportedError(
            f"mlx_lm.server serves one request at a time with --kv-bits; use --parallel 1 "
            f"or --kv-cache bf16 (got --parallel {r.parallel})"
        )
    bits = PRECISION_BITS[r.quant]
    weights = text_weight_bytes(a, bits)
    dev: int | None = r.layout.devices[0] if r.layout.devices else None
    out: list[Part] = []

    def add(part: PartName, amount: int, detail: str, read: float = 0.0) -> None:
        out.extend(parts_by_device(part, {dev: amount}, detail, read))

    label = "bfloat16" if bits == 16 else f"{bits}-bit, group {MLX_GROUP_SIZE}, bf16 scale+bias"
    detail = f"language model as mlx-lm loads it ({label})"
    add("weights", weights, detail, weight_read_share(r.spec))
    if not r.text_only:
        add("vision", vision_bytes(r.spec), "vision tower in bfloat16 (mlx-vlm)")
    kv = kv_cache_bytes(a, r.context, r.kv_cache, r.parallel)
    add(
        "kv_cache",
        kv,
        f"{a.n_full_attention_layers} full-attention layers x {kv_capacity(r.context)} slots "
        f"(steps of {MLX_KV_STEP}) x {r.parallel} seq, {r.kv_cache}",
        1.0 / r.parallel,
    )
    add(
        "linear_state",
        linear_state_bytes(a, r.parallel),
        f"{a.n_linear_attention_layers} Gated DeltaNet layers: conv window bf16 + float32 "
        f"state, x {r.parallel} seq",
        1.0 / r.parallel,
    )
    add(
        "compute",
        compute_bytes(a, r.context, r.parallel),
        f"prefill activations of one {MLX_PREFILL_STEP}-token step",
    )
    return out


def notes(text_only: bool) -> list[str]:
    out = [
        "MLX runs on the Apple GPU: the budget is Metal's working-set limit "
        "(sysctl iogpu.wired_limit_mb; by default about 2/3 of RAM up to 36 GiB, 3/4 above)",
        "mlx_lm.server keeps finished prompts' caches for reuse (--prompt-cache-size / "
        "--prompt-cache-bytes); they are not charged here",
    ]
    if not text_only:
        out.append("images need mlx-vlm (mlx_vlm.server); mlx_lm.server serves text only")
    return out
