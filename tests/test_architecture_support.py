"""Configs outside the Qwen3.5 hybrid layout are refused with the field that differs; the
official Qwen3.5 configs and the newer same-layout releases pass."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from qwenfit.specs.checkpoints.support import unsupported_reason

SHARED = Path(__file__).resolve().parents[2] / "shared" / "research" / "qwen35-configs.json"


def official_35b() -> dict[str, Any]:
    """The 35B-A3B's config.json in the official nested layout, from the spec table's numbers."""

    import qwen35_tensors as q

    from qwenfit.specs.table import load_specs

    arch = load_specs().get("35b-a3b").architecture.model_dump()
    return q.nested_config(arch, "qwen3_5_moe")


def test_same_layout_configs_pass() -> None:
    cfg = official_35b()
    assert unsupported_reason(cfg) is None
    flat = {
        "model_type": "qwen3_5_moe_text",
        "num_hidden_layers": 92,
        "layer_types": [
            "linear_attention",
            "linear_attention",
            "linear_attention",
            "full_attention",
        ]
        * 23,
    }
    assert unsupported_reason(flat) is None  # Qwen3.8-2.4T-A95B's flat text-only form


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/research")
def test_every_official_qwen35_config_passes() -> None:
    configs = json.loads(SHARED.read_text())
    checked = 0
    for repo, cfg in configs.items():
        if repo.startswith("Qwen/") and isinstance(cfg, dict):
            assert unsupported_reason(cfg) is None, repo
            checked += 1
    assert checked == 8


# Qwen3.8-Flash-Next: transformers models/qwen4_exp/configuration_qwen4_exp.py defaults.
FLASH_NEXT_FIELDS = {
    "hc_count": 4,
    "hc_lowrank": 320,
    "ple_layer_ids": [2],
    "ple_embed_dim": 2560,
    "ngram_size": 3,
    "heads_per_ngram": 8,
    "ngram_vocab_size_base": 20_000_000,
    "indexer_n_heads": 4,
    "indexer_head_dim": 128,
    "indexer_budget": 2048,
}


def test_flash_next_is_refused_by_its_model_type() -> None:
    cfg = copy.deepcopy(official_35b())
    cfg["model_type"] = "qwen4_exp"
    reason = unsupported_reason(cfg)
    assert reason and "'qwen4_exp'" in reason and "Flash-Next" in reason


@pytest.mark.parametrize(
    ("field", "what"),
    [
        ("hc_count", "hyper-connection"),
        ("ngram_size", "n-gram"),
        ("indexer_n_heads", "sparse-attention indexer"),
        ("ple_layer_ids", "per-layer embeddings"),
    ],
)
def test_extra_components_are_refused_under_a_familiar_model_type(field: str, what: str) -> None:
    """A config that keeps `qwen3_5_moe` but carries one of Flash-Next's extra components."""
    cfg = copy.deepcopy(official_35b())
    cfg["text_config"][field] = FLASH_NEXT_FIELDS[field]
    reason = unsupported_reason(cfg)
    assert reason and repr(field) in reason and what in reason and "\n" not in reason


def test_other_layer_types_are_refused() -> None:
    cfg = copy.deepcopy(official_35b())
    cfg["text_config"]["layer_types"] = ["linear_attention", "sparse_attention"]
    reason = unsupported_reason(cfg)
    assert reason and "'sparse_attention'" in reason


def test_a_flash_next_checkpoint_folder_is_refused_naming_the_field(tmp_path: Path) -> None:
    """Through the real reader and the CLI: exit 2 and one line naming what differs."""
    from click.testing import CliRunner

    from qwenfit.cli import main

    cfg = copy.deepcopy(official_35b())
    cfg["model_type"] = "qwen4_exp"
    cfg["text_config"].update(FLASH_NEXT_FIELDS)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = CliRunner().invoke(main, ["estimate", str(tmp_path), "--runtime", "vllm"])
    assert r.exit_code == 2
    assert "'qwen4_exp'" in r.stderr and "Flash-Next" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
