"""Launch commands for a configuration: argv lists, never shell strings, never executed here.

`LaunchCommand.shell` is the display form (each argument quoted with shlex), so a model path
with spaces, quotes, ';' or '$(...)' stays one argument when pasted into a shell.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qwenfit.memory.record import Estimate
from qwenfit.memory.runtimes import VLLM_GPU_MEMORY_UTILIZATION
from qwenfit.specs.table import ModelSpec, SpecTable


def shell_line(argv: list[str], env: dict[str, str]) -> str:
    """What to paste into a POSIX shell: every value quoted, so none can inject syntax."""
    prefix = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    return " ".join([*prefix, shlex.join(argv)])


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict, description="Variables to set for argv.")
    purpose: str
    shell: str = Field("", description="argv and env quoted for a POSIX shell (derived).")

    @model_validator(mode="after")
    def _derive_shell(self) -> Step:
        object.__setattr__(self, "shell", shell_line(self.argv, self.env))
        return self


class LaunchCommand(BaseModel):
    """The steps that start `model` as estimated, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: str
    model: str
    steps: list[Step]
    notes: list[str] = []


def _sampling(table: SpecTable, spec: ModelSpec) -> dict[str, float]:
    """The model card's preset: 0.8B and 2B default to non-thinking, larger sizes think."""
    key = "non_thinking_general" if spec.size_label in ("0.8b", "2b") else "thinking_general"
    return table.sampling[key]


def _num(x: float) -> str:
    return f"{x:g}"


def _ollama(est: Estimate, spec: ModelSpec) -> LaunchCommand:
    artifact = spec.artifact(est.quant, "ollama")
    assert artifact is not None and artifact.tag is not None
    env = {"OLLAMA_CONTEXT_LENGTH": str(est.context), "OLLAMA_NUM_PARALLEL": str(est.parallel)}
    if est.kv_cache != "f16":
        env.update(OLLAMA_KV_CACHE_TYPE=est.kv_cache, OLLAMA_FLASH_ATTENTION="1")
    return LaunchCommand(
        runtime="ollama",
        model=spec.name,
        steps=[
            Step(
                argv=["ollama", "serve"],
                env=env,
                purpose="start the server with this context (skip if it already runs with it)",
            ),
            Step(argv=["ollama", "pull", artifact.tag], purpose="download the model"),
            Step(argv=["ollama", "run", artifact.tag], purpose="chat with it"),
        ],
        notes=["Ollama's vision tower is part of the tag; sampling comes from the tag's defaults"],
    )


def _llamacpp(est: Estimate, spec: ModelSpec, table: SpecTable) -> LaunchCommand:
    artifact = spec.artifact(est.quant, "gguf")
    assert artifact is not None and artifact.repo is not None
    s = _sampling(table, spec)
    argv = [
        "llama-server",
        "-hf",
        f"{artifact.repo}:{est.quant.upper()}",
        "-c",
        str(est.context * est.parallel),
        "-np",
        str(est.parallel),
        *_placement_flags(est),
        "-fa",
        "on" if est.flash_attn else "off",
        "-ctk",
        est.kv_cache,
        "-ctv",
        est.kv_cache,
        "-ub",
        str(est.ubatch),
        "--temp",
        _num(s["temperature"]),
        "--top-p",
        _num(s["top_p"]),
        "--top-k",
        _num(s["top_k"]),
        "--min-p",
        _num(s["min_p"]),
        "--presence-penalty",
        _num(s["presence_penalty"]),
        "--jinja",
    ]
    if est.text_only:
        argv.append("--no-mmproj")
    notes = [f"-c is the total over {est.parallel} slot(s): {est.context} tokens each"]
    if est.layout.kind == "offload":
        notes.append("part of the model runs from RAM: expect much lower speed than on the GPU")
    return LaunchCommand(
        runtime="llama.cpp",
        model=spec.name,
        steps=[
            Step(
                argv=argv,
                purpose="download (first run) and serve an OpenAI-compatible API on :8080",
            ),
        ],
        notes=notes,
    )


def _placement_flags(est: Estimate) -> list[str]:
    """-ngl and friends, exactly as the estimate laid the model out (no --fit guessing)."""
    layout = est.layout
    if layout.kind == "cpu":
        return ["-ngl", "0", "--fit", "off"]
    flags = ["-ngl", str(layout.gpu_layers) if layout.gpu_layers is not None else "999"]
    if layout.cpu_moe_layers:
        flags += ["--n-cpu-moe", str(layout.cpu_moe_layers)]
    if layout.tensor_split:
        flags += ["--tensor-split", ",".join(str(n) for n in layout.tensor_split)]
    elif len(layout.devices) == 1 and layout.devices[0] != 0:
        flags += ["--split-mode", "none", "--main-gpu", str(layout.devices[0])]
    return [*flags, "--fit", "off"]


def _vllm(est: Estimate, spec: ModelSpec) -> LaunchCommand:
    artifact = spec.artifact(est.quant, "safetensors")
    assert artifact is not None and artifact.repo is not None
    argv = [
        "vllm",
        "serve",
        artifact.repo,
        "--max-model-len",
        str(est.context),
        "--max-num-seqs",
        str(est.parallel),
        "--gpu-memory-utilization",
        _num(VLLM_GPU_MEMORY_UTILIZATION),
        "--reasoning-parser",
        "qwen3",
    ]
    if est.kv_cache == "fp8":
        argv += ["--kv-cache-dtype", "fp8"]
    if est.text_only:
        argv.append("--language-model-only")
    tp = est.layout.tensor_parallel or 1
    pp = est.layout.pipeline_parallel or 1
    if tp > 1:
        argv += ["--tensor-parallel-size", str(tp)]
    steps = []
    if pp > 1:
        argv += ["--pipeline-parallel-size", str(pp), "--distributed-executor-backend", "ray"]
        steps = [
            Step(
                argv=["ray", "start", "--head", "--port", "6379"],
                purpose="on the head node: start the Ray cluster",
            ),
            Step(
                argv=["ray", "start", "--address", "HEAD_NODE_IP:6379"],
                purpose="on every other node, with the head node's address",
            ),
        ]
    steps.append(
        Step(
            argv=argv,
            purpose="serve an OpenAI-compatible API on :8000"
            + (" (run on the head node)" if pp > 1 else ""),
        )
    )
    notes = []
    if pp > 1:
        notes.append(
            f"{pp} nodes x {tp} GPUs: tensor parallel within a node, pipeline parallel "
            "across nodes; needs a fast network between nodes (InfiniBand or "
            "100 Gb/s-class Ethernet)"
        )
    return LaunchCommand(runtime="vllm", model=spec.name, steps=steps, notes=notes)


def _transformers(est: Estimate, spec: ModelSpec) -> LaunchCommand:
    artifact = spec.artifact(est.quant, "safetensors")
    assert artifact is not None and artifact.repo is not None
    cls = "AutoModelForCausalLM" if est.text_only else "AutoModelForImageTextToText"
    code = (
        f"from transformers import AutoProcessor, {cls}\n"
        f"repo = {artifact.repo!r}\n"
        f"model = {cls}.from_pretrained(repo, dtype='auto', device_map='auto')\n"
        "processor = AutoProcessor.from_pretrained(repo)\n"
        "print(model.config.model_type, 'loaded')\n"
    )
    return LaunchCommand(
        runtime="transformers",
        model=spec.name,
        steps=[
            Step(
                argv=["python", "-c", code], purpose="load the model with transformers (>= 5.2.0)"
            ),
        ],
    )


def launch_command(est: Estimate, *, table: SpecTable | None = None) -> LaunchCommand:
    """The command(s) that start the configuration `est` describes."""
    from qwenfit.errors import UsageError
    from qwenfit.specs.table import load_specs

    if not isinstance(est, Estimate) or not isinstance(table, (SpecTable, type(None))):
        raise UsageError(f"invalid estimate {est!r:.60}: must be an Estimate (see estimate())")

    table = table or load_specs()
    spec = table.get(est.model)
    if est.runtime == "ollama":
        return _ollama(est, spec)
    if est.runtime == "llama.cpp":
        return _llamacpp(est, spec, table)
    if est.runtime == "vllm":
        return _vllm(est, spec)
    return _transformers(est, spec)
