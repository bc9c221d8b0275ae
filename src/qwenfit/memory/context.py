"""The largest context that fits: an affine first guess, then an exact bisection.

Memory only: the solver asks `Config.build` for estimates and `layout` for what is over budget.
"""

from __future__ import annotations

from collections.abc import Callable

from qwenfit.errors import UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.memory import layout as layouts
from qwenfit.memory import runtimes
from qwenfit.memory.config import Config, configure, plan
from qwenfit.memory.options import FlashAttn, Options
from qwenfit.memory.record import ContextSource, Estimate
from qwenfit.memory.runtimes import LLAMACPP_CTX_PAD
from qwenfit.specs.table import ModelSpec, SpecTable


def default_context(cfg: Config, machine: Machine | None, margin: int) -> tuple[int, ContextSource]:
    """The context the runtime itself would use without one being given, and why."""
    native = cfg.spec.context.native
    how = cfg.adapter.context_default
    if how == "by_vram":
        return min(native, runtimes.ollama_default_context(machine)), "runtime default"
    if how == "fixed" and cfg.adapter.fixed_context:
        return cfg.adapter.fixed_context, "runtime default"
    if how == "fitted" and machine is not None:
        # llama-server: n_ctx 0 = the trained context, then --fit lowers it to fit the devices,
        # leaving 1 GiB free per device and never going below 4096 tokens (then offloads).
        fitted = max_context_on(
            plan(cfg, runtimes.LLAMACPP_FIT_MIN_CTX, machine, margin, allow_offload=False),
            machine,
            margin,
        )
        if fitted is None or fitted < native:
            return max(runtimes.LLAMACPP_FIT_MIN_CTX, fitted or 0), "fitted to memory"
    return native, "runtime default"


def max_context_on(cfg: Config, machine: Machine, margin: int) -> int | None:
    """Largest context (up to the native one) at which `cfg`'s layout fits every device of
    `machine` and its RAM, or None when not even one token fits."""

    def over(ctx: int) -> list[int]:
        return layouts.shortfall_by_pool(cfg.build(ctx), machine, margin)

    return largest(cfg.spec.context.native, over, block_of(cfg))


def block_of(cfg: Config) -> int:
    """Contexts over which `cfg`'s memory is constant: llama.cpp pads one sequence's cells to
    a multiple of 256 and sizes every buffer from the cells, so the answer is a multiple of 256
    there (MTP's checkpoints grow with the raw context, and several slots share the padding:
    1 then)."""
    if cfg.adapter.gguf and cfg.parallel == 1 and not cfg.mtp:
        return runtimes.LLAMACPP_CTX_PAD
    return 1


def largest(limit: int, over: Callable[[int], list[int]], block: int = 1) -> int | None:
    """Largest context in [1, limit] where every pool's excess `over(ctx)` is <= 0.

    Every pool's bytes are close to affine in the context (KV and, with flash attention off or
    in transformers, activations grow linearly; weights and state do not), so two evaluations
    give each pool's line and the smallest root is a close first guess. Cell padding, vLLM's
    blocks and compute buffers that shrink below one ubatch make the function a staircase, so a
    bisection on the side of the guess that holds the answer finishes the job exactly.
    """

    def fits(ctx: int) -> bool:
        return max(over(ctx)) <= 0

    lo, hi = 1024, 2048
    roots: list[float] = [float(limit)]
    for a, b in zip(over(lo), over(hi), strict=True):
        slope = (b - a) / (hi - lo)
        if slope > 0:
            roots.append(lo - a / slope)
        elif a > 0:
            roots.append(0.0)  # this pool is over budget at any context above one ubatch
    guess = max(1, min(limit, int(min(roots))))
    # The guess is close, on one side or the other: gallop away from it (one KV padding step,
    # then doubling) until the answer is bracketed, so the bisection spans a few steps only.
    if fits(guess):
        if guess == limit or not fits(guess + 1):
            return guess
        good, step = guess + 1, LLAMACPP_CTX_PAD
        while good + step <= limit and fits(good + step):
            good, step = good + step, step * 2
        bad = min(good + step, limit + 1)
        if bad == limit + 1 and fits(limit):
            return limit
    else:
        bad, step = guess, LLAMACPP_CTX_PAD
        while bad - step >= 1 and not fits(bad - step):
            bad, step = bad - step, step * 2
        good = max(1, bad - step)
        if good == 1 and not fits(1):
            return None
    if block > 1:  # only block ends can be the answer: bisect over them
        lo, hi = -(-good // block), (bad - 1) // block  # block ends inside [good, bad)
        if hi < lo or not fits(lo * block):
            return good
        while hi > lo:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid * block) else (lo, mid - 1)
        return lo * block
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def max_context(
    model: str | ModelSpec,
    budget_bytes: int | None = None,
    *,
    runtime: str | None = None,
    quant: str | None = None,
    kv_cache: str | None = None,
    parallel: int = 1,
    ubatch: int | None = None,
    flash_attn: FlashAttn = "auto",
    text_only: bool = False,
    machine: Machine | None = None,
    allow_offload: bool = True,
    margin: int = runtimes.LLAMACPP_FIT_TARGET_FREE,
    table: SpecTable | None = None,
) -> int | None:
    """The largest context (tokens per sequence, up to the native 262,144) that fits, or None.

    With `budget_bytes`: the bytes on the GPU (or in RAM, without one) stay within it. Otherwise
    `machine` is required: the model is laid out as `estimate` would at 4096 tokens and every
    device and the RAM must keep `margin` free.
    """
    options = Options.of(
        runtime=runtime,
        quant=quant,
        kv_cache=kv_cache,
        parallel=parallel,
        ubatch=ubatch,
        flash_attn=flash_attn,
        text_only=text_only,
        allow_offload=allow_offload,
        margin=margin,
    )
    if budget_bytes is not None and (
        isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 0
    ):
        raise UsageError(f"invalid budget_bytes {budget_bytes!r}: must be a non-negative integer")
    cfg = configure(model, options, machine, table)
    if budget_bytes is not None:
        budget = budget_bytes

        def over(ctx: int) -> list[int]:
            est = cfg.build(ctx)
            return [(est.gpu_bytes if est.gpu_bytes else est.ram_bytes) - budget]

        return largest(cfg.spec.context.native, over)
    if machine is None:
        raise UsageError("max_context needs a budget or a machine")
    cfg = plan(cfg, runtimes.LLAMACPP_FIT_MIN_CTX, machine, margin, allow_offload=allow_offload)
    return max_context_on(cfg, machine, margin)


def max_context_of(
    est: Estimate, machine: Machine, margin: int, table: SpecTable | None = None
) -> int | None:
    """The largest context at which `est`'s configuration, on its layout, still fits."""
    fa: FlashAttn = "auto" if est.flash_attn is None or est.flash_attn else "off"
    options = Options(
        runtime=est.runtime,
        quant=est.quant,
        kv_cache=est.kv_cache,
        parallel=est.parallel,
        ubatch=est.ubatch,
        flash_attn=fa,
        text_only=est.text_only,
    )
    cfg = configure(est.model, options, machine, table)
    return max_context_on(cfg.with_layout(est.layout), machine, margin)
