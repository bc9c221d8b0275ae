"""Node pools: nodes with the same accelerator (kind, count, memory), taints and CPU/RAM class,
and the `Machine` one node of a pool is, for the planner.

A product label maps to the GPU catalog (`data/gpus.json`) when every word of a catalog name is
a word of the label and the labelled memory is within 10% of the catalog's; otherwise the GPU is
planned from the labelled memory alone (no bandwidth: no speed estimate). A MIG instance is
planned alone: a CUDA process sees one MIG device ("CUDA Device Enumeration", NVIDIA MIG User
Guide, https://docs.nvidia.com/datacenter/tesla/mig-user-guide/), so a pod requests one slice.
Its bandwidth and FP16 throughput are the whole GPU's scaled by its share of memory and of the
seven compute slices (each memory slice carries an equal share of bandwidth, same guide).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import LLAMACPP, VLLM
from qwenfit.fleet.nodes import DeviceClass, Node, Taint
from qwenfit.hardware.catalog import CatalogGPU, gpu_catalog
from qwenfit.hardware.machine import GPU, Machine
from qwenfit.units import GiB

MIG_COMPUTE_SLICES = 7  # A100 / H100 / H200: seven GPU-instance compute slices (MIG User Guide)
CATALOG_MEMORY_TOLERANCE = 0.10
# What a pool offers to run: the images the manifests use carry these two runtimes.
POOL_RUNTIMES: dict[str, str | None] = {LLAMACPP: None, VLLM: None}
_IGNORED_WORDS = {"", "nvidia", "geforce", "tesla", "amd", "instinct"}


class PoolGPU(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Catalog name, or the product label when not in the catalog.")
    product: str
    product_label: str
    vendor: str
    resource: str
    memory_bytes: int = Field(ge=0, description="Per device.")
    in_catalog: bool
    mig_profile: str | None = None


class NodeFree(BaseModel):
    """What one node of a pool has left for a new pod."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str
    devices: int = Field(ge=0)
    cpu_millicores: int = Field(ge=0)
    memory_bytes: int = Field(ge=0)


class Pool(BaseModel):
    """Nodes that are alike; one node is one machine (`machine`: the emptiest node)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    nodes: list[str]
    gpu: PoolGPU | None = Field(description="Null for a CPU-only pool.")
    gpus_per_node: int = Field(ge=0, description="Devices free on the emptiest node.")
    cpu_millicores: int = Field(ge=0, description="CPU free on the emptiest node.")
    memory_bytes: int = Field(ge=0, description="Memory free on the emptiest node.")
    free: list[NodeFree] = Field(
        description="Each node's free devices, CPU and memory (allocatable less running pods' "
        "requests), emptiest first."
    )
    taints: list[Taint] = []
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Labels every node of the pool has and no other node has; empty: the "
        "manifests pin the nodes by hostname.",
    )
    machine: Machine

    def machine_for(self, nodes: int) -> Machine:
        """One node of a plan spanning the `nodes` emptiest nodes: what all of them have."""
        rows = self.free[:nodes]
        devices = min(r.devices for r in rows)
        memory = min(r.memory_bytes for r in rows)
        template = self.machine.gpus[:1]
        count = min(devices, len(self.machine.gpus))
        gpus = [template[0].model_copy(update={"index": i}) for i in range(count)]
        return self.machine.model_copy(
            update={
                "gpus": gpus,
                "cpu_logical": max(1, min(r.cpu_millicores for r in rows) // 1000),
                "ram_total_bytes": memory,
                "ram_available_bytes": memory,
                "ram_usable_bytes": memory,
            }
        )


def _words(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower())) - _IGNORED_WORDS


def catalog_entry(device: DeviceClass) -> CatalogGPU | None:
    """The catalog GPU a product label names, checked against the labelled memory."""
    product = re.sub(r"-MIG-.*$", "", device.product)
    words = _words(product)
    full_memory = None if device.mig_profile else device.memory_bytes
    best: CatalogGPU | None = None
    for entry in gpu_catalog().gpus:
        need = _words(entry.name)
        if entry.vendor != device.vendor or not need or not need <= words:
            continue
        if full_memory is not None and entry.vram_gib is not None:
            nominal = entry.vram_gib * GiB
            if abs(full_memory - nominal) > CATALOG_MEMORY_TOLERANCE * nominal:
                continue
        if best is None or len(need) > len(_words(best.name)):
            best = entry
    return best


def _device(device: DeviceClass, entry: CatalogGPU | None, index: int) -> GPU:
    memory = device.memory_bytes
    if memory is None:
        assert entry is not None and entry.vram_gib is not None
        memory = entry.vram_gib * GiB
    bandwidth = flops = None
    if entry is not None:
        bandwidth = entry.bandwidth_gb_s * 10**9
        tflops = entry.fp16_tensor_tflops
        flops = None if tflops is None else int(tflops * 10**12)
        if device.mig_profile and entry.vram_gib:
            compute = int(device.mig_profile.split("g.")[0])
            bandwidth = int(bandwidth * min(1.0, memory / (entry.vram_gib * GiB)))
            flops = None if flops is None else flops * compute // MIG_COMPUTE_SLICES
    name = entry.name if entry else device.product.replace("-", " ")
    if device.mig_profile:
        name = f"{entry.name if entry else device.product} MIG {device.mig_profile}"
    return GPU(
        index=index,
        name=name,
        vendor=device.vendor,
        memory_total_bytes=memory,
        memory_free_bytes=memory,
        compute_capability=device.compute_capability
        or (entry.compute_capability if entry else None),
        architecture=entry.architecture if entry else None,
        bandwidth_bytes_per_s=bandwidth,
        fp16_tensor_flops=flops,
        mig=device.mig_profile is not None,
    )


def _key(node: Node, device: DeviceClass | None) -> tuple[object, ...]:
    taints = tuple(sorted((t.key, t.value or "", t.effect) for t in node.taints))
    if device is None:
        return ("cpu", node.cpu_millicores // 1000, node.memory_bytes // GiB, taints)
    return (device.resource, device.product, device.memory_bytes, device.allocatable, taints)


def _selector(
    members: list[Node], others: list[Node], device: DeviceClass | None
) -> dict[str, str]:
    """The fewest hardware labels that pick exactly `members` out of all nodes."""
    keys = ["node.kubernetes.io/instance-type"]
    if device is not None:
        count = "amd.com/gpu.count" if device.vendor == "amd" else "nvidia.com/gpu.count"
        keys = [device.product_label, count, *keys]
        if device.mig_profile and device.resource != "nvidia.com/gpu":
            keys.insert(1, f"{device.resource}.count")
    first = members[0].labels
    chosen: dict[str, str] = {}
    for key in keys:
        if key not in first or any(m.labels.get(key) != first[key] for m in members):
            continue
        chosen[key] = first[key]
        if not any(all(o.labels.get(k) == v for k, v in chosen.items()) for o in others):
            return chosen
    return {}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-") or "pool"


def group_pools(nodes: list[Node], used: dict[str, dict[str, int]] | None = None) -> list[Pool]:
    """Ready, schedulable nodes grouped into pools, largest accelerators first.

    `used` (per node, what running pods request) is taken off each node's devices, CPU and
    memory: a one-node plan gets what the emptiest node has left, a plan over n nodes what the
    n emptiest all have (`Pool.machine_for`). A node offering two kinds of device (MIG types
    under the mixed strategy) is in one pool per kind.
    """
    used = used or {}
    live = [n for n in nodes if n.ready and n.schedulable]
    groups: dict[tuple[object, ...], tuple[DeviceClass | None, list[Node]]] = {}
    for node in live:
        devices: list[DeviceClass | None] = [d for d in node.devices if d.allocatable > 0]
        for device in devices or [None]:
            groups.setdefault(_key(node, device), (device, []))[1].append(node)
    pools = []
    taken: set[str] = set()
    for device, members in groups.values():
        pools.append(_pool(device, members, live, used, taken))
    pools.sort(key=lambda p: (-(p.gpu.memory_bytes * p.gpus_per_node if p.gpu else 0), p.name))
    return pools


def _pool(
    device: DeviceClass | None,
    members: list[Node],
    live: list[Node],
    used: dict[str, dict[str, int]],
    taken: set[str],
) -> Pool:
    def left(n: Node, key: str, total: int) -> int:
        return max(0, total - used.get(n.name, {}).get(key, 0))

    rows = sorted(
        (
            NodeFree(
                node=n.name,
                devices=left(n, device.resource, device.allocatable) if device else 0,
                cpu_millicores=left(n, "cpu", n.cpu_millicores),
                memory_bytes=left(n, "memory", n.memory_bytes),
            )
            for n in members
        ),
        key=lambda r: (-r.devices, -r.memory_bytes, -r.cpu_millicores, r.node),
    )
    count, cpu, memory = rows[0].devices, rows[0].cpu_millicores, rows[0].memory_bytes
    others = [n for n in live if n not in members]
    entry = catalog_entry(device) if device else None
    gpu_record = None
    if device is not None:
        memory_each = device.memory_bytes
        if memory_each is None and entry is not None and entry.vram_gib is not None:
            memory_each = entry.vram_gib * GiB
        gpu_record = PoolGPU(
            name=entry.name if entry else device.product,
            product=device.product,
            product_label=device.product_label,
            vendor=device.vendor,
            resource=device.resource,
            memory_bytes=memory_each or 0,
            in_catalog=entry is not None,
            mig_profile=device.mig_profile,
        )
    planned = 0
    if device is not None and (device.memory_bytes is not None or entry is not None):
        planned = min(count, 1) if device.mig_profile else count
    base = _slug(gpu_record.product if gpu_record else "cpu")
    name = base if base not in taken else f"{base}-{len(taken)}"
    taken.add(name)
    machine = Machine(
        source="hypothetical",
        cpu_logical=max(1, cpu // 1000),
        ram_total_bytes=memory,
        ram_available_bytes=memory,
        ram_usable_bytes=memory,
        gpus=[_device(device, entry, i) for i in range(planned)] if device else [],
        cuda_driver_version=members[0].cuda_driver,
        runtimes=dict(POOL_RUNTIMES),
    )
    return Pool(
        name=name,
        nodes=sorted(n.name for n in members),
        gpu=gpu_record,
        gpus_per_node=count,
        cpu_millicores=cpu,
        memory_bytes=memory,
        free=rows,
        taints=members[0].taints,
        node_selector=_selector(members, others, device),
        machine=machine,
    )
