"""A configuration resolved against the spec table (`Config`), and laid out on a machine (`plan`).

`configure` checks every option once; `Config.build(context)` is then cheap, so the context
solver and the recommender can call it often. No speed model here: memory only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from qwenfit.adapters import LLAMACPP, OLLAMA, Adapter, RuntimeName, adapter
from qwenfit.errors import UnsupportedError, UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.memory import hf, llamacpp, mlx, runtimes
from qwenfit.memory import layout as layouts
from qwenfit.memory.download import download_bytes
from qwenfit.memory.llamacpp_builds import assumed_build
from qwenfit.memory.options import FlashAttn, Options
from qwenfit.memory.record import ContextSource, Estimate, Layout, Part, parts_by_device
from qwenfit.specs import arch
from qwenfit.specs.table import Artifact, ModelSpec, SpecTable, load_specs


def _resolve_flash_attn(runtime: RuntimeName, flash_attn: FlashAttn, kv_cache: str) -> bool | None:
    if not adapter(runtime).flash_attn:
        return None
    # llama.cpp resolves "auto" to on for Qwen3.5 on CUDA and CPU (head_dim 256 is supported).
    on = flash_attn != "off"
    if not on and kv_cache in ("q8_0", "q4_0"):
        raise UnsupportedError(
            f"--kv-cache {kv_cache} needs flash attention in llama.cpp; use --flash-attn on or auto"
        )
    return on


@dataclass(frozen=True)
class Config:
    """Resolved inputs of one estimate; `build(context)` is cheap so solvers can call it often."""

    spec: ModelSpec
    runtime: RuntimeName
    quant: str
    kv_cache: str
    parallel: int
    ubatch: int | None
    flash_attn: bool | None
    text_only: bool
    artifact: Artifact
    layout: Layout
    mtp: bool = False
    # llama-server's host-RAM parts; None: not charged (Ollama, other runtimes, layout search)
    ctx_checkpoints: int | None = None
    cache_ram: int | None = None
    # llama.cpp build the compute graph is sized for (None: the newest measured)
    llama_cpp_build: int | None = None
    # True when the estimate passes non-default values (launch must emit the flags)
    bounded: bool = False
    # Estimates already built, shared by every layout variant of this configuration (solvers
    # and planners ask for the same layout and context more than once). Estimates are frozen.
    built: dict[tuple[object, ...], Estimate] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def adapter(self) -> Adapter:
        return adapter(self.runtime)

    def parts(self, context: int) -> list[Part]:
        sizing = self.adapter.sizing
        if sizing == "arrays":
            return mlx.parts(
                mlx.MLXRequest(
                    self.spec,
                    self.quant,
                    context,
                    self.parallel,
                    self.kv_cache,
                    self.text_only,
                    self.layout,
                )
            )
        if sizing == "gguf":
            assert self.ubatch is not None and self.flash_attn is not None
            return llamacpp.parts(
                llamacpp.LlamaCppRequest(
                    self.spec,
                    self.artifact,
                    context,
                    self.parallel,
                    self.kv_cache,
                    self.ubatch,
                    self.flash_attn,
                    self.text_only,
                    self.layout,
                    self.mtp,
                    self.ctx_checkpoints,
                    self.cache_ram,
                    self.llama_cpp_build,
                )
            )
        req = hf.HFRequest(
            self.spec,
            self.artifact,
            context,
            self.parallel,
            self.kv_cache,
            self.text_only,
            self.layout,
        )
        if sizing == "paged":
            return hf.vllm_parts(req) + (self._vllm_mtp_parts(context) if self.mtp else [])
        return hf.transformers_parts(req)

    def _vllm_mtp_parts(self, context: int) -> list[Part]:
        """vLLM's MTP drafter (method "mtp"): the checkpoint's mtp.* layer, loaded only with
        --speculative-config, plus that attention layer's KV in the same pool
        (vllm/config/speculative.py: the draft reuses the target checkpoint)."""
        spec, a = self.spec, self.spec.architecture
        devices = self.layout.devices or [0]
        exact = self.artifact.mtp_bytes is not None
        weights = self.artifact.mtp_bytes or int(
            spec.params.mtp * self.artifact.text_bytes / spec.params.text
        )
        per_layer = arch.kv_elements_per_token(a) // a.n_full_attention_layers
        kv = runtimes.kv_bytes(
            per_layer * a.mtp_num_hidden_layers * context * self.parallel, self.kv_cache
        )
        n = len(devices)
        return parts_by_device(
            "mtp",
            {d: weights // n for d in devices},
            f"MTP layer (mtp.*) at {self.quant}"
            + ("" if exact else " (size scaled from its parameters)"),
        ) + parts_by_device(
            "mtp",
            {d: kv // n for d in devices},
            f"KV of the MTP layer for {context} tokens x {self.parallel} sequence(s)",
        )

    def build(self, context: int, source: ContextSource = "user") -> Estimate:
        # Everything that `replace()` may vary between variants sharing this memo.
        key = (
            self.layout.key(),
            context,
            source,
            self.ctx_checkpoints,
            self.cache_ram,
            self.bounded,
        )
        cached = self.built.get(key)
        if cached is None:
            cached = self.built[key] = self._build(context, source)
        return cached

    def _build(self, context: int, source: ContextSource) -> Estimate:
        size, exact = download_bytes(self.artifact, self.text_only)
        return Estimate.from_parts(
            self.parts(context),
            self.spec,
            model=self.spec.name,
            runtime=self.runtime,
            quant=self.quant,
            context=context,
            context_source=source,
            kv_cache=self.kv_cache,
            parallel=self.parallel,
            ubatch=self.ubatch,
            flash_attn=self.flash_attn,
            text_only=self.text_only,
            layout=self.layout,
            mtp=self.mtp,
            spec_draft_n_max=(
                (
                    runtimes.LLAMACPP_SPEC_DRAFT_N_MAX
                    if self.adapter.gguf
                    else runtimes.VLLM_NUM_SPECULATIVE_TOKENS
                )
                if self.mtp
                else None
            ),
            ctx_checkpoints=self.ctx_checkpoints if self.bounded else None,
            cache_ram_bytes=self.cache_ram if self.bounded else None,
            download_bytes=size,
            download_exact=exact,
            llama_cpp_build=(
                assumed_build(self.llama_cpp_build) if self.runtime in (LLAMACPP, OLLAMA) else None
            ),
            notes=self.notes(),
        )

    def notes(self) -> list[str]:
        notes = []
        kind = self.layout.kind
        a = self.adapter
        if a.gpu_share:
            notes.append(
                f"vLLM claims {a.gpu_share:.0%} of each GPU at start "
                "(--gpu-memory-utilization) and fills what the parts below leave with KV blocks; "
                "the figures are what this context needs"
            )
        if a.host_ram_caches and self.bounded:
            if not self.cache_ram:
                notes.append(
                    "host RAM is tight: prompt cache off (--cache-ram 0), so a prompt served "
                    "earlier is processed again in full when its slot was reused"
                )
            if self.ctx_checkpoints is not None and (
                self.ctx_checkpoints < runtimes.LLAMACPP_MAX_CHECKPOINTS
            ):
                notes.append(
                    f"host RAM is tight: --ctx-checkpoints {self.ctx_checkpoints} (default "
                    f"{runtimes.LLAMACPP_MAX_CHECKPOINTS}); an edited or branched long "
                    "conversation re-processes the prompt from the nearest older checkpoint"
                    + (" (none: from the start)" if not self.ctx_checkpoints else "")
                )
        if self.mtp and a.host_ram_caches and self.artifact.mtp_repo:
            notes.append(
                f"--spec-type draft-mtp needs a GGUF with the MTP tensors: {self.artifact.mtp_repo}"
            )
        elif self.mtp and a.host_ram_caches and self.artifact.mtp_bytes is None:
            notes.append(
                "--spec-type draft-mtp needs a GGUF that kept the MTP tensors (blk.N.nextn.*); "
                "many published GGUFs dropped them"
            )
        if a.gguf and kind in ("cpu", "offload"):
            notes.append(
                "on the CPU llama.cpp repacks Q4_0/Q4_K/IQ4 tensors into a second buffer; the "
                "mapped originals become reclaimable page cache and are not charged"
            )
        if a.bundles_llamacpp:
            notes.append("Ollama runs its own GGUF build; sizes are llama.cpp's for the same quant")
        if a.sizing == "arrays":
            notes.extend(mlx.notes(self.text_only))
        if kind == "offload":
            notes.append(
                "does not fit the GPU whole: part of the weights run from RAM, which is much slower"
            )
        if kind == "cpu":
            notes.append("every part is placed in host RAM")
        return notes

    def with_layout(self, layout: Layout) -> Config:
        return replace(self, layout=layout)


def configure(
    model: str | ModelSpec,
    options: Options,
    machine: Machine | None = None,
    table: SpecTable | None = None,
) -> Config:
    """Check and resolve everything in `options` but the context and the layout."""
    if machine is not None and not isinstance(machine, Machine):
        raise UsageError(f"invalid machine {machine!r:.60}: must be a Machine (see probe())")
    if table is not None and not isinstance(table, SpecTable):
        raise UsageError(f"invalid table {table!r:.60}: must be a SpecTable (see load_specs())")
    if not isinstance(model, (str, ModelSpec)):
        raise UsageError(f"invalid model {model!r:.60}: must be a model name or a ModelSpec")
    table = table or load_specs()
    spec = model if isinstance(model, ModelSpec) else table.get(model)
    o = options
    asked = (
        runtimes.check_runtime(o.runtime)
        if o.runtime
        else runtimes.runtime_for(spec, runtimes.default_runtime(machine))
    )
    if adapter(asked).vendors == ("apple",):
        mlx.check_machine(machine)  # says why: MLX runs on Apple Silicon only
    rt = runtimes.check_runtime_on(machine, asked)
    quant = o.quant
    if quant is None:
        quant = runtimes.default_quant(spec, rt)
        if quant is None:
            raise UnsupportedError(f"{rt} has no build of {spec.name}; try another --runtime")
    q = runtimes.check_quant(table, spec, rt, quant)
    runtimes.check_mtp(rt, o.mtp)
    kv = runtimes.check_kv_cache(table, rt, o.kv_cache)
    fa = _resolve_flash_attn(rt, o.flash_attn, kv)
    gguf = adapter(rt).gguf
    artifact = runtimes.artifact_for(spec, rt, q)
    assert artifact is not None  # check_quant guarantees it
    start = (
        Layout(kind="cpu")
        if machine is not None and not machine.gpus
        else Layout(kind="gpu", devices=[0])
    )
    return Config(
        spec,
        rt,
        q,
        kv,
        o.parallel,
        (o.ubatch or runtimes.LLAMACPP_DEFAULT_UBATCH) if gguf else None,
        fa,
        o.text_only,
        artifact,
        start,
        o.mtp,
        llama_cpp_build=o.llama_cpp_build or installed_llama_cpp_build(machine),
    )


def installed_llama_cpp_build(machine: Machine | None) -> int | None:
    """The build `qwenfit probe` read from this machine's llama-server, if any."""
    found = (machine.runtimes.get(LLAMACPP) if machine is not None else None) or ""
    return int(found) if found.isdigit() else None


def with_host_ram(cfg: Config, machine: Machine | None, margin: int, context: int) -> Config:
    """llama-server's host-RAM parts at their defaults, bounded when the machine's RAM is tight.

    The prompt cache goes first (--cache-ram 0), then the checkpoints (--ctx-checkpoints N, the
    most that fit, down to 0). Other runtimes keep none.
    """
    if not cfg.adapter.host_ram_caches:
        return cfg
    full = replace(
        cfg,
        ctx_checkpoints=runtimes.LLAMACPP_MAX_CHECKPOINTS,
        cache_ram=runtimes.LLAMACPP_CACHE_RAM,
    )
    if machine is None:
        return full
    budget = max(0, machine.ram_usable_bytes - margin)
    base = cfg.build(context).ram_bytes
    if full.build(context).ram_bytes <= budget:
        return full
    left = budget - base
    no_cache = replace(full, cache_ram=0, bounded=True)
    per = llamacpp.checkpoint_bytes(cfg.spec, context // 2, cfg.mtp) * max(1, cfg.parallel)
    n = max(0, min(runtimes.LLAMACPP_MAX_CHECKPOINTS, left // per if per else 0))
    return replace(no_cache, ctx_checkpoints=int(n))


def plan(
    cfg: Config,
    context: int,
    machine: Machine | None,
    margin: int,
    *,
    allow_offload: bool = True,
    nodes: int = 1,
) -> Config:
    """`cfg` laid out on `machine` the way its runtime would do it at `context` tokens."""

    def measure(layout: Layout) -> Estimate:
        return cfg.with_layout(layout).build(context)

    a = cfg.adapter
    if a.gguf:
        # llama-server --fit moves MoE experts to RAM first; Ollama's scheduler only splits layers.
        layout = layouts.plan_llamacpp(
            measure,
            cfg.spec,
            machine,
            margin,
            allow_offload=allow_offload,
            expert_offload=a.expert_offload,
        )
    elif a.sizing == "arrays":
        layout = Layout(kind="gpu", devices=[0])  # Metal's share of unified memory, no offload
    elif a.sizing == "paged":
        layout = layouts.plan_vllm(measure, cfg.spec, cfg.quant, machine, margin, nodes)
    else:
        layout = layouts.plan_transformers(measure, machine, margin)
    return cfg.with_layout(layout)
