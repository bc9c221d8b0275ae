"""One short timed generation against a running runtime, for `qwenfit verify --bench`.

Why: the decode-speed and time-to-first-token estimates are checked on the user's own machine
with the runtime's own timers where it has them: llama-server's `/completion` returns
`timings` (`prompt_ms`, `predicted_per_second`; tools/server/README.md), Ollama's
`/api/generate` returns `prompt_eval_duration` / `eval_count` / `eval_duration` in ns
(https://docs.ollama.com/api/generate); for vLLM's `/v1/completions` the stream is timed here.
"""

from __future__ import annotations

import json
import time
import urllib.request

from pydantic import BaseModel, ConfigDict

from qwenfit.adapters import LLAMACPP, OLLAMA
from qwenfit.verify.observe import Observed, Unreachable, fetch_json

PROMPT = "Write a short paragraph about the history of the bicycle. " * 8
TOKENS = 32


class BenchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: int
    tokens_per_second: float | None
    time_to_first_token_s: float | None
    source: str


def time_generation(obs: Observed, tokens: int = TOKENS, timeout: float = 300.0) -> BenchResult:
    if obs.runtime == LLAMACPP:
        r = fetch_json(
            f"{obs.url}/completion",
            {"prompt": PROMPT, "n_predict": tokens, "cache_prompt": False, "ignore_eos": True},
            timeout,
        )
        t = r.get("timings") or {}
        return BenchResult(
            tokens=int(t.get("predicted_n") or tokens),
            tokens_per_second=t.get("predicted_per_second"),
            time_to_first_token_s=(t["prompt_ms"] / 1000) if t.get("prompt_ms") else None,
            source="llama-server /completion timings",
        )
    if obs.runtime == OLLAMA:
        r = fetch_json(
            f"{obs.url}/api/generate",
            {
                "model": obs.model_ref,
                "prompt": PROMPT,
                "stream": False,
                "options": {"num_predict": tokens},
            },
            timeout,
        )
        n, dur = r.get("eval_count"), r.get("eval_duration")
        prompt = r.get("prompt_eval_duration")
        return BenchResult(
            tokens=int(n or 0),
            tokens_per_second=(n / (dur / 1e9)) if n and dur else None,
            time_to_first_token_s=(prompt / 1e9) if prompt else None,
            source="Ollama /api/generate durations",
        )
    return _vllm_stream(obs, tokens, timeout)


def _vllm_stream(obs: Observed, tokens: int, timeout: float) -> BenchResult:
    body = {
        "model": obs.model_ref,
        "prompt": PROMPT,
        "max_tokens": tokens,
        "stream": True,
        "ignore_eos": True,
    }
    req = urllib.request.Request(
        f"{obs.url}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    t0 = time.perf_counter()
    first = last = None
    chunks = 0
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            for raw in r:
                line = raw.decode(errors="replace").strip()
                if not line.startswith("data:") or line.endswith("[DONE]"):
                    continue
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
                chunks += 1
    except OSError as e:
        raise Unreachable(f"{obs.url}/v1/completions did not answer: {e}") from None
    tps = (chunks - 1) / (last - first) if first is not None and last and last > first else None
    return BenchResult(
        tokens=chunks,
        tokens_per_second=tps,
        time_to_first_token_s=(first - t0) if first is not None else None,
        source="vLLM /v1/completions stream, timed here",
    )
