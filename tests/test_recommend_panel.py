"""The panel of docs/recommending.md is what the code picks today, and every row holds up."""

from __future__ import annotations

import pytest
import recommend_panel as panel

from qwenfit.fit.preflight import check
from qwenfit.fit.verdict import check_fit
from qwenfit.hardware.catalog import with_overrides


@pytest.mark.slow
def test_the_panel_in_the_docs_is_current() -> None:
    doc = panel.DOC.read_text(encoding="utf-8")
    assert panel.rendered(doc) == doc, "run: python tools/recommend_panel.py"


def test_the_panel_covers_the_machine_classes() -> None:
    labels = " ".join(r.label for r in panel.PANEL)
    assert len(panel.PANEL) >= 40
    for kind in (
        "CPU laptop",
        "RTX 4060",
        "RTX 5090",
        "2x RTX",
        "4x RTX",
        "Apple M2 16",
        "M2 Ultra 192",
        "RX 7900",
        "MI300X",
        "H100",
        "8x H100",
        "2 nodes",
        "Laptop",
        "RTX 5070",
        "Strix Halo",
        "DGX Spark",
        "Jetson AGX Orin",
        "Jetson AGX Thor",
        "Apple M5",
        "512 GB",
        "T4",
        "A10",
        "B200",
        "MI355X",
        "llama.cpp",
    ):
        assert kind in labels
    tasks = {r.options.get("task", "chat") for r in panel.PANEL}
    assert tasks >= {"chat", "agent", "code"}


@pytest.mark.slow
@pytest.mark.parametrize("row", panel.PANEL, ids=lambda r: r.label)
def test_every_panel_pick_is_defensible(row: panel.Row) -> None:
    r = panel.run(row)
    assert r.recommendations, row.label
    best = r.recommendations[0]
    machine = with_overrides(None, gpu=row.gpu, ram=row.ram, ram_bandwidth=row.ram_bandwidth)
    assert check_fit(best.estimate, machine).fits
    checked = check(
        best.model,
        machine,
        runtime=best.runtime,
        quant=best.quant,
        context=best.context,
        kv_cache=best.kv_cache,
        text_only=best.text_only,
        parallel=best.parallel,
        nodes=row.options.get("nodes", 1),
        allow_offload=best.placement in ("offload", "cpu"),
    )
    assert checked.fits, row.label
    assert best.meets_speed_floor  # every panel machine has something usable
    if row.label.startswith("Apple") or "Strix" in row.label:
        assert best.runtime != "vllm"
    if row.gpu and any(n in row.gpu for n in ("H100", "H200", "A100", "MI300X", "L4", "4x")):
        assert best.runtime == "vllm"
    if best.runtime == "vllm":
        assert best.max_num_seqs is not None and best.max_num_seqs >= 1
    assert best.context >= 32768  # the thinking default fits on every panel machine
