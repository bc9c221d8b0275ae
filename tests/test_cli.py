"""The command line: one JSON document on stdout, one-line errors on stderr, stable exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qwenfit.cli.commands import main

HW = ["--vram", "24GB", "--ram", "64GB"]


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    r = runner.invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("command", ["probe", "models", "estimate", "check", "recommend", "launch"])
def test_every_command_has_help(runner: CliRunner, command: str) -> None:
    code, out, _ = run(runner, command, "--help")
    assert code == 0 and "Usage:" in out


def test_exit_codes_are_in_the_main_help(runner: CliRunner) -> None:
    _, out, _ = run(runner, "--help")
    assert "3  does not fit" in out


def test_models_json(runner: CliRunner) -> None:
    code, out, _ = run(runner, "models", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["models"][0]["name"] == "qwen3.5-0.8b"


def test_estimate_json_has_integer_parts_that_sum(runner: CliRunner) -> None:
    code, out, err = run(
        runner,
        "estimate",
        "qwen3.5-9b",
        "--quant",
        "q4_k_m",
        "--context",
        "128k",
        "--runtime",
        "llama.cpp",
        "--json",
        *HW,
    )
    assert code == 0, err
    e = json.loads(out)["estimate"]
    parts = [
        "weights_bytes",
        "vision_bytes",
        "kv_cache_bytes",
        "linear_state_bytes",
        "compute_bytes",
        "overhead_bytes",
        "mtp_bytes",
        "checkpoints_bytes",
        "prompt_cache_bytes",
    ]
    assert all(isinstance(e[p], int) for p in [*parts, "total_bytes"])
    assert e["total_bytes"] == sum(e[p] for p in parts)
    assert (e["model"], e["runtime"], e["quant"], e["context"]) == (
        "qwen3.5-9b",
        "llama.cpp",
        "q4_k_m",
        131072,
    )


def test_estimate_human_table(runner: CliRunner) -> None:
    code, out, _ = run(runner, "estimate", "27b", "--runtime", "vllm", "--context", "32k", *HW)
    assert code == 0 and "kv_cache" in out and "total" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["estimate", "9b", "--context", "lots"], "'--context': 'lots': use a token count"),
        (["estimate", "9b", "--context", "0"], "at least 1 token"),
        (["estimate", "qwen3.5-9", "--json"], "did you mean 'qwen3.5-9b'"),
        (["estimate", "9b", "--runtime", "llama.cpp", "--quant", "fp8"], "cannot load"),
        (["estimate", "9b", "--kv-cache", "q3"], "no KV cache type 'q3'"),
        (["estimate", "9b", "--vram", "lots", "--ram", "8GB"], "'--vram': 'lots': use a number"),
        (["recommend", "--gpu", "RTX 9999", "--ram", "8GB"], "unknown GPU 'RTX 9999'"),
        (["check", "9b", "--margin", "150%", *HW], "percentage"),
        (["estimate", "9b", "--parallel", "0"], "'--parallel': 0 is not in the range 1<=x<=4096"),
        (["estimate", "9b", "--vram", "9" * 400 + "GB", "--ram", "8GB"], "number is too large"),
        (["estimate", "9b", "--vram", "99999999999999GB", "--ram", "8GB"], "at most 2^60 bytes"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_on_stdout(
    runner: CliRunner, args: list[str], needle: str
) -> None:
    code, out, err = run(runner, *args)
    assert code == 2
    assert out == ""
    assert needle in err
    assert "Traceback" not in err


def test_check_exit_codes(runner: CliRunner) -> None:
    code, out, _ = run(
        runner, "check", "9b", "--runtime", "llama.cpp", "--context", "32k", "--json", *HW
    )
    assert code == 0 and json.loads(out)["check"]["fits"] is True
    code, out, _ = run(
        runner,
        "check",
        "27b",
        "--runtime",
        "llama.cpp",
        "--quant",
        "q8_0",
        "--context",
        "32k",
        "--json",
        *HW,
    )
    doc = json.loads(out)["check"]
    assert code == 3 and doc["fits"] is False and doc["fit"]["missing_bytes"] > 0
    assert doc["nearest"] is not None


def test_recommend_json_and_nothing_fits(runner: CliRunner) -> None:
    code, out, _ = run(runner, "recommend", "--json", "--runtime", "llama.cpp", *HW)
    recs = json.loads(out)["recommend"]["recommendations"]
    assert code == 0 and recs[0]["model"] == "qwen3.5-27b"
    code, out, _ = run(runner, "recommend", "--json", "--vram", "0", "--ram", "256MiB")
    assert code == 3 and json.loads(out)["recommend"]["recommendations"] == []


def test_launch_prints_a_command(runner: CliRunner) -> None:
    args = ["--runtime", "llama.cpp", "--context", "16k", *HW]
    code, out, _ = run(runner, "launch", "9b", "--quant", "q4_k_m", *args)
    assert code == 0 and "llama-server -hf unsloth/Qwen3.5-9B-GGUF:Q4_K_M" in out
    # without --quant, the precision recommend --model 9b picks on this machine
    code, out, _ = run(runner, "launch", "9b", *args)
    _, rec, _ = run(runner, "recommend", "--model", "9b", "--json", *args)
    pick = json.loads(rec)["recommend"]["recommendations"][0]
    assert code == 0 and pick["command"] in out and pick["quant"] != "q4_k_m"


def test_probe_from_a_saved_machine(runner: CliRunner, tmp_path: Path) -> None:
    _, out, _ = run(runner, "probe", "--json", "--gpu", "2x RTX 3090", "--ram", "128GB")
    saved = tmp_path / "machine.json"
    saved.write_text(out)
    code, out2, _ = run(runner, "probe", "--json", "--machine", str(saved))
    machine = json.loads(out2)["machine"]
    assert code == 0 and [g["name"] for g in machine["gpus"]] == ["RTX 3090", "RTX 3090"]
    assert machine["source"] == "file"


def test_bad_machine_file_and_bad_specs(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text('{"gpus": 3}')
    code, out, err = run(runner, "probe", "--machine", str(bad))
    assert code == 2 and out == "" and str(bad) in err
    specs = tmp_path / "specs.json"
    specs.write_text("[]")
    code, out, err = run(runner, "--specs", str(specs), "models")
    assert code == 1 and out == "" and "specs.json" in err


def test_environment_variables_configure_options(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWENFIT_VRAM", "24GB")
    monkeypatch.setenv("QWENFIT_RAM", "64GB")
    monkeypatch.setenv("QWENFIT_RUNTIME", "vllm")
    code, out, _ = run(runner, "estimate", "9b", "--context", "8k", "--json")
    assert code == 0 and json.loads(out)["estimate"]["runtime"] == "vllm"


def test_python_dash_m_and_version() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "qwenfit", "--version"], capture_output=True, text=True, check=True
    )
    assert "version" in r.stdout
