"""What the runtime modules share: the task's sampling preset from the model's card, YaRN above
the native context, where an artifact lives (Hub or local file), and which GPUs a command pins."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from qwenfit.hardware.machine import GPU, Machine
from qwenfit.memory.record import Estimate
from qwenfit.specs.sampling import CardModeKey
from qwenfit.specs.table import Artifact, ModelSpec, SpecTable

# Same values and meaning as the recommender's --task (qwenfit.recommender.ranking.Task, which
# sits above this stage; tests/test_launch.py keeps the two equal).
Task = Literal["chat", "agent", "code", "vision"]
TASKS: tuple[Task, ...] = ("chat", "agent", "code", "vision")

# The card's output budget: "an output length of 32,768 tokens for most queries" (Qwen3.5 model
# cards, Best Practices).
CARD_MAX_OUTPUT = 32768

# The card's YaRN block ("Processing Ultra-Long Texts", Qwen3.5 model cards; the same block in
# vllm-project/recipes Qwen/Qwen3.5.md): rope_parameters of text_config, `factor` to be chosen
# for the target length ("if the typical context length ... is 524,288 tokens, it would be better
# to set factor as 2.0").
CARD_ROPE_PARAMETERS: dict[str, object] = {
    "mrope_interleaved": True,
    "mrope_section": [11, 11, 10],
    "rope_type": "yarn",
    "rope_theta": 10000000,
    "partial_rotary_factor": 0.25,
}


@dataclass(frozen=True)
class Preset:
    """The sampling a launch uses: the card mode it answers, its values, and where they come
    from (the model's card, another of its presets, or the family's)."""

    mode: str
    values: dict[str, float]
    origin: str


def task_mode(spec: ModelSpec, task: Task) -> CardModeKey:
    """The card mode a task asks for: code uses "thinking mode for precise coding tasks";
    vision the card's VL preset of the model's default mode when it gives one; everything
    else the general preset of the mode the model runs in by default (0.8B and 2B: non-thinking,
    their cards; a checkpoint without card presets: thinking)."""
    thinking = spec.sampling is None or spec.sampling.default_mode == "thinking"
    if task == "code":
        return "thinking_precise_coding"
    vl: CardModeKey = "thinking_vl" if thinking else "non_thinking_vl"
    if task == "vision" and spec.sampling and vl in spec.sampling.presets:
        return vl
    return "thinking_general" if thinking else "non_thinking_general"


def sampling_preset(table: SpecTable, spec: ModelSpec, task: Task) -> Preset:
    """The card preset for `task` (`task_mode`), following the card's stated inheritance."""
    mode = task_mode(spec, task)
    label = mode.replace("_", " ")
    sampling = spec.sampling
    if sampling is None:
        origin = f"the {table.family} family's {label} preset"
        return Preset(mode, dict(table.sampling[mode]), origin)
    if mode in sampling.presets:
        line = sampling.presets[mode]
        return Preset(mode, line.values(), f"the {spec.display_name} card's '{line.card_mode}'")
    inh = sampling.inherits[mode]  # the table checked every mode is given or inherited
    if inh.source == "model":
        line = sampling.presets[inh.preset]
        origin = f"the {spec.display_name} card's '{line.card_mode}' ({label}: {inh.why})"
        return Preset(mode, line.values(), origin)
    origin = (
        f"the {table.family} family's {inh.preset.replace('_', ' ')} preset ({label}: {inh.why})"
    )
    return Preset(mode, dict(table.sampling[inh.preset]), origin)


def num(x: float) -> str:
    return f"{x:g}"


def plain(x: float) -> int | float:
    """20.0 -> 20 (top_k is an integer in every runtime's JSON), 0.95 stays."""
    return int(x) if float(x).is_integer() else x


def yarn_factor(est: Estimate, spec: ModelSpec) -> int | None:
    """The card's rule: factor = target / native, rounded up (1,010,000 -> 4, 524,288 -> 2);
    None at or below the native context."""
    native = spec.context.native
    if est.context <= native:
        return None
    return math.ceil(est.context / native)


def yarn_note(factor: int, spec: ModelSpec) -> str:
    return (
        f"YaRN rope scaling factor {factor} over the native {spec.context.native:,} tokens, from "
        "the model card ('Processing Ultra-Long Texts'); static YaRN may cost quality on short "
        "texts, so use it only when you need the long context"
    )


def local_path(table: SpecTable, artifact: Artifact) -> str | None:
    """The file or folder of a checkpoint read from disk (specs.checkpoints.rows names its
    source `checkpoint-<digest>` with the resolved path and no URL)."""
    src = table.sources.get(artifact.source)
    if artifact.source.startswith("checkpoint-") and src is not None and src.path and not src.url:
        return src.path
    return None


def pinned_gpus(est: Estimate, machine: Machine | None) -> list[GPU] | None:
    """The machine's GPU records for the devices `est` uses, in layout order (None: unknown)."""
    if machine is None or not machine.gpus:
        return None
    by_index = {g.index: g for g in machine.gpus}
    found = [by_index[d] for d in est.layout.devices if d in by_index]
    return found if len(found) == len(est.layout.devices) else None


def cuda_visible(est: Estimate, machine: Machine | None) -> dict[str, str]:
    """The variable that selects the GPUs `est` uses, in layout order, when the machine uses
    only some of its GPUs; {} when all are used or the GPUs mix vendors.

    NVIDIA: CUDA_VISIBLE_DEVICES by UUID (GPU-... / MIG-...), which does not depend on
    CUDA_DEVICE_ORDER or on a CUDA_VISIBLE_DEVICES already set (CUDA C Programming Guide, 'CUDA
    Environment Variables'); without UUIDs (a hand-written machine file), by index, the CUDA
    device number. AMD (ROCm docs, 'GPU isolation techniques'; ROCm builds of llama.cpp and vLLM
    read both): ROCR_VISIBLE_DEVICES by UUID with HIP_VISIBLE_DEVICES counting what it leaves;
    without UUIDs, HIP_VISIBLE_DEVICES alone, the device's number among the machine's AMD GPUs."""
    gpus = pinned_gpus(est, machine)
    if machine is None or gpus is None or len(gpus) == len(machine.gpus):
        return {}
    if all(g.vendor == "nvidia" for g in gpus):
        if all(g.uuid for g in gpus):
            return {"CUDA_VISIBLE_DEVICES": ",".join(g.uuid or "" for g in gpus)}
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(g.index) for g in gpus)}
    if all(g.vendor == "amd" for g in gpus):
        if all(g.uuid for g in gpus):  # by UUID, whatever the inherited variables say
            return {
                "ROCR_VISIBLE_DEVICES": ",".join(g.uuid or "" for g in gpus),
                "HIP_VISIBLE_DEVICES": ",".join(str(i) for i in range(len(gpus))),
            }
        amd = [g.index for g in sorted(machine.gpus, key=lambda g: g.index) if g.vendor == "amd"]
        return {"HIP_VISIBLE_DEVICES": ",".join(str(amd.index(g.index)) for g in gpus)}
    return {}


def safe_model_name(text: str) -> str:
    """A name `ollama create` accepts: lowercase letters, digits, '.', '_' and '-'."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return name or "qwen"
