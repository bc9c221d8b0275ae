"""llama-server: the model from the Hub (-hf repo:QUANT) or a local file (-m), its projector,
the layout exactly as estimated (-ngl / --n-cpu-moe / --tensor-split, one GPU pinned), the
context per slot, KV type, flash attention, YaRN above the native context and the task's
sampling. Every flag is checked against llama-server --help (tests/test_flags.py)."""

from __future__ import annotations

from qwenfit.adapters import LLAMACPP
from qwenfit.hardware.machine import Machine
from qwenfit.launch import common
from qwenfit.launch.record import LaunchCommand, Step
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import ModelSpec, SpecTable
from qwenfit.units import MiB


def command(
    est: Estimate,
    spec: ModelSpec,
    table: SpecTable,
    task: common.Task,
    machine: Machine | None,
    mmproj: str | None,
) -> LaunchCommand:
    artifact = spec.artifact(est.quant, "gguf")
    assert artifact is not None and artifact.repo is not None
    notes = [f"-c is the total over {est.parallel} slot(s): {est.context} tokens each"]
    path = common.local_path(table, artifact)
    if path is not None:
        source = ["-m", path]
        if not est.text_only:
            if mmproj:
                source += ["--mmproj", mmproj]
            else:
                notes.append(
                    "no projector file was given, so this command loads text only while the "
                    "estimate counts a vision tower: pass --mmproj FILE (or --text-only) to qwenfit"
                )
    else:
        # MTP drafting needs a GGUF that kept the MTP tensors; some are published apart.
        repo = artifact.mtp_repo if est.mtp and artifact.mtp_repo else artifact.repo
        source = ["-hf", f"{repo}:{est.quant.upper()}"]
        if est.text_only:
            source.append("--no-mmproj")  # -hf downloads the projector unless told not to
    env = common.cuda_visible(est, machine)
    preset = common.sampling_preset(table, spec, task)
    s = preset.values
    argv = [
        "llama-server",
        *source,
        "-c",
        str(est.context * est.parallel),
        "-np",
        str(est.parallel),
        *placement_flags(est, renumbered=bool(env)),
        "-fa",
        "on" if est.flash_attn else "off",
        "-ctk",
        est.kv_cache,
        "-ctv",
        est.kv_cache,
        "-ub",
        str(est.ubatch),
        "--temp",
        common.num(s["temperature"]),
        "--top-p",
        common.num(s["top_p"]),
        "--top-k",
        common.num(s["top_k"]),
        "--min-p",
        common.num(s["min_p"]),
        "--presence-penalty",
        common.num(s["presence_penalty"]),
        "--repeat-penalty",
        common.num(s["repetition_penalty"]),
        "--jinja",
    ]
    if est.mtp and est.spec_draft_n_max is not None:
        argv += ["--spec-type", "draft-mtp", "--spec-draft-n-max", str(est.spec_draft_n_max)]
    # The host-RAM bounds the estimate charged (set only when RAM is tight; else the defaults).
    if est.ctx_checkpoints is not None:
        argv += ["--ctx-checkpoints", str(est.ctx_checkpoints)]
    if est.cache_ram_bytes is not None:
        argv += ["--cache-ram", str(est.cache_ram_bytes // MiB)]
    factor = common.yarn_factor(est, spec)
    if factor is not None:
        argv += [
            "--rope-scaling",
            "yarn",
            "--rope-scale",
            str(factor),
            "--yarn-orig-ctx",
            str(spec.context.native),
        ]
        notes.append(
            common.yarn_note(factor, spec)
            + "; the llama.cpp spelling follows the Qwen3 card's llama-server example "
            "(the Qwen3.5 card gives only the config.json / vLLM form)"
        )
    notes.append(f"sampling: {preset.origin}")
    if env:
        notes.append(f"{', '.join(env)} selects the GPU(s) this estimate uses")
    elif est.layout.kind in ("gpu", "offload") and est.layout.devices:
        notes.append(
            f"--main-gpu {est.layout.devices[0]} counts the GPUs this process sees, in "
            "CUDA_VISIBLE_DEVICES order"
        )
    if est.layout.kind == "offload":
        notes.append("part of the model runs from RAM: expect much lower speed than on the GPU")
    return LaunchCommand(
        runtime=LLAMACPP,
        model=spec.name,
        task=task,
        steps=[
            Step(
                argv=argv,
                env=env,
                purpose=(
                    "serve an OpenAI-compatible API on :8080"
                    if path is not None
                    else "download (first run) and serve an OpenAI-compatible API on :8080"
                ),
            ),
        ],
        notes=notes,
    )


def placement_flags(est: Estimate, *, renumbered: bool = False) -> list[str]:
    """-ngl and friends, exactly as the estimate laid the model out (no --fit guessing).

    One GPU is always pinned (`--split-mode none --main-gpu N`) so llama-server cannot spread
    onto another card; `renumbered`: CUDA_VISIBLE_DEVICES lists only the used GPUs, in order.
    """
    layout = est.layout
    if layout.kind == "cpu":
        return ["-ngl", "0", "--fit", "off"]
    flags = ["-ngl", str(layout.gpu_layers) if layout.gpu_layers is not None else "999"]
    if layout.cpu_moe_layers:
        flags += ["--n-cpu-moe", str(layout.cpu_moe_layers)]
    if layout.tensor_split:
        split = list(layout.tensor_split)
        if not renumbered and layout.devices != list(range(len(layout.devices))):
            # --tensor-split is positional over every visible device: 0 for the unused ones.
            per = dict(zip(layout.devices, layout.tensor_split, strict=True))
            split = [per.get(d, 0) for d in range(max(layout.devices) + 1)]
        flags += ["--tensor-split", ",".join(str(n) for n in split)]
    elif layout.devices:
        main = 0 if renumbered else layout.devices[0]
        flags += ["--split-mode", "none", "--main-gpu", str(main)]
    return [*flags, "--fit", "off"]
