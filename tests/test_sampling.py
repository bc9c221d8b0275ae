"""Per-model sampling presets: every launch carries the card preset of the model it starts, on
every runtime, read from the data by the card's mode names; the table refuses presets that do
not resolve."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenfit.errors import SpecError
from qwenfit.launch.commands import LaunchCommand, launch_command
from qwenfit.memory.estimator import estimate
from qwenfit.recommender.ranking import recommend
from qwenfit.specs.table import SpecTable, load_specs

DATA = Path(__file__).parents[1] / "data" / "model_specs.json"
KEYS = ("temperature", "top_p", "top_k", "min_p", "presence_penalty", "repetition_penalty")


def _raw() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def card_preset(raw: dict[str, Any], model: str, task: str) -> dict[str, float]:
    """The values the data gives `model` for `task`, read by mode name: code -> the card's
    precise-coding mode, vision -> its VL mode when given, else the default mode's general one;
    an inherited mode reads the preset it names."""
    row = next(m for m in raw["models"] if m["name"] == model)
    s = row["sampling"]
    mode = s["default_mode"]
    if task == "code":
        key = "thinking_precise_coding"
    elif task == "vision" and f"{mode}_vl" in s["presets"]:
        key = f"{mode}_vl"
    else:
        key = f"{mode}_general"
    if key in s["presets"]:
        line = s["presets"][key]
    elif s["inherits"][key]["source"] == "model":
        line = s["presets"][s["inherits"][key]["preset"]]
    else:
        line = raw["sampling"][s["inherits"][key]["preset"]]
    return {k: float(line[k]) for k in KEYS}


def _flag(argv: list[str], name: str) -> float:
    return float(argv[argv.index(name) + 1])


def _sent(notes: str, key: str) -> float:
    found = re.search(rf"{key}=([0-9.]+)", notes)
    assert found, (key, notes)
    return float(found.group(1))


def launched(cmd: LaunchCommand) -> dict[str, float]:
    """The sampling a launch gives the server, per runtime (flags, Modelfile, generation
    config, the per-request values printed in its notes, or generate() keywords)."""
    notes = " ".join(cmd.notes)
    argv = cmd.steps[-1].argv
    if cmd.runtime == "llama.cpp":
        flags = ("--temp", "--top-p", "--top-k", "--min-p", "--presence-penalty")
        got = {k: _flag(argv, f) for k, f in zip(KEYS, flags, strict=False)}
        return {**got, "repetition_penalty": _flag(argv, "--repeat-penalty")}
    if cmd.runtime == "ollama":
        params = dict(re.findall(r"PARAMETER (\w+) (\S+)", cmd.files[0].text))
        names = dict(zip(KEYS, KEYS, strict=True))
        names["repetition_penalty"] = "repeat_penalty"
        return {k: float(params[names[k]]) for k in KEYS}
    if cmd.runtime == "vllm":
        conf = json.loads(argv[argv.index("--override-generation-config") + 1])
        return {
            **{k: float(v) for k, v in conf.items()},
            "presence_penalty": _sent(notes, "presence_penalty"),
        }
    if cmd.runtime == "mlx":
        if argv[0] == "mlx_lm.server":
            flags = ("--temp", "--top-p", "--top-k", "--min-p")
            got = {k: _flag(argv, f) for k, f in zip(KEYS, flags, strict=False)}
        else:
            got = {k: _sent(notes, k) for k in KEYS[:4]}
        return {**got, "presence_penalty": _sent(notes, "presence_penalty")}
    code = argv[2]
    got = {k: _sent(code, k) for k in KEYS if k != "presence_penalty"}
    return {**got, "presence_penalty": _sent(notes, "presence_penalty")}


def _compare(cmd: LaunchCommand, want: dict[str, float]) -> None:
    got = launched(cmd)
    for k, v in got.items():
        assert v == pytest.approx(want[k]), (cmd.runtime, cmd.model, k, got, want)


# Published machines of the kinds the recommender serves, with every runtime family.
MACHINES = [
    ("RTX 4090", "64GB"),
    ("RTX 3060", "32GB"),
    ("H100", "512GB"),
    ("M4 Max", "128GB"),
    ("M2", "16GB"),
    ("RTX PRO 6000 Blackwell", "192GB"),
    ("Ryzen AI Max+ 395", "128GB"),
]


@settings(max_examples=20, deadline=None)
@given(
    machine=st.sampled_from(MACHINES),
    task=st.sampled_from(["chat", "agent", "code", "vision"]),
    family=st.sampled_from(["qwen3.5", "all", "qwen3.6"]),
    prefer=st.sampled_from(["quality", "speed"]),
)
def test_the_launch_carries_the_card_preset_of_the_model_picked(
    machine: tuple[str, str], task: str, family: str, prefer: str
) -> None:
    from qwenfit.hardware.catalog import with_overrides

    raw = _raw()
    m = with_overrides(None, gpu=machine[0], ram=machine[1])
    r = recommend(m, task=task, family=family, prefer=prefer, limit=3)  # type: ignore[arg-type]
    for p in r.recommendations:
        assert p.launch is not None
        assert p.launch.model == p.model
        _compare(p.launch, card_preset(raw, p.model, task))


@pytest.mark.parametrize("runtime", ["llama.cpp", "ollama", "vllm", "transformers", "mlx"])
@pytest.mark.parametrize("task", ["chat", "agent", "code", "vision"])
def test_every_model_on_every_runtime(table: SpecTable, runtime: str, task: str) -> None:
    raw = _raw()
    for spec in table.models:
        fmt = {"ollama": "ollama", "mlx": "mlx", "llama.cpp": "gguf"}.get(runtime, "safetensors")
        if not spec.precisions(fmt):
            continue
        e = estimate(spec.name, runtime=runtime, context=8192, table=table)
        _compare(launch_command(e, table=table, task=task), card_preset(raw, spec.name, task))


# The cards' values, as read (each model row cites its card and the copy it was read from).
# Chat: the default mode's general preset; code: the precise-coding preset (or what the card
# says stands for it). (temperature, top_p, top_k, presence_penalty)
CARD_FACTS = {
    "qwen3.5-0.8b": ((1.0, 1.0, 20, 2.0), (0.6, 0.95, 20, 0.0)),
    "qwen3.5-2b": ((1.0, 1.0, 20, 2.0), (0.6, 0.95, 20, 0.0)),
    "qwen3.5-4b": ((1.0, 0.95, 20, 1.5), (0.6, 0.95, 20, 0.0)),
    "qwen3.5-9b": ((1.0, 0.95, 20, 1.5), (0.6, 0.95, 20, 0.0)),
    "qwen3.5-27b": ((1.0, 0.95, 20, 1.5), (0.6, 0.95, 20, 0.0)),
    "qwen3.5-35b-a3b": ((1.0, 0.95, 20, 1.5), (0.6, 0.95, 20, 0.0)),
    "qwen3.5-122b-a10b": ((1.0, 0.95, 20, 1.5), (0.6, 0.95, 20, 0.0)),
    "qwen3.5-397b-a17b": ((0.6, 0.95, 20, 0.0), (0.6, 0.95, 20, 0.0)),
    "qwen3.6-35b-a3b": ((1.0, 0.95, 20, 1.5), (0.6, 0.95, 20, 0.0)),
    "qwen3.6-27b": ((1.0, 0.95, 20, 0.0), (0.6, 0.95, 20, 0.0)),
    "qwen3.8-27b": ((1.0, 0.95, 20, 0.0), (1.0, 0.95, 20, 0.0)),
}


def _four(cmd: LaunchCommand) -> tuple[float, ...]:
    got = launched(cmd)
    return tuple(got[k] for k in ("temperature", "top_p", "top_k", "presence_penalty"))


def test_each_model_launches_with_its_own_cards_values(table: SpecTable) -> None:
    """Fails when one model's presets are replaced by another's: the rows differ by card."""
    assert set(CARD_FACTS) == {m.name for m in table.models}
    for name, (chat, code) in CARD_FACTS.items():
        e = estimate(name, runtime="llama.cpp", context=8192, table=table)
        assert _four(launch_command(e, table=table, task="chat")) == chat, name
        assert _four(launch_command(e, table=table, task="code")) == code, name


def test_a_swapped_preset_is_caught(table: SpecTable) -> None:
    a, b = table.get("qwen3.6-27b"), table.get("qwen3.5-27b")
    swapped = table.model_copy(
        update={"models": [a.model_copy(update={"sampling": b.sampling}), b]}
    )
    e = estimate(a.name, runtime="llama.cpp", context=8192, table=swapped)
    assert _four(launch_command(e, table=swapped)) != CARD_FACTS[a.name][0]


def test_the_note_names_the_card_mode_or_the_inheritance(table: SpecTable) -> None:
    e = estimate("qwen3.6-27b", runtime="llama.cpp", context=8192, table=table)
    notes = " ".join(launch_command(e, table=table).notes)
    assert "Qwen3.6-27B card's 'Thinking mode for general tasks'" in notes
    e = estimate("qwen3.8-27b", runtime="vllm", context=8192, table=table)
    notes = " ".join(launch_command(e, table=table, task="code").notes)
    assert "Qwen3.8-27B card's 'Thinking Mode'" in notes and "one thinking preset" in notes
    e = estimate("qwen3.5-2b", runtime="ollama", context=8192, table=table)
    notes = " ".join(launch_command(e, table=table, task="code").notes)
    assert "Qwen3.5 family's thinking precise coding preset" in notes


def test_the_08b_card_vl_preset_is_used_for_vision(table: SpecTable) -> None:
    # Qwen3.5-0.8B card, Best Practices: "Non-thinking mode for VL tasks": 0.7 / 0.80 / 20 / 1.5
    e = estimate("qwen3.5-0.8b", runtime="llama.cpp", context=8192, table=table)
    vision = launch_command(e, table=table, task="vision")
    assert _four(vision) == (0.7, 0.8, 20, 1.5)
    assert "'Non-thinking mode for VL tasks'" in " ".join(vision.notes)
    assert _four(launch_command(e, table=table, task="chat")) == (1.0, 1.0, 20, 2.0)


def test_a_card_vl_preset_is_used_for_vision_only(table: SpecTable) -> None:
    spec = table.get("qwen3.5-9b")
    assert spec.sampling is not None
    vl = spec.sampling.presets["thinking_general"].model_copy(
        update={"card_mode": "Thinking mode for VL tasks", "temperature": 0.8}
    )
    sampling = spec.sampling.model_copy(
        update={"presets": {**spec.sampling.presets, "thinking_vl": vl}}
    )
    t = table.model_copy(update={"models": [spec.model_copy(update={"sampling": sampling})]})
    e = estimate("9b", runtime="llama.cpp", context=8192, table=t)
    assert launched(launch_command(e, table=t, task="vision"))["temperature"] == 0.8
    assert launched(launch_command(e, table=t, task="chat"))["temperature"] == 1.0


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda s: s["inherits"].update(
                thinking_general={"source": "model", "preset": "thinking_general", "why": "x"}
            ),
            "both given and inherited",
        ),
        (lambda s: s["presets"].pop("thinking_general"), "neither given nor inherited"),
        (lambda s: s.update(source="no-such-source"), "no-such-source"),
        (
            lambda s: s["inherits"]["non_thinking_reasoning"].update(preset="thinking_vl"),
            "does not give",
        ),
        (lambda s: s["presets"]["thinking_general"].update(top_p=1.5), "top_p"),
    ],
)
def test_presets_that_do_not_resolve_fail_at_load(tmp_path: Path, edit: Any, match: str) -> None:
    d = _raw()
    row = next(m for m in d["models"] if m["name"] == "qwen3.6-27b")
    edit(row["sampling"])
    f = tmp_path / "specs.json"
    f.write_text(json.dumps(d))
    with pytest.raises(SpecError, match=match):
        load_specs(f)


def test_a_family_inheritance_needs_the_family_preset(tmp_path: Path) -> None:
    d = _raw()
    del d["sampling"]["non_thinking_reasoning"]
    f = tmp_path / "specs.json"
    f.write_text(json.dumps(d))
    with pytest.raises(SpecError, match="non_thinking_reasoning"):
        load_specs(f)
