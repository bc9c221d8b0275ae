"""What transformers and vLLM allocate for a Qwen3.5 safetensors checkpoint.

Both load the checkpoint's tensors as stored (BF16, or the FP8 / GPTQ-Int4 repos) and keep the
multi-token-prediction block out of memory (transformers: `_keys_to_ignore_on_load_unexpected =
[r"^mtp.*"]`; vLLM: only with MTP speculative decoding). KV cache exists for full-attention
layers only; each Gated DeltaNet layer keeps a fixed conv + recurrent state per sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenfit.memory.llamacpp import CUDA_RUNTIME_OVERHEAD
from qwenfit.memory.record import Layout, Part, PartName, parts_by_device
from qwenfit.memory.runtimes import kv_bytes
from qwenfit.specs import arch
from qwenfit.specs.architecture import Architecture
from qwenfit.specs.table import Artifact, ModelSpec
from qwenfit.units import GiB

# transformers' cache (cache_utils.py, LinearAttentionLayer): the conv state keeps the whole
# kernel window in the model dtype; the recurrent state is float32 (the chunked / recurrent
# gated-delta-rule functions accumulate in float32 and return it as the final state).
HF_CONV_STATE_BYTES = 2
HF_RECURRENT_STATE_BYTES = 4

# transformers' prefill peak is set by the pure-torch chunked gated-delta-rule (what runs without
# the flash-linear-attention kernels): about 16 float32 vectors of 128 per value head per token,
# measured with torch's allocator on CPU (tests/fixtures/measured/transformers_cache.json,
# benchmarks/transformers/cache_bytes.py).
HF_GDN_BYTES_PER_TOKEN_PER_HEAD = 16 * 128 * 4

# vLLM (model_executor/layers/mamba/mamba_utils.py): conv state keeps kernel - 1 columns in the
# model dtype; the temporal (SSM) state dtype follows the config's `mamba_ssm_dtype`
# ("float32" in every Qwen3.5 config.json).
VLLM_CONV_STATE_BYTES = 2
VLLM_SSM_STATE_BYTES = 4
# vLLM's attention pages for hybrid models are stretched to the size of one mamba page; block
# sizes are multiples of 16 tokens (model_executor/models/config.py,
# HybridAttentionMambaModelConfig).
VLLM_BLOCK_MULTIPLE = 16
# State pages one request holds per Gated DeltaNet layer: with prefix caching (on by default;
# vLLM then sets mamba_cache_mode "align" for these models, model_executor/models/config.py
# MambaModelConfig) 2, else 1 (vllm/v1/kv_cache_interface.py MambaSpec.max_memory_usage_bytes).
# Each page is padded to the attention page (vllm/platforms/interface.py,
# update_block_size_for_backend): tests/fixtures/measured/vllm_accounting.json.
VLLM_STATE_PAGES_PER_REQUEST = 2
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
    layout: Layout


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
        pages = a.n_linear_attention_layers * VLLM_STATE_PAGES_PER_REQUEST
        return vllm_state_page_bytes(r.spec, r.kv_cache) * pages * r.parallel
    else:
        conv = arch.conv_state_elements_full_kernel(a) * HF_CONV_STATE_BYTES
        ssm = arch.recurrent_state_elements(a) * HF_RECURRENT_STATE_BYTES
    return (conv + ssm) * r.parallel


def _vllm_live_state(r: HFRequest) -> int:
    """The state vLLM's kernels read and write per step, all sequences: conv + SSM, unpadded."""
    a = r.spec.architecture
    conv = arch.conv_state_elements(a) * VLLM_CONV_STATE_BYTES
    ssm = arch.recurrent_state_elements(a) * VLLM_SSM_STATE_BYTES
    return (conv + ssm) * r.parallel


def vllm_block_size(spec: ModelSpec, kv_type: str, multiple: int = VLLM_BLOCK_MULTIPLE) -> int:
    """Attention block (tokens) whose page is at least one GDN layer's state page, a multiple of
    the attention kernel's block (16 for FlashAttention; vLLM's CPU build uses 128)."""
    a = spec.architecture
    per_layer_state = (
        arch.conv_state_elements(a) * VLLM_CONV_STATE_BYTES
        + arch.recurrent_state_elements(a) * VLLM_SSM_STATE_BYTES
    ) // a.n_linear_attention_layers
    per_token_layer = kv_bytes(2 * a.num_key_value_heads * a.head_dim, kv_type)
    blocks = -(-per_layer_state // (per_token_layer * multiple))
    return max(1, blocks) * multiple


def vllm_state_page_bytes(
    spec: ModelSpec, kv_type: str, multiple: int = VLLM_BLOCK_MULTIPLE
) -> int:
    """One Gated DeltaNet layer's state page as vLLM allocates it: padded to the attention page
    of one block (block size x one token's K and V of one layer)."""
    a = spec.architecture
    per_token_layer = kv_bytes(2 * a.num_key_value_heads * a.head_dim, kv_type)
    return vllm_block_size(spec, kv_type, multiple) * per_token_layer


def vllm_request_bytes(
    spec: ModelSpec, kv_type: str, context: int, multiple: int = VLLM_BLOCK_MULTIPLE
) -> int:
    """The KV pool one request at `context` tokens takes: its attention blocks and its state
    pages (VLLM_STATE_PAGES_PER_REQUEST per GDN layer), every page the same size."""
    a = spec.architecture
    block = vllm_block_size(spec, kv_type, multiple)
    page = vllm_state_page_bytes(spec, kv_type, multiple)
    blocks = -(-context // block) * a.n_full_attention_layers
    return (blocks + VLLM_STATE_PAGES_PER_REQUEST * a.n_linear_attention_layers) * page


def _kv(r: HFRequest, tokens_per_seq: int) -> int:
    a = r.spec.architecture
    return kv_bytes(arch.kv_elements_per_token(a) * tokens_per_seq * r.parallel, r.kv_cache)


def _spread(amount: int, devices: list[int | None]) -> dict[int | None, int]:
    """`amount` shared evenly by `devices` (the first takes the remainder)."""
    share, rest = divmod(amount, len(devices))
    return {d: share + (rest if i == 0 else 0) for i, d in enumerate(devices)}


class _Parts:
    """Collects parts per device; `None` is host RAM."""

    def __init__(self) -> None:
        self.items: list[Part] = []

    def add(
        self, part: PartName, amounts: dict[int | None, int], detail: str, read: float = 0.0
    ) -> None:
        self.items += parts_by_device(part, amounts, detail, read)


def weight_read_share(spec: ModelSpec) -> float:
    """Share of the decoder's bytes read per token: MoE reads only the routed top-k experts,
    and an untied embedding table is only looked up (one row), not read."""
    p = spec.params
    return (p.text_active - (0 if spec.architecture.tie_word_embeddings else p.embedding)) / p.text


def _devices(r: HFRequest) -> list[int | None]:
    return list(r.layout.devices) if r.layout.kind != "cpu" and r.layout.devices else [None]


def transformers_parts(r: HFRequest) -> list[Part]:
    """device_map='auto' fills the GPUs layer by layer: here each gets an equal share."""
    a = r.spec.architecture
    bf16 = r.artifact.precision == "bf16"
    text = 2 * r.spec.params.text if bf16 else r.artifact.text_bytes
    vision = 2 * r.spec.params.vision if bf16 else r.artifact.vision_bytes
    devices = _devices(r)
    out = _Parts()
    out.add(
        "weights",
        _spread(text, devices),
        f"{r.artifact.repo} decoder at {r.artifact.precision}, MTP not loaded",
        weight_read_share(r.spec),
    )
    if not r.text_only:
        out.add("vision", {devices[0]: vision}, "vision tower")
    out.add(
        "kv_cache",
        _spread(_kv(r, r.context), devices),
        f"DynamicCache, {a.n_full_attention_layers} full-attention layers, bf16",
        1 / r.parallel,
    )
    out.add(
        "linear_state",
        _spread(_linear_state(r, vllm=False), devices),
        "conv state (bf16, full kernel) + recurrent state (float32) per sequence",
        2 / r.parallel,
    )
    tokens = r.context * r.parallel
    activations = max(
        tokens * a.linear_num_value_heads * HF_GDN_BYTES_PER_TOKEN_PER_HEAD,
        prefill_activation_bytes(a, tokens),
    )
    out.add(
        "compute",
        {
            d: activations + (4 * a.vocab_size * r.parallel if i == len(devices) - 1 else 0)
            for i, d in enumerate(devices)
        },
        "prefill peak over the whole prompt (the chunked delta rule's float32 working set), "
        "plus last-token logits",
    )
    out.add(
        "overhead",
        {d: CUDA_RUNTIME_OVERHEAD for d in devices if d is not None},
        "CUDA context (not counted by torch's allocator)",
    )
    return out.items


def vllm_parts(r: HFRequest) -> list[Part]:
    """Per rank: tensor parallel t shards weights, heads and state t ways; pipeline parallel p
    gives each stage 1/p of the layers. KV heads are replicated when t exceeds them."""
    a = r.spec.architecture
    t = r.layout.tensor_parallel or 1
    p = r.layout.pipeline_parallel or 1
    per_node = r.layout.devices or [0]
    ranks: list[int | None] = [
        n * len(per_node) + i for n in range(p) for i in range(len(per_node))
    ]
    block = vllm_block_size(r.spec, r.kv_cache)
    tokens = -(-r.context // block) * block
    kv_share = max(1, a.num_key_value_heads // t)
    kv_rank = _kv(r, tokens) * kv_share // a.num_key_value_heads // p
    out = _Parts()
    out.add(
        "weights",
        {d: r.artifact.text_bytes // (t * p) for d in ranks},
        f"{r.artifact.repo} decoder at {r.artifact.precision}, MTP not loaded"
        + (f", 1/{t * p} per GPU" if t * p > 1 else ""),
        weight_read_share(r.spec),
    )
    if not r.text_only:
        out.add(
            "vision",
            {d: r.artifact.vision_bytes // t for d in ranks[:t]},
            "vision tower" + (f", 1/{t} per GPU of the first stage" if t > 1 else ""),
        )
    out.add(
        "kv_cache",
        {d: kv_rank for d in ranks},
        f"paged KV, {a.n_full_attention_layers} full-attention layers, {block}-token blocks, "
        f"{r.kv_cache}",
        1 / r.parallel,
    )
    out.add(
        "linear_state",
        {d: _linear_state(r, vllm=True) // (t * p) for d in ranks},
        f"mamba-style state (conv bf16 + SSM float32) per sequence: "
        f"{VLLM_STATE_PAGES_PER_REQUEST} pages per layer (prefix caching), each padded to the "
        f"attention page",
        # a decode step reads and writes the live state only, not the padding or second page
        2 * _vllm_live_state(r) / max(1, _linear_state(r, vllm=True)),
    )
    out.add(
        "compute",
        {
            d: prefill_activation_bytes(a, VLLM_PROFILE_TOKENS) // t + 4 * a.vocab_size * r.parallel
            for d in ranks
        },
        f"profile-run activations for {VLLM_PROFILE_TOKENS} batched tokens plus sampler logits",
    )
    out.add(
        "overhead",
        {d: CUDA_RUNTIME_OVERHEAD + VLLM_CUDA_GRAPHS for d in ranks},
        "CUDA context and captured CUDA graphs",
    )
    return out.items
