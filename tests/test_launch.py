"""Launch commands: right flags per runtime, and arguments that survive a shell."""

from __future__ import annotations

import shlex

from qwenfit import estimate
from qwenfit.launch.commands import launch_command
from qwenfit.specs.table import SpecTable


def test_llama_server_gets_total_context_and_slots(table: SpecTable) -> None:
    e = estimate("9b", runtime="llama.cpp", quant="q4_k_m", context=32768, parallel=2,
                 kv_cache="q8_0", text_only=True, table=table)
    argv = launch_command(e, table=table).steps[0].argv
    assert argv[:3] == ["llama-server", "-hf", "unsloth/Qwen3.5-9B-GGUF:Q4_K_M"]
    assert argv[argv.index("-c") + 1] == "65536"
    assert argv[argv.index("-np") + 1] == "2"
    assert argv[argv.index("-ctk") + 1] == "q8_0"
    assert "--no-mmproj" in argv


def test_vllm_flags(table: SpecTable) -> None:
    e = estimate("27b", runtime="vllm", quant="fp8", context=65536, kv_cache="fp8",
                 text_only=True, table=table)
    argv = launch_command(e, table=table).steps[0].argv
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen3.5-27B-FP8"]
    assert argv[argv.index("--max-model-len") + 1] == "65536"
    assert {"--language-model-only", "--kv-cache-dtype"} <= set(argv)


def test_ollama_sets_context_on_the_server(table: SpecTable) -> None:
    e = estimate("9b", runtime="ollama", context=16384, table=table)
    steps = launch_command(e, table=table).steps
    assert steps[0].env["OLLAMA_CONTEXT_LENGTH"] == "16384"
    assert steps[-1].argv == ["ollama", "run", "qwen3.5:9b"]


def test_shell_form_round_trips_hostile_arguments(table: SpecTable) -> None:
    spec = table.get("9b")
    hostile = "org/it's a $(rm -rf ~); `x` \"model\""
    artifacts = [a.model_copy(update={"repo": hostile}) if a.format == "safetensors" else a
                 for a in spec.artifacts]
    evil = table.model_copy(update={"models": [spec.model_copy(
        update={"artifacts": artifacts})]})
    e = estimate("9b", runtime="vllm", context=4096, table=evil)
    for step in launch_command(e, table=evil).steps:
        assert shlex.split(step.shell) == step.argv
        assert hostile in step.argv
    code = launch_command(estimate("9b", runtime="transformers", context=4096, table=evil),
                          table=evil).steps[0]
    assert shlex.split(code.shell) == code.argv
    compile(code.argv[2], "<launch>", "exec")  # the repo id is a Python literal, not code
