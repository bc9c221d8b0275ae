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

Over 400 lines because every buffer llama.cpp allocates (weights by layer, KV, recurrent state,
compute, MTP draft context, host-RAM checkpoints) is sized here, each next to its llama.cpp
source.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qwenfit.datafiles import data_text
from qwenfit.errors import SpecError, validation_message
from qwenfit.memory.llamacpp_builds import Graph, assumed_build, graph_for, server_output_rows
from qwenfit.memory.record import Layout, Part, PartName, parts_by_device, trusted
from qwenfit.memory.runtimes import (
    LLAMACPP_CTX_PAD,
    LLAMACPP_SPEC_DRAFT_N_MAX,
    kv_bytes,
)
from qwenfit.specs import arch
from qwenfit.specs.table import Artifact, ModelSpec
from qwenfit.units import MiB

# Ollama's per-GPU floor for the CUDA/ROCm runtime (ollama/ollama discover/gpu.go,
# `cudaMinimumMemory = 457 * format.MebiByte`): the CUDA context, cuBLAS handles and kernels.
CUDA_RUNTIME_OVERHEAD = 457 * MiB

# The compute buffer's coefficients are fitted per llama.cpp build (memory/llamacpp_builds.py,
# docs/estimation.md): the graph allocator reuses memory, so the buffer is the peak over the
# graph's phases, each phase being what is live at once, in bytes per ubatch token.
# The vision encoder (mtmd/clip) reserves its compute buffer at warm-up for a 1472 x 1472 image
# (2116 merged tokens) and grows it at the first image of the largest size qwen3vl_merger
# accepts, 4096 merged tokens (tools/mtmd/clip.cpp). Measured: ~107 bytes per merged token per
# unit of vision hidden size, proportional to the tokens
# (tests/fixtures/measured/llamacpp_mmproj.json, benchmarks/llamacpp/measure_mmproj.py).
VISION_MAX_TOKENS = 4096
VISION_COMPUTE_PER_TOKEN_PER_HIDDEN = 107


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
    mtp: bool = False
    # llama-server's host-RAM parts (None: not charged, e.g. Ollama's runner or while planning)
    ctx_checkpoints: int | None = None
    cache_ram: int | None = None
    # the llama.cpp build to size the compute graph for (None: the newest measured)
    build: int | None = None


# The draft context's KV type (llama-server --spec-draft-type-k/-v, common/common.h: f16).
MTP_DRAFT_KV = "f16"


@dataclass(frozen=True)
class Groups:
    """GGUF tensor bytes by where llama.cpp can put them."""

    token_embd: int  # always on the CPU (llama.cpp's input layer)
    output: int  # output + output_norm: layer n_layer, offloaded last
    layer: tuple[int, ...]  # per layer, everything but the routed experts
    experts: tuple[int, ...]  # per layer, routed experts (--n-cpu-moe keeps them in RAM)

    @functools.cached_property
    def layer_prefix(self) -> tuple[int, ...]:
        """Running sums of `layer`, so any range of layers costs O(1)."""
        return (0, *itertools.accumulate(self.layer))

    @functools.cached_property
    def experts_prefix(self) -> tuple[int, ...]:
        return (0, *itertools.accumulate(self.experts))


class _MeasuredGroups(BaseModel):
    """One GGUF's tensor bytes by group, as data/gguf_layers.json holds them (checked on load)."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    token_embd: int = Field(ge=0)
    output: int = Field(ge=0)
    layer: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    experts: list[Annotated[int, Field(ge=0)]]

    @model_validator(mode="after")
    def _one_entry_per_layer(self) -> _MeasuredGroups:
        if len(self.experts) != len(self.layer):
            raise ValueError("experts and layer must have one entry per layer")
        return self


class _GGUFLayers(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    note: str
    llama_cpp_commit: str
    models: dict[str, dict[str, _MeasuredGroups]]


@functools.cache
def measured_groups() -> dict[tuple[str, str], Groups]:
    """data/gguf_layers.json by (model, precision); a malformed file is a SpecError naming the
    entry (tests/test_specs.py holds the file to the spec table's bytes)."""
    try:
        doc = _GGUFLayers.model_validate(json.loads(data_text("gguf_layers.json")))
    except (ValidationError, ValueError) as e:
        what = validation_message(e) if isinstance(e, ValidationError) else str(e)
        raise SpecError(f"gguf_layers.json: {what}") from None
    return {
        (model, quant): Groups(g.token_embd, g.output, tuple(g.layer), tuple(g.experts))
        for model, quants in doc.models.items()
        for quant, g in quants.items()
    }


def groups(spec: ModelSpec, artifact: Artifact) -> Groups:
    """Measured groups (data/gguf_layers.json), else the artifact's bytes spread by parameters."""
    measured = measured_groups().get((spec.name, artifact.precision))
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


def layer_segments(layout: Layout, n_layer: int) -> list[tuple[int | None, int, int]]:
    """(device, first, end) runs of layers 0..n_layer (the last is the output layer); device
    None is the CPU.

    `-ngl N` puts the last N of the n_layer + 1 layers on GPUs; with several GPUs llama.cpp
    splits those layers in order (`--tensor-split` gives layers per GPU here).
    """
    total = n_layer + 1
    on_gpu = total if layout.gpu_layers is None else layout.gpu_layers
    if not layout.devices:
        on_gpu = 0
    start = total - on_gpu
    runs: list[tuple[int | None, int, int]] = [(None, 0, start)] if start else []
    for device, count in zip(layout.devices, layout.tensor_split or [on_gpu], strict=False):
        end = min(total, start + count)
        if end > start:
            runs.append((device, start, end))
        start = end
    if start < total:  # layers the split did not name go to the last GPU
        runs.append((layout.devices[-1] if layout.devices else None, start, total))
    return runs


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


def mtp_weight_bytes(spec: ModelSpec, artifact: Artifact) -> tuple[int, bool]:
    """Bytes of the MTP block (blk.{n_layer}) at the artifact's quant, and whether exact.

    Exact when the table has the dry-run size (tests/fixtures/measured/llamacpp_mtp_sizes.json);
    otherwise the MTP parameters at the file's average bytes per parameter.
    """
    if artifact.mtp_bytes is not None:
        return artifact.mtp_bytes, True
    return int(spec.params.mtp * artifact.text_bytes / spec.params.text), False


def mtp_kv_bytes_per_token(spec: ModelSpec) -> int:
    """The draft context's KV: one attention layer (the MTP layer), f16 K and V."""
    a = spec.architecture
    per_layer = arch.kv_elements_per_token(a) // a.n_full_attention_layers
    return kv_bytes(per_layer * a.mtp_num_hidden_layers, MTP_DRAFT_KV)


def checkpoint_bytes(spec: ModelSpec, tokens: int, mtp: bool) -> int:
    """One llama-server context checkpoint of one slot at `tokens` tokens.

    The target's recurrent row (state_write with LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY skips the
    attention KV); with MTP the draft context's plain KV cache ignores that flag and adds its
    KV for all of the slot's tokens (src/llama-kv-cache.cpp state_write).
    """
    rs = recurrent_state_bytes(spec, 1)
    return rs + (mtp_kv_bytes_per_token(spec) * tokens if mtp else 0)


def output_bytes(spec: ModelSpec, parallel: int) -> int:
    """F32 logits for one output row per sequence (`llama_context::output_reserve`)."""
    return 4 * spec.architecture.vocab_size * max(1, parallel)


def compute_bytes(
    spec: ModelSpec,
    cells: int,
    ubatch: int,
    flash_attn: bool,
    with_output: bool = True,
    outputs: int | None = 1,
    sequences: int = 1,
    graph: Graph | None = None,
    recurrent: bool = True,
) -> int:
    """The compute buffer `sched_reserve` allocates for a worst-case ubatch.

    `outputs`: logit rows the reservation holds. llama-server reserves one per slot
    (`n_outputs_max` = slots, tools/server/server-context.cpp `server_output_limits`); None is
    llama.cpp's library default, every ubatch token (llama-cpp-python, other embedders).
    `sequences`: slots; each has cells / sequences cells of its own (KV not unified), which is
    what one sequence's mask spans. `with_output`: this device holds the output layer.
    `graph`: the coefficients of a measured build (default: the newest). `recurrent`: False
    for the MTP draft context, whose graph is the MTP layer alone (attention and FFN, no Gated
    DeltaNet).

    Peak over phases, not a sum: the residual stream is live throughout; the KQ mask (an input,
    freed after the last full-attention layer, which is the last layer) is live through every
    layer, beside the largest layer working set (the Gated DeltaNet chunked delta rule, the
    FFN, or without flash attention the F32 scores of every head); the logits come after the
    mask is freed (with one row per slot they are smaller than a layer's working set). With
    every-token logits the allocator does not always place the logits in
    the mask's freed block (tests/fixtures/measured: 2B and 9B reuse it, 0.8B, 4B and 27B do
    not), so the mask, less the residual row it shares, is charged beside them: an upper bound.
    """
    g = graph or graph_for(None)
    a = spec.architecture
    tokens = min(ubatch, cells)
    rows = tokens if outputs is None else min(max(1, outputs), tokens)
    span = -(-cells // max(1, sequences))
    resid = g.per_hidden * a.hidden_size * tokens
    logits = g.logits_per_vocab * a.vocab_size * rows if with_output else 0
    gdn = g.gdn_per_key * a.linear_num_key_heads * a.linear_key_head_dim if recurrent else 0
    if a.moe is None:
        ffn = g.ffn_per_intermediate * (a.intermediate_size or 0)
    else:
        ffn = a.moe.num_experts_per_tok * (
            g.moe_per_intermediate * a.moe.moe_intermediate_size + g.moe_per_hidden * a.hidden_size
        )
    state_rows = max(sequences, outputs or 1)  # with MTP, 1 + draft tokens per slot
    layer = max(tokens * gdn + state_copies(spec, g, state_rows, recurrent), tokens * ffn)
    if flash_attn:
        mask = g.mask_bytes * span * tokens
    else:
        mask = g.score_bytes * span * tokens
        scores = (
            tokens
            * a.num_attention_heads
            * (g.score_bytes * span + g.fa_off_per_query * a.head_dim)
        )
        layer = max(layer, scores)
    if outputs is None:
        not_reused = max(0, mask - 4 * a.hidden_size * tokens)
        return int(resid + max(mask + layer, logits + not_reused))
    return int(resid + mask + max(layer, logits))


def state_copies(spec: ModelSpec, g: Graph, rows: int, recurrent: bool = True) -> float:
    """The Gated DeltaNet phase's part that grows with the recurrent-state rows of a ubatch
    (slots, times 1 + draft tokens with MTP): one layer's state per row beyond the first."""
    if not recurrent or not g.gdn_state_copies:
        return 0.0
    per_layer = recurrent_state_bytes(spec, 1) / spec.architecture.n_linear_attention_layers
    return g.gdn_state_copies * max(0, rows - 1) * per_layer


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
    segments = layer_segments(r.layout, n_layer)
    cpu_moe = min(r.layout.cpu_moe_layers or 0, n_layer)
    kv_layer = kv_cache_bytes(r.spec, cells, r.kv_cache) // a.n_full_attention_layers
    # with MTP the target keeps 1 + n_max rows per sequence for rollback (n_rs_seq)
    rows = 1 + (LLAMACPP_SPEC_DRAFT_N_MAX if r.mtp else 0)
    state_layer = rows * recurrent_state_bytes(r.spec, r.parallel) // a.n_linear_attention_layers
    interval = a.full_attention_interval
    layers: dict[int | None, int] = {}
    experts: dict[int | None, int] = {None: g.experts_prefix[cpu_moe]}
    kv: dict[int | None, int] = {}
    state: dict[int | None, int] = {}
    for d, lo, hi in segments:
        hi = min(hi, n_layer)  # the output layer is sized apart
        if hi <= lo:
            continue
        layers[d] = layers.get(d, 0) + g.layer_prefix[hi] - g.layer_prefix[lo]
        moe_lo = max(lo, cpu_moe)
        if hi > moe_lo:
            experts[d] = experts.get(d, 0) + g.experts_prefix[hi] - g.experts_prefix[moe_lo]
        full = hi // interval - lo // interval  # layers i in [lo, hi) with (i + 1) % k == 0
        kv[d] = kv.get(d, 0) + full * kv_layer
        state[d] = state.get(d, 0) + (hi - lo - full) * state_layer
    out_dev = segments[-1][0]
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
    embd = f"token embeddings at {q} (llama.cpp keeps them on the CPU)"
    out.append(
        trusted(
            Part,
            {
                "part": "weights",
                "bytes": g.token_embd,
                "placement": "ram",
                "device": None,
                "read_per_token_bytes": embd_read,
                "detail": embd,
            },
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
        f"attention, DeltaNet and dense/shared FFN tensors at {q}"
        + (" (the MTP layer is listed apart)" if r.mtp else ", MTP not loaded"),
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
        f"+ recurrent state x {seqs} sequence(s)"
        + (f" x {rows} rows (MTP rollback, n_rs_seq {rows - 1})" if r.mtp else ""),
        2 / seqs,
    )
    add(
        "compute",
        {None: output_bytes(r.spec, r.parallel)},
        "output buffer: F32 logits, one row per sequence (host memory)",
    )
    holders = {d for d, lo, hi in segments if lo < n_layer}
    add(
        "compute",
        {
            d: compute_bytes(
                r.spec,
                cells,
                r.ubatch,
                r.flash_attn,
                d == out_dev,
                server_output_rows(r.build, seqs * rows),
                seqs,
                graph_for(r.build),
            )
            for d in holders | {out_dev}
        },
        f"compute buffer for a {min(r.ubatch, cells)}-token ubatch, flash attention "
        f"{'on' if r.flash_attn else 'off'}, llama.cpp b{assumed_build(r.build)}"
        + ("" if server_output_rows(r.build, 1) else ": logits for every ubatch token"),
    )
    vision_dev = r.layout.devices[0] if r.layout.devices else None
    if not r.text_only:
        add("vision", {vision_dev: r.artifact.vision_bytes}, "mmproj (vision tower) F16")
        add(
            "vision",
            {vision_dev: vision_compute_bytes(r.spec)},
            f"vision encoder compute buffer (an image of {VISION_MAX_TOKENS} tokens, the largest)",
        )
    if r.mtp:
        mtp_w, exact = mtp_weight_bytes(r.spec, r.artifact)
        add(
            "mtp",
            {out_dev: mtp_w},
            f"MTP layer (blk.{n_layer}.nextn) at {q}, loaded for --spec-type draft-mtp"
            + ("" if exact else " (size scaled from its parameters)"),
        )
        add(
            "mtp",
            {out_dev: mtp_kv_bytes_per_token(r.spec) * cells},
            f"draft context KV: the MTP layer x {cells} cells, {MTP_DRAFT_KV}",
        )
        add(
            "mtp",
            {
                out_dev: compute_bytes(
                    r.spec,
                    cells,
                    r.ubatch,
                    r.flash_attn,
                    True,
                    server_output_rows(r.build, seqs),
                    seqs,
                    graph_for(r.build),
                    recurrent=False,
                )
            },
            "draft context compute buffer (same ubatch)",
        )
        add("mtp", {None: output_bytes(r.spec, r.parallel)}, "draft context output buffer")
    if r.ctx_checkpoints:
        # each checkpoint holds the slot's tokens up to where it was taken: on average half
        ckpt = checkpoint_bytes(r.spec, r.context // 2, r.mtp)
        add(
            "checkpoints",
            {None: ckpt * r.ctx_checkpoints * seqs},
            f"{r.ctx_checkpoints} context checkpoints x {seqs} slot(s), "
            f"{ckpt / MiB:.1f} MiB each (recurrent state"
            + (" + draft KV at half the context" if r.mtp else "")
            + ", host RAM)",
        )
    if r.cache_ram:
        add(
            "prompt_cache",
            {None: r.cache_ram},
            f"prompt cache limit (--cache-ram {r.cache_ram // MiB} MiB, host RAM)",
        )
    used = holders | {out_dev, vision_dev if not r.text_only else None}
    add(
        "overhead",
        {d: CUDA_RUNTIME_OVERHEAD for d in r.layout.devices if d in used},
        "CUDA context and libraries (Ollama's per-GPU minimum, 457 MiB)",
    )
    return out
