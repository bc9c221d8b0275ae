"""Every flag qwenfit emits exists in the runtime's real --help (captured fixtures).

Fixtures: tests/fixtures/runtime_help/ (llama-server of the llama.cpp commit the estimates were
measured on, vLLM's `serve --help=all`, transformers' public names), captured by the scripts in
benchmarks/runtime_help/.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from conftest import make_machine

from qwenfit import estimate
from qwenfit.launch.commands import launch_command

HELP = Path(__file__).parent / "fixtures" / "runtime_help"
LLAMA = (HELP / "llama-server.txt").read_text()
VLLM = (HELP / "vllm-serve.txt").read_text()
PARSERS = set((HELP / "vllm-reasoning-parsers.txt").read_text().split())
TRANSFORMERS = json.loads((HELP / "transformers.json").read_text())
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _flags(text: str) -> set[str]:
    return set(FLAG.findall(text))


def _choices(text: str, flag: str) -> set[str]:
    """Values a llama-server option allows, from its 'allowed values' or [a|b] help."""
    block = text[text.index(flag):][:600]
    listed = re.search(r"allowed values: ([^\n]+)", block)
    if listed:
        return {v.strip() for v in listed.group(1).split(",")}
    inline = re.search(r"\[([\w|]+)\]", block.splitlines()[0])
    assert inline, flag
    return set(inline.group(1).split("|"))


LLAMA_CASES = [
    dict(model="9b", context=32768),
    dict(model="9b", context=32768, kv_cache="q8_0", parallel=4, text_only=True, ubatch=1024),
    dict(model="9b", context=8192, flash_attn="off"),
    dict(model="35b-a3b", context=32768, machine=make_machine(16, 64)),  # --n-cpu-moe
    dict(model="27b", context=32768, machine=make_machine(12, 64)),  # -ngl N
    dict(model="27b", quant="q8_0", context=32768, machine=make_machine(24, 64, gpus=2)),
    dict(model="4b", context=8192, machine=make_machine(None, 32)),  # CPU
]


@pytest.mark.parametrize("case", LLAMA_CASES, ids=lambda c: "-".join(map(str, c.values()))[:60])
def test_llama_server_flags_exist(case: dict[str, object]) -> None:
    est = estimate(runtime="llama.cpp", **case)  # type: ignore[arg-type]
    argv = launch_command(est).steps[0].argv
    known = _flags(LLAMA)
    for token in argv[1:]:
        if FLAG.fullmatch(token):
            assert token in known, token
    assert argv[argv.index("-fa") + 1] in _choices(LLAMA, "--flash-attn")
    assert argv[argv.index("-ctk") + 1] in _choices(LLAMA, "--cache-type-k TYPE")
    assert argv[argv.index("--fit") + 1] in _choices(LLAMA, "--fit [")


VLLM_CASES = [
    dict(model="9b", context=32768),
    dict(model="27b", quant="fp8", context=65536, kv_cache="fp8", text_only=True),
    dict(model="397b-a17b", quant="fp8", context=32768,
         machine=make_machine(80, 1024, gpus=8)),
    dict(model="397b-a17b", quant="bf16", context=32768, machine=make_machine(80, 1024, gpus=8),
         nodes=2),
]


@pytest.mark.parametrize("case", VLLM_CASES, ids=lambda c: "-".join(map(str, c.values()))[:60])
def test_vllm_serve_flags_exist(case: dict[str, object]) -> None:
    est = estimate(runtime="vllm", **case)  # type: ignore[arg-type]
    argv = launch_command(est).steps[-1].argv
    assert argv[:2] == ["vllm", "serve"]
    known = _flags(VLLM)
    for token in argv[2:]:
        if FLAG.fullmatch(token):
            assert token in known, token
    assert argv[argv.index("--reasoning-parser") + 1] in PARSERS
    if "--kv-cache-dtype" in argv:
        assert re.search(r"--kv-cache-dtype \{[^}]*\bfp8\b", VLLM)


@pytest.mark.parametrize("text_only", [False, True])
def test_transformers_snippet_parses_and_names_real_classes(text_only: bool) -> None:
    est = estimate("9b", runtime="transformers", context=4096, text_only=text_only)
    code = launch_command(est).steps[0].argv[2]
    tree = ast.parse(code)
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for a in node.names}
    assert imported and all(TRANSFORMERS["names"].get(n) for n in imported), imported
    kwargs = {k.arg for node in ast.walk(tree) if isinstance(node, ast.Call)
              for k in node.keywords}
    assert kwargs <= set(TRANSFORMERS["from_pretrained_kwargs"])
