"""Sampling presets as each model card gives them: per model, per card mode, with the modes a
card leaves out inheriting a named preset (the model's own or the family's), never invented.

`launch.common.sampling_preset` turns a task into one of these presets; the spec table
(`specs.table`) checks every reference when it loads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from qwenfit.specs.architecture import Strict

# The modes the Qwen3.5 family cards name (Best Practices); every model answers each of them,
# from its own card or by inheritance. VL presets are optional: a card that gives one for
# images has it used for `--task vision`.
CardModeKey = Literal[
    "thinking_general",
    "thinking_precise_coding",
    "non_thinking_general",
    "non_thinking_reasoning",
    "thinking_vl",
    "non_thinking_vl",
]
REQUIRED_MODES: tuple[CardModeKey, ...] = (
    "thinking_general",
    "thinking_precise_coding",
    "non_thinking_general",
    "non_thinking_reasoning",
)
# The values every runtime is given, in the cards' order.
SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "repetition_penalty",
)


class CardPreset(Strict):
    """One card line: its mode's name as the card writes it and the six values."""

    card_mode: str = Field(min_length=1, description="The mode as the model card names it.")
    temperature: float = Field(gt=0, le=2)
    top_p: float = Field(gt=0, le=1)
    top_k: int = Field(ge=0)
    min_p: float = Field(ge=0, le=1)
    presence_penalty: float = Field(ge=-2, le=2)
    repetition_penalty: float = Field(gt=0)

    def values(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in SAMPLING_KEYS}


class Inherited(Strict):
    """A mode the card gives no values for, and the preset it borrows."""

    source: Literal["model", "family"] = Field(
        description="model: another preset of this card; family: the table's family preset."
    )
    preset: CardModeKey
    why: str = Field(min_length=1)


class ModelSampling(Strict):
    default_mode: Literal["thinking", "non_thinking"] = Field(
        description="The mode the model runs in unless told otherwise (its card)."
    )
    presets: dict[CardModeKey, CardPreset]
    inherits: dict[CardModeKey, Inherited] = Field(default_factory=dict)
    source: str

    @model_validator(mode="after")
    def _every_mode_once(self) -> ModelSampling:
        both = set(self.presets) & set(self.inherits)
        if both:
            raise ValueError(f"mode {sorted(both)[0]!r} is both given and inherited")
        for mode in REQUIRED_MODES:
            if mode not in self.presets and mode not in self.inherits:
                raise ValueError(f"mode {mode!r} is neither given nor inherited")
        for mode, inh in self.inherits.items():
            if inh.source == "model" and inh.preset not in self.presets:
                raise ValueError(f"{mode} inherits {inh.preset!r}, which this card does not give")
        return self
