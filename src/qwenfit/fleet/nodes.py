"""What each Kubernetes node offers, read from the node list (`kubectl get nodes -o json`).

GPUs come from the labels the vendors' operators write and the extended resources the device
plugins advertise:

- NVIDIA GPU Feature Discovery (GFD, part of the GPU Operator): `nvidia.com/gpu.product`,
  `nvidia.com/gpu.memory` (MiB, as NVML reports it), `nvidia.com/gpu.count`,
  `nvidia.com/gpu.compute.major|minor`, `nvidia.com/cuda.driver.major|minor|rev`, and under the
  MIG strategy `mixed` one label set per MIG type `nvidia.com/mig-<g>g.<mem>gb.count|memory`
  with a resource of the same name (https://github.com/NVIDIA/k8s-device-plugin/blob/main/
  docs/gpu-feature-discovery/README.md, "Generated Labels").
- AMD GPU Operator node labeller: `amd.com/gpu.product-name`, `amd.com/gpu.vram` ("192G"),
  `amd.com/gpu.device-id`, resource `amd.com/gpu` (https://instinct.docs.amd.com/projects/
  k8s-device-plugin/en/latest/user-guide/configuration.html).

Quantities follow Kubernetes' resource.Quantity grammar (https://kubernetes.io/docs/reference/
kubernetes-api/common-definitions/quantity/).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.errors import BadFileError
from qwenfit.hardware.machine import Vendor
from qwenfit.units import GiB, MiB

NVIDIA_GPU = "nvidia.com/gpu"
AMD_GPU = "amd.com/gpu"
MAX_NODES = 5000  # Kubernetes' documented largest cluster ("Considerations for large clusters")
_MIG_LABEL = re.compile(r"^nvidia\.com/(mig-(\d+)g\.(\d+)gb)\.count$")
_SUFFIX: dict[str, Decimal] = {
    k: Decimal(str(v))
    for k, v in {
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
        "n": "1e-9", "u": "1e-6", "m": "1e-3", "": 1,
        "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    }.items()
}  # fmt: skip
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d{1,3})|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


def quantity(text: object, *, what: str, origin: str) -> Decimal:
    """A Kubernetes quantity ('16', '15800m', '65843948Ki', '1e9') as a number."""
    m = _QUANTITY.match(str(text).strip()) if isinstance(text, (str, int)) else None
    if m is None or len(str(text)) > 40:
        raise BadFileError(f"{origin}: {what} {text!r:.40}: not a Kubernetes quantity")
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:
        raise BadFileError(f"{origin}: {what} {text!r:.40}: not a Kubernetes quantity") from None
    if m.group(2) is not None:
        return value.scaleb(int(m.group(2)))
    return value * _SUFFIX[m.group(3) or ""]


class Taint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class DeviceClass(BaseModel):
    """One kind of accelerator a node offers through one resource name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vendor: Vendor
    resource: str = Field(description="The resource a pod requests: nvidia.com/gpu, amd.com/gpu "
                          "or nvidia.com/mig-<profile>.")  # fmt: skip
    product: str = Field(description="The product label as the operator wrote it.")
    product_label: str = Field(description="The label key that holds `product`.")
    memory_bytes: int | None = Field(None, ge=0, description="Per device, from the labels.")
    compute_capability: str | None = None
    mig_profile: str | None = Field(None, description="e.g. 3g.40gb; null for whole GPUs.")
    allocatable: int = Field(ge=0, description="Devices the node advertises for pods.")


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    labels: dict[str, str]
    cpu_millicores: int = Field(ge=0, description="Allocatable CPU, in thousandths of a core.")
    memory_bytes: int = Field(ge=0, description="Allocatable memory.")
    devices: list[DeviceClass] = []
    taints: list[Taint] = []
    cuda_driver: str | None = Field(None, description="CUDA driver API version (GFD labels).")
    schedulable: bool = True
    ready: bool = True


# The API server's syntax for label values and keys ("Labels and Selectors", Syntax and
# character set): what a real node list can hold, so names and selectors print on one line.
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABEL_KEY = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


_NODE_NAME = re.compile(r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$")  # a DNS subdomain


def _labels(meta: dict[str, Any], origin: str) -> dict[str, str]:
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise BadFileError(f"{origin}: metadata.labels must map strings to strings")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise BadFileError(f"{origin}: label {key!r:.80}={value!r:.80} is not a valid label")
    return labels


def _int_label(labels: dict[str, str], key: str) -> int | None:
    value = labels.get(key, "")
    return int(value) if value.isdigit() and len(value) < 10 else None


def _count(alloc: dict[str, Any], resource: str, origin: str) -> int:
    if resource not in alloc:
        return 0
    return int(quantity(alloc[resource], what=f"allocatable {resource}", origin=origin))


def _nvidia(labels: dict[str, str], alloc: dict[str, Any], origin: str) -> list[DeviceClass]:
    product = labels.get("nvidia.com/gpu.product")
    cc = None
    major, minor = (_int_label(labels, f"nvidia.com/gpu.compute.{p}") for p in ("major", "minor"))
    if major is not None and minor is not None:
        cc = f"{major}.{minor}"
    found = []
    whole = _count(alloc, NVIDIA_GPU, origin)
    if whole and not product:  # the device plugin without GFD: GPUs of unknown kind and size
        product = "NVIDIA-GPU"
    if product and (whole or NVIDIA_GPU in alloc):
        memory = _int_label(labels, "nvidia.com/gpu.memory")
        # MIG 'single' strategy: gpu.product ends in -MIG-<profile>, nvidia.com/gpu counts slices.
        single = re.search(r"-MIG-(\d+g\.\d+gb)$", product)
        found.append(
            DeviceClass(
                vendor="nvidia",
                resource=NVIDIA_GPU,
                product=product,
                product_label="nvidia.com/gpu.product",
                memory_bytes=None if memory is None else memory * MiB,
                compute_capability=cc,
                mig_profile=single.group(1) if single else None,
                allocatable=whole,
            )
        )
    for key in sorted(labels):
        m = _MIG_LABEL.match(key)
        if m is None or labels.get("nvidia.com/mig.strategy") != "mixed":
            continue
        resource = f"nvidia.com/{m.group(1)}"
        memory = _int_label(labels, f"nvidia.com/{m.group(1)}.memory")
        count = _count(alloc, resource, origin) if resource in alloc else _int_label(labels, key)
        found.append(
            DeviceClass(
                vendor="nvidia",
                resource=resource,
                product=f"{product or 'NVIDIA GPU'}-MIG-{m.group(2)}g.{m.group(3)}gb",
                product_label="nvidia.com/gpu.product",
                memory_bytes=None if memory is None else memory * MiB,
                compute_capability=cc,
                mig_profile=f"{m.group(2)}g.{m.group(3)}gb",
                allocatable=count or 0,
            )
        )
    return found


def _amd(labels: dict[str, str], alloc: dict[str, Any], origin: str) -> list[DeviceClass]:
    count = _count(alloc, AMD_GPU, origin)
    key: str | None = next(
        (k for k in ("amd.com/gpu.product-name", "beta.amd.com/gpu.product-name") if k in labels),
        None,
    )
    if not count and key is None:
        return []
    vram = labels.get("amd.com/gpu.vram") or labels.get("beta.amd.com/gpu.vram") or ""
    m = re.fullmatch(r"(\d{1,6})G", vram)
    if key is None:
        key = "amd.com/gpu.device-id"
    return [
        DeviceClass(
            vendor="amd",
            resource=AMD_GPU,
            product=labels.get(key, "AMD GPU"),
            product_label=key,
            memory_bytes=int(m.group(1)) * GiB if m else None,
            allocatable=count,
        )
    ]


def parse_node(raw: object, origin: str) -> Node:
    """One item of a NodeList; BadFileError names the field that is wrong."""
    if not isinstance(raw, dict) or not isinstance(raw.get("metadata"), dict):
        raise BadFileError(f"{origin}: each item must be a Node object with metadata")
    meta, spec, status = raw["metadata"], raw.get("spec") or {}, raw.get("status") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise BadFileError(f"{origin}: metadata.name {name!r:.80} is not a node name")
    where = f"{origin}: node {name!r}"
    labels = _labels(meta, where)
    alloc = status.get("allocatable") or status.get("capacity") or {}
    if not isinstance(alloc, dict):
        raise BadFileError(f"{where}: status.allocatable must be an object")
    taints = []
    for t in spec.get("taints") or []:
        try:
            taint = Taint.model_validate({k: t.get(k) for k in ("key", "value", "effect")})
        except (AttributeError, ValueError):
            taint = None
        if taint is None or not _LABEL_KEY.match(taint.key):
            raise BadFileError(f"{where}: spec.taints has an entry {t!r:.60}")
        if taint.value is not None and not _LABEL_VALUE.match(taint.value):
            raise BadFileError(f"{where}: spec.taints has an entry {t!r:.60}")
        taints.append(taint)
    cuda = [labels.get(f"nvidia.com/cuda.driver.{p}") for p in ("major", "minor")]
    conditions = status.get("conditions") or []
    ready = all(
        c.get("status") == "True"
        for c in conditions
        if isinstance(c, dict) and c.get("type") == "Ready"
    )
    cpu = quantity(alloc.get("cpu", "0"), what="allocatable cpu", origin=where)
    memory = quantity(alloc.get("memory", "0"), what="allocatable memory", origin=where)
    return Node(
        name=name,
        labels=labels,
        cpu_millicores=int(cpu * 1000),
        memory_bytes=int(memory),
        devices=_nvidia(labels, alloc, where) + _amd(labels, alloc, where),
        taints=taints,
        cuda_driver=".".join(c for c in cuda if c) if all(cuda) else None,
        schedulable=not spec.get("unschedulable", False),
        ready=ready,
    )


def parse_nodes(document: object, origin: str) -> list[Node]:
    """A NodeList or List of Nodes (what `kubectl get nodes -o json` prints), or one Node."""
    if isinstance(document, dict) and document.get("kind") == "Node":
        items: object = [document]
    elif isinstance(document, dict) and isinstance(document.get("items"), list):
        items = document["items"]
    else:
        raise BadFileError(
            f"{origin}: not a node list; expected the JSON of 'kubectl get nodes -o json'"
        )
    assert isinstance(items, list)
    if not items:
        raise BadFileError(f"{origin}: the node list is empty")
    if len(items) > MAX_NODES:
        raise BadFileError(f"{origin}: {len(items)} nodes; at most {MAX_NODES} are read")
    nodes = [parse_node(item, origin) for item in items]
    names = [n.name for n in nodes]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise BadFileError(f"{origin}: node {dup!r} is listed twice")
    return nodes


def requested(pods: object, origin: str) -> dict[str, dict[str, int]]:
    """Per node, what running pods request: GPU resources (devices), cpu (millicores) and
    memory (bytes). Finished pods (Succeeded, Failed) hold nothing. A container's request
    defaults to its limit, as the API server does for extended resources; init containers are
    left out (a running pod's have finished)."""
    if not isinstance(pods, dict) or not isinstance(pods.get("items"), list):
        raise BadFileError(f"{origin}: not a pod list")
    used: dict[str, dict[str, int]] = {}
    for pod in pods["items"]:
        spec = pod.get("spec") if isinstance(pod, dict) else None
        phase = (pod.get("status") or {}).get("phase") if isinstance(pod, dict) else None
        if (
            not isinstance(spec, dict)
            or not spec.get("nodeName")
            or phase in ("Succeeded", "Failed")
        ):
            continue
        node = used.setdefault(str(spec["nodeName"]), {})
        for c in spec.get("containers") or []:
            res = c.get("resources") or {}
            asked = {**(res.get("limits") or {}), **(res.get("requests") or {})}
            for key, value in asked.items():
                amount = quantity(value, what=f"pod request {key}", origin=origin)
                scale = 1000 if key == "cpu" else 1
                node[key] = node.get(key, 0) + int(amount * scale)
    return used
