"""Runs inside accelerate's venv: `accelerate estimate-memory`'s own code on local configs.

The command first asks the Hub for model_info (verify_on_hub), then builds
AutoModel.from_config(AutoConfig.from_pretrained(name)) on the meta device and sums the
parameter bytes (accelerate.commands.estimate.gather_data). Offline, the Hub look-up is
replaced by a stand-in that returns what the Hub would (library "transformers", the config's
architectures); model_name is the local folder holding the official config.json.

stdin: {"cases": [{"model", "path"}], "dtypes": [...]}; stdout: per model the rows
[dtype, largest_layer_bytes, total_bytes, training_bytes] that the command prints.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from argparse import Namespace
from types import SimpleNamespace


def main() -> None:
    """Call gather_data per model with the Hub look-up stubbed."""
    import accelerate.commands.estimate as est

    req = json.load(sys.stdin)
    out = []
    for case in req["cases"]:
        with open(f"{case['path']}/config.json", encoding="utf-8") as fh:
            cfg = json.load(fh)
        info = SimpleNamespace(
            library_name="transformers",
            config={"architectures": cfg.get("architectures"), "model_type": cfg.get("model_type")},
        )
        est.verify_on_hub = lambda repo, token=None, _info=info: _info
        args = Namespace(
            model_name=case["path"],
            library_name=None,
            trust_remote_code=False,
            dtypes=req["dtypes"],
        )
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # it prints progress
                rows = est.gather_data(args)
            out.append(
                {
                    **case,
                    "rows": [
                        [
                            r[0],
                            int(r[1][0]) if isinstance(r[1], tuple) else int(r[1]),
                            int(r[2]),
                            {k: int(v) for k, v in r[3].items()}
                            if isinstance(r[3], dict)
                            else r[3],
                        ]
                        for r in rows
                    ],
                    "seconds": time.perf_counter() - start,
                }
            )
        except Exception as exc:  # record whatever the tool raised
            out.append({**case, "error": f"{type(exc).__name__}: {exc}"[:500]})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
