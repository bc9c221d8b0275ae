"""MTP and llama-server host-RAM parts against llama.cpp's own accounting (measure_mtp.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenfit import estimate
from qwenfit.memory import llamacpp
from qwenfit.specs.table import load_specs

FIX = Path(__file__).resolve().parent / "fixtures"
MTP = json.loads((FIX / "measured/llamacpp_mtp_memory.json").read_text())["records"]
SIZES = json.loads((FIX / "measured/llamacpp_mtp_sizes.json").read_text())["models"]


@pytest.mark.parametrize("rec", MTP, ids=lambda r: f"{r['model']}-{r['n_seq_max']}-{r['n_rs_seq']}")
def test_recurrent_state_and_draft_kv_equal_llama_cpp(rec: dict) -> None:
    spec = load_specs().get(rec["model"])
    rows = 1 + rec["n_rs_seq"]
    assert rec["target"]["rs"] == rows * llamacpp.recurrent_state_bytes(spec, rec["n_seq_max"])
    if rec.get("draft"):
        cells = rec["draft"]["n_ctx"]
        assert rec["draft"]["context"] == llamacpp.mtp_kv_bytes_per_token(spec) * cells


def test_checkpoint_is_one_recurrent_row() -> None:
    real = [r for r in MTP if "checkpoint_bytes_target" in r]
    assert real
    for r in real:
        spec = load_specs().get(r["model"])
        per_seq = llamacpp.checkpoint_bytes(spec, r["prompt_tokens"], mtp=False)
        assert 0 <= r["checkpoint_bytes_target"] - per_seq < 1024  # + a small header


def test_27b_checkpoint_matches_published_log_line() -> None:
    # "created context checkpoint ... size = 149.626 MiB" (ggml-org/llama.cpp PR #22929)
    spec = load_specs().get("qwen3.6-27b")
    assert round(llamacpp.recurrent_state_bytes(spec, 1) / 2**20, 2) == 149.62


def test_mtp_weights_equal_the_measured_load() -> None:
    rec = next(r for r in MTP if r["model"] == "qwen3.6-27b")
    spec = load_specs().get("qwen3.6-27b")
    bf16 = spec.artifact("bf16", "gguf")
    assert bf16 is not None and bf16.mtp_bytes == SIZES["qwen3.6-27b"]["bf16_mtp_block_bytes"]
    assert rec["target"]["model"] == bf16.text_bytes + bf16.mtp_bytes


def test_mtp_estimate_charges_measured_parts() -> None:
    e0 = estimate("qwen3.6-27b", runtime="llama.cpp", context=32768)
    e1 = estimate("qwen3.6-27b", runtime="llama.cpp", context=32768, mtp=True)
    assert e0.mtp_bytes == 0 and e1.mtp and e1.spec_draft_n_max == 3
    assert e1.linear_state_bytes == 4 * e0.linear_state_bytes
    assert e1.mtp_bytes > 263313408 + 128 * 2**20  # Q4_K_M MTP block + draft KV
    assert e0.prompt_cache_bytes == 8192 * 2**20
    assert e0.checkpoints_bytes == 32 * llamacpp.checkpoint_bytes(
        load_specs().get("qwen3.6-27b"), 16384, False
    )


def test_flags_launch_needs_exist_in_help_fixtures() -> None:
    server = (FIX / "runtime_help/llama-server.txt").read_text()
    vllm = (FIX / "runtime_help/vllm-serve.txt").read_text()
    for flag in (
        "--spec-type",
        "draft-mtp",
        "--spec-draft-n-max",
        "--ctx-checkpoints",
        "--cache-ram",
    ):
        assert flag in server, flag
    assert "--speculative-config" in vllm


def test_launch_emits_the_mtp_and_host_ram_flags_the_estimate_assumed() -> None:
    """What the estimate charged is what the command asks for, and every flag is one the
    captured --help of each runtime lists."""
    from qwenfit import launch_command
    from qwenfit.hardware.catalog import with_overrides

    tight = with_overrides(None, gpu="RTX 4090", ram="16GB")
    e = estimate(
        "qwen3.6-27b", runtime="llama.cpp", quant="q4_k_m", context=32768, mtp=True, machine=tight
    )
    argv = launch_command(e).steps[-1].argv
    assert argv[argv.index("--spec-type") + 1] == "draft-mtp"
    assert argv[argv.index("--spec-draft-n-max") + 1] == str(e.spec_draft_n_max)
    assert argv[argv.index("-hf") + 1].startswith("unsloth/Qwen3.6-27B-MTP-GGUF:")
    assert e.cache_ram_bytes is not None and e.ctx_checkpoints is not None
    assert argv[argv.index("--cache-ram") + 1] == str(e.cache_ram_bytes // 2**20)
    assert argv[argv.index("--ctx-checkpoints") + 1] == str(e.ctx_checkpoints)
    roomy = estimate(
        "27b",
        runtime="llama.cpp",
        quant="q4_k_m",
        context=32768,
        machine=with_overrides(None, gpu="RTX 4090", ram="128GB"),
    )
    plain = launch_command(roomy).steps[-1].argv
    assert "--cache-ram" not in plain and "--spec-type" not in plain  # the defaults apply
    v = estimate(
        "27b",
        runtime="vllm",
        quant="fp8",
        context=32768,
        mtp=True,
        machine=with_overrides(None, gpu="H100", ram="256GB"),
    )
    vargv = launch_command(v).steps[-1].argv
    assert json.loads(vargv[vargv.index("--speculative-config") + 1]) == {
        "method": "mtp",
        "num_speculative_tokens": v.spec_draft_n_max,
    }
