"""What a llama-server log says it allocated, read from its own buffer lines.

llama-server started with `-v` prints every buffer it sizes (llama.cpp `src/llama-model.cpp`
"model buffer size", `src/llama-kv-cache.cpp` "KV buffer size" and its `size =` line,
`src/llama-memory-recurrent.cpp` "RS buffer size", `src/llama-context.cpp` "output buffer size",
"compute buffer size" and, at a clean exit, the same compute buffer to 1/10000 MiB,
`tools/mtmd/clip.cpp` for the vision projector) and its build (`common/build-info.cpp.in`). The
benchmark rig and `qwenfit verify --log` read the same lines, so what the fixtures hold is what a
user's log is compared with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

MIB = 1 << 20

_VERSION = re.compile(
    r"version:\s*(?:\S+\s+\(build (?P<build>\d+), commit (?P<commit>\w+)\)"
    r"|(?P<old>\d+) \((?P<oldcommit>\w+)\))"
)
_BUILD_INFO = re.compile(
    r"\bbuild[ _]info\b\W+b?(?P<build>\d+)-(?P<commit>\w+)"
    r"|print_info: build (?P<build2>\d+) \((?P<commit2>\w+)\)"
)
_SETTING = re.compile(
    r"llama_context:\s+(?P<key>n_seq_max|n_ctx|n_ctx_seq|n_batch|n_ubatch|flash_attn|kv_unified"
    r"|n_rs_seq|n_outputs_max)\s+=\s+(?P<value>\S+)"
)
_BUFFER = re.compile(
    r"(?P<func>\w+):\s+(?P<buf>\S+)\s+(?P<kind>model|KV|RS|output|compute) buffer size\s*=\s*"
    r"(?P<mib>[\d.]+) MiB"
)
_COMPUTE_EXACT = re.compile(
    r"~llama_context:\s+(?P<buf>\S+) compute buffer size (?:is|of)\s+(?P<mib>[\d.]+) MiB"
)
_KV_SIZE = re.compile(
    r"llama_kv_cache: size =\s*(?P<mib>[\d.]+) MiB \(\s*(?P<cells>\d+) cells,\s*(?P<layers>\d+)"
    r" layers,\s*(?P<seqs>\d+)/(?P<streams>\d+) seqs\), K \((?P<k>\w+)\).*V \((?P<v>\w+)\)"
)
_RS_SIZE = re.compile(
    r"llama_memory_recurrent: size =\s*(?P<mib>[\d.]+) MiB \(\s*(?P<cells>\d+) cells,\s*"
    r"(?P<layers>\d+) layers"
)
_SLOTS = re.compile(
    r"n_slots = (?P<n>\d+), n_ctx_slot = (?P<ctx>\d+)(?:, kv_unified = '(?P<u>\w+)')?"
)
_CLIP_MODEL = re.compile(r"load_hparams: model size:\s+(?P<mib>[\d.]+) MiB")


class ContextBuffers(BaseModel):
    """One llama_context (the target, then a draft context with MTP), as logged, in MiB."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, str] = Field(default_factory=dict)
    kv_mib: float = 0.0
    kv_cells: int | None = None
    kv_layers: int | None = None
    type_k: str | None = None
    type_v: str | None = None
    rs_mib: float = 0.0
    rs_layers: int | None = None
    output_mib: float = 0.0
    compute_mib: float = 0.0
    compute_exact_mib: float | None = None

    def setting(self, key: str) -> int | None:
        value = self.settings.get(key)
        return int(value) if value is not None and value.isdigit() else None


class ServerLog(BaseModel):
    """Buffers and settings one llama-server run logged (sizes in MiB as printed)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    build: int | None = None
    commit: str | None = None
    model_mib: dict[str, float] = Field(default_factory=dict)
    contexts: list[ContextBuffers] = Field(default_factory=list)
    vision_model_mib: float | None = None
    vision_compute_mib: float = 0.0
    n_slots: int | None = None
    n_ctx_slot: int | None = None
    lines: list[str] = Field(default_factory=list, description="The lines the figures came from.")

    @property
    def target(self) -> ContextBuffers:
        return self.contexts[0] if self.contexts else ContextBuffers()

    @property
    def draft(self) -> ContextBuffers | None:
        return self.contexts[1] if len(self.contexts) > 1 else None

    def model_total_mib(self) -> float:
        return round(sum(self.model_mib.values()), 2)


def _buffer(
    log: ServerLog, current: ContextBuffers | None, m: re.Match[str]
) -> ContextBuffers | None:
    """One buffer line added where it belongs; returns the context being read (a model buffer
    after contexts means a new load: what came before was --fit's dry run)."""
    mib, kind = float(m["mib"]), m["kind"]
    if m["func"] in ("alloc_compute_meta", "reserve_compute_meta"):
        log.vision_compute_mib = round(log.vision_compute_mib + mib, 2)
    elif kind == "model":
        if log.contexts:
            log.contexts.clear()
            log.model_mib.clear()
            current = None
        if mib:
            log.model_mib[m["buf"]] = round(log.model_mib.get(m["buf"], 0.0) + mib, 2)
    elif current is not None:
        attr = {"KV": "kv_mib", "RS": "rs_mib", "output": "output_mib"}.get(kind, "compute_mib")
        setattr(current, attr, round(getattr(current, attr) + mib, 2))
    return current


def parse(lines: Iterable[str]) -> ServerLog:
    """Read a llama-server log; lines that say nothing about memory are skipped."""
    log = ServerLog()
    current: ContextBuffers | None = None
    exact: list[float] = []

    def keep(line: str) -> None:
        log.lines.append(line.rstrip()[:300])

    for line in lines:
        if m := _VERSION.search(line):
            log.build = int(m["build"] or m["old"])
            log.commit = m["commit"] or m["oldcommit"]
            keep(line)
        elif (m := _BUILD_INFO.search(line)) and log.build is None:
            log.build = int(m["build"] or m["build2"])
            log.commit = m["commit"] or m["commit2"]
            keep(line)
        elif m := _SETTING.search(line):
            if m["key"] == "n_seq_max":  # the first line a new context prints
                current = ContextBuffers()
                log.contexts.append(current)
            if current is not None:
                current.settings[m["key"]] = m["value"]
            keep(line)
        elif m := _COMPUTE_EXACT.search(line):
            exact.append(float(m["mib"]))
            keep(line)
        elif m := _BUFFER.search(line):
            keep(line)
            current = _buffer(log, current, m)
        elif (m := _KV_SIZE.search(line)) and current is not None:
            current.kv_cells, current.kv_layers = int(m["cells"]), int(m["layers"])
            current.type_k, current.type_v = m["k"], m["v"]
            keep(line)
        elif (m := _RS_SIZE.search(line)) and current is not None:
            current.rs_layers = int(m["layers"])
            keep(line)
        elif m := _SLOTS.search(line):
            log.n_slots, log.n_ctx_slot = int(m["n"]), int(m["ctx"])
            keep(line)
        elif m := _CLIP_MODEL.search(line):
            log.vision_model_mib = float(m["mib"])
            keep(line)
    # the destructors run in reverse order of construction (the draft context first)
    for ctx, mib in zip(reversed(log.contexts), exact, strict=False):
        ctx.compute_exact_mib = mib
    return log
