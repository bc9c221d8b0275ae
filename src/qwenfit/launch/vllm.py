"""vllm serve: the checkpoint, the context, the sequences the KV memory left allows, TP / PP as
laid out, the parsers the card gives (reasoning, tool calls for agents), text-only mode, YaRN
overrides above the native context, the task's sampling, and FP8 notes per GPU generation.
Every flag is checked against `vllm serve --help=all` (tests/test_flags.py)."""

from __future__ import annotations

import json

from qwenfit.adapters import VLLM, adapter
from qwenfit.fit.verdict import check_fit, sequences_that_fit
from qwenfit.hardware.machine import Machine
from qwenfit.launch import common
from qwenfit.launch.record import LaunchCommand, Step
from qwenfit.memory.layout import valid_tensor_parallel
from qwenfit.memory.record import Estimate
from qwenfit.memory.runtimes import VLLM_GPU_MEMORY_UTILIZATION
from qwenfit.specs.table import ModelSpec, SpecTable

# Qwen3.5 cards and vllm-project/recipes Qwen/Qwen3.5.md: tool calls use the qwen3_coder XML
# format, reasoning the qwen3 parser.
TOOL_CALL_PARSER = "qwen3_coder"
REASONING_PARSER = "qwen3"
# vllm-project/recipes Qwen/Qwen3.5.md: hybrid models cap sequences by Mamba cache blocks and the
# CUDA-graph capture size, "the default value is 512" (--max-cudagraph-capture-size).
MAX_SEQS_CAP = 512
# vllm/config/model.py get_diff_sampling_param: the only keys --override-generation-config sets
# as server defaults (presence_penalty is not among them: clients pass it per request).
DEFAULT_SAMPLING_KEYS = ("repetition_penalty", "temperature", "top_k", "top_p", "min_p")
# vLLM docs, features/quantization/fp8: W8A8 FP8 on compute capability >= 8.9; weight-only
# W8A16 through FP8 Marlin on >= 7.5.
FP8_NATIVE_CC = (8, 9)
FP8_MARLIN_CC = (7, 5)
# BF16 needs compute capability 8.0 (Ampere); vLLM refuses a BF16 checkpoint on older GPUs
# (T4, V100) unless told to compute in FP16 (docs.vllm.ai, engine arguments --dtype).
BF16_CC = (8, 0)


def max_num_seqs(est: Estimate, machine: Machine | None) -> int:
    """--max-num-seqs: the sequences the KV memory left holds on the tightest GPU
    (`fit.verdict.sequences_that_fit`), at least the requested --parallel, at most
    MAX_SEQS_CAP. Without a machine, the requested --parallel."""
    if machine is None or not machine.gpus:
        return est.parallel
    seqs = sequences_that_fit(est, check_fit(est, machine)) or 0
    return max(est.parallel, min(seqs, MAX_SEQS_CAP))


def _cc(text: str | None) -> tuple[int, int] | None:
    try:
        major, minor = (int(x) for x in (text or "").split(".")[:2])
    except ValueError:
        return None
    return major, minor


def _below(cc: tuple[int, int], est: Estimate, machine: Machine | None) -> bool:
    """A GPU the plan uses has a compute capability below `cc`."""
    gpus = common.pinned_gpus(est, machine) or []
    return any((c := _cc(g.compute_capability)) is not None and c < cc for g in gpus)


def fp8_notes(est: Estimate, machine: Machine | None) -> list[str]:
    gpus = common.pinned_gpus(est, machine) or []
    ccs = [c for c in (_cc(g.compute_capability) for g in gpus) if c is not None]
    notes = []
    if est.quant == "fp8":
        if not ccs:
            notes.append(
                "FP8 weights: native W8A8 on compute capability >= 8.9 (Ada, Hopper, Blackwell); "
                "on 7.5-8.7 (Turing, Ampere) vLLM runs them weight-only (W8A16, FP8 Marlin), "
                "slower at prefill (vLLM docs, FP8 W8A8)"
            )
        elif min(ccs) < FP8_MARLIN_CC:
            notes.append("FP8 weights need compute capability >= 7.5; these GPUs cannot run them")
        elif min(ccs) < FP8_NATIVE_CC:
            notes.append(
                "FP8 weights on compute capability < 8.9: vLLM runs them weight-only (W8A16, FP8 "
                "Marlin), slower at prefill than native FP8; FP8 MoE checkpoints on these cards "
                "are not confirmed (vLLM docs, FP8 W8A8)"
            )
    if est.kv_cache == "fp8":
        if ccs and min(ccs) < FP8_NATIVE_CC:
            notes.append(
                "--kv-cache-dtype fp8 fails for this model family before compute capability 8.9 "
                "(vllm-project/vllm#26646): use --kv-cache bf16"
            )
        notes.append(
            "FP8 KV cache: the official FP8 checkpoints carry no calibrated KV scales, which "
            "costs accuracy on reasoning (sgl-project/sgl-cookbook PR #237)"
        )
    return notes


def command(
    est: Estimate, spec: ModelSpec, table: SpecTable, task: common.Task, machine: Machine | None
) -> LaunchCommand:
    artifact = spec.artifact(est.quant, adapter(VLLM).format)
    assert artifact is not None and artifact.repo is not None
    preset = common.sampling_preset(table, spec, task)
    s = preset.values
    seqs = max_num_seqs(est, machine)
    argv = [
        adapter(VLLM).executables[0],
        "serve",
        artifact.repo,
        "--max-model-len",
        str(est.context),
        "--max-num-seqs",
        str(seqs),
        "--gpu-memory-utilization",
        common.num(VLLM_GPU_MEMORY_UTILIZATION),
        "--reasoning-parser",
        REASONING_PARSER,
        "--override-generation-config",
        json.dumps({k: common.plain(s[k]) for k in DEFAULT_SAMPLING_KEYS}, separators=(",", ":")),
    ]
    if task == "agent":
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", TOOL_CALL_PARSER]
    if est.kv_cache == "fp8":
        argv += ["--kv-cache-dtype", "fp8"]
    half = est.quant == "bf16" and _below(BF16_CC, est, machine)
    if half:
        argv += ["--dtype", "half"]
    if est.text_only:
        argv.append("--language-model-only")
    if est.mtp and est.spec_draft_n_max is not None:
        draft = {"method": "mtp", "num_speculative_tokens": est.spec_draft_n_max}
        argv += ["--speculative-config", json.dumps(draft, separators=(",", ":"))]
    env = common.cuda_visible(est, machine)
    notes = [
        f"sampling: {preset.origin} as the server default; vLLM takes no default presence "
        f"penalty, so send presence_penalty={common.num(s['presence_penalty'])} with each request"
    ]
    if half:
        notes.append(
            "--dtype half: these GPUs have no BF16 (compute capability < 8.0), so vLLM computes "
            "the BF16 weights in FP16; the Qwen3.5 cards publish no FP16 quality figures"
        )
    if seqs > est.parallel:
        notes.append(
            f"--max-num-seqs {seqs}: the KV memory left at {est.context} tokens each allows "
            f"that many sequences (sized for {est.parallel})"
        )
    factor = common.yarn_factor(est, spec)
    if factor is not None:
        rope = {
            **common.CARD_ROPE_PARAMETERS,
            "factor": float(factor),
            "original_max_position_embeddings": spec.context.native,
        }
        argv += ["--hf-overrides", json.dumps({"text_config": {"rope_parameters": rope}})]
        env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"
        notes.append(common.yarn_note(factor, spec))
    tp = est.layout.tensor_parallel or 1
    pp = est.layout.pipeline_parallel or 1
    assert tp in valid_tensor_parallel(spec, est.quant), tp
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
        notes.append(
            f"{pp} nodes x {tp} GPUs: tensor parallel within a node, pipeline parallel "
            "across nodes; needs a fast network between nodes (InfiniBand or "
            "100 Gb/s-class Ethernet)"
        )
    steps.append(
        Step(
            argv=argv,
            env=env,
            purpose="serve an OpenAI-compatible API on :8000"
            + (" (run on the head node)" if pp > 1 else ""),
        )
    )
    if "CUDA_VISIBLE_DEVICES" in env:
        notes.append(f"{', '.join(env)} selects the GPU(s) this estimate uses")
    notes += fp8_notes(est, machine)
    return LaunchCommand(runtime=VLLM, model=spec.name, task=task, steps=steps, notes=notes)
