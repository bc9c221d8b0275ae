"""transformers: a Python snippet (run with `python -c`) that loads the checkpoint with the class
the estimate assumed (vision: AutoModelForImageTextToText; text only: AutoModelForCausalLM,
which drops the vision tower and MTP), the dtype it was sized at, a device_map matching the
layout, and generates with the task's sampling preset. Names are checked against the installed
transformers' public API (tests/fixtures/runtime_help/transformers.json)."""

from __future__ import annotations

from qwenfit.adapters import TRANSFORMERS
from qwenfit.hardware.machine import Machine
from qwenfit.launch import common
from qwenfit.launch.record import LaunchCommand, Step
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import ModelSpec, SpecTable

# Card sampling names -> GenerationConfig fields (transformers has no presence penalty).
GENERATE_KWARGS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def device_map(est: Estimate) -> str:
    """A Python literal: one GPU pinned, "cpu", or "auto" (accelerate spreads over the GPUs)."""
    layout = est.layout
    if layout.kind == "cpu":
        return "'cpu'"
    if layout.kind == "gpu" and len(layout.devices) == 1:
        return repr({"": layout.devices[0]})
    return "'auto'"


def command(
    est: Estimate, spec: ModelSpec, table: SpecTable, task: common.Task, machine: Machine | None
) -> LaunchCommand:
    artifact = spec.artifact(est.quant, "safetensors")
    assert artifact is not None and artifact.repo is not None
    cls = "AutoModelForCausalLM" if est.text_only else "AutoModelForImageTextToText"
    # BF16 weights load as bfloat16; quantized checkpoints (FP8, GPTQ) take their dtype and
    # quantization_config from config.json, so 'auto'.
    dtype = "torch.bfloat16" if est.quant == "bf16" else "'auto'"
    preset = common.sampling_preset(table, spec, task)
    s = preset.values
    max_new = min(common.CARD_MAX_OUTPUT, est.context // 2)
    gen = ", ".join(f"{k}={common.num(s[k])}" for k in GENERATE_KWARGS)
    if est.text_only:
        content = "'Hello! Who are you?'"
    else:
        content = "[{'type': 'text', 'text': 'Hello! Who are you?'}]"
    code = (
        "import torch\n"
        f"from transformers import AutoProcessor, {cls}\n"
        f"repo = {artifact.repo!r}\n"
        f"model = {cls}.from_pretrained(repo, dtype={dtype}, device_map={device_map(est)})\n"
        "processor = AutoProcessor.from_pretrained(repo)\n"
        f"messages = [{{'role': 'user', 'content': {content}}}]\n"
        "inputs = processor.apply_chat_template(messages, add_generation_prompt=True, "
        "tokenize=True, return_dict=True, return_tensors='pt').to(model.device)\n"
        f"out = model.generate(**inputs, max_new_tokens={max_new}, do_sample=True, {gen})\n"
        "print(processor.decode(out[0][inputs['input_ids'].shape[1]:], "
        "skip_special_tokens=True))\n"
    )
    notes = [
        f"sampling: {preset.origin}; transformers has no presence penalty, so "
        f"presence_penalty={common.num(s['presence_penalty'])} is left out",
        "needs transformers >= 5.2.0 (qwen3_5), torch, accelerate"
        + ("" if est.text_only else ", torchvision and pillow (card)"),
    ]
    if est.quant == "gptq-int4":
        notes.append("GPTQ checkpoints also need a GPTQ kernel package (gptqmodel)")
    return LaunchCommand(
        runtime=TRANSFORMERS,
        model=spec.name,
        task=task,
        steps=[
            Step(
                argv=["python", "-c", code],
                purpose=f"load the model with transformers and generate ({cls})",
            )
        ],
        notes=notes,
    )
