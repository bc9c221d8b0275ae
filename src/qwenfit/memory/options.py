"""`Options`: the one record of settings that every stage passes down, built and checked once.

`estimate`, `max_context`, `check` and `recommend` keep their keyword arguments for callers;
each builds an `Options` from them, so a wrong type or a value out of range fails here with one
line naming the option, never deep inside the arithmetic.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qwenfit.errors import UsageError, validation_message
from qwenfit.memory.runtimes import LLAMACPP_FIT_TARGET_FREE
from qwenfit.settings import MAX_CONTEXT, MAX_MARGIN, MAX_NODES, MAX_PARALLEL, MAX_UBATCH

FlashAttn = Literal["auto", "on", "off"]

# What llama-server --fit leaves free per device; qwenfit keeps the same margin everywhere.
DEFAULT_MARGIN = LLAMACPP_FIT_TARGET_FREE


class Options(BaseModel):
    """How one configuration is to be run: runtime, precision, context, cache and placement."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    runtime: str | None = Field(None, description="llama.cpp, ollama, vllm or transformers.")
    quant: str | None = Field(None, description="A precision of the spec table, e.g. q4_k_m.")
    context: int | None = Field(None, ge=1, le=MAX_CONTEXT, description="Tokens per sequence.")
    kv_cache: str | None = Field(None, description="KV cache type: f16, bf16, q8_0, q4_0, fp8.")
    parallel: int = Field(1, ge=1, le=MAX_PARALLEL, description="Sequences served at once.")
    ubatch: int | None = Field(None, ge=1, le=MAX_UBATCH, description="llama.cpp micro-batch.")
    flash_attn: FlashAttn = "auto"
    text_only: bool = False
    mtp: bool = Field(False, description="MTP speculative decoding (llama.cpp, vLLM).")
    allow_offload: bool = True
    nodes: int = Field(1, ge=1, le=MAX_NODES, description="Machines for vLLM with Ray.")
    margin: int = Field(DEFAULT_MARGIN, ge=0, le=MAX_MARGIN, description="Bytes kept free.")

    @classmethod
    def of(cls, **values: Any) -> Options:
        """Validated options; a bad value raises UsageError naming it and what is allowed."""
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise UsageError(validation_message(e)) from None
