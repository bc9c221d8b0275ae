"""Every flag, variable and Modelfile keyword qwenfit emits exists in the runtime it is for.

Fixtures: tests/fixtures/runtime_help/ (llama-server of the llama.cpp commit the estimates were
measured on, vLLM's `serve --help=all`, transformers' public names, captured by the scripts in
benchmarks/runtime_help/; Ollama's variables, Modelfile keywords and PARAMETER names transcribed
from its sources at a named commit, see each file's header). A panel of machines x runtimes x
cases (Hub model, local file, multi-GPU, offload, CPU, text only, long context, agent, code)
runs every emitted command through the checks.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from conftest import make_machine

from qwenfit import estimate
from qwenfit.hardware.machine import Machine
from qwenfit.launch.commands import LaunchCommand, launch_command
from qwenfit.specs.table import Source, SpecTable, load_specs

HELP = Path(__file__).parent / "fixtures" / "runtime_help"
LLAMA = (HELP / "llama-server.txt").read_text()
VLLM = (HELP / "vllm-serve.txt").read_text()
PARSERS = set((HELP / "vllm-reasoning-parsers.txt").read_text().split())
TRANSFORMERS = json.loads((HELP / "transformers.json").read_text())
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _lines(name: str) -> list[str]:
    text = (HELP / name).read_text()
    return [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#")]


def _sections(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in _lines(name):
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            out[current] = []
        else:
            out[current].append(line)
    return out


OLLAMA_ENV = set(_lines("ollama-env.txt"))
MODELFILE = _sections("ollama-modelfile.txt")
# Variables outside the runtimes' own help: CUDA's (CUDA C Programming Guide, "CUDA Environment
# Variables"), and vLLM's long-context switch (Qwen3.5 cards and vllm-project/recipes
# Qwen/Qwen3.5.md, "Processing Ultra-Long Texts").
OTHER_ENV = {"CUDA_VISIBLE_DEVICES", "VLLM_ALLOW_LONG_MAX_MODEL_LEN"}


def _flags(text: str) -> set[str]:
    return set(FLAG.findall(text))


def _choices(text: str, flag: str) -> set[str]:
    """Values an option allows, from its 'allowed values', {a,b} or [a|b] help."""
    block = text[text.index(flag) :][:600]
    listed = re.search(r"allowed values: ([^\n]+)", block)
    if listed:
        return {v.strip() for v in listed.group(1).split(",")}
    first = block.splitlines()[0]
    braces = re.search(r"\{([\w,.-]+)\}", first)
    if braces:
        return set(braces.group(1).split(","))
    inline = re.search(r"\[([\w|]+)\]", first)
    assert inline, flag
    return set(inline.group(1).split("|"))


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def check_llama_server(argv: list[str]) -> None:
    assert argv[0] == "llama-server"
    known = _flags(LLAMA)
    for token in argv[1:]:
        if FLAG.fullmatch(token) and not token.lstrip("-")[0].isdigit():
            assert token in known, token
    assert ("-hf" in argv) != ("-m" in argv)
    assert _value(argv, "-fa") in _choices(LLAMA, "--flash-attn")
    assert _value(argv, "-ctk") in _choices(LLAMA, "--cache-type-k TYPE")
    assert _value(argv, "-ctv") in _choices(LLAMA, "--cache-type-v TYPE")
    assert _value(argv, "--fit") in _choices(LLAMA, "--fit [")
    if "--split-mode" in argv:
        assert _value(argv, "--split-mode") in _choices(LLAMA, "--split-mode {")
    if "--rope-scaling" in argv:
        assert _value(argv, "--rope-scaling") in _choices(LLAMA, "--rope-scaling {")
    for flag in ("-c", "-np", "-ub", "-ngl", "--top-k", "--rope-scale", "--yarn-orig-ctx"):
        if flag in argv:
            assert int(_value(argv, flag)) >= 0, flag


def check_vllm_serve(argv: list[str]) -> None:
    assert argv[:2] == ["vllm", "serve"]
    known = _flags(VLLM)
    for token in argv[3:]:
        if FLAG.fullmatch(token):
            assert token in known, token
    assert _value(argv, "--reasoning-parser") in PARSERS
    if "--tool-call-parser" in argv:
        assert _value(argv, "--tool-call-parser") in _choices(VLLM, "--tool-call-parser {")
        assert "--enable-auto-tool-choice" in argv
    if "--kv-cache-dtype" in argv:
        assert _value(argv, "--kv-cache-dtype") in _choices(VLLM, "--kv-cache-dtype {")
    for flag in ("--hf-overrides", "--override-generation-config"):
        if flag in argv:
            assert isinstance(json.loads(_value(argv, flag)), dict)
    assert int(_value(argv, "--max-num-seqs")) >= 1


def check_modelfile(text: str) -> None:
    lines = [x for x in text.splitlines() if x.strip()]
    assert lines[0].startswith("FROM ")
    for line in lines:
        word, _, rest = line.partition(" ")
        assert word in MODELFILE["instructions"], line
        if word == "PARAMETER":
            name, value = rest.split(" ", 1)
            assert name in MODELFILE["parameters"], line
            float(value)  # every parameter qwenfit sets is numeric


def _matches_command(argv: list[str]) -> bool:
    for pattern in MODELFILE["commands"]:
        words = pattern.split()
        if len(words) == len(argv) and all(
            w == a or w.isupper() for w, a in zip(words, argv, strict=True)
        ):
            return True
    return False


def check_transformers(code: str) -> None:
    compile(code, "<launch>", "exec")
    tree = ast.parse(code)
    imported = {
        a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names
    }
    assert imported and all(TRANSFORMERS["names"].get(n) for n in imported), imported
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "from_pretrained":
            kwargs = {k.arg for k in node.keywords}
            assert kwargs <= set(TRANSFORMERS["from_pretrained_kwargs"]), kwargs


def check_command(cmd: LaunchCommand) -> None:
    """Every step of `cmd` against its runtime's fixture."""
    for step in cmd.steps:
        assert shlex.split(step.shell) == step.argv if not step.env else True
        for var in step.env:
            allowed = OLLAMA_ENV if cmd.runtime == "ollama" else OTHER_ENV
            assert var in allowed, var
        if step.argv[0] == "llama-server":
            check_llama_server(step.argv)
        elif step.argv[:2] == ["vllm", "serve"]:
            check_vllm_serve(step.argv)
        elif step.argv[0] == "ollama":
            assert _matches_command(step.argv), step.argv
        elif step.argv[0] == "python":
            check_transformers(step.argv[2])
        else:
            assert step.argv[:2] == ["ray", "start"], step.argv
    for f in cmd.files:
        assert cmd.runtime == "ollama" and f.path == "Modelfile"
        check_modelfile(f.text)
        assert any(s.argv[-2:] == ["-f", f.path] for s in cmd.steps)


def _with_gpu_details(m: Machine, cc: str) -> Machine:
    gpus = [
        g.model_copy(update={"uuid": f"GPU-{g.index:08x}-test", "compute_capability": cc})
        for g in m.gpus
    ]
    return m.model_copy(update={"gpus": gpus})


def local_gguf_table(path: str = "/models/my fine-tune/Qwen3.5-9B-Q4_K_M.gguf") -> SpecTable:
    """The spec table with 9b's Q4_K_M GGUF recorded as a local file, as
    specs.checkpoints.rows does for a checkpoint read from disk."""
    table = load_specs()
    spec = table.get("9b")
    gguf = spec.artifact("q4_k_m", "gguf")
    assert gguf is not None
    local = gguf.model_copy(update={"repo": path, "source": "checkpoint-0123456789"})
    sources = {**table.sources, "checkpoint-0123456789": Source(title="local", path=path)}
    model = spec.model_copy(
        update={"name": "my-9b", "aliases": [], "hf_repo": path, "artifacts": [local]}
    )
    return table.model_copy(update={"models": [*table.models, model], "sources": sources})


ONE = make_machine(24, 64)
SMALL = make_machine(8, 32)
TWO = _with_gpu_details(make_machine(24, 64, gpus=2), "8.6")
FOUR = _with_gpu_details(make_machine(24, 128, gpus=4), "8.6")
H100 = _with_gpu_details(make_machine(80, 1024, gpus=8, bandwidth_gb_s=3350), "9.0")
A100 = _with_gpu_details(make_machine(80, 512, gpus=4), "8.0")
CPU = make_machine(None, 64)
TIGHT_RAM = make_machine(24, 16)

PANEL: list[dict[str, Any]] = [
    # llama.cpp
    dict(runtime="llama.cpp", model="9b", context=32768, machine=ONE),
    dict(
        runtime="llama.cpp",
        model="9b",
        context=32768,
        kv_cache="q8_0",
        parallel=4,
        text_only=True,
        ubatch=1024,
        machine=ONE,
    ),
    dict(runtime="llama.cpp", model="9b", context=8192, flash_attn="off", task="code"),
    dict(runtime="llama.cpp", model="35b-a3b", context=32768, machine=make_machine(16, 64)),
    dict(runtime="llama.cpp", model="27b", context=32768, machine=make_machine(12, 64)),
    dict(runtime="llama.cpp", model="27b", quant="q8_0", context=32768, machine=TWO),
    dict(runtime="llama.cpp", model="9b", context=32768, machine=TWO, task="agent"),
    dict(runtime="llama.cpp", model="4b", context=8192, machine=CPU),
    dict(runtime="llama.cpp", model="9b", context=1010000, kv_cache="q8_0", machine=H100),
    dict(runtime="llama.cpp", model="my-9b", context=16384, machine=ONE, local=True),
    dict(
        runtime="llama.cpp",
        model="my-9b",
        context=16384,
        machine=ONE,
        local=True,
        mmproj="/models/mmproj-F16.gguf",
    ),
    dict(
        runtime="llama.cpp",
        model="qwen3.6-27b",
        quant="q4_k_m",
        context=32768,
        mtp=True,
        machine=TIGHT_RAM,
    ),  # MTP drafting, host RAM bounded
    # Ollama
    dict(runtime="ollama", model="9b", context=16384, machine=ONE),
    dict(runtime="ollama", model="27b", quant="q8_0", context=32768, machine=TWO),
    dict(
        runtime="ollama",
        model="9b",
        quant="q6_k",
        context=32768,
        kv_cache="q8_0",
        machine=ONE,
        task="agent",
    ),
    dict(runtime="ollama", model="35b-a3b", context=8192, machine=make_machine(16, 64)),
    dict(runtime="ollama", model="4b", context=8192, machine=CPU, task="code"),
    dict(runtime="ollama", model="9b", context=524288, text_only=True, machine=H100),
    dict(runtime="ollama", model="my-9b", context=16384, machine=ONE, local=True),
    dict(runtime="ollama", model="9b", context=8192, ubatch=256, flash_attn="off", machine=ONE),
    # vLLM
    dict(runtime="vllm", model="9b", context=32768, machine=ONE),
    dict(
        runtime="vllm",
        model="27b",
        quant="fp8",
        context=65536,
        kv_cache="fp8",
        text_only=True,
        machine=H100,
    ),
    dict(runtime="vllm", model="397b-a17b", quant="fp8", context=32768, machine=H100, task="agent"),
    dict(runtime="vllm", model="397b-a17b", quant="bf16", context=32768, machine=H100, nodes=2),
    dict(runtime="vllm", model="27b", context=1010000, machine=H100, task="code"),
    dict(runtime="vllm", model="35b-a3b", quant="fp8", context=32768, machine=A100),
    dict(runtime="vllm", model="27b", quant="gptq-int4", context=32768, machine=FOUR),
    dict(runtime="vllm", model="qwen3.8-27b", quant="fp8", context=65536, mtp=True, machine=H100),
    # transformers
    dict(runtime="transformers", model="9b", context=4096, machine=ONE),
    dict(runtime="transformers", model="9b", context=4096, text_only=True, task="code"),
    dict(runtime="transformers", model="27b", context=8192, machine=H100, task="agent"),
    dict(runtime="transformers", model="4b", context=4096, machine=CPU),
]


def panel_command(case: dict[str, Any]) -> LaunchCommand:
    case = dict(case)
    task = case.pop("task", "chat")
    mmproj = case.pop("mmproj", None)
    table = local_gguf_table() if case.pop("local", False) else load_specs()
    est = estimate(table=table, **case)
    return launch_command(est, table=table, task=task, machine=case.get("machine"), mmproj=mmproj)


def _id(case: dict[str, Any]) -> str:
    skip = {"machine"}
    return "-".join(f"{v}" for k, v in case.items() if k not in skip)[:70]


@pytest.mark.parametrize("case", PANEL, ids=_id)
def test_every_emitted_command_passes_the_runtime_checks(case: dict[str, Any]) -> None:
    check_command(panel_command(case))


def test_the_panel_covers_every_case() -> None:
    runtimes = {c["runtime"] for c in PANEL}
    assert runtimes == {"llama.cpp", "ollama", "vllm", "transformers"}
    assert len(PANEL) >= 20
    for feature in ("local", "text_only", "nodes", "mmproj", "mtp"):
        assert any(feature in c for c in PANEL), feature
    assert {c.get("task", "chat") for c in PANEL} == {"chat", "agent", "code"}
    assert any(c["context"] > 262144 for c in PANEL)


def test_the_checks_catch_a_flag_the_runtime_lacks() -> None:
    with pytest.raises(AssertionError):
        check_llama_server(["llama-server", "-hf", "a/b:Q4_K_M", "--no-such-flag"])
    with pytest.raises(AssertionError):
        check_vllm_serve(
            [
                "vllm",
                "serve",
                "a/b",
                "--max-num-seqs",
                "1",
                "--reasoning-parser",
                "qwen3",
                "--tool-call-parser",
                "not_a_parser",
                "--enable-auto-tool-choice",
            ]
        )
    with pytest.raises(AssertionError):
        check_modelfile("FROM x\nPARAMETER context_length 4096\n")
    assert not _matches_command(["ollama", "start", "x"])
