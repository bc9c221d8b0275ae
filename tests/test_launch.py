"""Launch commands: what was sized reaches the command, per runtime, and survives a shell."""

from __future__ import annotations

import json
import shlex
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_machine
from test_flags import local_gguf_table

from qwenfit import check, estimate
from qwenfit.cli.commands import main
from qwenfit.errors import UnsupportedError
from qwenfit.launch.commands import launch_command
from qwenfit.launch.common import TASKS, Task, yarn_factor
from qwenfit.recommender.ranking import Task as RecommendTask
from qwenfit.specs.table import SpecTable

DOC = Path(__file__).parent.parent / "docs" / "launch.md"


def test_launch_tasks_are_the_recommenders() -> None:
    assert typing.get_args(Task) == typing.get_args(RecommendTask) == TASKS


def test_llama_server_gets_total_context_and_slots(table: SpecTable) -> None:
    e = estimate(
        "9b",
        runtime="llama.cpp",
        quant="q4_k_m",
        context=32768,
        parallel=2,
        kv_cache="q8_0",
        text_only=True,
        table=table,
    )
    argv = launch_command(e, table=table).steps[0].argv
    assert argv[:3] == ["llama-server", "-hf", "unsloth/Qwen3.5-9B-GGUF:Q4_K_M"]
    assert argv[argv.index("-c") + 1] == "65536"
    assert argv[argv.index("-np") + 1] == "2"
    assert argv[argv.index("-ctk") + 1] == "q8_0"
    assert "--no-mmproj" in argv


def test_llama_server_local_file_uses_m_and_its_projector() -> None:
    table = local_gguf_table("/m/x.gguf")
    e = estimate("my-9b", runtime="llama.cpp", context=8192, table=table)
    argv = launch_command(e, table=table, mmproj="/m/mmproj.gguf").steps[0].argv
    assert argv[1:5] == ["-m", "/m/x.gguf", "--mmproj", "/m/mmproj.gguf"]
    assert "-hf" not in argv and "--no-mmproj" not in argv
    text = (
        launch_command(
            estimate("my-9b", runtime="llama.cpp", context=8192, text_only=True, table=table),
            table=table,
        )
        .steps[0]
        .argv
    )
    assert "--mmproj" not in text


def test_single_gpu_is_pinned_on_a_multi_gpu_machine() -> None:
    m = make_machine(24, 64, gpus=2)
    e = estimate("9b", runtime="llama.cpp", context=32768, machine=m)
    argv = launch_command(e, machine=m).steps[0].argv
    i = argv.index("--split-mode")
    assert argv[i : i + 4] == ["--split-mode", "none", "--main-gpu", str(e.layout.devices[0])]
    gpus = [g.model_copy(update={"uuid": f"GPU-{g.index}"}) for g in m.gpus]
    probed = m.model_copy(update={"gpus": gpus})
    step = launch_command(e, machine=probed).steps[0]
    assert step.env == {"CUDA_VISIBLE_DEVICES": f"GPU-{e.layout.devices[0]}"}
    assert step.argv[step.argv.index("--main-gpu") + 1] == "0"  # renumbered by the variable


@pytest.mark.parametrize(
    ("context", "factor"), [(262144, None), (300000, 2), (524288, 2), (1010000, 4)]
)
def test_yarn_factor_follows_the_card(table: SpecTable, context: int, factor: int | None) -> None:
    e = estimate("9b", runtime="vllm", context=context, table=table)
    assert yarn_factor(e, table.get("9b")) == factor
    step = launch_command(e, table=table).steps[-1]
    if factor is None:
        assert "--hf-overrides" not in step.argv and not step.env
        return
    rope = json.loads(step.argv[step.argv.index("--hf-overrides") + 1])["text_config"][
        "rope_parameters"
    ]
    assert rope["rope_type"] == "yarn" and rope["factor"] == factor
    assert rope["original_max_position_embeddings"] == 262144
    assert step.env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] == "1"
    llama = (
        launch_command(
            estimate("9b", runtime="llama.cpp", context=context, table=table), table=table
        )
        .steps[0]
        .argv
    )
    assert llama[llama.index("--rope-scale") + 1] == str(factor)


def test_vllm_flags(table: SpecTable) -> None:
    e = estimate(
        "27b",
        runtime="vllm",
        quant="fp8",
        context=65536,
        kv_cache="fp8",
        text_only=True,
        table=table,
    )
    argv = launch_command(e, table=table).steps[0].argv
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen3.5-27B-FP8"]
    assert argv[argv.index("--max-model-len") + 1] == "65536"
    assert {"--language-model-only", "--kv-cache-dtype"} <= set(argv)
    assert "--tool-call-parser" not in argv
    agent = launch_command(e, table=table, task="agent").steps[0].argv
    assert agent[agent.index("--tool-call-parser") + 1] == "qwen3_coder"


def test_vllm_max_num_seqs_follows_the_kv_memory_left() -> None:
    m = make_machine(80, 1024, gpus=8, bandwidth_gb_s=3350)
    e = estimate("27b", runtime="vllm", context=32768, machine=m)
    argv = launch_command(e, machine=m).steps[-1].argv
    seqs = int(argv[argv.index("--max-num-seqs") + 1])
    per_seq = e.kv_cache_bytes + e.linear_state_bytes
    left = 0.9 * 80 * 2**30 * len(e.layout.devices) - (e.gpu_bytes - per_seq)
    assert seqs == min(int(left // per_seq), 512) and seqs > 1
    assert launch_command(e).steps[-1].argv[argv.index("--max-num-seqs") + 1] == "1"


def test_fp8_notes_follow_the_gpu_generation() -> None:
    m = make_machine(80, 512)
    for cc, words in (("8.0", "weight-only"), ("9.0", None)):
        gpus = [g.model_copy(update={"compute_capability": cc}) for g in m.gpus]
        mm = m.model_copy(update={"gpus": gpus})
        e = estimate("27b", runtime="vllm", quant="fp8", context=32768, machine=mm)
        notes = " ".join(launch_command(e, machine=mm).notes)
        assert (words in notes) if words else "W8A16" not in notes


def test_code_task_uses_the_precise_coding_preset(table: SpecTable) -> None:
    e = estimate("9b", runtime="llama.cpp", context=8192, table=table)
    argv = launch_command(e, table=table, task="code").steps[0].argv
    coding = table.sampling["thinking_precise_coding"]
    assert argv[argv.index("--temp") + 1] == f"{coding['temperature']:g}"
    assert argv[argv.index("--presence-penalty") + 1] == f"{coding['presence_penalty']:g}"


def test_ollama_pins_settings_in_a_modelfile(table: SpecTable) -> None:
    e = estimate("9b", runtime="ollama", context=16384, table=table)
    cmd = launch_command(e, table=table)
    text = cmd.files[0].text
    assert text.startswith("FROM qwen3.5:9b\n") and "PARAMETER num_ctx 16384\n" in text
    assert [s.argv[:2] for s in cmd.steps] == [
        ["ollama", "pull"],
        ["ollama", "create"],
        ["ollama", "run"],
    ]
    assert not any(s.env for s in cmd.steps)  # nothing server-wide was assumed


def test_ollama_carries_kv_cache_type_to_the_server(table: SpecTable) -> None:
    e = estimate("9b", runtime="ollama", context=16384, kv_cache="q8_0", table=table)
    serve = launch_command(e, table=table).steps[0]
    assert serve.argv == ["ollama", "serve"]
    assert serve.env == {"OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": "q8_0"}


def test_ollama_library_tags_and_the_hub_route(table: SpecTable) -> None:
    e = estimate("27b", runtime="ollama", quant="q8_0", context=8192, table=table)
    assert launch_command(e, table=table).files[0].text.startswith("FROM qwen3.5:27b-q8_0\n")
    e = estimate("27b", runtime="ollama", quant="q6_k", context=8192, table=table)
    text = launch_command(e, table=table).files[0].text
    assert text.startswith("FROM hf.co/unsloth/Qwen3.5-27B-GGUF:Q6_K\n")
    with pytest.raises(UnsupportedError, match="q4_k_m, q8_0, bf16"):
        estimate("27b", runtime="ollama", quant="fp8", table=table)


def test_check_offers_the_q8_0_tag() -> None:
    r = check("27b", make_machine(48, 64), runtime="ollama", quant="q8_0", context=8192)
    assert r.estimate.quant == "q8_0" and r.fits


def test_shell_form_round_trips_hostile_arguments(table: SpecTable) -> None:
    spec = table.get("9b")
    hostile = 'org/it\'s a $(rm -rf ~); `x` "model"'
    artifacts = [
        a.model_copy(update={"repo": hostile}) if a.format == "safetensors" else a
        for a in spec.artifacts
    ]
    evil = table.model_copy(update={"models": [spec.model_copy(update={"artifacts": artifacts})]})
    e = estimate("9b", runtime="vllm", context=4096, table=evil)
    for step in launch_command(e, table=evil).steps:
        assert shlex.split(step.shell) == step.argv
        assert hostile in step.argv
    code = launch_command(
        estimate("9b", runtime="transformers", context=4096, table=evil), table=evil
    ).steps[0]
    assert shlex.split(code.shell) == code.argv
    compile(code.argv[2], "<launch>", "exec")  # the repo id is a Python literal, not code


def test_cli_launch_exits_3_with_its_document_when_it_does_not_fit() -> None:
    r = CliRunner().invoke(main, ["launch", "397b-a17b", "--vram", "1GB", "--ram", "8GB", "--json"])
    assert json.loads(r.stdout)["schema_version"] == 3
    doc = json.loads(r.stdout)["launch"]
    assert r.exit_code == 3 and doc["fits"] is False
    assert doc["launch"]["steps"] and doc["fit"]["missing_bytes"] > 0
    r = CliRunner().invoke(
        main,
        [
            "launch",
            "9b",
            "--vram",
            "24GB",
            "--ram",
            "64GB",
            "--task",
            "agent",
            "--runtime",
            "vllm",
            "--context",
            "32k",
            "--json",
        ],
    )
    doc = json.loads(r.stdout)["launch"]
    assert r.exit_code == 0 and doc["fits"] and doc["launch"]["task"] == "agent"


@pytest.mark.parametrize("args", [["--quant", "bogus"], ["--task", "poetry"]])
def test_cli_launch_bad_values_are_usage_errors(args: list[str]) -> None:
    r = CliRunner().invoke(main, ["launch", *args, "--vram", "24GB", "--ram", "64GB"])
    assert r.exit_code == 2 and r.stdout == ""


def test_launch_doc_is_current() -> None:
    from launch_doc import render

    assert DOC.read_text() == render(), "docs/launch.md is stale: run python tests/launch_doc.py"


def test_launch_quant_without_a_model_filters_the_top_pick() -> None:
    """--quant means the same in launch and recommend: the top pick at that precision."""
    hw = ["--vram", "24GB", "--ram", "64GB", "--runtime", "llama.cpp", "--json"]
    r = CliRunner().invoke(main, ["launch", "--quant", "q8_0", *hw])
    rec = CliRunner().invoke(main, ["recommend", "--quant", "q8_0", *hw])
    pick = json.loads(rec.stdout)["recommend"]["recommendations"][0]
    doc = json.loads(r.stdout)["launch"]
    assert r.exit_code == 0 and pick["quant"] == "q8_0"
    assert doc["launch"] == pick["launch"]


def test_vllm_bf16_below_compute_capability_8_computes_in_half() -> None:
    """vLLM refuses BF16 on a T4 or V100 unless told --dtype half; an A100 needs nothing."""
    from qwenfit.hardware.catalog import with_overrides
    from qwenfit.recommender.launching import launch_plan

    def argv(gpu: str) -> list[str]:
        m = with_overrides(None, gpu=gpu, ram="64GB")
        plan = launch_plan("0.8b", m, runtime="vllm", quant="bf16", context=8192)
        return plan.launch.steps[-1].argv

    assert argv("T4")[-2:] == ["--dtype", "half"]
    assert "--dtype" not in argv("A100 80GB")
