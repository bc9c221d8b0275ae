"""The Hugging Face Hub, read only when the user asks for it, and a disk cache of what was read.

This is the only module that imports `huggingface_hub` (lazily: `qwenfit` starts and sizes the
spec table's models without it). Offline-first: a repo id is sized from qwenfit's own cache or
from files already in the local Hugging Face cache; the network is used only with
`online=True`, and never when `HF_HUB_OFFLINE` is set. From the Hub it reads config.json, the
file list with sizes, the safetensors headers (ranged reads, no weights) and the first MiBs of
GGUF files (the header and tensor table). Tokens are left to huggingface_hub and never printed.

Environment is read at call time (not at import, as huggingface_hub's constants are) so that
`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE` and `QWENFIT_CACHE_DIR` set by a
caller or a test take effect.

Over 400 lines because the offline-first paths (qwenfit's cache, the local Hugging Face cache)
and the online one share their selection rules and must stay together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qwenfit.cache import cache_dir, read_cache_json, write_atomic
from qwenfit.errors import BadFileError, UsageError
from qwenfit.inputs import read_json
from qwenfit.specs.checkpoints.config import check_model_type
from qwenfit.specs.checkpoints.gguf import SPLIT_GGUF, gguf_stem, read_gguf, summarize_gguf
from qwenfit.specs.checkpoints.safetensors import summarize_folder, summarize_safetensors
from qwenfit.specs.checkpoints.summary import Summary, safe_name
from qwenfit.units import MiB

DEFAULT_ENDPOINT = "https://huggingface.co"
GGUF_PREFIX_BYTES = 16 * MiB  # a Qwen3.5 GGUF header (tokenizer included) is about 11 MB
GGUF_MAX_HEADER_BYTES = 512 * MiB
CACHE_VERSION = 1
DEFAULT_GGUF_QUANT = "Q4_K_M"  # what llama.cpp's -hf picks when no quant is named
OLLAMA_REGISTRY = "https://registry.ollama.ai"


# ---------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------


def _expanded(text: str) -> Path:
    """`~` expanded where a home is known; left as it is otherwise (no traceback)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface;
    without a usable home, below qwenfit's own cache (`cache.cache_dir`), never the current
    folder."""
    from qwenfit.cache import cache_dir, home_folder

    if os.environ.get("HF_HUB_CACHE"):
        return _expanded(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return _expanded(os.environ["HF_HOME"]) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    home = home_folder()
    if xdg:
        base = _expanded(xdg)
    elif home is not None:
        base = home / ".cache"
    else:
        return cache_dir() / "huggingface" / "hub"
    return base / "huggingface" / "hub"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to a true value, as huggingface_hub reads it."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def parse_ref(ref: str) -> tuple[str, str | None]:
    """'org/name' -> (repo, None); 'org/name:Q4_K_M' or 'org/name/file.gguf' -> (repo, selector)."""
    repo, sep, selector = ref.partition(":")
    if not sep:
        parts = ref.split("/")
        if len(parts) > 2:
            repo, selector = "/".join(parts[:2]), "/".join(parts[2:])
    if not re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*", repo):
        raise UsageError(f"{ref!r} is neither a model name, a local path nor a Hub repo id")
    return repo, selector or None


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------


def _cache_path(repo: str, selector: str | None, mmproj: str | None) -> Path:
    key = hashlib.sha256(f"{repo}|{selector or ''}|{mmproj or ''}".encode()).hexdigest()[:16]
    return cache_dir() / "hub" / repo.replace("/", "--") / f"{key}.json"


def read_cache(path: Path) -> dict[str, Any] | None:
    """A cached entry, or None when absent, unreadable or from another cache version."""
    try:
        entry = read_cache_json(path)
        if not isinstance(entry, dict) or entry.get("version") != CACHE_VERSION:
            return None
        Summary.model_validate(entry["summary"])
        return dict(entry)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_cache(path: Path, entry: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # a read-only cache must not stop the estimate
        write_atomic(path, json.dumps(entry, indent=1, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# resolving a repo id
# ---------------------------------------------------------------------------------------------


def summarize_repo(ref: str, *, online: bool, mmproj: str | None) -> tuple[Summary, str, str]:
    """(summary, model name, repo id) of a Hub reference, from the cache or the Hub.

    Order: with `online` (and HF_HUB_OFFLINE unset) the repo's current commit is looked up and
    a cache entry for that commit is reused, else the Hub is read and the cache refreshed.
    Without `online`: qwenfit's cache, then complete files in the local Hugging Face cache.
    """
    repo, selector = parse_ref(ref)
    path = _cache_path(repo, selector, mmproj)
    cached = read_cache(path)
    if online and not hub_offline():
        api = api_client()
        info = call(repo, lambda: api.model_info(repo, files_metadata=True))
        if cached and cached.get("sha") == info.sha:
            return Summary.model_validate(cached["summary"]), cached["name"], repo
        with no_progress():
            summary, name = _summarize_online(api, repo, selector, mmproj, info)
        entry = {"version": CACHE_VERSION, "ref": ref, "sha": info.sha, "name": name}
        _write_cache(path, {**entry, "summary": summary.model_dump(mode="json")})
        return summary, name, repo
    if cached:
        return Summary.model_validate(cached["summary"]), cached["name"], repo
    local = _summarize_hf_cache(repo, selector, mmproj)
    if local is not None:
        summary, name = local
        entry = {"version": CACHE_VERSION, "ref": ref, "sha": None, "name": name}
        _write_cache(path, {**entry, "summary": summary.model_dump(mode="json")})
        return summary, name, repo
    if online:
        raise UsageError(
            f"{repo} is not in the local cache and HF_HUB_OFFLINE is set; unset it to read the Hub"
        )
    raise UsageError(
        f"{repo} is not in the local cache; pass --online to read it from the Hugging Face Hub"
    )


def api_client() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def call(repo: str, fn: Any) -> Any:
    """Run a Hub call; its errors become one-line UsageErrors (no URLs with tokens, no trace)."""
    from huggingface_hub import errors as hf_errors

    try:
        return fn()
    except hf_errors.RepositoryNotFoundError:
        raise UsageError(f"{repo}: no such repo on the Hub (or it is private/gated)") from None
    except (hf_errors.EntryNotFoundError, hf_errors.RevisionNotFoundError) as e:
        raise UsageError(f"{repo}: {type(e).__name__}: file or revision not found") from None
    except UsageError:
        raise
    except Exception as e:  # network errors of any HTTP backend
        first = str(e).splitlines()[0] if str(e) else ""
        why = f"{type(e).__name__}: {first}"
        raise UsageError(f"{repo}: cannot read from the Hub ({why})") from None


def _is_gguf(name: str) -> bool:
    return name.lower().endswith(".gguf")


def _is_mmproj(name: str) -> bool:
    return "mmproj" in name.rsplit("/", 1)[-1].lower()


def select_gguf(files: list[str], selector: str | None, repo: str) -> list[str]:
    """The GGUF file (all parts of a split one) named by `selector`: a filename or a quant tag.

    A tag matches a file whose name holds it between separators (`-Q4_K_M.gguf`,
    `Q4_K_M/...-00001-of-00003.gguf`), case-insensitively; without a selector Q4_K_M, or the
    repo's only model file.
    """
    models = sorted(f for f in files if _is_gguf(f) and not _is_mmproj(f))
    if not models:
        raise UsageError(f"{repo}: no GGUF model file in this repo")
    if selector and _is_gguf(selector):
        hits = [f for f in models if f == selector or f.rsplit("/", 1)[-1] == selector]
    else:
        tag = selector or DEFAULT_GGUF_QUANT
        pattern = re.compile(rf"(^|[-._/]){re.escape(tag)}([-._/]|$)", re.IGNORECASE)
        hits = [f for f in models if pattern.search(f.removesuffix(".gguf"))]
        if not hits and selector is None and len(_groups(models)) == 1:
            hits = models
    groups = _groups(hits)
    if len(groups) != 1:
        available = ", ".join(sorted(_groups(models))) or "none"
        what = "matches several files" if groups else "matches no file"
        raise UsageError(f"{repo}:{selector or DEFAULT_GGUF_QUANT} {what}; files: {available}")
    return next(iter(groups.values()))


def _groups(files: list[str]) -> dict[str, list[str]]:
    """Files grouped by model: split parts share one key (their stem)."""
    out: dict[str, list[str]] = {}
    for f in files:
        m = SPLIT_GGUF.match(f)
        key = m["stem"] if m else f.removesuffix(".gguf")
        out.setdefault(key, []).append(f)
    return {k: sorted(v) for k, v in out.items()}


def _pick_mmproj(files: list[str]) -> str | None:
    """The repo's vision projector: F16 first (what llama.cpp's -hf downloads), then any."""
    mm = sorted(f for f in files if _is_gguf(f) and _is_mmproj(f))
    for want in ("-f16.", "-bf16.", "-f32."):
        for f in mm:
            if want in f.lower():
                return f
    return mm[0] if mm else None


def _quant_label(parts: list[str]) -> str:
    stem = gguf_stem(parts[0].rsplit("/", 1)[-1])
    m = re.search(r"((UD-)?(I?Q\d[\w]*|[BF]F?\d+|F16|F32|BF16|TQ\d_\d|MXFP4\w*))$", stem, re.I)
    return m.group(1) if m else stem


def _summarize_online(
    api: Any, repo: str, selector: str | None, mmproj: str | None, info: Any
) -> tuple[Summary, str]:
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    files = list(sizes)
    use_gguf = selector is not None or not any(f.endswith(".safetensors") for f in files)
    if not use_gguf:
        return safetensors_online(api, repo, info.sha, sizes), safe_name(repo)
    parts = select_gguf(files, selector, repo)
    local_mm = Path(mmproj).expanduser() if mmproj else None
    mm_parts: list[Path] | None = None
    with tempfile.TemporaryDirectory(prefix="qwenfit-gguf-") as tmp:
        text = [_gguf_prefix(repo, info.sha, f, sizes.get(f), Path(tmp) / f"t{i}.gguf")
                for i, f in enumerate(parts)]  # fmt: skip
        if local_mm is not None and local_mm.is_file():
            mm_parts = [local_mm]
        else:
            mm_file = mmproj or _pick_mmproj(files)
            if mm_file is not None:
                if mm_file not in sizes:
                    raise UsageError(f"{repo}: no file {mm_file!r} for --mmproj")
                mm_parts = [_gguf_prefix(repo, info.sha, mm_file, sizes[mm_file],
                                         Path(tmp) / "mmproj.gguf")]  # fmt: skip
        download = sum(sizes.get(f) or 0 for f in parts) or None
        origin = f"{endpoint()}/{repo}/blob/main/{parts[0]}"
        summary = summarize_gguf(text, mm_parts, origin=origin, download_bytes=download)
    return summary, safe_name(f"{repo}:{_quant_label(parts)}")


def safetensors_online(api: Any, repo: str, sha: str, sizes: dict[str, int | None]) -> Summary:
    config = download_json(repo, "config.json", sha)
    if not isinstance(config, dict):
        raise UsageError(f"{repo}: config.json is not a JSON object")
    check_model_type(config)
    index_name = "model.safetensors.index.json"
    if index_name in sizes:
        index = download_json(repo, index_name, sha)
        try:
            shards = sorted(set(index["weight_map"].values()))
        except (KeyError, TypeError, AttributeError):
            raise UsageError(f"{repo}: unreadable {index_name}") from None
    else:
        shards = sorted(f for f in sizes if f.endswith(".safetensors") and "/" not in f)
    headers: dict[str, dict[str, Any]] = {}
    for shard in shards:
        meta = call(
            repo, lambda s=shard: api.parse_safetensors_file_metadata(repo, s, revision=sha)
        )
        headers[shard] = {
            name: {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": list(t.data_offsets)}
            for name, t in meta.tensors.items()
        }
    total = sum(sizes.get(s) or 0 for s in shards) or None
    return summarize_safetensors(config, headers, f"{endpoint()}/{repo}", total)


def download_json(repo: str, name: str, sha: str | None) -> Any:
    """A small JSON file through hf_hub_download, so it lands in the HF cache for offline use."""
    from huggingface_hub import hf_hub_download

    def fetch() -> str:
        return hf_hub_download(
            repo, name, revision=sha, cache_dir=hf_cache_dir(), endpoint=endpoint()
        )

    path = call(repo, fetch)
    return read_json(path, what=f"{repo}: {name}")


def _gguf_prefix(repo: str, sha: str, filename: str, size: int | None, dest: Path) -> Path:
    """Fetch the head of a Hub GGUF into a sparse file of the real size, grown until it parses.

    GGUFReader memory-maps the whole file and builds views of every tensor, so the local copy
    has the full length (a hole after the prefix). The header was read entirely from fetched
    bytes iff the reader's data offset lies within the prefix.
    """
    from huggingface_hub import get_session, hf_hub_url
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    url = hf_hub_url(repo, filename, revision=sha, endpoint=endpoint())
    want = GGUF_PREFIX_BYTES
    while True:
        end = want - 1 if size is None else min(want, size) - 1
        headers = {**build_hf_headers(), "Range": f"bytes=0-{end}"}

        def get(url: str = url, headers: dict[str, str] = headers) -> Any:
            response = get_session().get(url, headers=headers, timeout=60)
            response.raise_for_status()
            return response

        data = call(repo, get).content
        full = size if size is not None else len(data)
        with dest.open("wb") as f:
            f.write(data)
            f.truncate(max(full, len(data)))
        try:
            _, _, data_offset = read_gguf(dest)
            if data_offset <= len(data):
                return dest
        except (UsageError, BadFileError):
            if len(data) >= full:
                raise
        if len(data) >= full or want >= GGUF_MAX_HEADER_BYTES:
            raise UsageError(f"{repo}/{filename}: GGUF header not readable from its first bytes")
        want *= 4


# ---------------------------------------------------------------------------------------------
# the local Hugging Face cache
# ---------------------------------------------------------------------------------------------


def _cached_snapshot(repo: str) -> tuple[Path, list[str]] | None:
    """The snapshot folder of `repo` in the HF cache (the 'main' revision first) and its files."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound, CorruptedCacheException

    root = hf_cache_dir()
    if not root.is_dir():
        return None
    try:
        info = scan_cache_dir(root)
    except (CacheNotFound, CorruptedCacheException, OSError):
        return None
    for r in info.repos:
        if r.repo_id != repo or r.repo_type != "model":
            continue
        revisions = sorted(
            r.revisions, key=lambda rev: ("main" not in rev.refs, -rev.last_modified)
        )
        for rev in revisions:
            files = [str(f.file_path.relative_to(rev.snapshot_path)) for f in rev.files]
            return Path(rev.snapshot_path), files
    return None


def _summarize_hf_cache(
    repo: str, selector: str | None, mmproj: str | None
) -> tuple[Summary, str] | None:
    """Size a repo from complete files already in the HF cache (no network), else None."""
    found = _cached_snapshot(repo)
    if found is None:
        return None
    snapshot, files = found
    if selector is None and (snapshot / "config.json").is_file():
        try:
            return summarize_folder(snapshot), safe_name(repo)
        except UsageError:
            return None  # config cached without the weights: not enough
    if not any(_is_gguf(f) for f in files):
        return None
    parts = select_gguf(files, selector, repo)
    mm_local = Path(mmproj).expanduser() if mmproj else None
    if mm_local is None or not mm_local.is_file():
        name = mmproj or _pick_mmproj(files)
        mm_local = snapshot / name if name and (snapshot / name).is_file() else None
    summary = summarize_gguf([snapshot / p for p in parts], [mm_local] if mm_local else None)
    return summary, safe_name(f"{repo}:{_quant_label(parts)}")


# ---------------------------------------------------------------------------------------------
# specs refresh
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def no_progress() -> Iterator[None]:
    """Keep huggingface_hub's progress bars off stdout (the CLI may be printing JSON)."""
    from huggingface_hub.utils import (  # type: ignore[attr-defined]
        disable_progress_bars,
        enable_progress_bars,
    )

    disable_progress_bars()
    try:
        yield
    finally:
        enable_progress_bars()
