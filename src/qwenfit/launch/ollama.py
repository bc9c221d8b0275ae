"""Ollama: a Modelfile pins what was sized (context, batch, GPU layers, sampling), so the model
runs as estimated whether or not a server is already running; `ollama create` builds it and
`ollama run` starts it. Server-wide settings (flash attention, KV cache type) exist only as
environment variables of `ollama serve`.

Sources (ollama/ollama at fb30760): Modelfile keywords `docs/modelfile.mdx`; PARAMETER names
`api/types.go` (Options and Runner); variables `envconfig/config.go`; the hf.co route
huggingface/hub-docs `docs/hub/ollama.md`. The names are checked against
tests/fixtures/runtime_help/ollama-*.txt by tests/test_flags.py.
"""

from __future__ import annotations

from qwenfit.adapters import OLLAMA, adapter
from qwenfit.errors import UnsupportedError
from qwenfit.hardware.machine import Machine
from qwenfit.launch import common
from qwenfit.launch.record import LaunchCommand, LaunchFile, Step
from qwenfit.memory import runtimes
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import ModelSpec, SpecTable

EXE = adapter(OLLAMA).executables[0]  # the ollama command

# The Ollama release each behaviour needs (first tag containing the commit, ollama/ollama).
VERSIONS = {
    "qwen3.5": "0.17.1",  # da70c3222 "model: support for qwen3.5 architecture (#14378)"
    "kv_cache_type": "0.5.0",  # 1bdab9fdb "k/v context quantization (#6279)"
    "flash_attention": "0.1.39",  # 38255d2af (#4580)
    "llama_server": "0.30.0",  # 9db4bdbad "use llama-server exclusively for GGML models"
}

# Card sampling names -> Ollama PARAMETER names (api/types.go Options).
SAMPLING_PARAMETERS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "presence_penalty": "presence_penalty",
    "repetition_penalty": "repeat_penalty",
}


def model_ref(est: Estimate, spec: ModelSpec, table: SpecTable) -> tuple[str, bool]:
    """(what FROM names, whether it is a library tag). A library tag when the spec table has one
    at this precision, else the Hub GGUF as hf.co/<repo>:<QUANT>, or a local GGUF's path."""
    tagged = spec.artifact(est.quant, adapter(OLLAMA).format)
    if tagged is not None and tagged.tag:
        return tagged.tag, True
    gguf = runtimes.artifact_for(spec, OLLAMA, est.quant)
    assert gguf is not None and gguf.repo is not None
    path = common.local_path(table, gguf)
    if path is not None:
        if any(c in path for c in "\n\r"):
            # A Modelfile is read line by line: the rest of the name would be a Modelfile command.
            raise UnsupportedError(
                f"Ollama's Modelfile cannot name the local GGUF {path!r}: its path holds a line "
                "break; rename the folder or use --runtime llama.cpp"
            )
        return path, False
    return f"hf.co/{gguf.repo}:{est.quant.upper()}", False


def modelfile(
    est: Estimate,
    spec: ModelSpec,
    table: SpecTable,
    task: common.Task,
    machine: Machine | None,
    ref: str,
) -> tuple[str, str]:
    """(Modelfile text, where its sampling preset comes from)."""
    params: list[tuple[str, str]] = [("num_ctx", str(est.context))]
    if est.ubatch and est.ubatch != runtimes.LLAMACPP_DEFAULT_UBATCH:
        # Ollama >= 0.30 passes num_batch to llama-server as both -b and -ub.
        params.append(("num_batch", str(est.ubatch)))
    layout = est.layout
    if layout.kind == "cpu":
        params.append(("num_gpu", "0"))
    elif layout.kind == "offload" and layout.gpu_layers is not None:
        params.append(("num_gpu", str(layout.gpu_layers)))
    if (
        layout.kind in ("gpu", "offload")
        and layout.devices
        and machine is not None
        and len(machine.gpus) > 1
    ):
        params.append(("main_gpu", str(layout.devices[0])))
    preset = common.sampling_preset(table, spec, task)
    params += [(SAMPLING_PARAMETERS[k], common.num(v)) for k, v in preset.values.items()]
    lines = [f"FROM {ref}", *(f"PARAMETER {k} {v}" for k, v in params)]
    return "\n".join(lines) + "\n", preset.origin


def server_env(est: Estimate) -> dict[str, str]:
    """Variables the estimate depends on that only `ollama serve` reads."""
    env: dict[str, str] = {}
    if est.kv_cache != "f16":
        env["OLLAMA_FLASH_ATTENTION"] = "1"
        env["OLLAMA_KV_CACHE_TYPE"] = est.kv_cache
    elif est.flash_attn is False:
        env["OLLAMA_FLASH_ATTENTION"] = "0"
    return env


def command(
    est: Estimate, spec: ModelSpec, table: SpecTable, task: common.Task, machine: Machine | None
) -> LaunchCommand:
    ref, library = model_ref(est, spec, table)
    text, origin = modelfile(est, spec, table, task, machine, ref)
    name = common.safe_model_name(f"{spec.name}-{est.quant}-{est.context}")
    notes = [
        f"needs Ollama >= {VERSIONS['qwen3.5']} (qwen3.5 architecture)",
        "the Modelfile pins num_ctx, so the context holds even when Ollama already runs as a "
        "service (OLLAMA_CONTEXT_LENGTH only sets the server-wide default)",
        f"sampling: {origin}",
    ]
    steps: list[Step] = []
    env = server_env(est)
    if env:
        steps.append(
            Step(
                argv=[EXE, "serve"],
                env=env,
                purpose="start the server with the flash-attention / KV-cache settings this "
                "estimate assumes",
            )
        )
        notes.append(
            "these variables are read only when the server starts: if Ollama runs as a service, "
            "set them in its environment instead (Linux: `systemctl edit ollama.service`, "
            "Environment=...; then restart it) and skip `ollama serve`"
        )
        if "OLLAMA_KV_CACHE_TYPE" in env:
            notes.append(
                f"OLLAMA_KV_CACHE_TYPE needs Ollama >= {VERSIONS['kv_cache_type']}; before "
                f"{VERSIONS['llama_server']} it is ignored unless OLLAMA_FLASH_ATTENTION=1"
            )
    if library:
        steps.append(Step(argv=[EXE, "pull", ref], purpose="download the model"))
    else:
        if ref.startswith("hf.co/"):
            steps.append(
                Step(
                    argv=[EXE, "pull", ref],
                    purpose="download the GGUF from the Hugging Face Hub",
                )
            )
        what = "the Hub GGUF" if ref.startswith("hf.co/") else "the local GGUF"
        notes.append(
            f"no Ollama library tag for this build: this runs {what}, which needs Ollama "
            f">= {VERSIONS['llama_server']} (llama-server engine) to load qwen35 GGUFs"
        )
        if not est.text_only:
            notes.append(
                "whether Ollama loads the vision projector of a Hub or local GGUF is not "
                "confirmed; the estimate counts it"
            )
    steps += [
        Step(
            argv=[EXE, "create", name, "-f", "Modelfile"],
            purpose="build a model with these settings from the Modelfile",
        ),
        Step(argv=[EXE, "run", name], purpose="chat with it"),
    ]
    if est.parallel > 1:
        notes.append(
            "Ollama serves Qwen3.5 one request at a time (server/sched.go forces num_parallel 1 "
            "for qwen35 since 0.17.1): OLLAMA_NUM_PARALLEL has no effect"
        )
    if library:
        notes.append("the vision tower is part of the library tag")
    return LaunchCommand(
        runtime=OLLAMA,
        model=spec.name,
        task=task,
        files=[
            LaunchFile(
                path="Modelfile",
                text=text,
                purpose="pins the context, batch, layers and sampling as estimated",
            )
        ],
        steps=steps,
        notes=notes,
    )
