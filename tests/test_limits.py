"""Limits: under an address-space limit one line and exit 1; files that are not files (FIFOs,
devices, /proc entries that block) refused before a byte is read; every OSError a checkpoint
reader meets is a BadFileError naming the path."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import qwen35_tensors as q
from click.testing import CliRunner

from qwenfit.cli import main
from qwenfit.cli import resources as res
from qwenfit.errors import BadFileError
from qwenfit.specs.checkpoints.resolve import resolve_model
from qwenfit.specs.table import SpecTable


def test_a_tiny_address_space_limit_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda which: (64 << 20, resource.RLIM_INFINITY))
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: the address-space limit (ulimit -v) is 64 MiB; qwenfit needs at least 128 MiB"
    )


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        ImportError("libx.so: failed to map segment from shared object"),
        SystemError("cannot allocate memory for the frame"),
        OSError(12, "Cannot allocate memory"),
    ],
)
def test_running_out_of_memory_is_one_line(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr("qwenfit.serve.service.Service.recommend", fail)
    result = CliRunner().invoke(main, ["recommend", "--vram", "24GB", "--ram", "64GB"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {res.OUT_OF_MEMORY}"


def test_an_unrelated_import_error_is_not_called_memory() -> None:
    assert not res.is_out_of_memory(ImportError("No module named 'x'"))


@pytest.mark.slow
@pytest.mark.parametrize("limit_mib", [32, 100, 160, 400])
def test_under_ulimit_v_one_line_and_exit_1_or_success(limit_mib: int) -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mib << 20, limit_mib << 20))

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwenfit",
            "recommend",
            "--gpu",
            "RTX 4090",
            "--ram",
            "64GB",
            "--json",
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
    )
    assert p.returncode in (0, 1), p.stderr
    if p.returncode == 1:
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("Error: ")
        assert p.stdout == ""
    else:
        json.loads(p.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize(
    "path", ["/proc/self/status", "/proc/kmsg", "/sys/kernel/mm/transparent_hugepage/enabled"]
)
def test_proc_and_sys_entries_are_refused_before_reading(path: str) -> None:
    if not Path(path).exists():
        pytest.skip(f"no {path}")
    result = CliRunner().invoke(main, ["recommend", "--machine", path])
    assert result.exit_code == 2
    assert "a /proc or /sys entry, not a file" in result.stderr


def test_a_fifo_machine_file_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "machine.fifo"
    os.mkfifo(fifo)
    result = CliRunner().invoke(main, ["recommend", "--machine", str(fifo)])
    assert result.exit_code == 2 and "not a regular file" in result.stderr


def test_an_os_error_in_a_checkpoint_folder_is_a_bad_file_error(
    tmp_path: Path, table: SpecTable
) -> None:
    a = table.get("0.8b").model_dump(mode="json")["architecture"]
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(q.nested_config(a)))
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "a" * 300 + ".st"}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(BadFileError, match="file name too long") as caught:
        resolve_model(str(d), table)
    assert str(d) in str(caught.value) and "\n" not in str(caught.value)
    result = CliRunner().invoke(main, ["estimate", str(d), "--vram", "8GB", "--ram", "16GB"])
    assert result.exit_code == 1
    assert "file name too long" in result.stderr and "cannot write the output" not in result.stderr
