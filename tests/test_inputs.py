"""Issue 17: every reader is total. Hostile files, huge numbers and odd machines get a one-line
QwenfitError (exit 2 for usage, 1 for a bad file), never a traceback, a hang or a wrong answer."""

from __future__ import annotations

import copy
import json
import os
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
import qwen35_tensors as q
from click.testing import CliRunner
from test_checkpoints import TINY, folder

import qwenfit
from qwenfit.cache import cache_dir
from qwenfit.cli.commands import main
from qwenfit.errors import BadFileError, QwenfitError, SpecError, UsageError
from qwenfit.fit.margin import Margin
from qwenfit.hardware.catalog import load_machine, with_overrides
from qwenfit.hardware.machine import GPU, Machine
from qwenfit.inputs import MAX_JSON_DEPTH, json_depth_ok, parse_json, read_json, read_text
from qwenfit.specs.checkpoints.resolve import resolve_model
from qwenfit.specs.table import SpecTable, load_specs
from qwenfit.units import GiB

HW = ["--vram", "24GB", "--ram", "64GB"]
BIG = "1" + "0" * 400


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def one_line_error(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines and lines[-1].startswith("Error: ") and "Traceback" not in err, err
    return lines[-1]


# ---------------------------------------------------------------------------------------------
# the input discipline itself
# ---------------------------------------------------------------------------------------------


def test_fifo_device_and_folder_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, why in [
        (fifo, "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "a folder"),
    ]:
        with pytest.raises(BadFileError, match=why):
            read_text(path, what="test file")


def test_size_cap_is_checked_before_reading(tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    with f.open("wb") as fh:
        fh.truncate(2 * GiB)  # sparse: reading it would take 2 GiB
    with pytest.raises(BadFileError, match="at most"):
        read_json(f, what="test file")


def test_non_utf8_and_deep_json_and_nan(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(BadFileError, match="not UTF-8"):
        read_json(f, what="test file")
    with pytest.raises(BadFileError, match="nested deeper"):
        parse_json("[" * 100_000, what="x", origin="y")
    with pytest.raises(BadFileError, match="NaN is not allowed"):
        parse_json('{"a": NaN}', what="x", origin="y")
    assert json_depth_ok(["[[[[", {"a": "[["}], 2)
    deep: list[Any] = []
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    assert not json_depth_ok(deep)


def test_json_time_is_linear_in_the_input() -> None:
    """Found by the fuzzer: a regex pre-scan went quadratic on a string left open after many
    escaped quotes (minutes for 300 KB); the parser now does it in one pass."""
    import time

    start = time.perf_counter()
    for text in ['"' + 'a\\"' * 1_000_000, "[" * 1_000_000, '{"a":' * 500_000]:
        with pytest.raises(BadFileError):
            parse_json(text, what="x", origin="y")
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("name", ["x" * 300, "a\nb", "no/such/dir/f.json"])
def test_os_errors_are_one_line_with_the_path_repr(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadFileError) as e:
        read_text(tmp_path / name, what="test file")
    assert "\n" not in str(e.value) and repr(str(tmp_path / name))[:40] in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_permission_denied_folder_is_one_line(tmp_path: Path) -> None:
    d = folder(tmp_path, q.nested_config(TINY), q.text_tensors(TINY))
    d.chmod(0)
    try:
        code, _, err = run("estimate", str(d))
    finally:
        d.chmod(0o755)
    assert code == 1 and "permission denied" in one_line_error(err)


# ---------------------------------------------------------------------------------------------
# the CLI: numbers, paths, files, stdout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option", ["--vram", "--ram", "--context", "--ram-bandwidth", "--margin", "--parallel"]
)
def test_400_digit_numbers_are_usage_errors(option: str) -> None:
    hw = [x for x in HW if x not in (option,)] if option in HW else HW
    if option in HW:
        hw = HW[2:] if option == "--vram" else HW[:2]
    code, out, err = run("check", "9b", *hw, option, BIG)
    assert code == 2 and out == "" and "Traceback" not in err


def test_min_speed_nan_is_refused_and_margin_zero_matches_0gb() -> None:
    code, _, _ = run("recommend", *HW, "--min-speed", "nan")
    assert code == 2
    a = run("check", "9b", *HW, "--margin", "0", "--json")
    b = run("check", "9b", *HW, "--margin", "0GB", "--json")
    assert a[0] == b[0] and a[1] == b[1]


def test_long_names_and_newlines_are_one_line(tmp_path: Path) -> None:
    for ref in ["/" + "x" * 300, str(tmp_path / ("y" * 300)), str(tmp_path / "a\nb.gguf")]:
        code, _, err = run("estimate", ref)
        assert code in (1, 2)
        one_line_error(err)
        assert len([x for x in err.splitlines() if x.strip()]) == 1


@pytest.mark.parametrize("option", ["--machine", "--specs"])
def test_dev_zero_fifo_and_folders_as_files(tmp_path: Path, option: str) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path in ["/dev/zero", str(fifo)]:
        args = ["--specs", path, "models"] if option == "--specs" else ["probe", "--machine", path]
        code, out, err = run(*args)
        assert code == (1 if option == "--specs" else 2) and out == ""
        assert "not a regular file" in one_line_error(err)


def test_fifo_named_safetensors_in_a_checkpoint(tmp_path: Path, table: SpecTable) -> None:
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(q.nested_config(TINY)))
    os.mkfifo(d / "model.safetensors")
    with pytest.raises(BadFileError, match="not a regular file"):
        resolve_model(str(d), table)


def test_non_utf8_and_deep_spec_and_machine_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{")
    assert run("--specs", str(bad), "models")[0] == 1
    assert run("probe", "--machine", str(bad))[0] == 2
    bad.write_text("[" * 100_000)
    code, _, err = run("--specs", str(bad), "models")
    assert code == 1 and "nested deeper" in one_line_error(err)
    code, _, err = run("probe", "--machine", str(bad))
    assert code == 2 and "nested deeper" in one_line_error(err)


def test_stdout_full_is_one_line_exit_1() -> None:
    import subprocess

    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "qwenfit", "models"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
    assert "cannot write the output" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------------
# crafted checkpoints
# ---------------------------------------------------------------------------------------------

BAD_VALUES: list[Any] = ["4096", [4096], None, float("inf"), 0, -8, 1e9, True, 2.5, 10**30]
FIELDS = [
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "linear_num_key_heads",
    "linear_num_value_heads",
    "linear_key_head_dim",
    "linear_value_head_dim",
    "linear_conv_kernel_dim",
    "intermediate_size",
    "vocab_size",
    "full_attention_interval",
    "max_position_embeddings",
    "mtp_num_hidden_layers",
]


@pytest.mark.parametrize("field", FIELDS)
def test_config_values_of_any_type_are_errors_naming_the_field(
    tmp_path: Path, table: SpecTable, field: str
) -> None:
    for i, value in enumerate(BAD_VALUES):
        config = q.nested_config(TINY)
        config["text_config"][field] = value
        d = folder(tmp_path, config, q.text_tensors(TINY), f"c{i}")
        may_pass = value is None or (value == 0 and field == "mtp_num_hidden_layers")
        try:
            resolve_model(str(d), table)
        except QwenfitError as e:
            text = str(e)
            assert "\n" not in text
            assert field in text or "Infinity" in text or value is None, (value, text)
        else:
            assert may_pass, (field, value)


def test_nan_and_infinity_in_config_json(tmp_path: Path, table: SpecTable) -> None:
    config = json.dumps(q.nested_config(TINY)).replace('"hidden_size": 256', '"hidden_size": NaN')
    d = folder(tmp_path, {}, q.text_tensors(TINY))
    (d / "config.json").write_text(config)
    with pytest.raises(BadFileError, match="NaN is not allowed"):
        resolve_model(str(d), table)


def test_a_billion_layers_is_refused_at_once(tmp_path: Path, table: SpecTable) -> None:
    config = q.nested_config(TINY)
    config["text_config"]["num_hidden_layers"] = 10**9
    config["text_config"]["layer_types"] = ["linear_attention"] * 3 + ["full_attention"]
    d = folder(tmp_path, config, q.text_tensors(TINY))
    with pytest.raises(BadFileError, match=r"num_hidden_layers is 1000000000; must be a whole"):
        resolve_model(str(d), table)


def test_moe_and_quant_bits_fields(tmp_path: Path, table: SpecTable) -> None:
    config = q.nested_config(TINY)
    config["quantization_config"] = {"bits": 0, "quant_method": "gptq"}
    d = folder(tmp_path, config, q.text_tensors(TINY), "a")
    with pytest.raises(BadFileError, match="bits"):
        resolve_model(str(d), table)
    config = q.nested_config(TINY)
    config["text_config"].update(num_experts="8", num_experts_per_tok=2, moe_intermediate_size=8)
    d = folder(tmp_path, config, q.text_tensors(TINY), "b")
    with pytest.raises(BadFileError, match="num_experts"):
        resolve_model(str(d), table)


def test_safetensors_zero_offsets_and_bad_weight_map(tmp_path: Path, table: SpecTable) -> None:
    d = tmp_path / "z"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(q.nested_config(TINY)))
    header = {
        name: {"dtype": dt, "shape": list(shape), "data_offsets": [0, 0]}
        for name, shape, dt in q.text_tensors(TINY)
    }
    raw = json.dumps(header).encode()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(QwenfitError):
        resolve_model(str(d), table)
    for weight_map in [{"x": 3}, {"x": ["a"]}, ["a"], {"x": "../../etc/passwd"}, "s"]:
        name = f"w{len(str(weight_map))}"
        e = folder(tmp_path, q.nested_config(TINY), q.text_tensors(TINY), name)
        (e / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
        with pytest.raises(BadFileError, match="weight_map"):
            resolve_model(str(e), table)


def test_gguf_huge_array_in_a_tiny_file(tmp_path: Path, table: SpecTable) -> None:
    f = tmp_path / "huge.gguf"
    key = b"general.architecture"
    body = struct.pack("<4sIQQ", b"GGUF", 3, 0, 1)
    body += struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 4, 1 << 40)
    f.write_bytes(body)
    assert f.stat().st_size < 80
    with pytest.raises(BadFileError, match="more than the file can hold"):
        resolve_model(str(f), table)


def test_gguf_counts_beyond_the_file(tmp_path: Path, table: SpecTable) -> None:
    f = tmp_path / "count.gguf"
    f.write_bytes(struct.pack("<4sIQQ", b"GGUF", 3, 1 << 62, 1 << 62))
    with pytest.raises(BadFileError, match="more than the file can hold"):
        resolve_model(str(f), table)


def test_gguf_split_names_out_of_range(tmp_path: Path, table: SpecTable) -> None:
    for name in ["m-00001-of-00000.gguf", "m-00003-of-00002.gguf", "m-00000-of-00002.gguf"]:
        (tmp_path / name).write_bytes(b"GGUF")
        with pytest.raises(BadFileError, match="split name"):
            resolve_model(str(tmp_path / name), table)


# ---------------------------------------------------------------------------------------------
# spec tables that validate but break commands
# ---------------------------------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    return json.loads((Path(__file__).parents[1] / "data" / "model_specs.json").read_text())


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["runtimes"].pop("vllm"), "'vllm' is missing"),
        (lambda d: d["runtimes"]["ollama"].update(kv_cache_types=[]), "at least one type"),
        (lambda d: d["runtimes"]["ollama"].update(kv_cache_types=["q5_9"]), "kv_cache_types"),
        (lambda d: d["sampling"].pop("thinking_general"), "thinking_general"),
        (lambda d: d.update(models=[]), "at least one model"),
    ],
)
def test_incomplete_spec_tables_fail_at_load(tmp_path: Path, edit: Any, match: str) -> None:
    d = _raw()
    edit(d)
    f = tmp_path / "specs.json"
    f.write_text(json.dumps(d))
    with pytest.raises(SpecError, match=match):
        load_specs(f)


def test_a_table_with_one_model_runs_every_command(tmp_path: Path) -> None:
    d = _raw()
    d["models"] = [m for m in d["models"] if m["name"] == "qwen3.5-27b"]
    f = tmp_path / "specs.json"
    f.write_text(json.dumps(d))
    for args in (
        ["models"],
        ["recommend", *HW],
        ["check", "27b", *HW],
        ["launch", *HW],
        ["estimate", "27b", *HW],
    ):
        code, _, err = run("--specs", str(f), *args)
        assert code in (0, 3), (args, err)


# ---------------------------------------------------------------------------------------------
# the Python API with wrong types
# ---------------------------------------------------------------------------------------------

M24 = with_overrides(None, vram="24GB", ram="64GB")
API_CASES = {
    "context str": lambda: qwenfit.estimate("9b", context="32k"),
    "parallel str": lambda: qwenfit.estimate("9b", parallel="2"),
    "machine str": lambda: qwenfit.estimate("9b", machine="x"),
    "context True": lambda: qwenfit.estimate("9b", context=True),
    "flash maybe": lambda: qwenfit.estimate("9b", flash_attn="maybe"),
    "model None": lambda: qwenfit.estimate(None),
    "table str": lambda: qwenfit.estimate("9b", table="x"),
    "check machine": lambda: qwenfit.check("9b", "x"),
    "check None": lambda: qwenfit.check(None, M24),
    "negative margin": lambda: qwenfit.check(
        "397b-a17b", with_overrides(None, vram="8GB", ram="16GB"), margin=-(10**15)
    ),
    "recommend machine": lambda: qwenfit.recommend("x"),
    "recommend None": lambda: qwenfit.recommend(None),
    "recommend context": lambda: qwenfit.recommend(M24, context="32k"),
    "recommend limit": lambda: qwenfit.recommend(M24, limit="3"),
    "recommend models": lambda: qwenfit.recommend(M24, models="9b"),
    "recommend speed": lambda: qwenfit.recommend(M24, min_speed=float("nan")),
    "max_context machine": lambda: qwenfit.max_context("9b", machine="x"),
    "max_context model": lambda: qwenfit.max_context(None, machine=M24),
    "overrides gpu": lambda: with_overrides(None, gpu=3),
    "overrides base": lambda: with_overrides("x"),
    "launch str": lambda: qwenfit.launch_command("x"),
    "launch None": lambda: qwenfit.launch_command(None),
    "check_fit": lambda: qwenfit.check_fit("x", M24),
    "load_specs": lambda: qwenfit.load_specs(3),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_wrong_types_in_the_api_are_usage_errors(case: str) -> None:
    with pytest.raises(UsageError) as e:
        API_CASES[case]()
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# wrong answers on odd machines
# ---------------------------------------------------------------------------------------------


def _gpu(index: int, gib: float) -> GPU:
    size = int(gib * GiB)
    return GPU(
        index=index,
        name=f"G{index}",
        vendor="nvidia",
        memory_total_bytes=size,
        memory_free_bytes=size,
        bandwidth_bytes_per_s=10**12,
    )


def _machine(gpus: list[GPU], ram_gib: float = 64) -> Machine:
    ram = int(ram_gib * GiB)
    return Machine(
        source="hypothetical",
        ram_total_bytes=ram,
        ram_available_bytes=ram,
        ram_usable_bytes=ram,
        gpus=gpus,
        ram_bandwidth_bytes_per_s=10**11,
    )


@pytest.mark.parametrize("runtime", ["llama.cpp", "vllm", "transformers"])
def test_gpu_order_does_not_change_budgets(runtime: str) -> None:
    a = _machine([_gpu(0, 8), _gpu(1, 24)])
    b = _machine([_gpu(1, 24), _gpu(0, 8)])
    ra = qwenfit.check("9b", a, runtime=runtime, context=8192)
    rb = qwenfit.check("9b", b, runtime=runtime, context=8192)
    assert ra.fit == rb.fit and ra.estimate == rb.estimate
    budgets = {d.device: d.budget_bytes for d in ra.fit.devices if d.device is not None}
    sizes = {g.index: g.memory_free_bytes for g in a.gpus}
    for device, budget in budgets.items():
        if runtime != "vllm":
            assert budget == sizes[device] - ra.fit.margin_bytes


def test_duplicate_gpu_indices_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="listed twice"):
        _machine([_gpu(0, 8), _gpu(0, 24)])
    doc = json.loads(_machine([_gpu(1, 8), _gpu(0, 24)]).model_dump_json())
    f = tmp_path / "m.json"
    f.write_text(json.dumps(doc))
    assert [g.index for g in load_machine(f).gpus] == [0, 1]
    doc["gpus"][0]["index"] = 0
    f.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="listed twice"):
        load_machine(f)


def test_margin_percentage_is_per_pool() -> None:
    m = _machine([_gpu(0, 80)], ram_gib=32)
    planned, margin = Margin(percent=50).apply(m)
    assert margin == 0
    assert planned.gpus[0].memory_free_bytes == 40 * GiB
    assert planned.ram_usable_bytes == 16 * GiB  # half of RAM, not 40 GiB of it
    _, out, _ = run(
        "check",
        "9b",
        "--gpu",
        "H100",
        "--ram",
        "32GB",
        "--runtime",
        "llama.cpp",
        "--margin",
        "50%",
        "--json",
    )
    fit = json.loads(out)["check"]["fit"]
    assert fit["ram_budget_bytes"] == 32 * 10**9 - int(32 * 10**9 * 0.5)


def test_nodes_without_vllm_is_a_usage_error() -> None:
    code, _, err = run("check", "9b", *HW, "--nodes", "2")
    assert code == 2 and "--runtime vllm" in one_line_error(err)
    with pytest.raises(UsageError, match="--nodes 2"):
        qwenfit.estimate("9b", runtime="llama.cpp", nodes=2)


def test_transformers_keeps_using_ram_when_a_gpu_exists() -> None:
    no_gpu = qwenfit.check("9b", _machine([], 128), runtime="transformers", context=4096)
    small = qwenfit.check("9b", _machine([_gpu(0, 4)], 128), runtime="transformers", context=4096)
    assert no_gpu.fits and small.fits  # more memory never gives "nothing fits"


def test_offload_boundary_longer_context_never_needs_less_ram() -> None:
    """At the boundary from one GPU layer to CPU only (found by search: 4b on a 3.5 GiB GPU
    around 36k tokens), the total can drop by the GPU's compute buffer and CUDA context that
    CPU-only does not need; the RAM need and the total at a fixed placement never drop."""
    m = with_overrides(None, vram=int(3.5 * GiB), ram="64GB")
    prev = None
    for ctx in range(30720, 45056, 1024):
        e = qwenfit.estimate("4b", runtime="llama.cpp", context=ctx, machine=m)
        if prev is not None:
            assert e.ram_bytes >= prev.ram_bytes
            if e.layout == prev.layout:
                assert e.total_bytes >= prev.total_bytes
        prev = e


def test_recommend_a_local_folder_agrees_with_check(tmp_path: Path, table: SpecTable) -> None:
    a = table.get("0.8b").model_dump(mode="json")["architecture"]
    d = folder(tmp_path, q.nested_config(a), q.text_tensors(a) + q.vision_tensors(a["vision"]))
    code_check, _, _ = run("check", str(d), *HW)
    code_rec, out, _ = run("recommend", "--model", str(d), *HW, "--json")
    assert code_check == 0 and code_rec == 0 and json.loads(out)["recommend"]["recommendations"]


# ---------------------------------------------------------------------------------------------
# the cache
# ---------------------------------------------------------------------------------------------


def test_relative_xdg_cache_home_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWENFIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert cache_dir() == Path.home() / ".cache" / "qwenfit"
    monkeypatch.setenv("QWENFIT_CACHE_DIR", "also-relative")
    assert cache_dir().is_absolute()
    monkeypatch.setenv("XDG_CACHE_HOME", "/abs/cache")
    monkeypatch.delenv("QWENFIT_CACHE_DIR")
    assert cache_dir() == Path("/abs/cache/qwenfit")


@pytest.mark.parametrize(
    "content",
    [
        '{"key": K, "bytes_per_s": "x"}',
        "[[[[",
        "\xff",
        '{"key": K, "bytes_per_s": 1e400}',
        '{"key": K, "bytes_per_s": [1]}',
        "[" * 100_000,
    ],
)
def test_corrupted_bandwidth_cache_is_measured_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str
) -> None:
    from qwenfit.hardware import bandwidth

    monkeypatch.setenv("QWENFIT_CACHE_DIR", str(tmp_path / "cache"))  # not the session's cache

    path = cache_dir() / "ram_bandwidth.json"
    path.unlink(missing_ok=True)
    idle = {"load": lambda: 0.0}
    assert bandwidth.ram_bandwidth(measurer=lambda: 999, **idle).bytes_per_s == 999
    key = json.loads(path.read_text())["key"]
    if content == "\xff":
        path.write_bytes(b"\xff")
    else:
        path.write_text(content.replace("K", json.dumps(key)))
    assert bandwidth.ram_bandwidth(measurer=lambda: 12345, **idle).bytes_per_s == 12345
    assert json.loads(path.read_text())["bytes_per_s"] == 12345  # rewritten, atomically


def test_unchanged_table_copy_is_still_equal() -> None:
    t = load_specs()
    assert SpecTable.model_validate(copy.deepcopy(t.model_dump())) == t


def test_gguf_holding_one_tensor_is_a_bad_file(tmp_path: Path, table: SpecTable) -> None:
    """Found by the fuzzer: a GGUF whose metadata describes 4 layers but whose tensor table
    holds only token_embd gave negative bytes deep in the llama.cpp model."""
    import fuzz_inputs as fz

    f = tmp_path / "one.gguf"
    f.write_bytes(fz.pack_gguf(fz.SEED_KVS, fz.SEED_TENSORS[:1], None, fz.SEED_DATA))
    with pytest.raises(BadFileError, match="the files do not match"):
        resolve_model(str(f), table)


def test_a_shard_name_with_a_newline_stays_one_line(tmp_path: Path) -> None:
    """Found by the fuzzer: an index naming a missing shard 'a\\nb' gave a two-line error."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "shard\n.safetensors"}})
    )
    from qwenfit.specs.checkpoints.safetensors import safetensors_files

    with pytest.raises(QwenfitError) as e:
        safetensors_files(tmp_path)
    assert "\n" not in str(e.value)
