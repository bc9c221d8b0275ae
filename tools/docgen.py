"""Generated documentation: JSON Schemas of every record qwenfit prints or reads (from the
pydantic models), the CLI reference (from `--help`), and the output shown in the docs' worked
examples (```console blocks that start with `$ qwenfit ...`).

`python tools/docgen.py` rewrites `docs/schema/*.json`, `data/model_specs.schema.json`,
`docs/cli.md` and those examples; tests fail when any of them is stale.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def _models() -> dict[str, type[BaseModel]]:
    """Every command's `--json` document as printed (probe, models, estimate, sweep, check,
    recommend, launch, fleet), and the records qwenfit reads: a machine, a model, the spec
    table."""
    from qwenfit.hardware.machine import Machine
    from qwenfit.serve.service import document_models
    from qwenfit.specs.table import ModelSpec, SpecTable

    return {
        **document_models(),
        "machine": Machine,
        "model": ModelSpec,
        "model_specs": SpecTable,
    }


# Where each schema says it lives; the files are in docs/schema/ of the repository.
SCHEMA_ID = "urn:qwenfit:schema:{name}"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schemas() -> dict[str, dict[str, Any]]:
    return {
        name: {"$schema": DIALECT, "$id": SCHEMA_ID.format(name=name), **m.model_json_schema()}
        for name, m in _models().items()
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def cli_reference() -> str:
    """docs/cli.md: the `--help` of the group and of every command, in order."""

    from qwenfit.cli.commands import main

    parts = [
        "# qwenfit command-line reference",
        "",
        "Generated from `--help` by `python tools/docgen.py`; do not edit by hand.",
        "",
    ]
    ctx = main.make_context("qwenfit", [], resilient_parsing=True, terminal_width=100)
    parts += ["## qwenfit", "", "```text", main.get_help(ctx), "```", ""]
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        assert cmd is not None
        sub = cmd.make_context(name, [], parent=ctx, resilient_parsing=True, terminal_width=100)
        parts += [f"## qwenfit {name}", "", "```text", cmd.get_help(sub), "```", ""]
    return "\n".join(parts)


EXAMPLE = re.compile(r"```console\n\$ qwenfit ([^\n]+)\n(.*?)```", re.S)
# Lines the worked examples leave out to stay short.
OMITTED = ("note: llama-server also keeps", "note: on the CPU llama.cpp repacks")


def example_output(args: str) -> str:
    """What `qwenfit ARGS` prints, as the docs show it."""
    from click.testing import CliRunner

    from qwenfit.cli.commands import main

    result = CliRunner().invoke(main, shlex.split(args))
    return "\n".join(x for x in result.output.splitlines() if not x.startswith(OMITTED)) + "\n"


def with_current_examples(text: str) -> str:
    return EXAMPLE.sub(
        lambda m: f"```console\n$ qwenfit {m.group(1)}\n{example_output(m.group(1))}```", text
    )


def targets(repo: Path) -> dict[Path, str]:
    """Every generated file of the repository and the text it must have."""
    out = {}
    for name, schema in schemas().items():
        out[repo / "docs" / "schema" / f"{name}.schema.json"] = render(schema)
    out[repo / "data" / "model_specs.schema.json"] = render(schemas()["model_specs"])
    out[repo / "docs" / "cli.md"] = cli_reference()
    for page in sorted((repo / "docs").glob("*.md")):
        if page.name != "cli.md" and EXAMPLE.search(page.read_text()):
            out[page] = with_current_examples(page.read_text())
    return out


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    for path, text in targets(repo).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path.relative_to(repo))


if __name__ == "__main__":
    main()
