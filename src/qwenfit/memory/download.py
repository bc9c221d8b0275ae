"""How many bytes a configuration downloads: the artifact's files, plus the vision projector
that llama.cpp's `-hf` fetches beside a GGUF unless the vision tower is left out.

Exact where the spec table has the published total (`download_bytes`, `exact: true`); otherwise
computed from the tensor bytes and marked approximate.
"""

from __future__ import annotations

from qwenfit.specs.table import Artifact

# GGUF header + tokenizer + metadata of a Qwen3.5 text GGUF: published 9B-architecture GGUFs
# are the tensor bytes plus ~10.97 MB (spec table source `llamacpp-quantize`, its note).
GGUF_METADATA_BYTES = 10_970_000


def download_bytes(artifact: Artifact, text_only: bool) -> tuple[int, bool]:
    """(bytes, exact) of what the runtime fetches for `artifact`."""
    if artifact.format == "gguf":
        mmproj = 0 if text_only else artifact.vision_bytes
        if artifact.download_bytes is not None:
            return artifact.download_bytes + mmproj, artifact.exact
        return artifact.text_bytes + GGUF_METADATA_BYTES + mmproj, False
    if artifact.download_bytes is not None:
        return artifact.download_bytes, artifact.exact
    mtp = artifact.mtp_bytes or 0
    return artifact.text_bytes + artifact.vision_bytes + mtp, False
