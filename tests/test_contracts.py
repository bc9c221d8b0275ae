"""Contracts between the entry points: one question, one answer, whichever way it is asked.

recommend's picks equal `estimate` and `check` of the same settings byte for byte; `launch` of
the top pick equals `launch MODEL` with the pick's settings and `launch MODEL` fills what
`recommend --model MODEL` would; the CLI, the REST API and the MCP server print the same
document for the same question; every printed document validates against its schema; every CLI
option exists on the other faces with the same name.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import anyio
import click
import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenfit.cli import main
from qwenfit.fit.preflight import check
from qwenfit.hardware.catalog import with_overrides
from qwenfit.hardware.machine import Machine
from qwenfit.memory.estimator import estimate
from qwenfit.recommender.launching import launch_plan
from qwenfit.recommender.ranking import Recommendation, recommend
from qwenfit.settings import COMMANDS, FACE_ONLY, SETTINGS, settings_of
from qwenfit.specs.table import load_specs

REPO = Path(__file__).resolve().parents[1]
TABLE = load_specs()

# (gpu, ram, runtimes that have a build there) for a spread of real machines
MACHINES = [
    ("RTX 4090", "64GB", ("llama.cpp", "ollama", "vllm")),
    ("RTX 3060", "16GB", ("llama.cpp", "ollama")),
    ("RTX 4060", "12GB", ("llama.cpp",)),
    ("2x RTX 3090", "128GB", ("llama.cpp", "vllm")),
    ("H100", "256GB", ("vllm", "llama.cpp", "transformers")),
    ("M3 Max", "64GB", ("mlx", "llama.cpp")),
    (None, "32GB", ("llama.cpp", "ollama")),
]
FAST = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def machine_of(gpu: str | None, ram: str) -> Machine:
    if gpu is None:
        return with_overrides(None, vram=0, ram=ram, ram_bandwidth="60GB/s")
    return with_overrides(None, gpu=gpu, ram=ram, ram_bandwidth="60GB/s")


questions = st.tuples(
    st.sampled_from(MACHINES),
    st.sampled_from(["chat", "agent", "code"]),
    st.sampled_from([1, 1, 4]),
    st.sampled_from([None, 16384, 65536]),
).flatmap(lambda q: st.tuples(st.just(q), st.sampled_from(q[0][2])))


def same_settings(pick: Recommendation) -> dict[str, Any]:
    e = pick.estimate
    return {
        "runtime": e.runtime,
        "quant": e.quant,
        "context": e.context,
        "kv_cache": e.kv_cache,
        "parallel": e.parallel,
        "text_only": e.text_only,
        "mtp": e.mtp,
    }


@FAST
@given(questions)
def test_every_pick_is_what_estimate_and_check_say(q: Any) -> None:
    (((gpu, ram, _), task, parallel, context), runtime) = q
    m = machine_of(gpu, ram)
    result = recommend(
        m, runtime=runtime, task=task, parallel=parallel, context=context, limit=3, table=TABLE
    )
    for pick in result.recommendations:
        offload = pick.placement == "offload"
        est = estimate(
            pick.model, **same_settings(pick), machine=m, allow_offload=offload, table=TABLE
        )
        assert est.model_dump() == pick.estimate.model_dump()
        checked = check(pick.model, m, **same_settings(pick), allow_offload=offload, table=TABLE)
        assert checked.fits and checked.fit == pick.fit
        assert checked.estimate.model_dump() == pick.estimate.model_dump()
        assert pick.tokens_per_second == est.tokens_per_second or (
            est.tokens_per_second is None and pick.speed_source != "estimated"
        )


@FAST
@given(questions)
def test_launch_is_the_pick(q: Any) -> None:
    (((gpu, ram, _), task, parallel, context), runtime) = q
    m = machine_of(gpu, ram)
    result = recommend(
        m, runtime=runtime, task=task, parallel=parallel, context=context, limit=1, table=TABLE
    )
    if not result.recommendations:
        return
    pick = result.recommendations[0]
    top = launch_plan(
        None, m, runtime=runtime, task=task, parallel=parallel, context=context, table=TABLE
    )
    assert top.launch == pick.launch and top.fits
    named = launch_plan(
        pick.model,
        m,
        task=task,
        **same_settings(pick),
        allow_offload=pick.placement == "offload",
        table=TABLE,
    )
    assert named.launch == pick.launch and named.fit == pick.fit
    # launch MODEL alone completes the rest as recommend --model MODEL does
    alone = launch_plan(pick.model, m, runtime=runtime, task=task, parallel=parallel, table=TABLE)
    one = recommend(
        m, models=[pick.model], runtime=runtime, task=task, parallel=parallel, limit=1, table=TABLE
    ).recommendations[0]
    assert alone.launch == one.launch


def test_a_spec_from_a_checkpoint_works_through_every_public_function() -> None:
    """A ModelSpec the table lacks is carried, never looked up again by name."""
    own = TABLE.get("9b").model_copy(update={"name": "my-finetune", "aliases": []})
    m = machine_of("RTX 4090", "64GB")
    est = estimate(own, runtime="llama.cpp", quant="q4_k_m", context=32768, machine=m)
    assert est.model == "my-finetune" and est.tokens_per_second and est.spec is own
    assert check(own, m, runtime="llama.cpp", quant="q4_k_m", context=32768).fits
    plan = launch_plan(own, m, runtime="llama.cpp", quant="q4_k_m", context=32768)
    assert plan.fits and plan.launch.model == "my-finetune"
    picks = recommend(m, models=[own], runtime="llama.cpp").recommendations
    assert picks and {p.model for p in picks} == {"my-finetune"}


# --- the three faces ---------------------------------------------------------------------

HW = {"gpu": "RTX 4090", "ram": "64GB", "ram_bandwidth": "60GB/s"}
ASKED = [
    ("estimate", {"model": "9b", "quant": "q4_k_m", "context": "32k", **HW}),
    ("estimate", {"model": "27b", "runtime": "llama.cpp", "parallel": 2, "margin": "5%", **HW}),
    ("check", {"model": "27b", "quant": "q8_0", **HW}),
    ("check", {"model": "35b-a3b", "allow_offload": True, "reserve": "1.5GB", **HW}),
    ("recommend", {"task": "code", "limit": 2, **HW}),
    ("recommend", {"models": ["9b"], "quant": "q8_0", "runtime": "llama.cpp", **HW}),
    ("launch", {"model": "9b", **HW}),
    ("launch", {"task": "agent", "min_speed": 30, **HW}),
    ("sweep", {"model": "4b", "kv_cache": "q8_0", **HW}),
    ("probe", HW),
    ("models", {"family": "all"}),
    (
        "fleet",
        {
            "nodes": json.loads((REPO / "tests/fixtures/fleet/h200-2node.json").read_text()),
            "model": "27b",
            "task": "agent",
            "name": "qwen",
        },
    ),
]


def cli_argv(command: str, values: dict[str, Any]) -> list[str]:
    argv = ["estimate" if command == "sweep" else command]
    if "model" in values and command != "fleet":
        argv.append(values["model"])
    for name, value in values.items():
        if name == "model" and command != "fleet":
            continue
        flag = next(s for s in settings_of(command) if s.field == name).cli_flag
        if isinstance(value, dict):  # a JSON document: the CLI reads it from a file
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(value, f)
            argv += [flag, f.name]
        elif value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    out = ["--output", "json"] if command == "fleet" else ["--json"]
    return [*argv, *(["--sweep"] if command == "sweep" else []), *out]


def cli(command: str, values: dict[str, Any]) -> dict[str, Any]:
    r = CliRunner().invoke(main, cli_argv(command, values))
    assert r.exit_code in (0, 3), r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def rest(command: str, values: dict[str, Any]) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from qwenfit.serve.app import create_app

    with TestClient(create_app(mcp=False), base_url="http://localhost") as client:
        r = client.post(f"/v1/{command}", json=values)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def mcp(command: str, values: dict[str, Any]) -> dict[str, Any]:
    from mcp import Client

    from qwenfit.serve.mcp_server import create_mcp

    async def call() -> str:
        async with Client(create_mcp()) as client:
            result = await client.call_tool(command, values)
        assert not result.is_error, result.content
        text: str = result.content[0].text  # type: ignore[union-attr]
        return text

    doc: dict[str, Any] = json.loads(anyio.run(call))
    return doc


@pytest.mark.parametrize(("command", "values"), ASKED, ids=[c for c, _ in ASKED])
def test_cli_rest_and_mcp_print_one_document(command: str, values: dict[str, Any]) -> None:
    doc = cli(command, values)
    assert rest(command, values) == doc
    assert mcp(command, values) == doc


@pytest.mark.parametrize(("command", "values"), ASKED, ids=[c for c, _ in ASKED])
def test_every_document_validates_as_printed(command: str, values: dict[str, Any]) -> None:
    schema = json.loads((REPO / "docs" / "schema" / f"{command}.schema.json").read_text())
    assert schema["$id"] == f"urn:qwenfit:schema:{command}" and "$schema" in schema
    jsonschema.validate(cli(command, values), schema)


def test_a_changed_document_fails_its_schema() -> None:
    schema = json.loads((REPO / "docs" / "schema" / "estimate.schema.json").read_text())
    doc = cli("estimate", {"model": "9b", **HW})
    doc["estimate"]["kv_cache_bytes"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1, "estimate": doc["estimate"]}, schema)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_cli_option_exists_on_the_service_faces(command: str) -> None:
    from qwenfit.serve.service import request_model

    cli_name = "estimate" if command == "sweep" else command
    cmd = main.get_command(click.Context(main), cli_name)
    assert cmd is not None
    options = {p.name for p in cmd.params if p.name} - {"as_json", "help"}
    fields = set(request_model(command).model_fields)
    face_only = set(FACE_ONLY) | {"plot_file"}  # --plot FILE
    missing = {SETTINGS[o].field if o in SETTINGS else o for o in options} - fields - face_only
    if command in ("estimate", "sweep"):  # one CLI command answers both questions
        missing -= set(COMMANDS["estimate"]) | set(COMMANDS["sweep"])
    assert not missing, f"{command}: CLI options missing on REST/MCP: {missing}"
    assert {"json", "online", "plot"} <= set(FACE_ONLY)


@pytest.mark.parametrize("body", [{"model": "9b", "parralel": 2}, {"model": "9b", "gpu": 1}])
def test_unknown_or_wrong_keys_are_refused_by_all_three(body: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient
    from mcp import Client

    from qwenfit.serve.app import create_app
    from qwenfit.serve.mcp_server import create_mcp

    with TestClient(create_app(mcp=False), base_url="http://localhost") as client:
        r = client.post("/v1/estimate", json={**body, "ram": "64GB"})
    assert r.status_code == 422 and r.json()["error"]["exit_code"] == 2

    async def call() -> tuple[bool, str]:
        async with Client(create_mcp()) as c:
            res = await c.call_tool("estimate", {**body, "ram": "64GB"})
        return bool(res.is_error), res.content[0].text  # type: ignore[union-attr]

    is_error, text = anyio.run(call)
    assert is_error and "\n" not in text and "invalid" in text
    if "parralel" in body:
        argv = ["estimate", "9b", "--parralel", "2", "--ram", "64GB"]
        assert CliRunner().invoke(main, argv).exit_code == 2


def _values(command: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid questions for `command`, drawn from its declared options."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "model": st.sampled_from(["0.8b", "4b", "9b", "27b", "35b-a3b"]),
        "runtime": st.sampled_from(["llama.cpp", "ollama", "vllm"]),
        "context": st.sampled_from(["8k", "32k", 65536]),
        "parallel": st.sampled_from([1, 2]),
        "task": st.sampled_from(["chat", "agent", "code"]),
        "margin": st.sampled_from(["1GiB", "10%", 0]),
        "reserve": st.sampled_from(["1GB", "0.5GB@0"]),
        "allow_offload": st.just(True),
        "limit": st.sampled_from([1, 2]),
        "text_only": st.just(True),
    }
    keys = [k for k in fields if k in COMMANDS[command]]
    base = {"gpu": "RTX 4090", "ram": "64GB", "ram_bandwidth": "60GB/s"}
    required = {"model"} & set(keys) if command in ("estimate", "check") else set()
    return st.fixed_dictionaries(
        {k: fields[k] for k in required},
        optional={k: fields[k] for k in keys if k not in required},
    ).map(lambda d: {**base, **d})


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(["estimate", "check", "recommend", "launch"]).flatmap(
        lambda c: st.tuples(st.just(c), _values(c))
    )
)
def test_generated_questions_get_one_document_on_every_face(q: tuple[str, dict[str, Any]]) -> None:
    command, values = q
    r = CliRunner().invoke(main, cli_argv(command, values))
    if r.exit_code not in (0, 3):  # a question the library refuses: refused everywhere alike
        assert r.exit_code == 2 and r.stdout == "", r.output
        return
    doc = json.loads(r.stdout)
    assert rest(command, values) == doc
    assert mcp(command, values) == doc
