"""Output that is whole or an error: a write failure (full disk, file-size limit, closed stdout,
a pipe whose reader left) is one line on stderr and exit 1, never a cut document with exit 0."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from qwenfit.cli.output import WholeWriter

QWENFIT = [sys.executable, "-m", "qwenfit"]


def test_whole_writer_raises_instead_of_dropping_bytes() -> None:
    r, w = os.pipe()
    os.close(r)
    with pytest.raises(BrokenPipeError):
        WholeWriter(w).write(b"x" * 100_000)
    os.close(w)


def test_whole_writer_repeats_short_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[bytes] = []

    def short_write(fd: int, data: memoryview) -> int:
        written.append(bytes(data[:3]))
        return min(3, len(data))

    monkeypatch.setattr(os, "write", short_write)
    assert WholeWriter(1).write(b"0123456789") == 10
    assert b"".join(written) == b"0123456789"


def run(stdout: int, *, preexec: object = None, unbuffered: bool = False) -> tuple[int, str]:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    p = subprocess.run(
        [*QWENFIT, "models", "--family", "all", "--json"],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=preexec,  # type: ignore[arg-type]
        timeout=60,
    )
    return p.returncode, p.stderr


def one_line_error(stderr: str, reason: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith("Error: cannot write the output")
    assert reason in stderr and "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.parametrize("unbuffered", [False, True])
def test_file_size_limit_is_exit_1(tmp_path: Path, unbuffered: bool) -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    with open(tmp_path / "out.json", "wb") as f:
        code, err = run(f.fileno(), preexec=limit, unbuffered=unbuffered)
    assert code == 1
    one_line_error(err, "file too large")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_is_exit_1() -> None:
    with open("/dev/full", "wb") as f:
        code, err = run(f.fileno())
    assert code == 1
    one_line_error(err, os.strerror(errno.ENOSPC).lower())


@pytest.mark.slow
def test_closed_pipe_is_exit_1() -> None:
    r, w = os.pipe()
    os.close(r)  # the reader left before anything was written (`| head` that is done)
    code, err = run(w)
    os.close(w)
    assert code == 1
    one_line_error(err, "broken pipe")


@pytest.mark.slow
def test_closed_stdout_is_exit_1() -> None:
    code, err = run(subprocess.DEVNULL, preexec=lambda: os.close(1))
    assert code == 1
    one_line_error(err, "stdout is closed")
