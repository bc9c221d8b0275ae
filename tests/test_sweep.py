"""sweep() and estimate --sweep/--plot; --reserve; the download and disk check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_machine

from qwenfit import check, estimate, load_specs, sweep, with_overrides
from qwenfit.cli import main
from qwenfit.errors import UsageError
from qwenfit.fit.disk import check_disk, model_folder
from qwenfit.units import GB, GiB

CARD12 = ["--gpu", "RTX 3060", "--ram", "32GB"]


def test_sweep_rows_are_estimates_and_mark_the_largest_fit() -> None:
    m = make_machine(12, 64)
    r = sweep("9b", runtime="llama.cpp", machine=m)
    assert r.contexts[0] == 4096 and r.contexts[-1] == 262144
    assert set(r.kv_types) == {"f16", "bf16", "q8_0", "q4_0"}
    assert len(r.rows) == len(r.contexts) * len(r.kv_types)
    row = next(x for x in r.rows if x.kv_cache == "q8_0" and x.context == 32768)
    e = estimate(
        "9b", runtime="llama.cpp", kv_cache="q8_0", context=32768, machine=m, allow_offload=False
    )
    assert row.total_bytes == e.total_bytes and row.tokens_per_second == e.tokens_per_second
    for kv in r.kv_types:
        best = r.max_context[kv]
        assert best is not None
        rows = [x for x in r.rows if x.kv_cache == kv]
        assert all(x.fits == (x.context <= best) for x in rows)
    assert r.max_context["q4_0"] >= r.max_context["q8_0"] >= r.max_context["f16"]  # type: ignore[operator]


def test_sweep_without_machine_and_with_yarn() -> None:
    r = sweep("9b", runtime="vllm", kv_types=["bf16"], yarn=True)
    assert r.budget_bytes is None and r.max_context == {}
    assert r.rows[-1].yarn and r.rows[-1].context > 262144
    with pytest.raises(UsageError):
        sweep("9b", runtime="vllm", contexts=[10**9])


def test_cli_sweep_json_matches_library(runner: CliRunner) -> None:
    out = runner.invoke(
        main, ["estimate", "4b", "--sweep", "--json", "--runtime", "llama.cpp", *CARD12]
    )
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    lib = sweep("4b", runtime="llama.cpp", machine=with_overrides(None, gpu="RTX 3060", ram="32GB"))
    assert doc["sweep"] == lib.model_dump(mode="json")
    text = runner.invoke(main, ["estimate", "4b", "--sweep", "--runtime", "llama.cpp", *CARD12])
    assert "largest context that fits with KV q8_0" in text.stdout
    bad = runner.invoke(main, ["estimate", "4b", "--sweep", "--context", "8k", *CARD12])
    assert bad.exit_code == 2


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot(runner: CliRunner, tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / f"curve{suffix}"
    r = runner.invoke(
        main, ["estimate", "9b", "--plot", str(path), "--runtime", "llama.cpp", *CARD12]
    )
    assert r.exit_code == 0, r.stderr
    head = path.read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in path.read_bytes()
    assert (
        runner.invoke(
            main, ["estimate", "9b", "--plot", str(tmp_path / "x.jpg"), *CARD12]
        ).exit_code
        == 2
    )


def test_reserve_applies_to_planned_and_shows_in_fit() -> None:
    base = with_overrides(None, gpu="2x RTX 4090", ram="64GB")
    m = with_overrides(None, gpu="2x RTX 4090", ram="64GB", reserve="1.5GB@1")
    assert m.gpus[0].memory_free_bytes == base.gpus[0].memory_free_bytes
    assert m.gpus[1].memory_free_bytes == base.gpus[1].memory_free_bytes - 1_500_000_000
    every = with_overrides(base, reserve="1GiB")
    assert all(g.reserved_bytes == GiB for g in every.gpus)
    r = check("9b", every, runtime="llama.cpp", context=8192)
    assert r.fit.devices[0].reserved_bytes == GiB
    for bad in ("1GB@7", "lots", "1GB@x"):
        with pytest.raises(UsageError):
            with_overrides(base, reserve=bad)


def test_reserve_cli_fit_line(runner: CliRunner) -> None:
    r = runner.invoke(
        main, ["check", "9b", "--vram", "12GB", "--ram", "32GB", "--reserve", "1.5GB"]
    )
    assert "1.40 GiB reserved" in r.stdout


def test_download_bytes_in_every_estimate() -> None:
    for rt, quant in [
        ("llama.cpp", "q4_k_m"),
        ("vllm", "bf16"),
        ("ollama", None),
        ("mlx", "mlx-4bit"),
    ]:
        e = estimate("9b", runtime=rt, quant=quant, context=8192)
        assert e.download_bytes and e.download_bytes > e.weights_bytes * 0.9
    gguf = estimate("9b", runtime="llama.cpp", context=8192)
    text = estimate("9b", runtime="llama.cpp", context=8192, text_only=True)
    mmproj = load_specs().get("9b").artifact("q4_k_m", "gguf").vision_bytes  # type: ignore[union-attr]
    assert gguf.download_bytes - text.download_bytes == mmproj  # type: ignore[operator]
    assert estimate("9b", runtime="vllm", context=8192).download_exact is True


def test_disk_check(runner: CliRunner, tmp_path: Path) -> None:
    d = check_disk(10 * GB, True, "vllm", disk="4GB", download_speed=100 * 10**6)
    assert not d.fits and d.missing_bytes == 6 * GB and d.download_seconds == 100.0
    assert check_disk(10, True, "vllm", disk=str(tmp_path)).fits
    r = runner.invoke(main, ["check", "9b", "--vram", "24GB", "--ram", "32GB", "--disk", "1GB"])
    assert r.exit_code == 3 and "more free space" in r.stdout
    ok = runner.invoke(
        main, ["check", "9b", "--vram", "24GB", "--ram", "32GB", "--disk", "100GB", "--json"]
    )
    assert ok.exit_code == 0 and json.loads(ok.stdout)["check"]["disk"]["fits"]


def test_model_folders() -> None:
    env = {"HOME": "/h"}
    assert model_folder("ollama", env) == Path("/h/.ollama/models")
    assert model_folder("ollama", {**env, "OLLAMA_MODELS": "/m"}) == Path("/m")
    assert model_folder("vllm", env) == Path("/h/.cache/huggingface/hub")
    assert model_folder("mlx", {**env, "HF_HOME": "/hf"}) == Path("/hf/hub")
    assert model_folder("llama.cpp", {**env, "HF_HUB_CACHE": "/c"}) == Path("/c")
