"""A configuration resolved against the spec table (`Config`), and laid out on a machine (`plan`).

`configure` checks every option once; `Config.build(context)` is then cheap, so the context
solver and the recommender can call it often. No speed model here: memory only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from qwenfit.errors import UnsupportedError, UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.memory import hf, llamacpp, runtimes
from qwenfit.memory import layout as layouts
from qwenfit.memory.options import FlashAttn, Options
from qwenfit.memory.record import ContextSource, Estimate, Layout, Part
from qwenfit.specs.table import Artifact, ModelSpec, RuntimeName, SpecTable, load_specs
from qwenfit.units import GiB


def _resolve_flash_attn(runtime: RuntimeName, flash_attn: FlashAttn, kv_cache: str) -> bool | None:
    if runtime not in ("llama.cpp", "ollama"):
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

    def parts(self, context: int) -> list[Part]:
        if self.runtime in ("llama.cpp", "ollama"):
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
        if self.runtime == "vllm":
            return hf.vllm_parts(req)
        return hf.transformers_parts(req)

    def build(self, context: int, source: ContextSource = "user") -> Estimate:
        return Estimate.from_parts(
            self.parts(context),
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
            notes=self.notes(),
        )

    def notes(self) -> list[str]:
        notes = []
        kind = self.layout.kind
        if self.runtime == "vllm":
            notes.append(
                f"vLLM claims {runtimes.VLLM_GPU_MEMORY_UTILIZATION:.0%} of each GPU at start "
                "(--gpu-memory-utilization) and fills what the parts below leave with KV blocks; "
                "the figures are what this context needs"
            )
        if self.runtime == "llama.cpp":
            per_seq = llamacpp.recurrent_state_bytes(self.spec, 1)
            most = runtimes.LLAMACPP_MAX_CHECKPOINTS * per_seq * self.parallel
            notes.append(
                "llama-server also keeps context checkpoints of the recurrent state in host RAM "
                f"as long prompts are processed: up to {runtimes.LLAMACPP_MAX_CHECKPOINTS} per "
                f"slot, {most / GiB:.2f} GiB at most (not charged here)"
            )
        if self.runtime in ("llama.cpp", "ollama") and kind in ("cpu", "offload"):
            notes.append(
                "on the CPU llama.cpp repacks Q4_0/Q4_K/IQ4 tensors into a second buffer; the "
                "mapped originals become reclaimable page cache and are not charged"
            )
        if self.runtime == "ollama":
            notes.append("Ollama runs its own GGUF build; sizes are llama.cpp's for the same quant")
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
    rt = (
        runtimes.check_runtime(o.runtime)
        if o.runtime
        else runtimes.runtime_for(spec, runtimes.default_runtime(machine))
    )
    quant = o.quant
    if quant is None:
        quant = runtimes.default_quant(spec, rt)
        if quant is None:
            raise UnsupportedError(f"{rt} has no build of {spec.name}; try another --runtime")
    q = runtimes.check_quant(table, spec, rt, quant)
    kv = runtimes.check_kv_cache(table, rt, o.kv_cache)
    fa = _resolve_flash_attn(rt, o.flash_attn, kv)
    gguf = rt in ("llama.cpp", "ollama")
    artifact = spec.artifact(q, runtimes.ARTIFACT_FORMAT[rt])
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
    )


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

    if cfg.runtime in ("llama.cpp", "ollama"):
        # llama-server --fit moves MoE experts to RAM first; Ollama's scheduler only splits layers.
        layout = layouts.plan_llamacpp(
            measure,
            cfg.spec,
            machine,
            margin,
            allow_offload=allow_offload,
            expert_offload=cfg.runtime == "llama.cpp",
        )
    elif cfg.runtime == "vllm":
        layout = layouts.plan_vllm(measure, cfg.spec, cfg.quant, machine, margin, nodes)
    else:
        layout = layouts.plan_transformers(measure, machine, margin)
    return cfg.with_layout(layout)
