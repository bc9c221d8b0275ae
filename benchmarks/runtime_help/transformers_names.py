"""Record which transformers names and from_pretrained keywords qwenfit's snippets rely on.

Run with the interpreter of the environment to inspect, e.g.
    /work/rigs/hf/venv/bin/python benchmarks/runtime_help/transformers_names.py \
        > tests/fixtures/runtime_help/transformers.json

Names are checked with hasattr() on the top-level `transformers` package (lazy import, so a
name that is listed but fails to import counts as missing). The from_pretrained keywords are
read from the installed source of PreTrainedModel.from_pretrained: its signature plus every
`kwargs.pop("...")` / `kwargs.get("...")` in its body, so nothing is loaded from the Hub.
"""

from __future__ import annotations

import inspect
import json
import re
import sys

import transformers
from transformers.modeling_utils import PreTrainedModel
from transformers.models.auto import modeling_auto

NAMES = [
    "AutoModelForCausalLM",
    "AutoModelForImageTextToText",
    "AutoProcessor",
    "BitsAndBytesConfig",
    "Qwen3_5ForConditionalGeneration",
    "Qwen3_5MoeForConditionalGeneration",
    "Qwen3_5ForCausalLM",
    "Qwen3_5MoeForCausalLM",
]
# the keywords qwenfit's snippets pass (or may pass) to from_pretrained
KWARGS_OF_INTEREST = ["dtype", "device_map", "quantization_config"]
MODEL_TYPES = ["qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text"]


def _has(name: str) -> bool:
    try:
        return getattr(transformers, name, None) is not None
    except Exception:  # a lazy import that fails means the name is unusable
        return False


def _from_pretrained_kwargs() -> list[str]:
    fn = PreTrainedModel.from_pretrained
    fn = getattr(fn, "__func__", fn)
    params = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "cls"
    ]
    src = inspect.getsource(fn)
    popped = re.findall(r"""kwargs\.(?:pop|get)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""", src)
    out: list[str] = []
    for n in [*params, *popped]:
        if n not in out and not n.startswith("_"):
            out.append(n)
    return sorted(out)


def main() -> None:
    kwargs = _from_pretrained_kwargs()
    auto = {
        "AutoModelForCausalLM": modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        "AutoModelForImageTextToText": modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    }
    result = {
        "transformers": transformers.__version__,
        "names": {n: _has(n) for n in NAMES},
        "from_pretrained_kwargs": kwargs,
        "from_pretrained_kwargs_of_interest": {k: k in kwargs for k in KWARGS_OF_INTEREST},
        "auto_mappings": {
            auto_cls: {mt: mapping.get(mt) for mt in MODEL_TYPES}
            for auto_cls, mapping in auto.items()
        },
        "source": "PreTrainedModel.from_pretrained in "
        + inspect.getsourcefile(PreTrainedModel).split("site-packages/")[-1],
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
