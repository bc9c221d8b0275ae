"""JSON Schemas of every record qwenfit prints or reads, generated from the pydantic models.

`python -m qwenfit.schema` rewrites `docs/schema/*.json` and `data/model_specs.schema.json`;
a test fails when they are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def _models() -> dict[str, type[BaseModel]]:
    from qwenfit.estimate_model import Estimate
    from qwenfit.hardware import Machine
    from qwenfit.launch import LaunchCommand
    from qwenfit.preflight import CheckResult
    from qwenfit.recommender import RecommendResult
    from qwenfit.specs import ModelSpec, SpecTable

    return {
        "machine": Machine,
        "model": ModelSpec,
        "estimate": Estimate,
        "check": CheckResult,
        "recommend": RecommendResult,
        "launch": LaunchCommand,
        "model_specs": SpecTable,
    }


def schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema() for name, model in _models().items()}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def targets(repo: Path) -> dict[Path, str]:
    """Every schema file of the repository and the text it must have."""
    out = {}
    for name, schema in schemas().items():
        out[repo / "docs" / "schema" / f"{name}.schema.json"] = render(schema)
    out[repo / "data" / "model_specs.schema.json"] = render(schemas()["model_specs"])
    return out


def main() -> None:
    repo = Path(__file__).resolve().parents[2]
    for path, text in targets(repo).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path.relative_to(repo))


if __name__ == "__main__":
    main()
