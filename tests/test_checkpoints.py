"""Custom checkpoints sized from their files: safetensors folders and GGUF files (offline).

Full-shape checkpoints are written sparsely in temporary folders: a real safetensors header
(transformers' tensor names and shapes) with a hole for the data, and GGUFs with llama.cpp's
converter layout (`benchmarks/llamacpp/make_gguf.py`) and no tensor data. Their parameters
and bytes must equal the spec table's for the same architecture.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import gguf
import pytest
import qwen35_tensors as q
from conftest import assert_weights_are_the_files
from hypothesis import given
from hypothesis import strategies as st

from qwenfit import estimate
from qwenfit.errors import BadFileError, UnknownModelError, UsageError
from qwenfit.specs import arch
from qwenfit.specs.checkpoints.resolve import resolve_model
from qwenfit.specs.checkpoints.summary import safe_name
from qwenfit.specs.table import SpecTable

REPO = Path(__file__).resolve().parents[1]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/\-]*$")


def _make_gguf_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_gguf", REPO / "benchmarks" / "llamacpp" / "make_gguf.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_gguf"] = module
    spec.loader.exec_module(module)
    return module


mg = _make_gguf_module()

TINY = q.TINY


def raw_model(table: SpecTable, name: str) -> dict[str, Any]:
    return table.get(name).model_dump(mode="json")


def folder(tmp: Path, config: dict[str, Any], tensors: list[q.Tensor], name: str = "ckpt") -> Path:
    d = tmp / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    q.write_sparse_safetensors(d / "model.safetensors", tensors)
    return d


def write_gguf(
    path: Path,
    model: dict[str, Any],
    *,
    mtp: bool = False,
    wt: gguf.GGMLQuantizationType = gguf.GGMLQuantizationType.BF16,
    ftype: int = gguf.LlamaFileType.MOSTLY_BF16,
    arch_name: str | None = None,
) -> list[Any]:
    tensors = mg.text_tensors(model, mtp=mtp, wt=wt)
    w = gguf.GGUFWriter(path, arch_name or ("qwen35moe" if mg.is_moe(model) else "qwen35"))
    mg._add_text_kv(w, model, mtp, ftype)
    mg.write_sparse(w, path, tensors)
    return list(tensors)


# ---------------------------------------------------------------------------------------------
# safetensors folders
# ---------------------------------------------------------------------------------------------


def test_table_model_is_returned_untouched(table: SpecTable) -> None:
    new, spec = resolve_model("9b", table)
    assert new is table
    assert spec is table.get("qwen3.5-9b")


def test_full_shape_08b_nested_config_matches_table(table: SpecTable, tmp_path: Path) -> None:
    official = table.get("0.8b")
    a = raw_model(table, "0.8b")["architecture"]
    tensors = q.text_tensors(a) + q.vision_tensors(a["vision"]) + q.mtp_tensors(a)
    d = folder(tmp_path, q.nested_config(a), tensors, "Qwen3.5-0.8B-abliterated")
    new, spec = resolve_model(str(d), table)

    assert NAME_RE.match(spec.name) and spec.name == "local/Qwen3.5-0.8B-abliterated"
    assert spec.architecture.model_dump(exclude={"source"}) == official.architecture.model_dump(
        exclude={"source"}
    )
    assert spec.params.model_dump(exclude={"source"}) == official.params.model_dump(
        exclude={"source"}
    )
    (art,) = spec.artifacts
    ref = official.artifact("bf16", "safetensors")
    assert ref is not None
    assert (art.precision, art.format, art.exact) == ("bf16", "safetensors", True)
    # BF16 with A_log and the gated-norm weight in F32: 2 x params + 2 x those F32 values.
    assert art.text_bytes == 2 * spec.params.text + 2 * arch.fp32_params_in_checkpoint(
        spec.architecture
    )
    assert (art.text_bytes, art.vision_bytes, art.mtp_bytes) == (
        ref.text_bytes,
        ref.vision_bytes,
        ref.mtp_bytes,
    )
    assert art.download_bytes == (d / "model.safetensors").stat().st_size
    assert spec.architecture.source in new.sources and spec.params.source in new.sources
    assert new.sources[art.source].path == str(d.resolve())
    assert new.get(str(d)) == spec  # the ref is an alias of the new model
    for runtime in ("vllm", "transformers"):
        mine = estimate(spec, runtime=runtime, quant="bf16", context=32768, table=new)
        theirs = estimate(official, runtime=runtime, quant="bf16", context=32768, table=table)
        assert mine.total_bytes == theirs.total_bytes


def test_flat_text_only_config(table: SpecTable, tmp_path: Path) -> None:
    official = table.get("9b")
    a = raw_model(table, "9b")["architecture"]
    d = folder(tmp_path, q.flat_config(a), q.text_tensors(a, nested=False), "coder 9b (v2)")
    new, spec = resolve_model(str(d), table)
    assert NAME_RE.match(spec.name)
    assert spec.params.text == official.params.text
    assert spec.params.embedding == official.params.embedding
    assert spec.params.mtp == 0 and spec.artifacts[0].mtp_bytes is None
    # No vision tensors: the official 9B tower (same text shape), by formula, flagged inexact.
    assert spec.params.vision == official.params.vision
    assert spec.artifacts[0].vision_bytes == 2 * official.params.vision
    assert spec.artifacts[0].exact is False
    assert "text-only" in (new.sources[spec.artifacts[0].source].note or "")
    assert spec.artifacts[0].text_bytes == official.artifact("bf16", "safetensors").text_bytes  # type: ignore[union-attr]
    e = estimate(
        spec, runtime="transformers", quant="bf16", context=32768, table=new, text_only=True
    )
    assert e.total_bytes > 2 * spec.params.text


def test_sharded_moe_with_index(table: SpecTable, tmp_path: Path) -> None:
    official = table.get("35b-a3b")
    a = raw_model(table, "35b-a3b")["architecture"]
    tensors = q.text_tensors(a) + q.vision_tensors(a["vision"]) + q.mtp_tensors(a)
    d = tmp_path / "moe"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(q.nested_config(a, "qwen3_5_moe")))
    shards = [tensors[i::3] for i in range(3)]
    weight_map = {}
    for i, part in enumerate(shards, 1):
        name = f"model-{i:05d}-of-00003.safetensors"
        q.write_sparse_safetensors(d / name, part)
        weight_map.update({t[0]: name for t in part})
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (d / "stray.safetensors").write_bytes(b"not in the index")  # ignored: the index decides
    new, spec = resolve_model(str(d), table)
    assert spec.model_type == "qwen3_5_moe"
    assert spec.params.model_dump(exclude={"source"}) == official.params.model_dump(
        exclude={"source"}
    )
    ref = official.artifact("bf16", "safetensors")
    assert ref is not None and spec.artifacts[0].text_bytes == ref.text_bytes
    est = estimate(spec, runtime="vllm", quant="bf16", context=32768, table=new)
    assert_weights_are_the_files(est, spec)


def test_missing_shard_is_a_usage_error(table: SpecTable, tmp_path: Path) -> None:
    a = TINY
    d = folder(tmp_path, q.nested_config(a), q.text_tensors(a))
    (d / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"x": "model-00002-of-00002.safetensors"}})
    )
    with pytest.raises(UsageError, match=re.escape("shard model-00002-of-00002.safetensors")):
        resolve_model(str(d), table)


def test_not_qwen_architecture(table: SpecTable, tmp_path: Path) -> None:
    d = folder(tmp_path, {"model_type": "llama", "hidden_size": 4096}, q.text_tensors(TINY))
    with pytest.raises(UsageError) as e:
        resolve_model(str(d), table)
    assert str(e.value) == "found model_type 'llama'; qwenfit sizes Qwen3.5 checkpoints only"


@pytest.mark.parametrize(
    "content", [b"", b"\xff" * 8, b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json"]
)
def test_corrupt_safetensors(table: SpecTable, tmp_path: Path, content: bytes) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(q.nested_config(TINY)))
    (d / "model.safetensors").write_bytes(content)
    with pytest.raises(BadFileError, match=re.escape("model.safetensors")):
        resolve_model(str(d), table)


def test_truncated_safetensors(table: SpecTable, tmp_path: Path) -> None:
    d = folder(tmp_path, q.nested_config(TINY), q.text_tensors(TINY))
    f = d / "model.safetensors"
    with f.open("r+b") as fh:
        fh.truncate(f.stat().st_size - 1)
    with pytest.raises(BadFileError, match="beyond the end of the file"):
        resolve_model(str(d), table)


def test_not_found(table: SpecTable, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or folder"):
        resolve_model(str(tmp_path / "nope"), table)
    with pytest.raises(UnknownModelError):
        resolve_model("qwen3.5-10b", table)
    (tmp_path / "x.bin").write_bytes(b"1")
    with pytest.raises(UsageError, match=re.escape("not a .gguf file")):
        resolve_model(str(tmp_path / "x.bin"), table)


def test_fp8_checkpoint(table: SpecTable, tmp_path: Path) -> None:
    tensors: list[q.Tensor] = []
    for name, shape, dtype in q.text_tensors(TINY):
        if len(shape) == 2 and "embed" not in name:
            tensors.append((name, shape, "F8_E4M3"))
            tensors.append((name + "_scale_inv", (shape[0] // 128 or 1, shape[1] // 128), "F32"))
        else:
            tensors.append((name, shape, dtype))
    d = folder(tmp_path, q.nested_config(TINY), tensors)
    new, spec = resolve_model(str(d), table)
    assert spec.artifacts[0].precision == "fp8"
    spec_arch = spec.architecture
    assert spec.params.text == arch.text_params(spec_arch)  # scales are bytes, not parameters
    est = estimate(spec, runtime="vllm", quant="fp8", context=4096, table=new)
    assert_weights_are_the_files(est, spec)


def test_gptq_checkpoint_and_unknown_method(table: SpecTable, tmp_path: Path) -> None:
    tensors: list[q.Tensor] = []
    for name, shape, dtype in q.text_tensors(TINY):
        if name.endswith("proj.weight") and "mlp" in name:
            out_f, in_f = shape
            base = name.removesuffix(".weight")
            tensors += [
                (base + ".qweight", (in_f // 8, out_f), "I32"),
                (base + ".qzeros", (in_f // 128, out_f // 8), "I32"),
                (base + ".scales", (in_f // 128, out_f), "F16"),
            ]
        else:
            tensors.append((name, shape, dtype))
    config = {**q.nested_config(TINY), "quantization_config": {"quant_method": "gptq", "bits": 4}}
    d = folder(tmp_path, config, tensors)
    new, spec = resolve_model(str(d), table)
    assert spec.artifacts[0].precision == "gptq-int4"
    assert spec.params.text == arch.text_params(spec.architecture)
    est = estimate(spec, runtime="vllm", quant="gptq-int4", context=4096, table=new)
    assert_weights_are_the_files(est, spec)
    config["quantization_config"]["bits"] = 3
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="3-bit"):
        resolve_model(str(d), table)


def test_resolving_again_replaces_the_model(table: SpecTable, tmp_path: Path) -> None:
    d = folder(tmp_path, q.nested_config(TINY), q.text_tensors(TINY))
    new, spec = resolve_model(str(d), table)
    again, same = resolve_model(str(d), new)  # the ref is now an alias: found in the table
    assert same == spec and again is new
    newer, spec2 = resolve_model(str(d) + "/", new)
    assert [m.name for m in newer.models].count(spec.name) == 1
    assert spec2.name == spec.name


@given(st.text(min_size=0, max_size=40))
def test_safe_name_matches_the_pattern(raw: str) -> None:
    assert NAME_RE.match(safe_name(raw))


# ---------------------------------------------------------------------------------------------
# GGUF files
# ---------------------------------------------------------------------------------------------


def test_full_shape_08b_gguf_with_mtp_and_mmproj(table: SpecTable, tmp_path: Path) -> None:
    official = table.get("0.8b")
    model = raw_model(table, "0.8b")
    text = tmp_path / "Qwen3.5-0.8B-BF16.gguf"
    write_gguf(text, model, mtp=True)
    mm = tmp_path / "mmproj-F16.gguf"
    mg.write_mmproj_gguf(model, mm)
    new, spec = resolve_model(str(text), table, mmproj=str(mm))
    assert spec.name == "local/Qwen3.5-0.8B-BF16"
    assert spec.architecture.model_dump(exclude={"source"}) == official.architecture.model_dump(
        exclude={"source"}
    )
    assert spec.params.model_dump(exclude={"source"}) == official.params.model_dump(
        exclude={"source"}
    )
    (art,) = spec.artifacts
    ref = official.artifact("bf16", "gguf")
    assert ref is not None
    assert (art.precision, art.format, art.exact) == ("bf16", "gguf", True)
    assert art.text_bytes == ref.text_bytes  # MTP block (blk.24) excluded
    assert art.mtp_bytes and art.mtp_bytes > 0
    mm_tensor_bytes = sum(t.nbytes for t in mg.vision_tensors(model))
    assert art.vision_bytes == mm_tensor_bytes
    e = estimate(spec, runtime="llama.cpp", quant="bf16", context=32768, table=new)
    assert e.total_bytes > art.text_bytes + art.vision_bytes


def test_gguf_without_mmproj_uses_the_formula(table: SpecTable, tmp_path: Path) -> None:
    official = table.get("0.8b")
    path = tmp_path / "m.gguf"
    write_gguf(path, raw_model(table, "0.8b"))
    new, spec = resolve_model(str(path), table)
    assert spec.params.vision == official.params.vision
    assert spec.artifacts[0].vision_bytes == 2 * official.params.vision
    assert spec.artifacts[0].exact is False and spec.artifacts[0].mtp_bytes is None
    assert spec.architecture.mtp_num_hidden_layers == 0
    est = estimate(spec, runtime="llama.cpp", quant="bf16", context=32768, table=new)
    assert_weights_are_the_files(est, spec)


def test_quantized_gguf_known_and_new_precision(table: SpecTable, tmp_path: Path) -> None:
    model = {"name": "tiny", "model_type": "qwen3_5", "architecture": TINY}
    qt = gguf.GGMLQuantizationType
    path = tmp_path / "tiny-Q4_K_M.gguf"
    tensors = write_gguf(path, model, wt=qt.Q4_K, ftype=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    new, spec = resolve_model(str(path), table)
    assert spec.artifacts[0].precision == "q4_k_m"
    assert spec.artifacts[0].text_bytes == sum(t.nbytes for t in tensors)
    assert spec.params.text == arch.text_params(spec.architecture)
    est = estimate(spec, runtime="llama.cpp", quant="q4_k_m", context=32768, table=new)
    assert_weights_are_the_files(est, spec)

    path = tmp_path / "tiny-Q5_1.gguf"
    write_gguf(path, model, wt=qt.Q5_1, ftype=gguf.LlamaFileType.MOSTLY_Q5_1)
    new, spec = resolve_model(str(path), table)
    assert spec.artifacts[0].precision == "q5_1"
    assert "q5_1" not in table.precisions
    info = new.precisions["q5_1"]
    assert info.kind == "gguf"
    borrowed = [p for p in table.precisions.values() if p.quality_loss == info.quality_loss]
    assert borrowed and borrowed[0].label in new.sources[info.quality_source].title
    est = estimate(spec, runtime="llama.cpp", quant="q5_1", context=4096, table=new)
    assert_weights_are_the_files(est, spec)


def test_split_gguf_sums_all_parts(table: SpecTable, tmp_path: Path) -> None:
    model = {"name": "tiny", "model_type": "qwen3_5", "architecture": TINY}
    tensors = mg.text_tensors(model)
    halves = [tensors[: len(tensors) // 2], tensors[len(tensors) // 2 :]]
    for i, part in enumerate(halves, 1):
        path = tmp_path / f"tiny-BF16-{i:05d}-of-00002.gguf"
        w = gguf.GGUFWriter(path, "qwen35")
        if i == 1:
            mg._add_text_kv(w, model, False, gguf.LlamaFileType.MOSTLY_BF16)
        w.add_uint16("split.no", i - 1)
        w.add_uint16("split.count", 2)
        mg.write_sparse(w, path, part)
    _new, spec = resolve_model(str(tmp_path / "tiny-BF16-00002-of-00002.gguf"), table)
    assert spec.name == "local/tiny-BF16"
    assert spec.artifacts[0].text_bytes == sum(t.nbytes for t in tensors)
    assert spec.params.text == arch.text_params(spec.architecture)
    (tmp_path / "tiny-BF16-00001-of-00002.gguf").unlink()
    with pytest.raises(
        UsageError, match=re.escape("split part tiny-BF16-00001-of-00002.gguf is missing")
    ):
        resolve_model(str(tmp_path / "tiny-BF16-00002-of-00002.gguf"), table)


def test_gguf_errors(table: SpecTable, tmp_path: Path) -> None:
    model = {"name": "tiny", "model_type": "qwen3_5", "architecture": TINY}
    llama = tmp_path / "llama.gguf"
    write_gguf(llama, model, arch_name="llama")
    with pytest.raises(
        UsageError, match=re.escape("found GGUF architecture 'llama'; qwenfit sizes Qwen3.5")
    ):
        resolve_model(str(llama), table)
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\x00" * 3)
    with pytest.raises(BadFileError, match="not a GGUF file"):
        resolve_model(str(garbage), table)
    good = tmp_path / "good.gguf"
    write_gguf(good, model)
    with pytest.raises(UsageError, match="not a vision mmproj"):
        resolve_model(str(good), table, mmproj=str(good))
    with pytest.raises(UsageError, match="no such file"):
        resolve_model(str(good), table, mmproj=str(tmp_path / "none.gguf"))
    mm = tmp_path / "mmproj.gguf"
    mg.write_mmproj_gguf({"name": "tiny", "architecture": TINY}, mm)
    with pytest.raises(UsageError, match="mmproj"):
        resolve_model(str(mm), table)
    d = folder(tmp_path, q.nested_config(TINY), q.text_tensors(TINY))
    with pytest.raises(UsageError, match="--mmproj applies to GGUF files only"):
        resolve_model(str(d), table, mmproj=str(mm))
