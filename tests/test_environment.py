"""The environment read as the software it describes reads it: QWENFIT_* errors name the
variable, no variable turns the network on, an unusable HOME never puts the cache in the current
folder, and SIGINT is one line and exit 130. (CUDA_VISIBLE_DEVICES: tests/test_probe.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_probe import FakeNVML, card

from qwenfit import cache
from qwenfit.cli import main
from qwenfit.hardware.probing import probe


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("QWENFIT_VRAM", "24XB"),
        ("QWENFIT_RAM", "lots"),
        ("QWENFIT_RAM_BANDWIDTH", "1e400GB/s"),
        ("QWENFIT_RUNTIME", "llama.cp"),
        ("QWENFIT_GPU", "RTX 9999"),
    ],
)
def test_a_bad_variable_is_named(variable: str, value: str) -> None:
    result = CliRunner().invoke(main, ["estimate", "9b"], env={variable: value})
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and f"from {variable}" in last and "Traceback" not in last


def test_qwenfit_online_does_not_turn_the_network_on() -> None:
    result = CliRunner().invoke(
        main, ["estimate", "someone/Qwen3.5-9B-GGUF"], env={"QWENFIT_ONLINE": "1"}
    )
    assert result.exit_code == 2
    assert "pass --online" in result.stderr


@pytest.mark.parametrize("home", ["relative/home", "", None])
def test_an_unusable_home_puts_the_cache_in_a_private_temp_folder(
    home: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QWENFIT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    if home is None:  # HOME unset and a uid without a passwd entry: Path.home() fails
        monkeypatch.delenv("HOME", raising=False)

        def no_home() -> Path:
            raise RuntimeError("Could not determine home directory.")

        monkeypatch.setattr(Path, "home", staticmethod(no_home))
    else:
        monkeypatch.setenv("HOME", home)
    where = cache.cache_dir()
    assert where.is_absolute() and not where.is_relative_to(tmp_path)
    assert where.is_dir() and (where.stat().st_mode & 0o777) == 0o700
    note = cache.cache_note()
    assert note is not None and str(where) in note
    m = probe(
        root=tmp_path,
        environ={},
        nvml=FakeNVML([card(0)]),
        system="Linux",
        bandwidth=lambda: 10**10,
    )
    assert m.ram_bandwidth_bytes_per_s == 10**10 and note in m.warnings
    assert list(tmp_path.iterdir()) == []  # nothing written in the current folder


def test_a_usable_home_gives_no_note(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QWENFIT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / ".cache" / "qwenfit"
    assert cache.cache_note() is None


@pytest.mark.slow
def test_sigint_during_start_up_is_one_line_and_130() -> None:
    pytest.importorskip("uvicorn")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for delay in (0.3, 4.0):  # while importing, and once the server runs
        p = subprocess.Popen(
            [sys.executable, "-m", "qwenfit", "serve", "--port", "0"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=30)
        finally:  # a server that missed the signal must not outlive the test
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 130, err
        assert err.strip().splitlines()[-1] == "Error: interrupted"
        assert "Traceback" not in err


def test_no_home_at_all_still_checks_and_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HOME unset and a uid without a passwd entry (`docker run --user N`): check answers
    (the download folder, unknown, is not checked) and a Hub id is a one-line error."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOME", raising=False)
    for var in ("XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS"):
        monkeypatch.delenv(var, raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    runner = CliRunner()
    result = runner.invoke(main, ["check", "0.8b", "--json"])
    assert result.exit_code in (0, 3), result.output
    result = runner.invoke(main, ["estimate", "someone/x-GGUF"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--online" in result.stderr
    assert list(tmp_path.iterdir()) == []


_INTERRUPT_WHILE_IMPORTING = """
import os, signal, sys
from importlib.abc import MetaPathFinder

class Interrupt(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "qwenfit.cli.commands":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt())
sys.argv = ["qwenfit", "models"]
from qwenfit.console import run
run()
"""


def test_sigint_while_the_command_line_imports_is_one_line_and_130() -> None:
    """The Ctrl-C lands while the CLI's modules load (deterministically: a finder sends it when
    `qwenfit.cli.commands` is looked up), before click's handler exists."""
    p = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_WHILE_IMPORTING],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 130, p.stderr
    assert p.stderr == "Error: interrupted\n"
    assert p.stdout == ""
