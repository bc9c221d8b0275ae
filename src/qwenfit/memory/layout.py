"""Where each runtime puts the model when one GPU is not enough: llama.cpp's layer split,
partial offload (-ngl) and MoE expert offload (--n-cpu-moe); vLLM's tensor and pipeline
parallelism; transformers' device_map="auto".

Planners take a `measure(layout) -> Estimate` callable and return the first layout, in the order a
user would prefer (one GPU, several GPUs, experts in RAM, layers in RAM, CPU only), whose every
device stays within its budget. They never raise for "does not fit": the caller's fit check says
by how much the returned layout misses.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from qwenfit.adapters import LLAMACPP, adapter
from qwenfit.hardware.machine import GPU, Machine
from qwenfit.memory.record import Estimate, Layout
from qwenfit.specs.table import ModelSpec

Measure = Callable[[Layout], Estimate]

# vLLM's block-wise FP8 (weight_block_size [128, 128], the official FP8 repos) needs every
# tensor-parallel shard of the MLP / expert intermediate dimension to be a multiple of 128
# (vllm/model_executor/layers/quantization/fp8.py, validate_fp8_block_shape).
FP8_BLOCK = 128


def gpu_budgets(machine: Machine, runtime: str, margin: int) -> dict[int, int]:
    """What each GPU can take: free memory less the margin; for vLLM, its claim on the card,
    or nothing when that much is not free (vLLM refuses to start)."""
    out = {}
    share = adapter(runtime).gpu_share
    for g in machine.gpus:
        if share:
            claim = int(g.memory_total_bytes * share)
            out[g.index] = claim if g.memory_free_bytes >= claim else 0
        else:
            out[g.index] = max(0, g.memory_free_bytes - margin)
    return out


def gpu_index_of(est: Estimate, device: int) -> int:
    """The GPU (its `index`) that device `device` of an estimate runs on.

    llama.cpp and transformers parts name GPUs by index. vLLM parts name ranks: rank r of a
    node (node x GPUs + i) runs on the i-th GPU of the layout, the same on every node.
    """
    if adapter(est.runtime).multi_node and est.layout.devices:
        return est.layout.devices[device % len(est.layout.devices)]
    return device


def ram_budget(machine: Machine, margin: int, est: Estimate) -> int:
    budget = max(0, machine.ram_usable_bytes - margin)
    if any(g.unified_memory for g in machine.gpus):
        budget = max(0, budget - est.gpu_bytes)  # Apple: the GPU's share is the same RAM
    return budget


def pools(est: Estimate, machine: Machine, margin: int) -> list[tuple[int | None, int, int]]:
    """(device, need, budget) for each GPU the estimate uses, then (None, need, budget) for RAM.

    Devices past one node's GPUs (pipeline stages on other nodes) are checked against the same
    GPU of their node: the nodes are identical. Without GPUs, a GPU part has no budget.
    """
    budgets = gpu_budgets(machine, est.runtime, margin)
    out: list[tuple[int | None, int, int]] = [
        (device, need, budgets.get(gpu_index_of(est, device), 0))
        for device, need in est.device_bytes.items()
    ]
    return [*out, (None, est.ram_bytes, ram_budget(machine, margin, est))]


def shortfall_by_pool(est: Estimate, machine: Machine, margin: int) -> list[int]:
    """Need minus budget for each pool of `pools` (positive: missing)."""
    return [need - budget for _, need, budget in pools(est, machine, margin)]


def shortfall(est: Estimate, machine: Machine, margin: int) -> tuple[int, int]:
    """(bytes missing on GPUs, bytes missing in RAM) for this placement; (0, 0) fits."""
    *gpus, ram = shortfall_by_pool(est, machine, margin)
    return sum(max(0, x) for x in gpus), max(0, ram)


def _fits(est: Estimate, machine: Machine, margin: int) -> bool:
    return shortfall(est, machine, margin) == (0, 0)


def one_vendor(machine: Machine | None) -> Machine | None:
    """The GPUs one process of a runtime can use together: those of one vendor. A runtime runs
    one GPU backend (CUDA or ROCm) per process, and Ollama's scheduler loads a model on GPUs of
    one library; on a machine with both, the family with the most free memory (ties: NVIDIA)."""
    if machine is None:
        return None
    vendors = {g.vendor for g in machine.gpus}
    if len(vendors) <= 1:
        return machine

    def free(vendor: str) -> tuple[int, bool]:
        mine = sum(g.memory_free_bytes for g in machine.gpus if g.vendor == vendor)
        return mine, vendor == "nvidia"

    kept = max(sorted(vendors), key=free)
    return machine.model_copy(update={"gpus": [g for g in machine.gpus if g.vendor == kept]})


def best_gpu(machine: Machine) -> GPU | None:
    """The GPU with the most free memory (ties: lowest index)."""
    if not machine.gpus:
        return None
    return max(machine.gpus, key=lambda g: (g.memory_free_bytes, -g.index))


def _proportional(total: int, weights: list[int]) -> list[int]:
    """Split `total` items by `weights` (largest remainder), as llama.cpp splits layers."""
    whole = sum(weights) or 1
    raw = [total * w / whole for w in weights]
    counts = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


def smallest_within(lo: int, hi: int, over: Callable[[int], int]) -> int | None:
    """Smallest n in [lo, hi] with over(n) <= 0, for a non-increasing `over` (bytes over the
    budget); None if none.

    Each call of `over` is a whole estimate. Moving one more layer (or its experts) off the
    GPU frees about the same bytes each time, so the first guess interpolates between the two
    ends and is usually right or one off; bisection narrows whatever is left. The answer is
    the one a plain bisection finds."""
    o_hi = over(hi)
    if o_hi > 0:
        return None
    o_lo = over(lo)
    if o_lo <= 0:
        return lo
    bad, good = lo, hi  # over(bad) > 0 >= over(good)
    guess = min(max(lo + math.ceil((hi - lo) * o_lo / (o_lo - o_hi)), lo + 1), hi - 1)
    for n in (guess, guess - 1, guess + 1):
        if bad < n < good:
            if over(n) <= 0:
                good = n
            else:
                bad = n
    while good - bad > 1:
        mid = (bad + good) // 2
        if over(mid) <= 0:
            good = mid
        else:
            bad = mid
    return good


def plan_llamacpp(
    measure: Measure,
    spec: ModelSpec,
    machine: Machine | None,
    margin: int,
    *,
    allow_offload: bool,
    expert_offload: bool,
) -> Layout:
    """llama.cpp's own order: all layers on the GPU(s) it sees, then (llama-server --fit)
    experts to RAM for MoE, then fewer GPU layers, then the CPU."""
    machine = one_vendor(machine)
    if machine is None:
        return Layout(kind="gpu", devices=[0])
    best = best_gpu(machine)
    if best is None:
        return Layout(kind="cpu")
    n_layer = spec.architecture.num_hidden_layers
    base = Layout(kind="gpu", devices=[best.index])
    if _fits(measure(base), machine, margin):
        return base
    if len(machine.gpus) > 1:
        gpus = sorted(machine.gpus, key=lambda g: g.index)
        budgets = gpu_budgets(machine, LLAMACPP, margin)
        split = _proportional(n_layer + 1, [budgets[g.index] for g in gpus])
        used = [(g.index, n) for g, n in zip(gpus, split, strict=True) if n]
        base = Layout(
            kind="multi_gpu", devices=[d for d, _ in used], tensor_split=[n for _, n in used]
        )
        if _fits(measure(base), machine, margin):
            return base
    if not allow_offload:
        return base

    def gpu_over(layout: Layout) -> int:
        """Bytes over budget on the fullest GPU (<= 0: the GPUs hold it)."""
        *gpus, _ = shortfall_by_pool(measure(layout), machine, margin)
        return max(gpus, default=0)

    if expert_offload and spec.is_moe:
        k = smallest_within(
            1,
            n_layer,
            lambda k: gpu_over(base.model_copy(update={"kind": "offload", "cpu_moe_layers": k})),
        )
        if k is not None:
            layout = base.model_copy(update={"kind": "offload", "cpu_moe_layers": k})
            if _fits(measure(layout), machine, margin):
                return layout
    single = Layout(kind="offload", devices=[best.index])
    fewest_cpu = smallest_within(
        1, n_layer, lambda c: gpu_over(single.model_copy(update={"gpu_layers": n_layer + 1 - c}))
    )
    if fewest_cpu is not None:
        layout = single.model_copy(update={"gpu_layers": n_layer + 1 - fewest_cpu})
        if _fits(measure(layout), machine, margin):
            return layout
    cpu = Layout(kind="cpu")
    return cpu if _fits(measure(cpu), machine, margin) else base


def valid_tensor_parallel(spec: ModelSpec, quant: str) -> list[int]:
    """vLLM tensor-parallel sizes this model accepts.

    Attention heads, the Gated DeltaNet key and value heads must split evenly; KV heads split
    evenly or are replicated (vLLM: `total_num_kv_heads % tp == 0 or tp % total_num_kv_heads ==
    0`); with block FP8 each shard of the MLP / expert width must stay a multiple of 128.
    """
    a = spec.architecture
    width = a.moe.moe_intermediate_size if a.moe else (a.intermediate_size or 0)
    sizes = []
    for t in (1, 2, 4, 8, 16, 32, 64):
        heads = a.num_attention_heads % t == 0 and a.linear_num_key_heads % t == 0
        heads = heads and a.linear_num_value_heads % t == 0
        kv = a.num_key_value_heads % t == 0 or t % a.num_key_value_heads == 0
        block = quant != "fp8" or (width % t == 0 and (width // t) % FP8_BLOCK == 0)
        if heads and kv and block:
            sizes.append(t)
    return sizes


def plan_vllm(
    measure: Measure,
    spec: ModelSpec,
    quant: str,
    machine: Machine | None,
    margin: int,
    nodes: int = 1,
) -> Layout:
    """The smallest valid tensor-parallel size that fits; across nodes, tensor parallel within
    a node and pipeline parallel across them (vLLM's recommended split)."""
    machine = one_vendor(machine)
    if machine is None or not machine.gpus:
        return Layout(kind="gpu", devices=[0], tensor_parallel=1)
    gpus = sorted(machine.gpus, key=lambda g: (-g.memory_free_bytes, g.index))
    valid = [t for t in valid_tensor_parallel(spec, quant) if t <= len(gpus)]
    if nodes > 1:
        t = max(valid)
        return Layout(
            kind="multi_node",
            devices=sorted(g.index for g in gpus[:t]),
            nodes=nodes,
            tensor_parallel=t,
            pipeline_parallel=nodes,
        )
    layout = Layout(kind="gpu", devices=[gpus[0].index], tensor_parallel=1)
    for t in valid:
        layout = Layout(
            kind="gpu" if t == 1 else "multi_gpu",
            devices=sorted(g.index for g in gpus[:t]),
            tensor_parallel=t,
        )
        if _fits(measure(layout), machine, margin):
            return layout
    return layout


def plan_transformers(measure: Measure, machine: Machine | None, margin: int) -> Layout:
    """device_map="auto": one GPU when the model fits it, else layers spread over all GPUs."""
    machine = one_vendor(machine)
    if machine is None:
        return Layout(kind="gpu", devices=[0])
    best = best_gpu(machine)
    if best is None:
        return Layout(kind="cpu")
    layout = Layout(kind="gpu", devices=[best.index])
    if _fits(measure(layout), machine, margin):
        return layout
    if len(machine.gpus) > 1:
        layout = Layout(kind="multi_gpu", devices=sorted(g.index for g in machine.gpus))
        if _fits(measure(layout), machine, margin):
            return layout
    # device_map="auto" places what the GPUs cannot hold on the CPU; when the GPUs cannot
    # hold it, the whole model in RAM is what runs (a GPU never makes a fit worse).
    cpu = Layout(kind="cpu")
    return cpu if _fits(measure(cpu), machine, margin) else layout
