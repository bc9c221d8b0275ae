"""No traceback and no wrong answer, whatever the machine or the input.

Fault matrix over every probe source, fuzzed command lines, broken spec tables, and the
invariants of the JSON contract.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_probe import FakeNVML, NVMLError, NVMLError_LibraryNotFound, card

from qwenfit.cli.commands import main
from qwenfit.errors import SpecError
from qwenfit.fit.preflight import CheckResult
from qwenfit.hardware.machine import Machine
from qwenfit.hardware.probing import probe
from qwenfit.memory.record import Estimate
from qwenfit.recommender.ranking import RecommendResult
from qwenfit.specs.table import load_specs

REPO = Path(__file__).resolve().parents[1]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


FAULTS: dict[str, tuple[dict[str, str], Any, str | None]] = {
    "nvml library missing": ({}, FakeNVML([], NVMLError_LibraryNotFound()), None),
    "nvmlInit fails": (
        {},
        FakeNVML([], NVMLError("Driver/library version mismatch")),
        "NVML could not start",
    ),
    "one device lost": ({}, FakeNVML([card(0), card(1, fail=True)]), "could not be read"),
    "cgroup value garbage": (
        {"proc/self/cgroup": "0::/x\n", "sys/fs/cgroup/x/memory.max": "\x00\x01"},
        None,
        "unreadable cgroup limit",
    ),
    "cgroup value max": (
        {"proc/self/cgroup": "0::/x\n", "sys/fs/cgroup/x/memory.max": "max"},
        None,
        None,
    ),
    "cgroup value huge": (
        {"proc/self/cgroup": "0::/x\n", "sys/fs/cgroup/x/memory.max": "9" * 40},
        None,
        None,
    ),
    "cgroup v1 unlimited": (
        {
            "proc/self/cgroup": "3:memory:/\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": str(2**63 - 4096),
        },
        None,
        None,
    ),
    "cgroup file is a directory": (
        {"proc/self/cgroup": "0::/x\n", "sys/fs/cgroup/x/memory.max/inner": "1"},
        None,
        None,
    ),
    "garbled /proc/self/cgroup": (
        {"proc/self/cgroup": "nonsense without colons\n::::\n"},
        None,
        None,
    ),
    "no /proc at all": ({}, None, None),
    "amd sysfs half written": (
        {
            "sys/class/drm/card0/device/vendor": "0x1002",
            "sys/class/drm/card0/device/mem_info_vram_total": "junk",
        },
        None,
        None,
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_matrix_gives_a_partial_result_never_a_traceback(tmp_path: Path, fault: str) -> None:
    files, nvml, warning = FAULTS[fault]
    root = _tree(tmp_path, files)
    m = probe(root=root, environ={}, nvml=nvml or FakeNVML([]), system="Linux")
    assert isinstance(m, Machine)
    assert m.ram_total_bytes > 0  # psutil still answered
    if warning:
        assert any(warning in w for w in m.warnings), m.warnings
    else:
        assert not any("Traceback" in w for w in m.warnings)


def test_sysctl_failing_on_a_mac_falls_back_to_metal_share() -> None:
    from qwenfit.hardware.probing import apple_gpu

    gpu = apple_gpu(32 * 2**30, lambda name: None)
    assert gpu.memory_total_bytes == 32 * 2**30 * 2 // 3 and gpu.name == "Apple Silicon GPU"


OPTION_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(
        [
            "0",
            "-1",
            "1e9",
            "32k",
            "256k",
            "999999999",
            "nan",
            "inf",
            "24GB",
            "0GB",
            "-5GB",
            "2x H100",
            "$(reboot)",
            "q4_k_m",
            "fp8",
            "vllm",
            "%",
            "150%",
        ]
    ),
)
OPTIONS = [
    "--runtime",
    "--quant",
    "--context",
    "--kv-cache",
    "--parallel",
    "--ubatch",
    "--flash-attn",
    "--vram",
    "--ram",
    "--gpu",
]
# A fuzzed model token that starts with "-" would be parsed as an option (a model "--ram" takes
# "--json" as its value, a later --ram wins, and the output is rightly human): options are fuzzed
# as options below.
MODELS = st.one_of(
    st.sampled_from(["9b", "27b", "qwen3.5:35b", "397b-a17b"]),
    st.text(max_size=10).filter(lambda s: not s.startswith("-")),
)


@pytest.mark.slow
@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(command="estimate", model="~0", options=[])  # an unknown user's home: was a traceback
@given(
    command=st.sampled_from(["estimate", "check", "launch"]),
    model=MODELS,
    options=st.lists(st.tuples(st.sampled_from(OPTIONS), OPTION_VALUES), max_size=4),
)
def test_fuzzed_command_lines_never_crash(
    command: str, model: str, options: list[tuple[str, str]]
) -> None:
    args = [command, model, "--json", "--ram", "64GB", "--vram", "24GB"]
    for opt, value in options:
        args += [opt, value]
    r = CliRunner().invoke(main, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code in (0, 2, 3), (args, r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr
    if r.exit_code == 2:
        assert r.stdout == "" and r.stderr.strip().count("\n") <= 4
    elif not r.stdout.startswith("Usage:"):  # a fuzzed "--help" token asks for help
        json.loads(r.stdout)


@settings(max_examples=100, deadline=None)
@given(
    options=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "--runtime",
                    "--context",
                    "--task",
                    "-n",
                    "--min-speed",
                    "--vram",
                    "--ram",
                    "--gpu",
                ]
            ),
            OPTION_VALUES,
        ),
        max_size=4,
    )
)
def test_fuzzed_recommend_never_crashes(options: list[tuple[str, str]]) -> None:
    args = ["recommend", "--json", "--ram", "16GB", "--vram", "8GB"]
    for opt, value in options:
        args += [opt, value]
    r = CliRunner().invoke(main, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code in (0, 2, 3)
    if r.exit_code in (0, 3):
        RecommendResult.model_validate(json.loads(r.stdout)["recommend"])


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _leaves(v, (*path, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _leaves(v, (*path, i))]
    return [path]


RAW = json.loads((REPO / "data" / "model_specs.json").read_text())
FIRST_MODEL = [("models", 0, *p) for p in _leaves(RAW["models"][0])]
TOP = [p for p in _leaves({k: v for k, v in RAW.items() if k != "models"})]


# Every field in the slow run; every tenth in the everyday run (each case loads the table).
FIELDS = [
    pytest.param(p, marks=() if i % 10 == 0 else pytest.mark.slow, id=".".join(map(str, p)))
    for i, p in enumerate(FIRST_MODEL + TOP)
]


@pytest.mark.parametrize("path", FIELDS)
def test_each_field_of_the_spec_table_broken_in_turn(tmp_path: Path, path: tuple[Any, ...]) -> None:
    doc = json.loads(json.dumps(RAW))
    target = doc
    for key in path[:-1]:
        target = target[key]
    original = target[path[-1]]
    target[path[-1]] = {"broken": True} if not isinstance(original, dict) else "broken"
    bad = tmp_path / "specs.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SpecError) as e:
        load_specs(bad)
    assert "\n" not in str(e.value) and str(bad) in str(e.value)
    if len(path) % 3 == 0:  # the CLI's side, on a third of the fields (it is one code path)
        r = CliRunner().invoke(main, ["--specs", str(bad), "models", "--json"])
        assert r.exit_code == 1 and r.stdout == "" and "Traceback" not in r.stderr


def test_json_documents_round_trip_through_the_models() -> None:
    runner = CliRunner()
    hw = ["--vram", "24GB", "--ram", "64GB"]
    est = runner.invoke(main, ["estimate", "9b", "--json", *hw]).stdout
    assert (
        Estimate.model_validate(json.loads(est)["estimate"]).model_dump(mode="json")
        == json.loads(est)["estimate"]
    )
    chk = runner.invoke(main, ["check", "27b", "--json", *hw]).stdout
    CheckResult.model_validate(json.loads(chk)["check"])
    probe_doc = runner.invoke(main, ["probe", "--json", *hw]).stdout
    Machine.model_validate(json.loads(probe_doc)["machine"])


def test_offline_commands_open_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []
    real_init = socket.socket.__init__

    def spy(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        opened.append(args)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "__init__", spy)
    runner = CliRunner()
    for args in (
        ["probe", "--json"],
        ["models", "--json"],
        ["recommend", "--json"],
        ["estimate", "9b", "--json"],
        ["check", "9b", "--json"],
        ["launch", "9b", "--json"],
    ):
        r = runner.invoke(main, args)
        assert r.exit_code in (0, 3), (args, r.stderr)
    assert opened == []


def test_nothing_is_written_outside_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = set(os.listdir(tmp_path))
    CliRunner().invoke(main, ["recommend", "--json", "--vram", "8GB", "--ram", "16GB"])
    assert set(os.listdir(tmp_path)) == before
