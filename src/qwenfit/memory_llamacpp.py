"""What llama.cpp (llama-server, and Ollama's GGUF runner) allocates for a Qwen3.5 GGUF.

Follows llama.cpp as vendored in llama-cpp-python 0.3.36:
- KV cache only for full-attention layers (`llama_model::create_memory`, hybrid branch: the
  attention filter skips `hparams.is_recr(il)`), `n_ctx` cells padded to 256
  (`llama-context.cpp`), K and V rows of `n_head_kv * head_dim` values (`llama-kv-cache.cpp`);
- recurrent state in F32 for every Gated DeltaNet layer, one row per sequence
  (`llama-memory-recurrent.cpp`): conv `(d_conv - 1) * (d_inner + 2 * n_group * d_state)` and
  state `d_state * d_inner` values (`llama_hparams::n_embd_r / n_embd_s`);
- output buffer of `n_vocab` F32 logits per output row, and the compute buffer that
  `sched_reserve` sizes for a `n_ubatch`-token graph. The compute-buffer coefficients are fitted
  to llama.cpp's own reports (`benchmarks/llamacpp/measure_memory.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenfit import arch
from qwenfit.estimate_model import Part, Placement
from qwenfit.runtimes import LLAMACPP_CTX_PAD, kv_bytes
from qwenfit.specs import Artifact, ModelSpec
from qwenfit.units import MiB

# Ollama's per-GPU floor for the CUDA/ROCm runtime (ollama/ollama discover/gpu.go,
# `cudaMinimumMemory = 457 * format.MebiByte`): the CUDA context, cuBLAS handles and kernels.
CUDA_RUNTIME_OVERHEAD = 457 * MiB

# Compute buffer, per ubatch token (fitted to llama.cpp's own "compute buffer size" reports in
# tests/fixtures/measured/llamacpp_memory.json; see docs/estimation.md):
COMPUTE_LOGITS_PER_VOCAB = 4  # the reserved graph produces F32 logits for every ubatch token
COMPUTE_PER_HIDDEN = 12  # residual stream and norms around the output layer
COMPUTE_FA_OFF_PER_HIDDEN = 24
MASK_BYTES = 2  # F16 KQ mask, one value per (cell, token), with flash attention
SCORE_BYTES = 4  # F32 KQ scores (one row per head) and F32 mask without flash attention


@dataclass(frozen=True)
class LlamaCppRequest:
    spec: ModelSpec
    artifact: Artifact
    context: int
    parallel: int
    kv_cache: str
    ubatch: int
    flash_attn: bool
    text_only: bool
    placement: Placement


def kv_cells(context: int, parallel: int) -> int:
    """llama-server's `-c` is the total over all slots; llama.cpp pads it to 256 cells."""
    total = context * parallel
    return -(-total // LLAMACPP_CTX_PAD) * LLAMACPP_CTX_PAD


def kv_cache_bytes(spec: ModelSpec, cells: int, kv_type: str) -> int:
    a = spec.architecture
    return kv_bytes(arch.kv_elements_per_token(a) * cells, kv_type)


def recurrent_state_bytes(spec: ModelSpec, sequences: int) -> int:
    """F32 conv + delta-rule state, one row per sequence (at least one), for all GDN layers."""
    a = spec.architecture
    per_seq = arch.conv_state_elements(a) + arch.recurrent_state_elements(a)
    return 4 * per_seq * max(1, sequences)


def output_bytes(spec: ModelSpec, parallel: int) -> int:
    """F32 logits for one output row per sequence (`llama_context::output_reserve`)."""
    return 4 * spec.architecture.vocab_size * max(1, parallel)


def compute_bytes(spec: ModelSpec, cells: int, ubatch: int, flash_attn: bool) -> int:
    """The compute buffer `sched_reserve` allocates for a worst-case ubatch.

    Two phases compete for the peak: the output layer (F32 logits for every ubatch token) and
    the attention of the last full-attention layer (the KQ mask over all cells, plus, without
    flash attention, F32 scores for every head). llama.cpp's graph allocator sometimes reuses
    the mask's memory for the logits and sometimes does not; the mask is charged in full, so
    this errs high by at most the mask.
    """
    a = spec.architecture
    tokens = min(ubatch, cells)
    logits = tokens * (COMPUTE_LOGITS_PER_VOCAB * a.vocab_size + COMPUTE_PER_HIDDEN * a.hidden_size)
    if flash_attn:
        return logits + MASK_BYTES * cells * tokens
    scores = tokens * (
        SCORE_BYTES * cells * (a.num_attention_heads + 1)
        + COMPUTE_FA_OFF_PER_HIDDEN * a.hidden_size
    )
    return max(logits, scores)


def parts(r: LlamaCppRequest) -> list[Part]:
    cells = kv_cells(r.context, r.parallel)
    gpu = r.placement
    out = [
        Part(
            part="weights",
            bytes=r.artifact.text_bytes,
            placement=gpu,
            detail=f"GGUF tensors at {r.artifact.precision}, MTP not loaded",
        ),
        Part(
            part="kv_cache",
            bytes=kv_cache_bytes(r.spec, cells, r.kv_cache),
            placement=gpu,
            detail=f"{r.spec.architecture.n_full_attention_layers} full-attention layers x "
            f"{cells} cells, {r.kv_cache}",
        ),
        Part(
            part="linear_state",
            bytes=recurrent_state_bytes(r.spec, r.parallel),
            placement=gpu,
            detail=f"{r.spec.architecture.n_linear_attention_layers} Gated DeltaNet layers, "
            f"F32 conv + recurrent state x {max(1, r.parallel)} sequence(s)",
        ),
        Part(
            part="compute",
            bytes=output_bytes(r.spec, r.parallel),
            placement=gpu,
            detail="output buffer: F32 logits, one row per sequence",
        ),
        Part(
            part="compute",
            bytes=compute_bytes(r.spec, cells, r.ubatch, r.flash_attn),
            placement=gpu,
            detail=f"compute buffer for a {min(r.ubatch, cells)}-token ubatch, flash attention "
            f"{'on' if r.flash_attn else 'off'}",
        ),
    ]
    if not r.text_only:
        out.append(
            Part(
                part="vision",
                bytes=r.artifact.vision_bytes,
                placement=gpu,
                detail="mmproj (vision tower) F16",
            )
        )
    if gpu == "gpu":
        out.append(
            Part(
                part="overhead",
                bytes=CUDA_RUNTIME_OVERHEAD,
                placement="gpu",
                detail="CUDA context and libraries (Ollama's per-GPU minimum, 457 MiB)",
            )
        )
    return out
