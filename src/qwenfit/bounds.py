"""The cost bound of one question: how many GPUs a plan may span and how many device layouts
one answer may list. Defined once here; `estimate`, `check`, `launch`, `sweep` and `recommend`
apply it, so the CLI, the REST API and the MCP tools refuse the same requests with the same line.

Why these numbers: an answer lists every device of every pick (its memory parts, its budget),
about 1 KiB per device per pick, and the search lays out every candidate on every device. Measured
on 2 CPU cores (`qwenfit recommend --gpu 'NxH100' --nodes M -n L --json`): 8 GPUs x 64 nodes,
5 picks: 0.9 s, 4.0 MB, 110 MB of memory; 64 GPUs x 1024 nodes, 1000 picks: 49 s, 300 MB,
3.5 GB. The bound keeps an answer under about 5 MB and a second. The largest Qwen3.5 model
(397B-A17B at 16 bits, about 800 GB) needs 10 H100s; 512 GPUs is fifty times that.
"""

from __future__ import annotations

from qwenfit.errors import UsageError

MAX_DEVICES = 512  # GPUs across all nodes of one plan (GPUs per machine x nodes)
MAX_LISTED_DEVICES = 4096  # picks x devices in one recommend answer


def check_cost(gpus: int, nodes: int = 1, picks: int = 1) -> None:
    """Refuse a question above the cost bound, in one line naming the bound."""
    devices = max(gpus, 1) * max(nodes, 1)
    if devices > MAX_DEVICES:
        raise UsageError(
            f"this plan spans {devices} GPUs ({gpus} per machine x {nodes} nodes): over the cost "
            f"bound of {MAX_DEVICES} GPUs per request (qwenfit.bounds.MAX_DEVICES)"
        )
    if picks * devices > MAX_LISTED_DEVICES:
        most = max(MAX_LISTED_DEVICES // devices, 1)
        raise UsageError(
            f"{picks} picks x {devices} GPUs: over the cost bound of {MAX_LISTED_DEVICES} device "
            f"layouts per answer (qwenfit.bounds.MAX_LISTED_DEVICES); ask for at most {most} picks"
        )
