"""Kubernetes objects that run a pool's plan, built from its launch steps (the argv the
launch stage wrote, never a second copy of the flags).

One node: a Deployment (one replica, `Recreate` so an update never needs a second set of GPUs)
and a Service. Across nodes (vLLM, pipeline parallel): a LeaderWorkerSet of `size` = nodes, as
vLLM's LWS guide deploys it (https://docs.vllm.ai/en/latest/deployment/frameworks/lws.html):
the leader starts the Ray head and then `vllm serve`, each worker joins the leader at
`$(LWS_LEADER_ADDRESS)`, which the LWS controller sets in every pod (vLLM waits up to
`PG_WAIT_TIMEOUT` = 1800 s in its ray_utils for their GPUs to join)
(https://lws.sigs.k8s.io/docs/reference/labels-annotations-and-environment-variables/).

Images (the tag is a parameter): vLLM publishes `vllm/vllm-openai` for CUDA
(https://docs.vllm.ai/en/stable/deployment/docker/), AMD `rocm/vllm` for ROCm
(https://rocm.docs.amd.com/projects/ai-ecosystem/en/latest/inference/vllm.html); llama.cpp
publishes `ghcr.io/ggml-org/llama.cpp:server`, `:server-cuda` and `:server-rocm`, whose entry
point is /app/llama-server listening on 0.0.0.0 (docs/docker.md and .devops/*.Dockerfile of
ggml-org/llama.cpp). Both servers answer GET /health once the model is loaded.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import LLAMACPP, VLLM
from qwenfit.errors import QwenfitError, UnsupportedError
from qwenfit.launch.record import Step
from qwenfit.units import MiB

if TYPE_CHECKING:
    from qwenfit.fleet.pools import Pool
    from qwenfit.fleet.record import PoolPlan

# The port each server listens on by default: vLLM's --port, llama-server's --port.
PORTS: dict[str, int] = {VLLM: 8000, LLAMACPP: 8080}
# (runtime, vendor or None for CPU) -> image repository and the tag template ({tag}).
IMAGES: dict[tuple[str, str | None], tuple[str, str, str]] = {
    (VLLM, "nvidia"): ("docker.io/vllm/vllm-openai", "{tag}", "latest"),
    (VLLM, "amd"): ("docker.io/rocm/vllm", "{tag}", "latest"),
    (LLAMACPP, "nvidia"): ("ghcr.io/ggml-org/llama.cpp", "server-cuda{tag}", ""),
    (LLAMACPP, "amd"): ("ghcr.io/ggml-org/llama.cpp", "server-rocm{tag}", ""),
    (LLAMACPP, None): ("ghcr.io/ggml-org/llama.cpp", "server{tag}", ""),
}
LLAMA_SERVER = "/app/llama-server"  # the server image's entry point
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"  # on every pod of a LeaderWorkerSet
CACHE_PATH = "/root/.cache"  # both images run as root: Hugging Face and llama.cpp caches
LEADER_PLACEHOLDER = "HEAD_NODE_IP"  # how launch.vllm's worker step names the head node
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,50}[a-z0-9])?$")


class Settings(BaseModel):
    """What the manifests are called and where they pull from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="Object name (DNS label); default: the model's.")
    namespace: str = "default"
    image_tag: str | None = Field(
        None, description="vLLM: the image tag (default latest); llama.cpp: a build such as "
        "b7000, giving server-cuda-b7000 (default: the rolling server-cuda).",
    )  # fmt: skip
    cache_claim: str | None = Field(
        None, description="A PersistentVolumeClaim for the model cache; default an emptyDir."
    )
    hf_token_secret: str = Field("hf-token", description="Secret with key `token` (optional).")
    startup_timeout_s: int = Field(3600, ge=60, description="Download and load time allowed.")


def _check_namespace(namespace: str) -> None:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        raise UnsupportedError(
            f"invalid --namespace {namespace!r:.70}: lowercase letters, digits and '-', at most 63"
        )


def image(runtime: str, vendor: str | None, tag: str | None) -> str:
    key = (runtime, vendor)
    if key not in IMAGES:
        where = f"{vendor} GPUs" if vendor else "CPU-only nodes"
        raise UnsupportedError(f"no published {runtime} server image for {where}")
    repo, template, default = IMAGES[key]
    if tag is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", tag):
        raise UnsupportedError(f"invalid image tag {tag!r:.60}: letters, digits, '_', '.', '-'")
    if runtime == LLAMACPP:
        return f"{repo}:{template.format(tag=f'-{tag}' if tag else default)}"
    return f"{repo}:{template.format(tag=tag or default)}"


def object_name(settings: Settings, model: str) -> str:
    name = settings.name or re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    if not _NAME.match(name):
        raise UnsupportedError(
            f"invalid --name {name!r:.60}: lowercase letters, digits and '-', starting with a "
            "letter, at most 52 characters"
        )
    return name


def _env(step: Step, settings: Settings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in step.env.items()]
    ref = {"name": settings.hf_token_secret, "key": "token", "optional": True}
    return [*env, {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": ref}}]


def _resources(plan: PoolPlan, pool: Pool) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if plan.gpus_per_pod and pool.gpu is not None:
        requests[pool.gpu.resource] = limits[pool.gpu.resource] = str(plan.gpus_per_pod)
    if plan.estimate.ram_bytes:
        requests["memory"] = f"{math.ceil(plan.estimate.ram_bytes / MiB)}Mi"
    return {"requests": requests, "limits": limits} if limits else {"requests": requests}


def _placement(pool: Pool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pool.node_selector:
        out["nodeSelector"] = dict(pool.node_selector)
    else:
        term = {"key": "kubernetes.io/hostname", "operator": "In", "values": list(pool.nodes)}
        required = {"nodeSelectorTerms": [{"matchExpressions": [term]}]}
        out["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
        }
    if pool.taints:
        out["tolerations"] = [
            {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect}
            if t.value
            else {"key": t.key, "operator": "Exists", "effect": t.effect}
            for t in pool.taints
        ]
    return out


def _volumes(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cache: dict[str, Any] = (
        {"persistentVolumeClaim": {"claimName": settings.cache_claim}}
        if settings.cache_claim
        else {"emptyDir": {}}
    )
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}, {"name": "model-cache", **cache}]
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "model-cache", "mountPath": CACHE_PATH},
    ]
    return volumes, mounts


def _probes(port: int, settings: Settings) -> dict[str, Any]:
    """Startup allows the download and load; then readiness every 10 s, liveness after 3
    missed checks of 30 s."""
    get = {"httpGet": {"path": "/health", "port": port}}
    return {
        "startupProbe": {
            **get,
            "periodSeconds": 10,
            "failureThreshold": settings.startup_timeout_s // 10,
        },
        "readinessProbe": {**get, "periodSeconds": 10},
        "livenessProbe": {**get, "periodSeconds": 30, "failureThreshold": 3},
    }


def _serve_container(
    plan: PoolPlan, step: Step, pool: Pool, settings: Settings, image_ref: str
) -> dict[str, Any]:
    port = PORTS[plan.runtime]
    if plan.runtime == LLAMACPP:
        if step.argv[0] != "llama-server":
            raise QwenfitError(f"unexpected llama.cpp step {step.argv[:2]}")
        command = {"command": [LLAMA_SERVER], "args": step.argv[1:]}
    else:
        command = {"command": list(step.argv)}
    _, mounts = _volumes(settings)
    return {
        "name": "server",
        "image": image_ref,
        **command,
        "env": _env(step, settings),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": _resources(plan, pool),
        "volumeMounts": mounts,
        **_probes(port, settings),
    }


def _labels(name: str, plan: PoolPlan) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/managed-by": "qwenfit",
        "qwenfit/pool": pool_label(plan.pool),
    }


def pool_label(text: str) -> str:
    return text[:63].strip("-.") or "pool"


def _service(
    name: str, settings: Settings, plan: PoolPlan, selector: dict[str, str]
) -> dict[str, Any]:
    port = PORTS[plan.runtime]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": _labels(name, plan)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def manifests(plan: PoolPlan, pool: Pool, settings: Settings) -> list[dict[str, Any]]:
    """The objects to `kubectl apply` for `plan` on `pool`: Deployment and Service on one node,
    LeaderWorkerSet and Service across nodes."""
    name = object_name(settings, plan.model)
    _check_namespace(settings.namespace)
    vendor = pool.gpu.vendor if pool.gpu is not None and plan.gpus_per_pod else None
    ref = image(plan.runtime, vendor, settings.image_tag)
    serve = plan.launch.steps[-1]
    volumes, _ = _volumes(settings)
    labels = _labels(name, plan)
    meta = {"name": name, "namespace": settings.namespace, "labels": labels}
    container = _serve_container(plan, serve, pool, settings, ref)
    if plan.nodes == 1:
        pod = {"containers": [container], "volumes": volumes, **_placement(pool)}
        match = {"app.kubernetes.io/name": name}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": match},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        }
        return [deployment, _service(name, settings, plan, match)]
    return [
        _leader_worker_set(plan, pool, settings, meta, container, volumes),
        _service(name, settings, plan, {LWS_NAME_LABEL: name, "role": "leader"}),
    ]


def _leader_worker_set(
    plan: PoolPlan,
    pool: Pool,
    settings: Settings,
    meta: dict[str, Any],
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    """vLLM across nodes: the launch steps are [Ray head, Ray worker, vllm serve]."""
    steps = plan.launch.steps
    head = next((s for s in steps if s.argv[:2] == ["ray", "start"] and "--head" in s.argv), None)
    join = next(
        (s for s in steps if s.argv[:2] == ["ray", "start"] and "--head" not in s.argv), None
    )
    if plan.runtime != VLLM or head is None or join is None:
        raise QwenfitError("a multi-node plan needs vLLM's Ray steps")
    leader = {
        **container,
        "command": ["sh", "-c", f"{shlex.join(head.argv)} && exec {shlex.join(steps[-1].argv)}"],
    }
    worker_argv = [a.replace(LEADER_PLACEHOLDER, "$(LWS_LEADER_ADDRESS)") for a in join.argv]
    worker = {
        "name": "worker",
        "image": container["image"],
        # A container's first process must stay up: --block keeps the Ray worker in front.
        "command": [*worker_argv, "--block"],
        "env": container["env"],
        "resources": container["resources"],
        "volumeMounts": container["volumeMounts"],
    }
    placement = _placement(pool)
    # One pod a node, as the plan assumed (each pod gets a node's GPUs): no two pods of this
    # set on one host (the LWS controller labels every pod with the set's name).
    apart = {
        "labelSelector": {"matchLabels": {LWS_NAME_LABEL: meta["name"]}},
        "topologyKey": "kubernetes.io/hostname",
    }
    affinity = {
        **placement.get("affinity", {}),
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [apart]},
    }
    spec = {"volumes": volumes, **placement, "affinity": affinity}
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "leaderWorkerTemplate": {
                "size": plan.nodes,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {
                    "metadata": {"labels": {**meta["labels"], "role": "leader"}},
                    "spec": {"containers": [leader], **spec},
                },
                "workerTemplate": {
                    "metadata": {"labels": {**meta["labels"], "role": "worker"}},
                    "spec": {"containers": [worker], **spec},
                },
            },
        },
    }


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """The objects as one YAML stream for `kubectl apply -f -` (PyYAML's safe dumper; a JSON
    round trip first, so parts shared between objects are written out, not as YAML aliases)."""
    import json

    import yaml

    plain = json.loads(json.dumps(objects))
    return str(yaml.safe_dump_all(plain, sort_keys=False, default_flow_style=False, width=100))
