"""Size any Qwen3.5-architecture checkpoint from what its files say: folders, GGUFs, Hub repos.

Users run fine-tunes, merges and community quantizations, not only the official repos, so a
model reference that is not in the spec table is read from its files and turned into a
`ModelSpec` appended to a copy of the table. Only metadata is read: config.json and the
safetensors headers (8-byte length + JSON, never the tensor data), or the GGUF header and
tensor table (`gguf.GGUFReader` memory-maps the file and touches only the header pages).

Both formats are first reduced to a `Summary` (JSON-able, so `qwenfit.hub` can cache it), and
one builder turns a summary into a spec. Bytes come from the files; parameters are counted from
tensor shapes; only what the files do not contain (a vision tower left out of a text-only
checkpoint or a GGUF given without its mmproj) falls back to the `qwenfit.arch` formulas, and
the artifact is then marked `exact: false`.
"""

from __future__ import annotations

import stat
from pathlib import Path

from qwenfit.errors import BadFileError, UnknownModelError, UsageError
from qwenfit.inputs import os_reason, printable, shown
from qwenfit.specs.table import (
    ModelSpec,
    SpecTable,
)


def resolve_model(
    ref: str, table: SpecTable, *, online: bool = False, mmproj: str | None = None
) -> tuple[SpecTable, ModelSpec]:
    """The spec for `ref`: a table model untouched, or one built from a checkpoint's files.

    `ref` is a spec-table name, a local folder (config.json + *.safetensors), a local .gguf file
    (split GGUFs: any part), or a Hugging Face repo id (`org/name`, `org/name:Q4_K_M`,
    `org/name:file.gguf`). The Hub is read only with `online=True`; without it a repo is sized
    from qwenfit's cache or the local Hugging Face cache. Returns a copy of `table` with the new
    model (and any precision or source it needs) appended, and the model.

    Raises:
        UsageError: not found, not a Qwen3.5 architecture, unreadable files, or a Hub repo that
            needs `--online`; the message is one line.
    """
    try:
        return table, table.get(ref)
    except UnknownModelError:
        pass
    # The readers (and pydantic's build of their records) are needed only from here on, so a
    # spec-table name never imports them.
    if not isinstance(ref, str):
        raise UsageError(f"invalid model {ref!r}: must be a name, a path or a Hub repo id")
    try:
        return _from_files(ref, table, online=online, mmproj=mmproj)
    except OSError as e:  # a name too long, a folder that cannot be searched, a vanished file
        where = f" ({shown(e.filename)})" if e.filename else ""
        raise BadFileError(f"cannot read {shown(ref)}: {os_reason(e)}{where}") from None


def _from_files(
    ref: str, table: SpecTable, *, online: bool, mmproj: str | None
) -> tuple[SpecTable, ModelSpec]:
    """`resolve_model` for a reference that is not in the table: a file, a folder or a repo."""
    from qwenfit.specs.checkpoints.gguf import gguf_parts, gguf_stem, summarize_gguf
    from qwenfit.specs.checkpoints.rows import add_to_table
    from qwenfit.specs.checkpoints.safetensors import summarize_folder

    path = _expand(ref)
    mm = _expand(mmproj) if mmproj else None
    if mm is not None and _kind(mm) == "none":
        raise UsageError(f"--mmproj {shown(mmproj or '')}: no such file")
    kind = _kind(path)
    if kind == "dir":
        summary = summarize_folder(path)
        if mm is not None:
            raise UsageError("--mmproj applies to GGUF files only; a folder carries its vision")
        return add_to_table(table, summary, ref, name=_local_name(path.name))
    if kind == "file":
        if path.suffix.lower() != ".gguf":
            raise UsageError(f"{printable(ref)}: not a .gguf file or a folder with config.json")
        summary = summarize_gguf(gguf_parts(path), [mm] if mm else None)
        return add_to_table(table, summary, ref, name=_local_name(gguf_stem(path.name)))
    if _looks_like_path(ref):
        raise UsageError(f"{shown(ref)}: no such file or folder")
    if not _looks_like_repo(ref):
        # Re-raise the table's own message (with its did-you-mean) for a plain unknown name.
        table.get(ref)
    from qwenfit.specs.checkpoints import hub

    summary, name, repo = hub.summarize_repo(ref, online=online, mmproj=mmproj)
    return add_to_table(table, summary, ref, name=name, repo=repo)


def _kind(path: Path) -> str:
    """'dir', 'file' (anything else that exists: the readers refuse non-regular files with a
    clear error) or 'none'; a name too long or unreadable is a one-line error."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "none"
    except NotADirectoryError:
        return "none"
    except OSError as e:
        raise BadFileError(f"cannot read {shown(path)}: {os_reason(e)}") from None
    except ValueError:
        raise UsageError(f"{shown(path)}: not a valid path") from None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def _expand(text: str) -> Path:
    """`~` and `~user` expanded; an unknown user (`~0`) is a usage error, not a traceback."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise UsageError(f"{text}: cannot expand '~' (no such user's home)") from None


def _looks_like_path(ref: str) -> bool:
    if ref.startswith(("/", "./", "../", "~")):
        return True
    # 'file.gguf' or 'dir/file.gguf' are paths; 'org/name/file.gguf' is a Hub file.
    return ref.lower().endswith(".gguf") and ref.count("/") != 2 and ":" not in ref


def _looks_like_repo(ref: str) -> bool:
    repo = ref.split(":", 1)[0]
    parts = repo.split("/")
    return len(parts) >= 2 and all(parts) and ".." not in repo


def _local_name(base: str) -> str:
    from qwenfit.specs.checkpoints.summary import safe_name

    return safe_name("local/" + base)
