"""The documented integrations run, as written, against fake runtimes and hypothetical machines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples"
BIN = Path(sys.executable).parent


def _fake(bin_dir: Path, name: str, log: Path) -> None:
    """A stand-in runtime that records its argv as one JSON line."""
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    script.chmod(0o755)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name in ("ollama", "vllm"):
        _fake(fakes, name, tmp_path / f"{name}.log")
    return {
        **os.environ,
        "PATH": f"{fakes}:{BIN}:{os.environ['PATH']}",
        "QWENFIT_VRAM": "24GB",
        "QWENFIT_RAM": "64GB",
    }


def _calls(tmp_path: Path, name: str) -> list[list[str]]:
    log = tmp_path / f"{name}.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_examples_are_shown_verbatim_in_the_docs() -> None:
    doc = (REPO / "docs" / "integration.md").read_text()
    for example in EXAMPLES.iterdir():
        assert example.read_text() in doc, example.name


@pytest.mark.slow
def test_preflight_pulls_when_it_fits_and_exits_3_when_not(
    tmp_path: Path, env: dict[str, str]
) -> None:
    run = subprocess.run(
        ["bash", str(EXAMPLES / "preflight.sh"), "9b"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    # the tag recommend --model 9b picks for the same question (launch completes it that way)
    rec = subprocess.run(
        [
            str(BIN / "qwenfit"),
            "recommend",
            "--model",
            "9b",
            "--runtime",
            "ollama",
            "--context",
            "32k",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    steps = json.loads(rec.stdout)["recommend"]["recommendations"][0]["launch"]["steps"]
    pull = next(s["argv"][1:] for s in steps if s["argv"][:2] == ["ollama", "pull"])
    assert _calls(tmp_path, "ollama") == [pull]
    small = {**env, "QWENFIT_VRAM": "4GB", "QWENFIT_RAM": "8GB"}
    run = subprocess.run(
        ["bash", str(EXAMPLES / "preflight.sh"), "27b"],
        cwd=tmp_path,
        env=small,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 3 and "does not fit" in run.stdout
    run = subprocess.run(
        ["bash", str(EXAMPLES / "preflight.sh"), "no-such-model"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "exit 2" in run.stderr


@pytest.mark.slow
def test_python_installer_pulls_the_recommended_tag(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qwenfit.hardware import catalog as machines
    from qwenfit.hardware import probing

    hypothetical = machines.with_overrides(None, gpu="RTX 4090", ram="64GB")
    monkeypatch.setattr(probing, "probe", lambda: hypothetical)
    monkeypatch.setenv("PATH", env["PATH"])
    code = (EXAMPLES / "install.py").read_text()
    exec(compile(code, "install.py", "exec"), {"__name__": "__main__"})
    # 27B Q4_K_M and 35B-A3B Q4_K_M are within the chat noise (docs/recommending.md): the 3x
    # faster MoE is the pick
    assert _calls(tmp_path, "ollama") == [["pull", "qwen3.5:35b"]]


@pytest.mark.slow
def test_entrypoint_execs_vllm_or_refuses(tmp_path: Path, env: dict[str, str]) -> None:
    ok = {**env, "QWENFIT_VRAM": "80GB", "QWEN_MODEL": "9b"}
    run = subprocess.run(
        ["bash", str(EXAMPLES / "entrypoint.sh")],
        cwd=tmp_path,
        env=ok,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    (argv,) = _calls(tmp_path, "vllm")
    assert argv[:2] == ["serve", "Qwen/Qwen3.5-9B"]
    small = {**env, "QWENFIT_VRAM": "8GB", "QWEN_MODEL": "27b"}
    run = subprocess.run(
        ["bash", str(EXAMPLES / "entrypoint.sh")],
        cwd=tmp_path,
        env=small,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "does not fit this pod" in run.stderr


@pytest.mark.slow
def test_github_actions_step(tmp_path: Path, env: dict[str, str]) -> None:
    text = (EXAMPLES / "github-actions.yml").read_text()
    script = re.search(r"run: \|\n((?:          .*\n)+)", text)
    assert script is not None
    lines = [x.strip() for x in script.group(1).splitlines()]
    assert lines[0] == "pip install qwenfit"
    clean = {k: v for k, v in env.items() if not k.startswith("QWENFIT_")}
    run = subprocess.run(
        ["bash", "-c", "\n".join(lines[1:])],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["probe"],
        ["models"],
        ["estimate", "9b"],
        ["estimate", "9b", "--sweep"],
        ["check", "27b"],
        ["recommend"],
        ["launch", "9b"],
    ],
)
def test_schemas_validate_real_outputs(env: dict[str, str], args: list[str]) -> None:
    """The installed command's stdout, on this machine, validates as printed."""
    run = subprocess.run(
        [str(BIN / "qwenfit"), *args, "--json"], env=env, capture_output=True, text=True
    )
    assert run.returncode in (0, 3), run.stderr
    doc = json.loads(run.stdout)
    name = "sweep" if "--sweep" in args else args[0]
    jsonschema.validate(
        doc, json.loads((REPO / "docs" / "schema" / f"{name}.schema.json").read_text())
    )


@pytest.mark.slow
def test_models_output_validates_against_the_model_schema(env: dict[str, str]) -> None:
    run = subprocess.run(
        [str(BIN / "qwenfit"), "models", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    schema = json.loads((REPO / "docs" / "schema" / "model.schema.json").read_text())
    for model in json.loads(run.stdout)["models"]:
        jsonschema.validate(model, schema)
