"""What transformers and vLLM allocate for a Qwen3.5 safetensors checkpoint.

Both load the checkpoint's tensors as stored (BF16, or the FP8 / GPTQ-Int4 repos) and keep the
multi-token-prediction block out of memory (transformers: `_keys_to_ignore_on_load_unexpected =
[r"^mtp.*"]`; vLLM: only with MTP speculative decoding). KV cache exists for full-attention
layers only; each Gated DeltaNet layer keeps a fixed conv + recurrent state per sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenfit import arch
from qwenfit.estimate_model import Part, Placement
from qwenfit.memory_llamacpp import CUDA_RUNTIME_OVERHEAD
from qwenfit.runtimes import kv_bytes
from qwenfit.specs import Architecture, Artifact, ModelSpec
from qwenfit.units import GiB

# transformers' cache (cache_utils.py, LinearAttentionLayer): the conv state keeps the whole
# kernel window in the model dtype; the recurrent state is float32 (the chunked / recurrent
# gated-delta-rule functions accumulate in float32 and return it as the final state).
HF_CONV_STATE_BYTES = 2
HF_RECURRENT_STATE_BYTES = 4

# vLLM (model_executor/layers/mamba/mamba_utils.py): conv state keeps kernel - 1 columns in the
# model dtype; the temporal (SSM) state dtype follows the config's `mamba_ssm_dtype`
# ("float32" in every Qwen3.5 config.json).
VLLM_CONV_STATE_BYTES = 2
VLLM_SSM_STATE_BYTES = 4
# vLLM's attention pages for hybrid models are stretched to the size of one mamba page; block
# sizes are multiples of 16 tokens (model_executor/models/config.py,
# HybridAttentionMambaModelConfig).
VLLM_BLOCK_MULTIPLE = 16
# Default max_num_batched_tokens of `vllm serve` (chunked prefill): the profile run's token count.
VLLM_PROFILE_TOKENS = 2048
# CUDA graphs captured by vLLM at start-up (logged as "Graph capturing finished ... took X GiB").
VLLM_CUDA_GRAPHS = GiB // 2


@dataclass(frozen=True)
class HFRequest:
    spec: ModelSpec
    artifact: Artifact
    context: int
    parallel: int
    kv_cache: str
    text_only: bool
    placement: Placement


def _ffn_width(a: Architecture) -> int:
    """Intermediate activations per token of the FFN (routed top-k experts + shared expert)."""
    if a.moe is None:
        assert a.intermediate_size is not None
        return a.intermediate_size
    m = a.moe
    return m.num_experts_per_tok * m.moe_intermediate_size + m.shared_expert_intermediate_size


def prefill_activation_bytes(a: Architecture, tokens: int, dtype_bytes: int = 2) -> int:
    """Peak transient tensors of one decoder layer over `tokens` prompt tokens.

    Layers run one after another in inference, so only the largest layer's transients are live:
    the residual stream (2 x hidden), the gated q projection, gate/up/act of the FFN, and the
    Gated DeltaNet projections with their float32 chunked delta-rule copies.
    """
    _, value_dim, conv_dim = (
        a.linear_num_key_heads * a.linear_key_head_dim,
        a.linear_num_value_heads * a.linear_value_head_dim,
        2 * a.linear_num_key_heads * a.linear_key_head_dim
        + a.linear_num_value_heads * a.linear_value_head_dim,
    )
    ffn = 3 * _ffn_width(a)
    gdn = 2 * conv_dim + value_dim + 2 * (conv_dim + value_dim)  # bf16 copies + f32 working set
    attn = 2 * a.num_attention_heads * a.head_dim + 2 * a.num_key_value_heads * a.head_dim
    per_token = 2 * a.hidden_size + max(ffn, gdn, attn)
    return tokens * per_token * dtype_bytes


def _linear_state(r: HFRequest, vllm: bool) -> int:
    a = r.spec.architecture
    if vllm:
        conv = arch.conv_state_elements(a) * VLLM_CONV_STATE_BYTES
        ssm = arch.recurrent_state_elements(a) * VLLM_SSM_STATE_BYTES
    else:
        conv = arch.conv_state_elements_full_kernel(a) * HF_CONV_STATE_BYTES
        ssm = arch.recurrent_state_elements(a) * HF_RECURRENT_STATE_BYTES
    return (conv + ssm) * r.parallel


def vllm_block_size(spec: ModelSpec, kv_type: str) -> int:
    """Attention block (tokens) whose page is at least one GDN layer's state page."""
    a = spec.architecture
    per_layer_state = (
        arch.conv_state_elements(a) * VLLM_CONV_STATE_BYTES
        + arch.recurrent_state_elements(a) * VLLM_SSM_STATE_BYTES
    ) // a.n_linear_attention_layers
    per_token_layer = kv_bytes(2 * a.num_key_value_heads * a.head_dim, kv_type)
    blocks = -(-per_layer_state // (per_token_layer * VLLM_BLOCK_MULTIPLE))
    return max(1, blocks) * VLLM_BLOCK_MULTIPLE


def _kv(r: HFRequest, tokens_per_seq: int) -> int:
    a = r.spec.architecture
    return kv_bytes(arch.kv_elements_per_token(a) * tokens_per_seq * r.parallel, r.kv_cache)


def _weights(r: HFRequest, in_bf16: bool) -> list[Part]:
    """The checkpoint's tensors. `in_bf16`: everything loaded as bf16, as transformers does with
    dtype='auto' or bfloat16 (the checkpoint's float32 A_log and norm weights are cast)."""
    text = 2 * r.spec.params.text if in_bf16 else r.artifact.text_bytes
    vision = 2 * r.spec.params.vision if in_bf16 else r.artifact.vision_bytes
    out = [
        Part(
            part="weights",
            bytes=text,
            placement=r.placement,
            detail=f"{r.artifact.repo} decoder at {r.artifact.precision}, MTP not loaded",
        )
    ]
    if not r.text_only:
        out.append(
            Part(
                part="vision",
                bytes=vision,
                placement=r.placement,
                detail="vision tower",
            )
        )
    return out


def transformers_parts(r: HFRequest) -> list[Part]:
    a = r.spec.architecture
    out = _weights(r, in_bf16=r.artifact.precision == "bf16")
    out.append(
        Part(
            part="kv_cache",
            bytes=_kv(r, r.context),
            placement=r.placement,
            detail=f"DynamicCache, {a.n_full_attention_layers} full-attention layers, bf16",
        )
    )
    out.append(
        Part(
            part="linear_state",
            bytes=_linear_state(r, vllm=False),
            placement=r.placement,
            detail="conv state (bf16, full kernel) + recurrent state (float32) per sequence",
        )
    )
    out.append(
        Part(
            part="compute",
            bytes=prefill_activation_bytes(a, r.context) * r.parallel
            + 4 * a.vocab_size * r.parallel,
            placement=r.placement,
            detail="prefill activations of the largest layer over the whole prompt, "
            "plus last-token logits",
        )
    )
    if r.placement == "gpu":
        out.append(
            Part(
                part="overhead",
                bytes=CUDA_RUNTIME_OVERHEAD,
                placement="gpu",
                detail="CUDA context (not counted by torch's allocator)",
            )
        )
    return out


def vllm_parts(r: HFRequest) -> list[Part]:
    a = r.spec.architecture
    block = vllm_block_size(r.spec, r.kv_cache)
    tokens = -(-r.context // block) * block
    out = _weights(r, in_bf16=False)
    out.append(
        Part(
            part="kv_cache",
            bytes=_kv(r, tokens),
            placement=r.placement,
            detail=f"paged KV, {a.n_full_attention_layers} full-attention layers, "
            f"{block}-token blocks, {r.kv_cache}",
        )
    )
    out.append(
        Part(
            part="linear_state",
            bytes=_linear_state(r, vllm=True),
            placement=r.placement,
            detail="mamba-style state per sequence: conv bf16 + SSM float32",
        )
    )
    out.append(
        Part(
            part="compute",
            bytes=prefill_activation_bytes(a, VLLM_PROFILE_TOKENS) + 4 * a.vocab_size * r.parallel,
            placement=r.placement,
            detail=f"profile-run activations for {VLLM_PROFILE_TOKENS} batched tokens "
            "plus sampler logits",
        )
    )
    out.append(
        Part(
            part="overhead",
            bytes=CUDA_RUNTIME_OVERHEAD + VLLM_CUDA_GRAPHS,
            placement=r.placement,
            detail="CUDA context and captured CUDA graphs",
        )
    )
    return out
