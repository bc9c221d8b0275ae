"""Every manifest `qwenfit fleet` writes, validated against the Kubernetes schemas of a current
release (the kubernetes-validate package, offline) and built from the launch steps' argv.

The LeaderWorkerSet CRD schema is not shipped here (its text belongs to kubernetes-sigs/lws): the
CRD test reads the published CRD file from $QWENFIT_LWS_CRD (config/crd/bases/
leaderworkerset.x-k8s.io_leaderworkersets.yaml of a kubernetes-sigs/lws release) and is skipped
without it; the pod templates inside a LeaderWorkerSet are validated as core PodTemplates always.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from qwenfit.fleet import Settings, fleet, to_yaml
from qwenfit.fleet.manifests import image

FIXTURES = Path(__file__).parent / "fixtures" / "fleet"
K8S = "1.37.0"  # the newest release kubernetes-validate carries (1.37.0 on the registry)
# (shape, model, runtime, pool): every recorded shape's best answer, plans that span nodes,
# and pools chosen by hand.
CASES = [
    ("amd-mi300x", None, None, None),
    ("cpu-only", None, None, None),
    ("h200-2node", None, None, None),
    ("mig-a100", None, None, None),
    ("mixed-l4-a100-h100", None, None, None),
    ("mixed-l4-a100-h100", "qwen3.5-397b-a17b", "vllm", None),  # 2 x 8 H100: LeaderWorkerSet
    ("mixed-l4-a100-h100", "qwen3.5-27b", "vllm", "nvidia-l4"),  # 2 x 2 L4: LeaderWorkerSet
    ("mig-a100", "qwen3.5-9b", "vllm", None),
    ("amd-mi300x", "qwen3.5-27b", "llama.cpp", None),
]


def run(shape: str, model: str | None, runtime: str | None, pool: str | None = None,
        **kw: Any) -> Any:  # fmt: skip
    doc = json.loads((FIXTURES / f"{shape}.json").read_text())
    return fleet(doc, model, runtime=runtime, pool=pool, **kw)


def plan_of(result: Any) -> Any:
    """The plan the manifests run: the pool asked for, else the cluster-wide best."""
    pool = result.manifests[0]["metadata"]["labels"]["qwenfit/pool"]
    return next(a.plan for a in result.pools if a.pool.name == pool)


def all_manifests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for shape, model, runtime, pool in CASES:
        for obj in run(shape, model, runtime, pool).manifests:
            out.append((f"{shape}:{model}:{obj['kind']}", obj))
    return out


MANIFESTS = all_manifests()


def pod_templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "Deployment":
        return [obj["spec"]["template"]]
    lws = obj["spec"]["leaderWorkerTemplate"]
    return [lws["leaderTemplate"], lws["workerTemplate"]]


@pytest.mark.parametrize(("case", "obj"), MANIFESTS, ids=[c for c, _ in MANIFESTS])
def test_manifest_validates_against_kubernetes(case: str, obj: dict[str, Any]) -> None:
    if obj["kind"] == "LeaderWorkerSet":
        for tmpl in pod_templates(obj):
            wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
                       "metadata": {"name": obj["metadata"]["name"]}, "template": tmpl}  # fmt: skip
            kubernetes_validate.validate(wrapped, K8S, strict=True)
    else:
        kubernetes_validate.validate(obj, K8S, strict=True)


def test_the_validator_rejects_a_broken_object() -> None:
    """The check above can fail: an unknown field and a wrong type are refused."""
    (_, deployment), _ = MANIFESTS[0], None
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S, strict=True)
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S, strict=True)


def test_cases_cover_every_kind_and_resource() -> None:
    kinds = {obj["kind"] for _, obj in MANIFESTS}
    assert kinds == {"Deployment", "Service", "LeaderWorkerSet"}
    resources = set()
    for _, obj in MANIFESTS:
        if obj["kind"] != "Service":
            for tmpl in pod_templates(obj):
                resources |= set(tmpl["spec"]["containers"][0]["resources"]["requests"])
    assert {"nvidia.com/gpu", "amd.com/gpu", "nvidia.com/mig-3g.40gb", "memory"} <= resources


@pytest.mark.parametrize(("shape", "model", "runtime", "pool"), CASES)
def test_containers_run_the_launch_steps(
    shape: str, model: str | None, runtime: str | None, pool: str | None
) -> None:
    result = run(shape, model, runtime, pool)
    plan = plan_of(result)
    steps = plan.launch.steps
    workload = result.manifests[0]
    container = pod_templates(workload)[0]["spec"]["containers"][0]
    if plan.runtime == "llama.cpp":
        assert container["command"] == ["/app/llama-server"]
        assert container["args"] == steps[-1].argv[1:]
        assert container["image"].startswith("ghcr.io/ggml-org/llama.cpp:server")
    elif plan.nodes == 1:
        assert container["command"] == steps[-1].argv
        assert container["image"].split(":")[0] in (
            "docker.io/vllm/vllm-openai",
            "docker.io/rocm/vllm",
        )
    else:
        script = container["command"][2]
        assert script.endswith(" && exec " + steps[-1].shell)
        assert script.startswith(steps[0].shell)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert {k: v for k, v in env.items() if k != "HF_TOKEN"} == steps[-1].env
    port = container["ports"][0]["containerPort"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": port}
    service = result.manifests[1]
    assert service["kind"] == "Service" and service["spec"]["ports"][0]["port"] == port


def test_placement_follows_the_pool() -> None:
    result = run("mixed-l4-a100-h100", "qwen3.5-27b", "vllm", "nvidia-l4")
    lws = result.manifests[0]
    assert lws["kind"] == "LeaderWorkerSet"
    plan = plan_of(result)
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["size"] == plan.nodes == 2 and plan.pool == "nvidia-l4"
    for tmpl in pod_templates(lws):
        spec = tmpl["spec"]
        assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
        assert spec["tolerations"] == [
            {
                "key": "nvidia.com/gpu",
                "operator": "Equal",
                "value": "present",
                "effect": "NoSchedule",
            }
        ]
        assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in spec["volumes"]
        limits = spec["containers"][0]["resources"]["limits"]
        assert limits == {"nvidia.com/gpu": str(plan.tensor_parallel)}
        apart = spec["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert apart == [
            {
                "labelSelector": {
                    "matchLabels": {"leaderworkerset.sigs.k8s.io/name": lws["metadata"]["name"]}
                },
                "topologyKey": "kubernetes.io/hostname",
            }
        ]
    worker = group["workerTemplate"]["spec"]["containers"][0]
    join = plan.launch.steps[1].argv
    assert worker["command"][:3] == join[:3]
    assert (
        worker["command"][3] == "$(LWS_LEADER_ADDRESS):6379" and worker["command"][-1] == "--block"
    )
    leader = group["leaderTemplate"]["spec"]["containers"][0]["command"][2]
    assert f"--pipeline-parallel-size {group['size']}" in leader
    assert f"--tensor-parallel-size {plan.tensor_parallel}" in leader


def test_hostname_affinity_when_no_label_singles_the_pool_out() -> None:
    result = run("mig-a100", None, None, "cpu")
    spec = result.manifests[0]["spec"]["template"]["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expr = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert expr == {"key": "kubernetes.io/hostname", "operator": "In", "values": ["ctrl-plane-01"]}
    assert spec["tolerations"] == [
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule",
        }
    ]
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["requests"]


def test_settings_name_namespace_tag_and_cache() -> None:
    settings = Settings(
        name="qwen-chat", namespace="llm", image_tag="v0.19.0", cache_claim="models"
    )
    result = run("h200-2node", None, None, settings=settings)
    deployment = result.manifests[0]
    assert deployment["metadata"]["name"] == "qwen-chat" == result.manifests[1]["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == "llm"
    spec = deployment["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "docker.io/vllm/vllm-openai:v0.19.0"
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "models"}} in spec[
        "volumes"
    ]


def test_images_per_runtime_and_vendor() -> None:
    assert image("llama.cpp", "nvidia", "b7000") == "ghcr.io/ggml-org/llama.cpp:server-cuda-b7000"
    assert image("llama.cpp", "amd", None) == "ghcr.io/ggml-org/llama.cpp:server-rocm"
    assert image("llama.cpp", None, None) == "ghcr.io/ggml-org/llama.cpp:server"
    assert image("vllm", "nvidia", None) == "docker.io/vllm/vllm-openai:latest"
    assert image("vllm", "amd", "latest") == "docker.io/rocm/vllm:latest"


def test_yaml_stream_round_trips() -> None:
    result = run("mixed-l4-a100-h100", "qwen3.5-397b-a17b", "vllm")
    text = to_yaml(result.manifests)
    assert "&id" not in text and "*id" not in text  # no YAML aliases for kubectl to trip on
    assert list(yaml.safe_load_all(text)) == json.loads(json.dumps(result.manifests))


def _lws_schema() -> dict[str, Any] | None:
    path = os.environ.get("QWENFIT_LWS_CRD")
    if not path:
        return None
    crd = yaml.safe_load(Path(path).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.skipif(_lws_schema() is None, reason="set QWENFIT_LWS_CRD to the published LWS CRD")
def test_leader_worker_set_validates_against_its_crd() -> None:
    import jsonschema

    schema = _lws_schema()
    assert schema is not None
    found = 0
    for _, obj in MANIFESTS:
        if obj["kind"] == "LeaderWorkerSet":
            jsonschema.validate(obj, schema)
            found += 1
    assert found == 2
    broken = json.loads(json.dumps(next(o for _, o in MANIFESTS if o["kind"] == "LeaderWorkerSet")))
    broken["spec"]["leaderWorkerTemplate"]["size"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
