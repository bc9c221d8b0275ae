"""`qwenfit specs refresh --online`: what the Hub says differs from the spec table, as a diff.

Reads each official repo's file list and config.json through `hub` (the one module that talks
to the Hub) and the Ollama registry's manifest sizes; changes nothing: the diff is for review.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from typing import Any

from qwenfit.datafiles import data_text
from qwenfit.errors import QwenfitError, UsageError
from qwenfit.specs.checkpoints.config import architecture_from_config
from qwenfit.specs.checkpoints.hub import (
    OLLAMA_REGISTRY,
    api_client,
    call,
    download_json,
    hub_offline,
    no_progress,
    safetensors_online,
    select_gguf,
)
from qwenfit.specs.table import TAG_FORMAT, SpecTable


def refresh_specs(table: SpecTable, *, online: bool) -> str:
    """A unified diff of the spec table against what the Hub says now; nothing is written.

    For each model: the config's architecture numbers, the BF16 / FP8 / GPTQ repos' exact
    bytes from their safetensors headers and file sizes, the GGUF repos' file sizes, and the
    Ollama tags' sizes where the registry is reachable. Repos that cannot be read are listed in
    comment lines above the diff. The diff is for a person to review and apply, never applied
    at run time.
    """
    if not online:
        raise UsageError("specs refresh reads the Hugging Face Hub; pass --online")
    if hub_offline():
        raise UsageError("specs refresh needs the Hub but HF_HUB_OFFLINE is set")
    before_text, raw = _table_text(table)
    after = json.loads(before_text)
    notes: list[str] = []
    api = api_client()
    infos: dict[str, Any] = {}
    stack = contextlib.ExitStack()
    stack.enter_context(no_progress())

    def info(repo: str) -> Any:
        if repo not in infos:
            infos[repo] = call(repo, lambda: api.model_info(repo, files_metadata=True))
        return infos[repo]

    read = 0
    for i, model in enumerate(table.models):
        entry = after["models"][i]
        try:
            _refresh_model(api, info, table, model.hf_repo, entry)
            read += 1
        except UsageError as e:
            notes.append(f"# {model.name}: {e}")
            continue
        for art in entry["artifacts"]:
            try:
                _refresh_artifact(api, info, art)
                read += 1
            except UsageError as e:
                notes.append(f"# {model.name} {art['precision']}/{art['format']}: {e}")
    stack.close()
    if not read:
        first = notes[0].removeprefix("# ") if notes else "no repo to read"
        raise QwenfitError(f"specs refresh could not read any repo from the Hub; first: {first}")
    after_text = json.dumps(after, indent=2, ensure_ascii=False) + ("" if raw else "\n")
    diff = difflib.unified_diff(
        before_text.splitlines(keepends=True),
        after_text.splitlines(keepends=True),
        fromfile="a/data/model_specs.json",
        tofile="b/data/model_specs.json",
    )
    head = "".join(n + "\n" for n in notes)
    return head + "".join(diff)


def _table_text(table: SpecTable) -> tuple[str, bool]:
    """The shipped file's own text when `table` is the shipped table, else a JSON dump."""
    try:
        text = data_text("model_specs.json")
        if SpecTable.model_validate_json(text) == table:
            return text, True
    except Exception:  # no shipped file: dump the table instead
        pass
    return json.dumps(table.model_dump(mode="json", exclude_unset=True), indent=2) + "\n", False


def _refresh_model(api: Any, info: Any, table: SpecTable, repo: str, entry: dict[str, Any]) -> None:
    """Architecture numbers from the repo's config.json, into the raw table entry."""
    sha = info(repo).sha
    config = download_json(repo, "config.json", sha)
    if not isinstance(config, dict):
        raise UsageError(f"{repo}: config.json is not a JSON object")
    a, from_config = architecture_from_config(config, table, entry["architecture"]["source"])
    new = a.model_dump(mode="json")
    if not from_config:
        new["vision"] = entry["architecture"]["vision"]
    for key, value in new.items():
        if key in entry["architecture"] or value is not None:
            entry["architecture"][key] = value
    entry["context"]["native"] = a.max_position_embeddings


def _refresh_artifact(api: Any, info: Any, art: dict[str, Any]) -> None:
    if art["format"] == TAG_FORMAT:
        size = _ollama_size(art["tag"])
        if size is not None:
            art["download_bytes"] = size
        return
    repo = art["repo"]
    i = info(repo)
    sizes = {s.rfilename: s.size for s in i.siblings or []}
    if art["format"] == "safetensors":
        s = safetensors_online(api, repo, i.sha, sizes)
        art["text_bytes"] = s.text.bytes
        if s.vision.bytes:
            art["vision_bytes"] = s.vision.bytes
        art["mtp_bytes"] = s.mtp.bytes or None
        art["download_bytes"] = s.download_bytes
        art["exact"] = bool(s.vision.bytes)
        return
    parts = select_gguf(list(sizes), art["precision"], repo)
    total = sum(sizes.get(p) or 0 for p in parts)
    if total:
        art["download_bytes"] = total


def _ollama_size(tag: str) -> int | None:
    """Total layer bytes of an Ollama library tag from the registry manifest (None: unreachable)."""
    from huggingface_hub import get_session

    name, _, version = tag.partition(":")
    base = os.environ.get("QWENFIT_OLLAMA_REGISTRY", OLLAMA_REGISTRY).rstrip("/")
    url = f"{base}/v2/library/{name}/manifests/{version or 'latest'}"
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    try:
        r = get_session().get(url, headers={"Accept": accept}, timeout=30)
        r.raise_for_status()
        layers = r.json()["layers"]
        return sum(int(layer["size"]) for layer in layers)
    except Exception:  # "where reachable": the diff simply keeps the reviewed number
        return None
