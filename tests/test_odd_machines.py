"""Machines that cannot exist are refused naming the file and the field; a bandwidth of 10^400
is a one-line usage error in the CLI, REST and MCP alike; vLLM on a machine without a GPU is a
usage error (or, as a default, a CPU plan), never "nothing fits"; the plan's GPU is selected in
the command for NVIDIA with and without UUIDs and for AMD."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from serve_support import allow_loopback, running_server

from qwenfit import estimate
from qwenfit.cli import main
from qwenfit.hardware.machine import GPU, Machine
from qwenfit.launch.commands import launch_command
from qwenfit.units import GiB

RAM = {"ram_total_bytes": 64 * GiB, "ram_available_bytes": 64 * GiB, "ram_usable_bytes": 64 * GiB}


def card(index: int, gib: int, vendor: str = "nvidia", **extra: Any) -> dict[str, Any]:
    return {
        "index": index,
        "name": f"{vendor} card",
        "vendor": vendor,
        "memory_total_bytes": gib * GiB,
        "memory_free_bytes": gib * GiB,
        **extra,
    }


def machine_doc(gpus: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"source": "file", **RAM, "gpus": gpus, **extra}


IMPOSSIBLE = [
    (machine_doc([card(0, 8, memory_free_bytes=80 * GiB)]), "memory_free_bytes"),
    (machine_doc([card(10**30, 8)]), "index"),
    (machine_doc([card(0, 8), card(5, 8)]), "index 5"),
    (machine_doc([], ram_bandwidth_bytes_per_s=10**400), "ram_bandwidth_bytes_per_s"),
    (machine_doc([card(0, 8, bandwidth_bytes_per_s=10**400)]), "bandwidth_bytes_per_s"),
    (machine_doc([card(0, 2**70)]), "memory_total_bytes"),
    (
        machine_doc([card(0, 16, "apple", unified_memory=True), card(1, 24)]),
        "Apple GPU",
    ),
]


@pytest.mark.parametrize(("doc", "field"), IMPOSSIBLE)
def test_impossible_machine_files_are_refused_naming_file_and_field(
    tmp_path: Path, doc: dict[str, Any], field: str
) -> None:
    path = tmp_path / "odd-machine.json"
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["recommend", "--machine", str(path)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "odd-machine.json" in line and field in line


def test_huge_bandwidth_is_422_over_rest_and_one_line_over_mcp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    allow_loopback(monkeypatch)
    body = {"machine": machine_doc([card(0, 24, bandwidth_bytes_per_s=10**400)])}
    raw = json.dumps(body).encode()  # Python writes the 401-digit integer as JSON allows
    with running_server(mcp=False) as base:
        r = httpx.post(
            base + "/v1/recommend", content=raw, headers={"content-type": "application/json"}
        )
    assert r.status_code == 422, r.text
    assert "bandwidth_bytes_per_s" in r.json()["error"]["message"]

    from mcp import Client

    from qwenfit.serve.mcp_server import create_mcp

    async def call() -> Any:
        async with Client(create_mcp()) as client:
            return await client.call_tool("recommend", body)

    got = asyncio.run(call())
    text = got.content[0].text
    assert got.is_error and "bandwidth_bytes_per_s" in text and "\n" not in text


def test_vllm_without_a_gpu_is_a_usage_error_and_never_the_default(tmp_path: Path) -> None:
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(machine_doc([], runtimes={"vllm": "0.11.0"})))
    runner = CliRunner()
    for args in (["recommend", "--runtime", "vllm"], ["estimate", "9b", "--runtime", "vllm"]):
        result = runner.invoke(main, [*args, "--machine", str(path)])
        assert result.exit_code == 2
        assert "vLLM needs a GPU" in result.stderr
    result = runner.invoke(main, ["recommend", "--machine", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["recommend"]
    assert doc["runtime"] in ("llama.cpp", "ollama") and doc["recommendations"]


def two_gpus(vendor: str, uuids: bool) -> Machine:
    gpus = [
        GPU(
            index=i,
            name=f"{vendor} {gib}",
            vendor=vendor,  # type: ignore[arg-type]
            uuid=f"GPU-{i}abc" if uuids else None,
            memory_total_bytes=gib * GiB,
            memory_free_bytes=gib * GiB,
            bandwidth_bytes_per_s=10**12,
        )
        for i, gib in enumerate((4, 48))
    ]
    return Machine(source="file", **RAM, gpus=gpus)


@pytest.mark.parametrize(
    ("vendor", "uuids", "expected"),
    [
        ("nvidia", True, {"CUDA_VISIBLE_DEVICES": "GPU-1abc"}),
        ("nvidia", False, {"CUDA_VISIBLE_DEVICES": "1"}),
        ("amd", False, {"HIP_VISIBLE_DEVICES": "1"}),
        ("amd", True, {"ROCR_VISIBLE_DEVICES": "GPU-1abc", "HIP_VISIBLE_DEVICES": "0"}),
    ],
)
@pytest.mark.parametrize("runtime", ["vllm", "llama.cpp"])
def test_the_plans_gpu_is_selected_in_the_command(
    vendor: str, uuids: bool, expected: dict[str, str], runtime: str
) -> None:
    m = two_gpus(vendor, uuids)
    e = estimate("9b", runtime=runtime, context=8192, machine=m)
    assert e.layout.devices == [1]  # only the 48 GiB card holds it
    step = launch_command(e, machine=m).steps[-1 if runtime == "llama.cpp" else 0]
    assert {k: v for k, v in step.env.items() if k in expected or "VISIBLE" in k} == expected
    if runtime == "llama.cpp":
        assert step.argv[step.argv.index("--main-gpu") + 1] == "0"  # renumbered by the variable


@pytest.mark.parametrize("runtime", ["llama.cpp", "vllm", "transformers"])
def test_a_plan_never_spans_two_gpu_vendors(runtime: str) -> None:
    gpus = [
        GPU(
            index=0,
            name="RTX 4090",
            vendor="nvidia",
            memory_total_bytes=24 * GiB,
            memory_free_bytes=24 * GiB,
            bandwidth_bytes_per_s=10**12,
        ),
        GPU(
            index=1,
            name="RX 7900 XTX",
            vendor="amd",
            memory_total_bytes=24 * GiB,
            memory_free_bytes=24 * GiB,
            bandwidth_bytes_per_s=10**12,
        ),
        GPU(
            index=2,
            name="RX 7900 XTX",
            vendor="amd",
            memory_total_bytes=24 * GiB,
            memory_free_bytes=24 * GiB,
            bandwidth_bytes_per_s=10**12,
        ),
    ]
    m = Machine(source="file", **RAM, gpus=gpus)
    quant = "q8_0" if runtime == "llama.cpp" else "bf16"
    e = estimate("27b", runtime=runtime, quant=quant, context=8192, machine=m)
    used = {gpus[d].vendor for d in e.layout.devices} if e.layout.kind != "multi_node" else set()
    assert len(used) <= 1, e.layout
