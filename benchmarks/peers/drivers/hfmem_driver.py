"""Runs inside hf-mem's venv: hf_mem.run() against an in-process stand-in for the Hub.

hf-mem only reads from huggingface.co (file tree, config.json, safetensors/GGUF headers by
HTTP range reads). This driver swaps httpx2's network transport for httpx2.MockTransport
that answers those requests from local data, so hf-mem's own code path runs unchanged:

* safetensors: config.json = the official nested Qwen3.5 layout written by the caller;
  model.safetensors = a header whose tensors carry the spec table's exact checkpoint bytes
  (text tower, vision tower, MTP head; BF16), so hf-mem's byte count equals the real one.
* GGUF: range reads are served from local GGUF files (zero-weight files written by
  benchmarks/llamacpp/make_gguf.py; their headers are those of real conversions).

stdin: {"cases": [{"repo", "kind": "safetensors"|"gguf", "config_path", "components",
"gguf_path", "context"}]}; stdout: one result per case.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

import httpx2

FILES: dict[str, dict] = {}


def _header_bytes(components: dict[str, int]) -> bytes:
    """A safetensors header with one BF16 tensor per component (numel = bytes / 2)."""
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, nbytes in components.items():
        numel = nbytes // 2
        header[f"{name}.weight"] = {
            "dtype": "BF16",
            "shape": [numel],
            "data_offsets": [offset, offset + 2 * numel],
        }
        offset += 2 * numel
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw


def _ranged(data_or_path, request: httpx2.Request) -> httpx2.Response:
    """Serve a Range request from bytes or from a file."""
    rng = request.headers.get("range", "")
    match = re.match(r"bytes=(\d+)-(\d*)", rng)
    start = int(match.group(1)) if match else 0
    if isinstance(data_or_path, bytes):
        end = int(match.group(2)) + 1 if match and match.group(2) else len(data_or_path)
        body = data_or_path[start:end]
    else:
        with open(data_or_path, "rb") as fh:
            fh.seek(start)
            size = (int(match.group(2)) + 1 - start) if match and match.group(2) else -1
            body = fh.read(size)
    return httpx2.Response(206 if match else 200, content=body)


def handler(request: httpx2.Request) -> httpx2.Response:
    """Answer hf-mem's Hub requests for the repos registered in FILES."""
    url = str(request.url)
    tree = re.match(r"https://huggingface\.co/api/models/(.+?)/tree/", url)
    if tree:
        repo = FILES.get(tree.group(1))
        if repo is None:
            return httpx2.Response(404, json={"error": "not served"})
        return httpx2.Response(200, json=[{"type": "file", "path": p} for p in repo])
    res = re.match(r"https://huggingface\.co/(.+?)/resolve/[^/]+/(.+)$", url)
    if res and res.group(1) in FILES and res.group(2) in FILES[res.group(1)]:
        item = FILES[res.group(1)][res.group(2)]
        if res.group(2).endswith(".json"):
            return httpx2.Response(200, content=item)
        return _ranged(item, request)
    return httpx2.Response(404, json={"error": f"not served: {url}"})


_RealClient = httpx2.AsyncClient


class _MockClient(_RealClient):
    """httpx2.AsyncClient with the mock transport (all other arguments kept)."""

    def __init__(self, *args, **kwargs):
        kwargs["transport"] = httpx2.MockTransport(handler)
        kwargs.pop("http2", None)
        super().__init__(*args, **kwargs)


def main() -> None:
    """Run hf_mem.run.run() per case and print its JSON results."""
    import importlib

    hf_run = importlib.import_module("hf_mem.run")  # the package re-exports run() as hf_mem.run
    httpx2.AsyncClient = _MockClient
    req = json.load(sys.stdin)
    out = []
    for case in req["cases"]:
        repo = case["repo"]
        if case["kind"] == "safetensors":
            FILES[repo] = {
                "config.json": Path(case["config_path"]).read_bytes(),
                "model.safetensors": _header_bytes(case["components"]),
            }
            kwargs = {}
        else:
            name = Path(case["gguf_path"]).name
            FILES[repo] = {name: case["gguf_path"]}
            kwargs = {"gguf_file": name}
        try:
            result = hf_run.run(
                model_id=repo, experimental=True, max_model_len=case["context"], **kwargs
            )
            out.append({**case, "result": result.to_json()})
        except Exception as exc:  # record whatever the tool raised
            out.append({**case, "error": f"{type(exc).__name__}: {exc}"[:500]})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
