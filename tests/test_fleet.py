"""qwenfit fleet: node lists of recorded cluster shapes (tests/fixtures/fleet, label sets as the
GPU Operator, GFD and AMD's node labeller document them) -> pools -> plans -> exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenfit.cli.commands import main
from qwenfit.errors import BadFileError, NoFitError, UsageError
from qwenfit.fit.preflight import check
from qwenfit.fleet import fleet
from qwenfit.fleet.nodes import parse_nodes, quantity, requested
from qwenfit.fleet.pools import catalog_entry, group_pools
from qwenfit.serve.service import SCHEMA_VERSION
from qwenfit.units import GiB, MiB

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "fleet"
SHAPES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def pools_of(name: str) -> dict[str, Any]:
    return {p.name: p for p in group_pools(parse_nodes(load(name), name))}


def test_every_recorded_shape_is_there() -> None:
    assert SHAPES == ["amd-mi300x", "cpu-only", "h200-2node", "mig-a100", "mixed-l4-a100-h100"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("16", 16), ("15800m", 15.8), ("65843948Ki", 65843948 * 1024), ("64Gi", 64 * GiB),
     ("1e3", 1000), ("500M", 500 * 10**6), ("0.5", 0.5), ("2k", 2000)],
)  # fmt: skip
def test_quantities(text: str, value: float) -> None:
    assert float(quantity(text, what="x", origin="t")) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "12 Gi", "Gi", "1.2.3", "1e999999", "-", "1Qi", None, [1]])
def test_bad_quantities(text: object) -> None:
    with pytest.raises(BadFileError, match="not a Kubernetes quantity"):
        quantity(text, what="allocatable memory", origin="t")


def test_mixed_cluster_pools() -> None:
    pools = pools_of("mixed-l4-a100-h100")
    assert list(pools) == ["nvidia-h100-80gb-hbm3", "nvidia-a100-sxm4-40gb", "nvidia-l4", "cpu"]
    h100 = pools["nvidia-h100-80gb-hbm3"]
    assert h100.gpu.name == "H100" and h100.gpus_per_node == 8 and len(h100.nodes) == 2
    # memory as NVML reports it (GFD's MiB label), speed figures from the catalog
    assert h100.machine.gpus[0].memory_total_bytes == 81559 * MiB
    assert h100.machine.gpus[0].bandwidth_bytes_per_s == 3350 * 10**9
    assert h100.machine.cuda_driver_version == "550.90"
    assert h100.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert [t.key for t in h100.taints] == ["nvidia.com/gpu"]
    assert pools["nvidia-l4"].gpu.name == "L4" and pools["nvidia-l4"].gpus_per_node == 2
    assert pools["nvidia-a100-sxm4-40gb"].gpu.name == "A100 40GB"
    cpu = pools["cpu"]
    assert cpu.gpu is None and not cpu.machine.gpus and cpu.machine.cpu_logical == 7
    assert cpu.memory_bytes == 29306384 * 1024
    assert cpu.node_selector == {"node.kubernetes.io/instance-type": "e2-standard-8"}


def test_mig_mixed_strategy_gives_one_pool_per_profile() -> None:
    pools = pools_of("mig-a100")
    mig = {p.gpu.mig_profile: p for p in pools.values() if p.gpu}
    assert set(mig) == {"1g.10gb", "2g.20gb", "3g.40gb"}
    big = mig["3g.40gb"]
    assert big.gpu.resource == "nvidia.com/mig-3g.40gb" and big.gpus_per_node == 2
    # one MIG device a process: the planned machine has one GPU of the slice's memory
    (gpu,) = big.machine.gpus
    assert gpu.mig and gpu.memory_total_bytes == 40192 * MiB
    assert gpu.bandwidth_bytes_per_s < 2039 * 10**9 // 2 + 1  # about half the A100's
    assert mig["1g.10gb"].gpus_per_node == 4
    assert pools["cpu"].node_selector == {}  # the control plane: pinned by hostname


def test_mig_single_strategy() -> None:
    doc = load("mig-a100")
    node = doc["items"][0]
    labels = node["metadata"]["labels"]
    labels.update({"nvidia.com/mig.strategy": "single", "nvidia.com/gpu.count": "14",
                   "nvidia.com/gpu.memory": "9728",
                   "nvidia.com/gpu.product": "NVIDIA-A100-80GB-PCIe-MIG-1g.10gb"})  # fmt: skip
    node["status"]["allocatable"] = {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "14"}
    (pool,) = [p for p in group_pools(parse_nodes({"items": [node]}, "t")) if p.gpu]
    assert pool.gpu.resource == "nvidia.com/gpu" and pool.gpu.mig_profile == "1g.10gb"
    assert pool.gpus_per_node == 14 and len(pool.machine.gpus) == 1
    assert pool.machine.gpus[0].memory_total_bytes == 9728 * MiB


def test_amd_pool() -> None:
    (pool,) = pools_of("amd-mi300x").values()
    assert pool.gpu.name == "MI300X" and pool.gpu.resource == "amd.com/gpu"
    assert pool.machine.gpus[0].vendor == "amd" and pool.gpus_per_node == 8
    assert pool.machine.gpus[0].memory_total_bytes == 192 * GiB
    assert pool.node_selector == {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}


def test_unknown_product_is_planned_from_its_memory() -> None:
    doc = load("h200-2node")
    for node in doc["items"]:
        node["metadata"]["labels"]["nvidia.com/gpu.product"] = "NVIDIA-Future-GPU-X"
        node["metadata"]["labels"]["nvidia.com/gpu.memory"] = "100000"
    (pool,) = group_pools(parse_nodes(doc, "t"))
    assert not pool.gpu.in_catalog and pool.gpu.name == "NVIDIA-Future-GPU-X"
    gpu = pool.machine.gpus[0]
    assert gpu.memory_total_bytes == 100000 * MiB and gpu.bandwidth_bytes_per_s is None
    assert gpu.compute_capability == "9.0"  # from gpu.compute.major/minor


def test_catalog_refuses_a_name_whose_memory_disagrees() -> None:
    node = load("h200-2node")["items"][0]
    node["metadata"]["labels"]["nvidia.com/gpu.memory"] = "40960"  # not an H200's 141 GiB
    (device,) = parse_nodes({"items": [node]}, "t")[0].devices
    assert catalog_entry(device) is None


def test_running_pods_are_taken_off() -> None:
    doc = load("h200-2node")
    name = doc["items"][0]["metadata"]["name"]
    pods = {"items": [
        {"spec": {"nodeName": name, "containers": [
            {"resources": {"limits": {"nvidia.com/gpu": "3"}, "requests": {"memory": "100Gi"}}}]},
         "status": {"phase": "Running"}},
        {"spec": {"nodeName": name,
                  "containers": [{"resources": {"limits": {"nvidia.com/gpu": "4"}}}]},
         "status": {"phase": "Succeeded"}},
    ]}  # fmt: skip
    used = requested(pods, "t")
    assert used == {name: {"nvidia.com/gpu": 3, "memory": 100 * GiB}}
    (pool,) = group_pools(parse_nodes(doc, "t"), used)
    assert [(r.devices, r.memory_bytes) for r in pool.free] == [
        (8, 2051212968 * 1024),
        (5, 2051212968 * 1024 - 100 * GiB),
    ]
    assert pool.gpus_per_node == 8 and len(pool.machine.gpus) == 8  # one node: the emptiest
    both = pool.machine_for(2)  # across both nodes: what each of them still has
    assert len(both.gpus) == 5 and both.ram_total_bytes == 2051212968 * 1024 - 100 * GiB
    result = fleet(doc, pods=pods)
    assert result.notes and result.best is not None and result.best.gpus_per_pod <= 8
    # four more GPUs busy on the other node: 397B in BF16 no longer fits one node's 5 GPUs,
    # so it spans both nodes with the 4 GPUs each still has
    other = doc["items"][1]["metadata"]["name"]
    four = {"resources": {"limits": {"nvidia.com/gpu": "4"}}}
    running = {"phase": "Running"}
    busy = {"items": [*pods["items"], {"spec": {"nodeName": other, "containers": [four]},
                                       "status": running}]}  # fmt: skip
    squeezed = fleet(doc, "qwen3.5-397b-a17b", pods=busy, runtime="vllm")
    plan = squeezed.pools[0].plan
    assert plan is not None and plan.fits and (plan.nodes, plan.gpus_per_pod) == (2, 4)


def test_not_ready_and_cordoned_nodes_are_skipped() -> None:
    doc = load("cpu-only")
    doc["items"][0]["spec"]["unschedulable"] = True
    doc["items"][1]["status"]["conditions"][-1]["status"] = "False"
    result = fleet(doc)
    assert len(result.skipped_nodes) == 2 and len(result.pools[0].pool.nodes) == 1


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_gets_a_plan_that_passes_check(shape: str) -> None:
    result = fleet(load(shape), origin=shape)
    assert result.best is not None and result.manifests
    by_name = {a.pool.name: a.pool for a in result.pools}
    for answer in result.pools:
        plan = answer.plan
        assert plan is not None and plan.fits, answer.why_not
        pool = by_name[plan.pool]
        # the same configuration through the public pre-flight check fits the pool's machine
        est = plan.estimate
        again = check(est.model, pool.machine, runtime=est.runtime, quant=est.quant,
                      context=est.context, kv_cache=est.kv_cache, text_only=est.text_only,
                      nodes=plan.nodes,
                      allow_offload=est.layout.kind in ("offload", "cpu"))  # fmt: skip
        assert again.fits
        assert plan.gpus_per_pod <= pool.gpus_per_node
        assert plan.launch.steps[-1].argv[0] in ("vllm", "llama-server")


def test_cluster_wide_best_is_the_best_model() -> None:
    result = fleet(load("mixed-l4-a100-h100"))
    scores = [a.plan.quality_score for a in result.pools if a.plan]
    assert result.best is not None and result.best.quality_score == max(scores)
    assert result.best.pool == "nvidia-h100-80gb-hbm3"


def test_named_model_spreads_over_nodes_when_one_is_too_small() -> None:
    result = fleet(load("mixed-l4-a100-h100"), "qwen3.5-397b-a17b", runtime="vllm")
    plans = {a.pool.name: a for a in result.pools}
    h100 = plans["nvidia-h100-80gb-hbm3"].plan
    assert h100 is not None and h100.fits and h100.nodes == 2
    assert (h100.tensor_parallel, h100.pipeline_parallel) == (8, 2)
    assert not plans["nvidia-l4"].plan.fits and plans["nvidia-l4"].why_not
    assert result.best == h100


def test_model_no_pool_can_serve_exits_3(runner: Any) -> None:
    path = str(FIXTURES / "cpu-only.json")
    res = runner.invoke(main, ["fleet", "--nodes", path, "--model", "qwen3.5-397b-a17b"])
    assert res.exit_code == 3, res.output
    assert "no pool can serve qwen3.5-397b-a17b" in res.output
    res = runner.invoke(
        main, ["fleet", "--nodes", path, "--model", "qwen3.5-397b-a17b", "--output", "yaml"]
    )
    assert res.exit_code == 3 and res.output == ""


def test_cli_outputs(runner: Any) -> None:
    path = str(FIXTURES / "h200-2node.json")
    text = runner.invoke(main, ["fleet", "--nodes", path])
    assert text.exit_code == 0 and "best: qwen3.5-397b-a17b" in text.output
    doc = runner.invoke(main, ["fleet", "--nodes", path, "--output", "json"])
    envelope = json.loads(doc.output)
    assert envelope["schema_version"] == SCHEMA_VERSION and list(envelope) == [
        "schema_version",
        "fleet",
    ]
    schema = json.loads((REPO / "docs" / "schema" / "fleet.schema.json").read_text())
    jsonschema.validate(envelope, schema)
    data = envelope["fleet"]
    assert data["best"]["pool"] == "nvidia-h200"
    assert [m["kind"] for m in data["manifests"]] == ["Deployment", "Service"]
    stdin = runner.invoke(main, ["fleet", "--nodes", "-", "--output", "json"],
                          input=(FIXTURES / "h200-2node.json").read_text())  # fmt: skip
    assert json.loads(stdin.output)["fleet"]["best"] == data["best"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "give --nodes FILE"),
        (["--nodes", "x.json", "--online"], 2, "not both"),
        (["--nodes", "{f}", "--kubeconfig", "k"], 2, "apply to --online"),
        (["--nodes", "{f}", "--model", "nope"], 2, "nope"),
        (["--nodes", "{f}", "--pool", "gpu-x"], 2, "unknown pool 'gpu-x'; pools: nvidia-h200"),
        (["--nodes", "{f}", "--name", "Bad_Name"], 2, "invalid --name 'Bad_Name'"),
        (["--nodes", "{f}", "--namespace", "a b"], 2, "invalid --namespace 'a b'"),
        (["--nodes", "{f}", "--image-tag", "x;y"], 2, "invalid image tag"),
        (["--nodes", "{f}", "--context", "0"], 2, "context"),
        (["--nodes", "missing.json"], 1, "missing.json"),
        (["--nodes", "{bad}"], 1, "not a node list"),
    ],
)
def test_cli_errors(runner: Any, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "PodList", "items": 3}')
    argv = [a.format(f=FIXTURES / "h200-2node.json", bad=bad) for a in args]
    res = runner.invoke(main, ["fleet", *argv])
    assert res.exit_code == code, res.output
    assert message in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error: ")]
    assert "Traceback" not in res.output and len(errors) == 1 and message in errors[0]


def test_pool_choice_that_cannot_serve_exits_3(runner: Any) -> None:
    path = str(FIXTURES / "mixed-l4-a100-h100.json")
    res = runner.invoke(
        main, ["fleet", "--nodes", path, "--model", "qwen3.5-397b-a17b", "--pool", "cpu"]
    )
    assert res.exit_code == 3 and "pool cpu cannot serve it" in res.output


@pytest.mark.parametrize(
    "broken",
    [
        {"items": []},
        {"items": [{"metadata": {}}]},
        {"items": [{"metadata": {"name": "n", "labels": {"a": 1}}}]},
        {"items": [{"metadata": {"name": "n", "labels": {"a": "two\nlines"}}}]},
        {"items": [{"metadata": {"name": "n", "labels": {"bad key": "x"}}}]},
        {"items": [{"metadata": {"name": "Node One"}}]},
        {"items": [{"metadata": {"name": "n"},
                    "spec": {"taints": [{"key": "k", "value": "a b", "effect": "NoSchedule"}]}}]},
        {"items": [{"metadata": {"name": "n"}, "status": {"allocatable": {"memory": "lots"}}}]},
        {"items": [{"metadata": {"name": "n"},
                    "spec": {"taints": [{"key": "k", "effect": "Maybe"}]}}]},
        {"items": [{"metadata": {"name": "n"}}, {"metadata": {"name": "n"}}]},
        [1, 2],
    ],
)  # fmt: skip
def test_malformed_node_lists(broken: object) -> None:
    with pytest.raises(BadFileError):
        fleet(broken)


def test_library_argument_errors() -> None:
    doc = load("cpu-only")
    with pytest.raises(UsageError, match="unknown runtime 'ollama' for a fleet"):
        fleet(doc, runtime="ollama")
    with pytest.raises(UsageError, match="unknown runtime 'tgi'"):
        fleet(doc, runtime="tgi")
    spelled = fleet(load("h200-2node"), runtime="vLLM")  # as runtime_named reads user input
    assert spelled.best is not None and spelled.best.runtime == "vllm"
    with pytest.raises(UsageError, match="unknown task"):
        fleet(doc, task="poetry")  # type: ignore[arg-type]
    with pytest.raises(NoFitError, match="pool cpu cannot serve it"):
        fleet(doc, "qwen3.5-397b-a17b", pool="cpu")


_LABEL = st.from_regex(r"\A[a-z0-9]([-a-z0-9._]{0,20}[a-z0-9])?\Z")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(SHAPES),
    drop=st.sets(st.integers(0, 30), max_size=4),
    gpus=st.integers(0, 16),
    extra=st.dictionaries(_LABEL, _LABEL, max_size=3),
)
def test_property_every_plan_fits_and_exit_codes(
    shape: str, drop: set[int], gpus: int, extra: dict[str, str]
) -> None:
    """Whatever labels are dropped or added and however many GPUs are free, every pool's plan
    that says it fits passes check, and the answer is either a fitting best or none at all."""
    doc = copy.deepcopy(load(shape))
    for node in doc["items"]:
        labels = node["metadata"]["labels"]
        for i, key in enumerate(sorted(labels)):
            if i in drop:
                del labels[key]
        labels.update(extra)
        alloc = node["status"]["allocatable"]
        for key in [k for k in alloc if k.startswith(("nvidia.com/", "amd.com/"))]:
            alloc[key] = str(min(gpus, int(alloc[key])))
    result = fleet(doc)
    fitting = [a.plan for a in result.pools if a.plan is not None and a.plan.fits]
    assert (result.best is None) == (not fitting) == (not result.manifests)
    by_name = {a.pool.name: a.pool for a in result.pools}
    for plan in fitting:
        est = plan.estimate
        again = check(est.model, by_name[plan.pool].machine, runtime=est.runtime, quant=est.quant,
                      context=est.context, kv_cache=est.kv_cache, text_only=est.text_only,
                      nodes=plan.nodes,
                      allow_offload=est.layout.kind in ("offload", "cpu"))  # fmt: skip
        assert again.fits


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(SHAPES),
    model=st.sampled_from(["qwen3.5-0.8b", "qwen3.5-27b", "qwen3.5-122b-a10b", "qwen3.5-397b"]),
    output=st.sampled_from(["text", "json"]),
)
def test_property_cli_exit_code_says_whether_a_pool_serves_it(
    shape: str, model: str, output: str
) -> None:
    from click.testing import CliRunner

    res = CliRunner().invoke(
        main, ["fleet", "--nodes", str(FIXTURES / f"{shape}.json"), "--model", model,
               "--output", output],
    )  # fmt: skip
    served = fleet(load(shape), model).best is not None
    assert res.exit_code == (0 if served else 3), res.output
    if output == "json":
        assert (json.loads(res.output)["fleet"]["best"] is not None) == served
