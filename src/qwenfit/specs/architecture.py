"""The config.json numbers of one checkpoint that the memory model needs, as records.

Kept apart from the spec table so the architecture arithmetic (`arch`) and the checkpoint
readers depend on these records alone, never on the table's types.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base of every spec record: unknown fields are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class MoEConfig(Strict):
    num_experts: int = Field(gt=0)
    num_experts_per_tok: int = Field(gt=0)
    moe_intermediate_size: int = Field(gt=0)
    shared_expert_intermediate_size: int = Field(ge=0)

    @model_validator(mode="after")
    def _active_within_total(self) -> MoEConfig:
        if self.num_experts_per_tok > self.num_experts:
            raise ValueError("num_experts_per_tok exceeds num_experts")
        return self


class VisionConfig(Strict):
    depth: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    out_hidden_size: int = Field(gt=0)
    patch_size: int = Field(gt=0)
    temporal_patch_size: int = Field(gt=0)
    spatial_merge_size: int = Field(gt=0)
    in_channels: int = Field(gt=0)
    num_position_embeddings: int = Field(gt=0)


class Architecture(Strict):
    """config.json numbers (text_config / vision_config field names) that memory math needs."""

    hidden_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    full_attention_interval: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    linear_num_key_heads: int = Field(gt=0)
    linear_num_value_heads: int = Field(gt=0)
    linear_key_head_dim: int = Field(gt=0)
    linear_value_head_dim: int = Field(gt=0)
    linear_conv_kernel_dim: int = Field(gt=0)
    intermediate_size: int | None = Field(None, gt=0)
    moe: MoEConfig | None = None
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool
    mtp_num_hidden_layers: int = Field(ge=0)
    max_position_embeddings: int = Field(gt=0)
    vision: VisionConfig
    source: str = Field(description="Key into the table's `sources`.")

    @model_validator(mode="after")
    def _consistent(self) -> Architecture:
        if (self.moe is None) == (self.intermediate_size is None):
            raise ValueError("exactly one of intermediate_size (dense) and moe must be set")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.linear_num_value_heads % self.linear_num_key_heads:
            raise ValueError("linear_num_value_heads must be a multiple of linear_num_key_heads")
        if self.num_hidden_layers % self.full_attention_interval:
            raise ValueError("num_hidden_layers must be a multiple of full_attention_interval")
        return self

    @property
    def n_full_attention_layers(self) -> int:
        """Layer i is full attention iff (i + 1) % interval == 0 (transformers and llama.cpp
        agree), and the validator makes the layer count a multiple of the interval."""
        return self.num_hidden_layers // self.full_attention_interval

    @property
    def n_linear_attention_layers(self) -> int:
        return self.num_hidden_layers - self.n_full_attention_layers

    def is_full_attention(self, layer: int) -> bool:
        """Whether layer `layer` (0-based) is a gated full-attention layer."""
        return (layer + 1) % self.full_attention_interval == 0
