"""The CLI on custom checkpoints: a local safetensors folder is sized like the official model."""

from __future__ import annotations

import json
from pathlib import Path

import qwen35_tensors as q
from click.testing import CliRunner

from qwenfit.cli.commands import main
from qwenfit.specs.table import SpecTable

HW = ["--vram", "24GB", "--ram", "64GB"]


def _folder(tmp_path: Path, table: SpecTable, name: str) -> Path:
    a = table.get("0.8b").model_dump(mode="json")["architecture"]
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(q.nested_config(a)))
    q.write_sparse_safetensors(
        d / "model.safetensors",
        q.text_tensors(a) + q.vision_tensors(a["vision"]) + q.mtp_tensors(a),
    )
    return d


def test_estimate_a_local_folder_like_the_official_model(tmp_path: Path, table: SpecTable) -> None:
    d = _folder(tmp_path, table, "Qwen3.5-0.8B-abliterated")
    runner = CliRunner()
    local = runner.invoke(
        main, ["estimate", str(d), "--runtime", "vllm", "--context", "8k", "--json", *HW]
    )
    official = runner.invoke(
        main, ["estimate", "0.8b", "--runtime", "vllm", "--context", "8k", "--json", *HW]
    )
    assert local.exit_code == 0, local.stderr
    a, b = json.loads(local.stdout)["estimate"], json.loads(official.stdout)["estimate"]
    assert a["model"] == "local/Qwen3.5-0.8B-abliterated"
    assert a["total_bytes"] == b["total_bytes"]


def test_recommend_among_given_models(tmp_path: Path, table: SpecTable) -> None:
    d = _folder(tmp_path, table, "my-finetune")
    r = CliRunner().invoke(
        main, ["recommend", "--model", str(d), "--model", "9b", "--runtime", "vllm", "--json", *HW]
    )
    assert r.exit_code == 0, r.stderr
    picks = {x["model"] for x in json.loads(r.stdout)["recommend"]["recommendations"]}
    assert picks <= {"local/my-finetune", "qwen3.5-9b"} and "local/my-finetune" in picks


def test_hub_id_without_online_is_a_usage_error() -> None:
    r = CliRunner().invoke(main, ["check", "someone/Qwen3.5-9B-coder", "--json", *HW])
    assert r.exit_code == 2 and r.stdout == "" and "--online" in r.stderr


def test_specs_refresh_needs_online() -> None:
    r = CliRunner().invoke(main, ["specs", "refresh"])
    assert r.exit_code == 2 and "--online" in r.stderr
