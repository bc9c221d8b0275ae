"""The spec table: loads, is complete, is internally consistent, and fails loudly when broken."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from docgen import targets

from qwenfit.errors import SpecError, UnknownModelError
from qwenfit.specs import arch
from qwenfit.specs.table import SpecTable, load_specs

REPO = Path(__file__).resolve().parents[1]
SPEC_FILE = REPO / "data" / "model_specs.json"
SIZES = ["0.8b", "2b", "4b", "9b", "27b", "35b-a3b", "122b-a10b", "397b-a17b"]


def test_all_eight_models(table: SpecTable) -> None:
    assert [m.size_label for m in table.family_models("qwen3.5")] == SIZES


@pytest.mark.parametrize("size", SIZES)
def test_parameter_counts_follow_from_the_architecture(table: SpecTable, size: str) -> None:
    m = table.get(size)
    a = m.architecture
    assert m.params.text == arch.text_params(a)
    assert m.params.text_active == arch.text_active_params(a)
    assert m.params.vision == arch.vision_params(a.vision)
    assert m.params.mtp == arch.mtp_params(a)
    assert m.params.embedding == arch.embedding_params(a)


@pytest.mark.parametrize("size", SIZES)
def test_layer_pattern_is_three_to_one(table: SpecTable, size: str) -> None:
    a = table.get(size).architecture
    assert a.n_linear_attention_layers == 3 * a.n_full_attention_layers
    assert a.n_full_attention_layers + a.n_linear_attention_layers == a.num_hidden_layers


def test_9b_bf16_checkpoint_matches_the_published_byte_total(table: SpecTable) -> None:
    """19,306,216,416 bytes: the Qwen/Qwen3.5-9B safetensors total (4 shards, 19.3 GB)."""
    bf16 = table.get("9b").artifact("bf16", "safetensors")
    assert bf16 is not None and bf16.mtp_bytes is not None
    assert bf16.text_bytes + bf16.vision_bytes + bf16.mtp_bytes == 19_306_216_416


def test_every_reference_resolves_and_every_source_says_something(table: SpecTable) -> None:
    for key, src in table.sources.items():
        assert src.title.strip(), key
        assert src.url or src.path, f"source {key} has neither url nor path"
        if src.path:
            assert (REPO / src.path).exists(), f"source {key} names missing file {src.path}"


@pytest.mark.parametrize(
    "name",
    ["9b", "9B", "qwen3.5-9b", "Qwen3.5-9B", "Qwen/Qwen3.5-9B", "qwen3.5:9b", " 9b "],
)
def test_aliases(table: SpecTable, name: str) -> None:
    assert table.get(name).name == "qwen3.5-9b"


def test_ollama_style_short_tag_for_moe(table: SpecTable) -> None:
    assert table.get("qwen3.5:35b").name == "qwen3.5-35b-a3b"


def test_unknown_model_suggests_the_closest(table: SpecTable) -> None:
    with pytest.raises(UnknownModelError) as e:
        table.get("qwen3.5-9")
    assert "did you mean 'qwen3.5-9b'" in str(e.value)


def _raw() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text())  # type: ignore[no-any-return]


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


BREAKAGES = [
    (["models", 0, "architecture", "hidden_size"], -1, "models.0.architecture.hidden_size"),
    (["models", 1, "params", "total"], 5, "models.1.params"),
    (["models", 2, "architecture", "num_hidden_layers"], 30, "models.2.architecture"),
    (["models", 3, "artifacts", 0, "precision"], "q9_z", "precision 'q9_z' is undefined"),
    (["models", 3, "artifacts", 1, "source"], "nowhere", "nowhere"),
    (["models", 4, "name"], "qwen3.5-9b", "not unique"),
    (["models", 5, "params", "text_active"], 10**13, "text_active"),
    (["models", 6, "unexpected"], 1, "models.6.unexpected"),
    (["schema_version"], 2, "schema_version"),
    (["models", 7, "context", "native"], 1000, "context.native"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BREAKAGES)
def test_a_broken_table_gives_one_line_naming_file_and_field(
    tmp_path: Path, path: list[Any], value: Any, expected: str
) -> None:
    doc = _raw()
    _set(doc, path, value)
    bad = tmp_path / "specs.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SpecError) as e:
        load_specs(bad)
    message = str(e.value)
    assert "\n" not in message
    assert str(bad) in message
    assert expected in message


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "specs.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_specs(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_specs(tmp_path / "missing.json")


def test_a_reviewed_copy_loads_like_the_shipped_table(tmp_path: Path) -> None:
    copy_path = tmp_path / "reviewed.json"
    copy_path.write_text(json.dumps(copy.deepcopy(_raw())))
    assert load_specs(copy_path).models == load_specs().models


def test_schema_files_are_current() -> None:
    stale = [
        str(p.relative_to(REPO))
        for p, text in targets(REPO).items()
        if not p.exists() or p.read_text() != text
    ]
    assert not stale, f"run 'python tools/docgen.py' to refresh: {stale}"


def test_gguf_layer_groups_add_up_to_the_spec_tables_files(table: SpecTable) -> None:
    """data/gguf_layers.json (llama-quantize dry runs) and the table's GGUF sizes are two
    measurements of the same files: every entry names a table model and GGUF precision, has one
    entry per layer, experts only for MoE models, and its groups sum to the artifact's bytes."""
    from qwenfit.memory.llamacpp import measured_groups

    for (model, quant), g in measured_groups().items():
        spec = table.get(model)
        artifact = spec.artifact(quant, "gguf")
        assert artifact is not None, (model, quant)
        assert len(g.layer) == spec.architecture.num_hidden_layers, (model, quant)
        assert any(g.experts) == spec.is_moe, (model, quant)
        total = g.token_embd + g.output + sum(g.layer) + sum(g.experts)
        assert total == artifact.text_bytes, (model, quant)


def test_a_malformed_gguf_layers_file_is_a_spec_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from qwenfit.errors import SpecError
    from qwenfit.memory import llamacpp

    bad = (
        '{"note": "", "llama_cpp_commit": "x", "models": {"m": {"q": {"token_embd": -1, '
        '"output": 0, "layer": [1], "experts": [0]}}}}'
    )
    monkeypatch.setattr(llamacpp, "data_text", lambda name: bad)
    llamacpp.measured_groups.cache_clear()
    try:
        with pytest.raises(SpecError, match="token_embd"):
            llamacpp.measured_groups()
    finally:
        llamacpp.measured_groups.cache_clear()
