"""Architecture arithmetic for the Qwen3.5 hybrid: parameters, per-token and per-sequence state.

Pure functions of an `Architecture` (the config.json numbers in the spec table). The shapes follow
transformers' `modeling_qwen3_5.py` / `modeling_qwen3_5_moe.py` (5.23.0) module by module; the test
suite holds them to the counts transformers' own classes give on the meta device
(`benchmarks/transformers/param_counts.py`, fixture `tests/fixtures/measured/`).
"""

from __future__ import annotations

from qwenfit.specs.architecture import Architecture, VisionConfig


def _linear_dims(a: Architecture) -> tuple[int, int, int]:
    """(key dim, value dim, conv channels) of one Gated DeltaNet layer."""
    key_dim = a.linear_num_key_heads * a.linear_key_head_dim
    value_dim = a.linear_num_value_heads * a.linear_value_head_dim
    return key_dim, value_dim, 2 * key_dim + value_dim


def linear_attention_layer_params(a: Architecture) -> int:
    """in_proj_qkv, in_proj_z, in_proj_b/a, conv1d, dt_bias, A_log, gated norm, out_proj."""
    h, n_v = a.hidden_size, a.linear_num_value_heads
    _, value_dim, conv_dim = _linear_dims(a)
    return (
        h * conv_dim
        + h * value_dim
        + 2 * h * n_v
        + conv_dim * a.linear_conv_kernel_dim
        + 2 * n_v
        + a.linear_value_head_dim
        + value_dim * h
    )


def full_attention_layer_params(a: Architecture) -> int:
    """q_proj is twice as wide (output gate); q_norm and k_norm are per-head RMSNorms."""
    h, d = a.hidden_size, a.head_dim
    q = h * a.num_attention_heads * d * 2
    kv = 2 * h * a.num_key_value_heads * d
    o = a.num_attention_heads * d * h
    return q + kv + o + 2 * d


def ffn_params(a: Architecture) -> int:
    """Dense SwiGLU, or router + routed experts + shared expert + its sigmoid gate."""
    h = a.hidden_size
    if a.moe is None:
        assert a.intermediate_size is not None
        return 3 * h * a.intermediate_size
    m = a.moe
    return (
        m.num_experts * h
        + 3 * m.num_experts * m.moe_intermediate_size * h
        + 3 * h * m.shared_expert_intermediate_size
        + h
    )


def ffn_active_params(a: Architecture) -> int:
    """FFN parameters read for one token: only num_experts_per_tok routed experts."""
    if a.moe is None:
        return ffn_params(a)
    m = a.moe
    h = a.hidden_size
    return (
        m.num_experts * h
        + 3 * m.num_experts_per_tok * m.moe_intermediate_size * h
        + 3 * h * m.shared_expert_intermediate_size
        + h
    )


def embedding_params(a: Architecture) -> int:
    return a.vocab_size * a.hidden_size


def lm_head_params(a: Architecture) -> int:
    return 0 if a.tie_word_embeddings else a.vocab_size * a.hidden_size


def _decoder_params(a: Architecture, ffn: int) -> int:
    n_full = a.n_full_attention_layers
    n_linear = a.n_linear_attention_layers
    per_layer_norms = 2 * a.hidden_size
    return (
        n_linear * linear_attention_layer_params(a)
        + n_full * full_attention_layer_params(a)
        + a.num_hidden_layers * (ffn + per_layer_norms)
        + embedding_params(a)
        + lm_head_params(a)
        + a.hidden_size  # final norm
    )


def text_params(a: Architecture) -> int:
    """The language model as transformers builds it (embedding, decoder, final norm, lm_head)."""
    return _decoder_params(a, ffn_params(a))


def text_active_params(a: Architecture) -> int:
    """Parameters read per generated token (all but the unused routed experts)."""
    return _decoder_params(a, ffn_active_params(a))


def mtp_params(a: Architecture) -> int:
    """The multi-token-prediction block: fc (2H -> H), 3 norms, one full-attention decoder layer.

    It shares the embedding and lm_head with the main model; transformers ignores `mtp.*` on load.
    """
    h = a.hidden_size
    one_layer = full_attention_layer_params(a) + ffn_params(a) + 2 * h
    return a.mtp_num_hidden_layers * (2 * h * h + 3 * h + one_layer)


def vision_params(v: VisionConfig) -> int:
    """Qwen3_5VisionModel: Conv3d patch embed, learned position table, ViT blocks, patch merger."""
    d, i = v.hidden_size, v.intermediate_size
    patch = v.in_channels * v.temporal_patch_size * v.patch_size**2 * d + d
    pos = v.num_position_embeddings * d
    block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * i + i) + (i * d + d)
    merged = d * v.spatial_merge_size**2
    merger = 2 * d + merged * merged + merged + merged * v.out_hidden_size + v.out_hidden_size
    return patch + pos + v.depth * block + merger


def fp32_params_in_checkpoint(a: Architecture) -> int:
    """Values the checkpoints store in float32: each GDN layer's A_log and gated-norm weight.

    Source: the 9B checkpoint total (19,306,216,416 bytes) equals 2 x params + 2 x this count.
    """
    return a.n_linear_attention_layers * (a.linear_num_value_heads + a.linear_value_head_dim)


def kv_elements_per_token(a: Architecture) -> int:
    """K and V elements per token, summed over full-attention layers only (GDN layers have none)."""
    return a.n_full_attention_layers * 2 * a.num_key_value_heads * a.head_dim


def conv_state_elements(a: Architecture) -> int:
    """Causal-conv state per sequence over all GDN layers: (kernel - 1) past inputs per channel.

    llama.cpp keeps kernel - 1 columns (`llama_hparams::n_embd_r`); transformers keeps `kernel`
    columns, see `conv_state_columns`.
    """
    _, _, conv_dim = _linear_dims(a)
    return a.n_linear_attention_layers * conv_dim * (a.linear_conv_kernel_dim - 1)


def conv_state_elements_full_kernel(a: Architecture) -> int:
    _, _, conv_dim = _linear_dims(a)
    return a.n_linear_attention_layers * conv_dim * a.linear_conv_kernel_dim


def recurrent_state_elements(a: Architecture) -> int:
    """Delta-rule state per sequence over all GDN layers: a key x value matrix per head."""
    per_layer = a.linear_num_value_heads * a.linear_key_head_dim * a.linear_value_head_dim
    return a.n_linear_attention_layers * per_layer
