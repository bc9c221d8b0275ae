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

import functools
import json
from dataclasses import dataclass

from qwenfit.datafiles import data_text
from qwenfit.memory.record import Layout, Part, PartName, parts_by_device
from qwenfit.memory.runtimes import LLAMACPP_CTX_PAD, kv_bytes
from qwenfit.specs import arch
from qwenfit.specs.table import Artifact, ModelSpec
from qwenfit.units import MiB

# Ollama's per-GPU floor for the CUDA/ROCm runtime (ollama/ollama discover/gpu.go,
# `cudaMinimumMemory = 457 * format.MebiByte`): the CUDA context, cuBLAS handles and kernels.
CUDA_RUNTIME_OVERHEAD = 457 * MiB

# Compute buffer, per ubatch token (fitted to llama.cpp's own "compute buffer size" reports in
# tests/fixtures/measured/llamacpp_memory.json; see docs/estimation.md):
COMPUTE_LOGITS_PER_VOCAB = 4  # the reserved graph produces F32 logits for every ubatch token
COMPUTE_PER_HIDDEN = 12  # residual stream and norms around the output layer
COMPUTE_FA_OFF_PER_HIDDEN = 24
# The vision encoder (mtmd/clip) reserves its compute buffer at warm-up for a 1472 x 1472 image
# (2116 merged tokens) and grows it at the first image of the largest size qwen3vl_merger
# accepts, 4096 merged tokens (tools/mtmd/clip.cpp). Measured: ~107 bytes per merged token per
# unit of vision hidden size, proportional to the tokens
# (tests/fixtures/measured/llamacpp_mmproj.json, benchmarks/llamacpp/measure_mmproj.py).
VISION_MAX_TOKENS = 4096
VISION_COMPUTE_PER_TOKEN_PER_HIDDEN = 107
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
    layout: Layout


@dataclass(frozen=True)
class Groups:
    """GGUF tensor bytes by where llama.cpp can put them."""

    token_embd: int  # always on the CPU (llama.cpp's input layer)
    output: int  # output + output_norm: layer n_layer, offloaded last
    layer: tuple[int, ...]  # per layer, everything but the routed experts
    experts: tuple[int, ...]  # per layer, routed experts (--n-cpu-moe keeps them in RAM)


@functools.cache
def _measured_groups() -> dict[tuple[str, str], Groups]:
    doc = json.loads(data_text("gguf_layers.json"))
    return {
        (model, quant): Groups(g["token_embd"], g["output"], tuple(g["layer"]), tuple(g["experts"]))
        for model, quants in doc["models"].items()
        for quant, g in quants.items()
    }


def groups(spec: ModelSpec, artifact: Artifact) -> Groups:
    """Measured groups (data/gguf_layers.json), else the artifact's bytes spread by parameters."""
    measured = _measured_groups().get((spec.name, artifact.precision))
    if measured is not None:
        return measured
    a = spec.architecture
    full = arch.full_attention_layer_params(a)
    linear = arch.linear_attention_layer_params(a)
    expert = (
        0
        if a.moe is None
        else 3 * a.moe.num_experts * a.moe.moe_intermediate_size * (a.hidden_size)
    )
    dense = arch.ffn_params(a) - expert + 2 * a.hidden_size
    kinds = [a.is_full_attention(i) for i in range(a.num_hidden_layers)]
    scale = artifact.text_bytes / spec.params.text
    layer = [int(((full if f else linear) + dense) * scale) for f in kinds]
    experts = [int(expert * scale)] * a.num_hidden_layers
    token_embd = int(arch.embedding_params(a) * scale)
    # Files a few percent lighter than their config (rows.PARAM_TOLERANCE) leave no output bytes.
    output = max(0, artifact.text_bytes - token_embd - sum(layer) - sum(experts))
    return Groups(token_embd, output, tuple(layer), tuple(experts))


def layer_devices(layout: Layout, n_layer: int) -> list[int | None]:
    """Device of layers 0..n_layer (the last is the output layer); None is the CPU.

    `-ngl N` puts the last N of the n_layer + 1 layers on GPUs; with several GPUs llama.cpp
    splits those layers in order (`--tensor-split` gives layers per GPU here).
    """
    on_gpu = n_layer + 1 if layout.gpu_layers is None else layout.gpu_layers
    if not layout.devices:
        on_gpu = 0
    first = n_layer + 1 - on_gpu
    split = layout.tensor_split or [on_gpu]
    owners: list[int | None] = [None] * first
    for device, count in zip(layout.devices, split, strict=False):
        owners += [device] * count
    owners += [layout.devices[-1] if layout.devices else None] * (n_layer + 1 - len(owners))
    return owners[: n_layer + 1]


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


def compute_bytes(
    spec: ModelSpec, cells: int, ubatch: int, flash_attn: bool, with_output: bool = True
) -> int:
    """The compute buffer `sched_reserve` allocates for a worst-case ubatch.

    Two phases compete for the peak: the output layer (F32 logits for every ubatch token) and
    the attention of the last full-attention layer (the KQ mask over all cells, plus, without
    flash attention, F32 scores for every head). llama.cpp's graph allocator sometimes reuses
    the mask's memory for the logits and sometimes does not; the mask is charged in full, so
    this errs high by at most the mask. `with_output`: this device holds the output layer.
    """
    a = spec.architecture
    tokens = min(ubatch, cells)
    vocab = a.vocab_size if with_output else 0
    logits = tokens * (COMPUTE_LOGITS_PER_VOCAB * vocab + COMPUTE_PER_HIDDEN * a.hidden_size)
    if flash_attn:
        return logits + MASK_BYTES * cells * tokens
    scores = tokens * (
        SCORE_BYTES * cells * (a.num_attention_heads + 1)
        + COMPUTE_FA_OFF_PER_HIDDEN * a.hidden_size
    )
    return max(logits, scores)


def vision_compute_bytes(spec: ModelSpec) -> int:
    return (
        VISION_MAX_TOKENS
        * VISION_COMPUTE_PER_TOKEN_PER_HIDDEN
        * (spec.architecture.vision.hidden_size)
    )


def parts(r: LlamaCppRequest) -> list[Part]:
    a = r.spec.architecture
    n_layer = a.num_hidden_layers
    cells = kv_cells(r.context, r.parallel)
    seqs = max(1, r.parallel)
    g = groups(r.spec, r.artifact)
    owners = layer_devices(r.layout, n_layer)
    cpu_moe = r.layout.cpu_moe_layers or 0
    kv_layer = kv_cache_bytes(r.spec, cells, r.kv_cache) // a.n_full_attention_layers
    state_layer = recurrent_state_bytes(r.spec, r.parallel) // a.n_linear_attention_layers
    layers: dict[int | None, int] = {}
    experts: dict[int | None, int] = {}
    kv: dict[int | None, int] = {}
    state: dict[int | None, int] = {}
    for i in range(n_layer):
        d = owners[i]
        layers[d] = layers.get(d, 0) + g.layer[i]
        home = None if i < cpu_moe else d
        experts[home] = experts.get(home, 0) + g.experts[i]
        if a.is_full_attention(i):
            kv[d] = kv.get(d, 0) + kv_layer
        else:
            state[d] = state.get(d, 0) + state_layer
    out_dev = owners[n_layer]
    tied = a.tie_word_embeddings
    # Tied embeddings: on a GPU the output layer is a second copy of token_embd; on the CPU it
    # is the same tensor, then read in full for every token's logits.
    output = g.output + (g.token_embd if tied and out_dev is not None else 0)
    embd_read = g.token_embd if tied and out_dev is None else g.token_embd // a.vocab_size
    share = a.moe.num_experts_per_tok / a.moe.num_experts if a.moe else 1.0

    out: list[Part] = []

    def add(part: PartName, amounts: dict[int | None, int], detail: str, read: float = 0.0) -> None:
        out.extend(parts_by_device(part, amounts, detail, read))

    q = r.artifact.precision
    out.append(
        Part(
            part="weights",
            bytes=g.token_embd,
            placement="ram",
            read_per_token_bytes=embd_read,
            detail=f"token embeddings at {q} (llama.cpp keeps them on the CPU)",
        )
    )
    add(
        "weights",
        {out_dev: output},
        f"output layer at {q}"
        + (" (a GPU copy of the tied embeddings)" if tied and out_dev is not None else ""),
        1.0,
    )
    add(
        "weights",
        layers,
        f"attention, DeltaNet and dense/shared FFN tensors at {q}, MTP not loaded",
        1.0,
    )
    add(
        "weights",
        experts,
        f"routed experts at {q} ({a.moe.num_experts_per_tok} of {a.moe.num_experts} read per token)"
        if a.moe
        else f"FFN at {q}",
        share,
    )
    add(
        "kv_cache",
        kv,
        f"{a.n_full_attention_layers} full-attention layers x {cells} cells, {r.kv_cache}",
        1 / seqs,
    )
    add(
        "linear_state",
        state,
        f"{a.n_linear_attention_layers} Gated DeltaNet layers, F32 conv "
        f"+ recurrent state x {seqs} sequence(s)",
        2 / seqs,
    )
    add(
        "compute",
        {None: output_bytes(r.spec, r.parallel)},
        "output buffer: F32 logits, one row per sequence (host memory)",
    )
    holders = set(owners[:n_layer])
    add(
        "compute",
        {
            d: compute_bytes(r.spec, cells, r.ubatch, r.flash_attn, d == out_dev)
            for d in holders | {out_dev}
        },
        f"compute buffer for a {min(r.ubatch, cells)}-token ubatch, flash attention "
        f"{'on' if r.flash_attn else 'off'}",
    )
    vision_dev = r.layout.devices[0] if r.layout.devices else None
    if not r.text_only:
        add("vision", {vision_dev: r.artifact.vision_bytes}, "mmproj (vision tower) F16")
        add(
            "vision",
            {vision_dev: vision_compute_bytes(r.spec)},
            f"vision encoder compute buffer (an image of {VISION_MAX_TOKENS} tokens, the largest)",
        )
    used = holders | {out_dev, vision_dev if not r.text_only else None}
    add(
        "overhead",
        {d: CUDA_RUNTIME_OVERHEAD for d in r.layout.devices if d in used},
        "CUDA context and libraries (Ollama's per-GPU minimum, 457 MiB)",
    )
    return out
