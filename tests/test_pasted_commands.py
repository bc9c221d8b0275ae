"""The printed launch steps, pasted into a real bash: hostile file names (line breaks, quotes,
$(), backticks, here-document markers) stay data. Fake `ollama` / `llama-server` executables
on PATH record their argv; the test checks that they ran with exactly the planned argv, that the
Modelfile holds exactly the planned text, and that nothing else happened in the folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_flags import local_gguf_table

from qwenfit import estimate
from qwenfit.cli import render
from qwenfit.errors import UnsupportedError
from qwenfit.launch.commands import launch_command
from qwenfit.launch.record import LaunchCommand, LaunchFile, Step
from qwenfit.specs.table import Source, SpecTable, load_specs

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

HOSTILE = [
    "a\nEOF\ntouch PWNED\n",
    "b\nQWENFIT_EOF\ntouch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "'; touch PWNED; '",
    'x" ; touch PWNED; "',
    "#\ntouch PWNED",
    "-rf * ; touch PWNED",
]

FAKE = """#!/bin/sh
n=$(ls "$QWENFIT_TEST_LOG" | wc -l)
for a in "$(basename "$0")" "$@"; do printf '%s\\0' "$a"; done > "$QWENFIT_TEST_LOG/$n"
"""


def run_pasted(script: str, tmp_path: Path) -> tuple[list[list[str]], Path]:
    """Run `script` in bash in a fresh folder; (recorded argvs, the folder)."""
    fakes, work = tmp_path / "bin", tmp_path / "work"
    fakes.mkdir()
    work.mkdir()
    for name in ("ollama", "llama-server", "vllm", "python", "python3"):
        (fakes / name).write_text(FAKE)
        (fakes / name).chmod(0o755)
    log = tmp_path / "calls"  # one file per call, named by its order
    log.mkdir()
    env = {"PATH": f"{fakes}:/usr/bin:/bin", "QWENFIT_TEST_LOG": str(log), "HOME": str(work)}
    assert BASH is not None
    subprocess.run([BASH, "-c", script], cwd=work, env=env, check=True, timeout=30)
    calls = [
        [a.decode() for a in (log / str(n)).read_bytes().split(b"\0")[:-1]]
        for n in range(len(os.listdir(log)))
    ]
    return calls, work


def local_folder_table(path: str) -> SpecTable:
    """The spec table with 9b's BF16 safetensors recorded as a local folder (as
    specs.checkpoints.rows records a folder read from disk)."""
    table = load_specs()
    spec = table.get("9b")
    st = spec.artifact("bf16", "safetensors")
    assert st is not None
    local = st.model_copy(update={"repo": path, "source": "checkpoint-0123456789"})
    sources = {**table.sources, "checkpoint-0123456789": Source(title="local", path=path)}
    model = spec.model_copy(
        update={"name": "my-9b", "aliases": [], "hf_repo": path, "artifacts": [local]}
    )
    return table.model_copy(update={"models": [*table.models, model], "sources": sources})


def expected_calls(cmd: LaunchCommand) -> list[list[str]]:
    return [s.argv for s in cmd.steps]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("runtime", ["llama.cpp", "ollama"])
def test_printed_steps_run_only_what_they_say(tmp_path: Path, name: str, runtime: str) -> None:
    folder = tmp_path / "models" / name
    path = str(folder / "Qwen3.5-9B-Q4_K_M.gguf")
    table = local_gguf_table(path)
    e = estimate("my-9b", runtime=runtime, context=8192, table=table)
    if runtime == "ollama" and "\n" in name:
        with pytest.raises(UnsupportedError, match="line break"):
            launch_command(e, table=table)
        return
    cmd = launch_command(e, table=table)
    calls, work = run_pasted(render.launch(cmd), tmp_path)
    assert calls == expected_calls(cmd)
    assert any(path in argv for argv in calls) or runtime == "ollama"
    written = {p.name: p.read_text() for p in work.iterdir()}
    assert written == {f.path: f.text for f in cmd.files}
    assert not list(tmp_path.rglob("PWNED"))


def test_no_content_line_can_end_the_here_document(tmp_path: Path) -> None:
    text = "FROM x\nEOF\nQWENFIT_EOF\nQWENFIT_EOF_1\n$(touch PWNED)\n`touch PWNED`\nlast"
    cmd = LaunchCommand(
        runtime="ollama",
        model="m",
        files=[LaunchFile(path="Modelfile", text=text, purpose="a test\ntouch PWNED")],
        steps=[
            Step(
                argv=["ollama", "create", "m\n$(touch PWNED)", "-f", "Modelfile"],
                purpose="build\ntouch PWNED",
            )
        ],
        notes=["a note\ntouch PWNED", "`touch PWNED`"],
    )
    calls, work = run_pasted(render.launch(cmd), tmp_path)
    assert calls == expected_calls(cmd)
    assert (work / "Modelfile").read_text() == text + "\n"
    assert sorted(os.listdir(work)) == ["Modelfile"]
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("runtime", ["vllm", "transformers"])
def test_local_folders_stay_data_in_vllm_and_python(
    tmp_path: Path, name: str, runtime: str
) -> None:
    import ast

    path = str(tmp_path / "models" / name)
    table = local_folder_table(path)
    e = estimate("my-9b", runtime=runtime, context=8192, table=table)
    cmd = launch_command(e, table=table)
    calls, work = run_pasted(render.launch(cmd), tmp_path)
    assert calls == expected_calls(cmd)
    assert not list(tmp_path.rglob("PWNED")) and list(work.iterdir()) == []
    if runtime == "transformers":  # the folder is one Python string literal in the script
        code = calls[0][calls[0].index("-c") + 1]
        assigned = [
            n.value.value
            for n in ast.walk(ast.parse(code))
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
        ]
        assert path in assigned
    else:
        assert path in calls[0]
