"""The estimate record: memory per part, where each part is placed, and the resolved inputs."""

from __future__ import annotations

from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from qwenfit.adapters import RuntimeName
from qwenfit.specs.table import ModelSpec

M = TypeVar("M", bound=BaseModel)


def trusted(cls: type[M], values: dict[str, Any], private: dict[str, Any] | None = None) -> M:
    """An instance of `cls` from values computed by qwenfit itself, every field given.

    pydantic's `model_construct` re-derives defaults and aliases on each call; the estimator
    builds thousands of parts per recommendation, so this sets the instance state pydantic
    defines (`__dict__`, fields set, no extras, the private attributes given) directly. Tests
    validate the same values again and require an equal record.
    """
    m = cls.__new__(cls)
    _set(m, "__dict__", values)
    _set(m, "__pydantic_fields_set__", set(values))
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", private)
    return m


_set = object.__setattr__  # pydantic's own __setattr__ refuses frozen fields


PartName = Literal[
    "weights",
    "vision",
    "kv_cache",
    "linear_state",
    "compute",
    "overhead",
    "mtp",
    "checkpoints",
    "prompt_cache",
]
PART_NAMES: tuple[PartName, ...] = get_args(PartName)  # each has a `<name>_bytes` sum
Placement = Literal["gpu", "ram"]
ContextSource = Literal["user", "runtime default", "fitted to memory"]


class Part(BaseModel):
    """One allocation: what it is, how big, where the runtime puts it, and how we know."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    part: PartName
    bytes: int = Field(ge=0)
    placement: Placement
    device: int | None = Field(None, description="GPU index for placement gpu, else null.")
    read_per_token_bytes: int = Field(
        0, ge=0, description="Bytes of this part read to generate one token of one sequence."
    )
    detail: str

    @model_validator(mode="after")
    def _device_matches_placement(self) -> Part:
        if (self.placement == "gpu") != (self.device is not None):
            raise ValueError("a GPU part names its device, a RAM part none")
        return self


def parts_by_device(
    part: PartName, amounts: dict[int | None, int], detail: str, read: float = 0.0
) -> list[Part]:
    """One Part per device with a non-zero amount (None: host RAM, listed first).

    `read`: the share of each amount read to generate one token of one sequence. Built without
    re-validation: the values are computed here (tests/test_estimate.py re-validates a grid).
    """
    return [
        trusted(
            Part,
            {
                "part": part,
                "bytes": b,
                "placement": "ram" if d is None else "gpu",
                "device": d,
                "read_per_token_bytes": int(b * read),
                "detail": detail,
            },
        )
        for d, b in (
            sorted(amounts.items(), key=_ram_first) if len(amounts) > 1 else amounts.items()
        )
        if b
    ]


def _ram_first(item: tuple[int | None, int]) -> int:
    return -1 if item[0] is None else item[0]


LayoutKind = Literal["gpu", "cpu", "offload", "multi_gpu", "multi_node"]


class Layout(BaseModel):
    """How the runtime spreads the model over devices, and the flags that make it do so."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    kind: LayoutKind
    devices: list[int] = Field(default_factory=list, description="GPU indices used, per node.")
    nodes: int = Field(1, ge=1)
    gpu_layers: int | None = Field(
        None, description="llama.cpp -ngl: the last N of n_layer + 1 (output) layers on GPUs."
    )
    cpu_moe_layers: int | None = Field(
        None, description="llama.cpp --n-cpu-moe: routed experts of the first N layers in RAM."
    )
    tensor_split: list[int] | None = Field(
        None, description="llama.cpp --tensor-split: layers per GPU, in device order."
    )
    tensor_parallel: int | None = Field(None, description="vLLM --tensor-parallel-size.")
    pipeline_parallel: int | None = Field(None, description="vLLM --pipeline-parallel-size.")

    def key(self) -> tuple[object, ...]:
        """A cheap hashable identity (the estimator memoizes builds per layout)."""
        return (
            self.kind,
            tuple(self.devices),
            self.nodes,
            self.gpu_layers,
            self.cpu_moe_layers,
            tuple(self.tensor_split or ()),
            self.tensor_parallel,
            self.pipeline_parallel,
        )


class Estimate(BaseModel):
    """What `runtime` will allocate for `model` at `quant` and `context` tokens per sequence."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    model: str
    runtime: RuntimeName
    quant: str
    context: int = Field(gt=0, description="Tokens per sequence.")
    context_source: ContextSource
    kv_cache: str
    parallel: int = Field(gt=0, description="Sequences served at once (slots, max-num-seqs).")
    ubatch: int | None = Field(None, description="llama.cpp micro-batch (tokens).")
    flash_attn: bool | None = Field(None, description="llama.cpp flash attention as resolved.")
    text_only: bool
    weights_bytes: int = Field(ge=0)
    vision_bytes: int = Field(ge=0)
    kv_cache_bytes: int = Field(ge=0)
    linear_state_bytes: int = Field(ge=0)
    compute_bytes: int = Field(ge=0)
    overhead_bytes: int = Field(ge=0)
    mtp_bytes: int = Field(
        0, ge=0, description="MTP speculative decoding: MTP layer weights, draft KV and buffers."
    )
    checkpoints_bytes: int = Field(
        0, ge=0, description="llama-server context checkpoints of the recurrent state (RAM)."
    )
    prompt_cache_bytes: int = Field(
        0, ge=0, description="llama-server prompt cache limit, --cache-ram (RAM)."
    )
    total_bytes: int = Field(ge=0)
    gpu_bytes: int = Field(ge=0, description="Sum of the parts placed on GPUs.")
    ram_bytes: int = Field(ge=0, description="Sum of the parts placed in host RAM.")
    parts: list[Part]
    layout: Layout
    device_bytes: dict[int, int] = Field(
        default_factory=dict, description="Bytes on each GPU (by index), one node's worth."
    )
    tokens_per_second: float | None = Field(
        None,
        description="Estimated decode speed of one sequence with the whole context in its KV "
        "cache (the end of the longest conversation: the slowest point), when the memory "
        "bandwidth of the devices read is known. Same as decode_full_tokens_per_second.",
    )
    decode_empty_tokens_per_second: float | None = Field(
        None,
        description="Estimated decode speed of one sequence with an empty KV cache "
        "(a fresh chat: what short-prompt benchmarks such as llama-bench tg128 time).",
    )
    decode_half_tokens_per_second: float | None = Field(
        None,
        description="Estimated decode speed of one sequence with half the context in its KV cache.",
    )
    decode_full_tokens_per_second: float | None = Field(
        None,
        description="Estimated decode speed of one sequence with the whole context in "
        "its KV cache.",
    )
    speed_reason: str | None = Field(
        None, description="Why a speed figure above is null (one line), when one is."
    )
    mtp: bool = Field(False, description="MTP speculative decoding on.")
    llama_cpp_build: int | None = Field(
        None,
        description="llama.cpp build whose compute graph and output reservation the estimate "
        "assumed (llama.cpp and Ollama).",
    )
    spec_draft_n_max: int | None = Field(
        None,
        description="Tokens drafted per step with MTP (llama-server --spec-draft-n-max, "
        "vLLM num_speculative_tokens).",
    )
    ctx_checkpoints: int | None = Field(
        None,
        description="llama-server --ctx-checkpoints to pass; null: the runtime default is used.",
    )
    cache_ram_bytes: int | None = Field(
        None,
        description="llama-server --cache-ram (in MiB on its command line) to pass; null: the "
        "runtime default is used.",
    )
    prefill_tokens_per_second: float | None = Field(
        None,
        description="Estimated prompt processing speed for a 512-token prompt (llama-bench's "
        "pp512), when the weights sit on GPUs whose FP16 throughput is known.",
    )
    prefill_prompt_tokens: int | None = Field(
        None,
        description="The prompt length prefill_tokens_per_second is for (512, llama-bench's "
        "pp512, processed from scratch).",
    )
    time_to_first_token_s: float | None = Field(
        None,
        description="Estimated seconds to process a prompt of ttft_prompt_tokens tokens from "
        "scratch, with llama-server's fixed cost per request for llama.cpp and Ollama (no "
        "queueing, no model load).",
    )
    ttft_prompt_tokens: int | None = Field(
        None, description="The prompt length time_to_first_token_s assumes: the context."
    )
    aggregate_tokens_per_second: float | None = Field(
        None,
        description="Estimated decode tokens/s summed over `parallel` sequences generating at "
        "once (parallel > 1); each user sees this divided by parallel.",
    )
    download_bytes: int | None = Field(
        None,
        ge=0,
        description="What the runtime downloads for this configuration: the artifact's files "
        "(all shards) and, for a GGUF with vision, the mmproj.",
    )
    download_exact: bool | None = Field(
        None, description="True: published file sizes; false: computed from the tensors."
    )
    load_bytes: int = Field(
        0,
        ge=0,
        description="Needed at load: every part but the host-RAM caches that start empty "
        "(llama-server's prompt cache and context checkpoints).",
    )
    cache_limit_bytes: int = Field(
        0,
        ge=0,
        description="What those host-RAM caches may grow to (their limits); total_bytes = "
        "load_bytes + cache_limit_bytes, and the fit verdict charges the total.",
    )
    notes: list[str] = []
    # The spec this estimate was computed for (a table row or any checkpoint): the stages above
    # use it instead of looking the name up again. Not part of the JSON document.
    _spec: ModelSpec | None = PrivateAttr(None)

    @property
    def spec(self) -> ModelSpec | None:
        """The ModelSpec behind `model`; None for a record read back from JSON."""
        return self._spec

    @model_validator(mode="after")
    def _sums(self) -> Estimate:
        by_part = {name: getattr(self, f"{name}_bytes") for name in PART_NAMES}
        for name, value in by_part.items():
            if value != sum(p.bytes for p in self.parts if p.part == name):
                raise ValueError(f"{name}_bytes does not equal the sum of its parts")
        if self.total_bytes != sum(by_part.values()):
            raise ValueError("total_bytes must be the sum of the parts")
        if self.gpu_bytes + self.ram_bytes != self.total_bytes:
            raise ValueError("gpu_bytes + ram_bytes must equal total_bytes")
        if self.cache_limit_bytes != self.checkpoints_bytes + self.prompt_cache_bytes:
            raise ValueError("cache_limit_bytes must be checkpoints_bytes + prompt_cache_bytes")
        if self.load_bytes + self.cache_limit_bytes != self.total_bytes:
            raise ValueError("load_bytes + cache_limit_bytes must equal total_bytes")
        return self

    @classmethod
    def from_parts(
        cls, parts: list[Part], spec: ModelSpec | None = None, **inputs: object
    ) -> Estimate:
        """Build the record, deriving every sum from the parts so they cannot disagree.

        The estimator calls this hundreds of times per recommendation, so the record is built
        without re-validation; tests/test_estimate.py proves that validating the same values
        gives the same record for every model and runtime.
        """
        sums = dict.fromkeys(_SUM_FIELDS, 0)
        devices: dict[int, int] = {}
        total = gpu = 0
        for p in parts:  # one pass: this runs for every layout and context a solver tries
            sums[_SUM_FIELD[p.part]] += p.bytes
            total += p.bytes
            if p.device is not None:
                gpu += p.bytes
                devices[p.device] = devices.get(p.device, 0) + p.bytes
        values: dict[str, Any] = {
            **inputs,
            **sums,
            "total_bytes": total,
            "gpu_bytes": gpu,
            "ram_bytes": total - gpu,
            "parts": parts,
            "device_bytes": dict(sorted(devices.items())),
        }
        caches = sums["checkpoints_bytes"] + sums["prompt_cache_bytes"]
        values["cache_limit_bytes"] = caches
        values["load_bytes"] = total - caches
        for name, info in cls.model_fields.items():
            if name not in values:
                values[name] = info.get_default(call_default_factory=True)
        return trusted(cls, values, {"_spec": spec})


_SUM_FIELD = {name: f"{name}_bytes" for name in PART_NAMES}
_SUM_FIELDS = tuple(_SUM_FIELD.values())
