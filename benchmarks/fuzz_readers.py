"""A longer fuzzing run of every reader (issue 17), under an address-space limit.

    python benchmarks/fuzz_readers.py --examples 2000 --memory-mib 3072

Runs each target of tests/fixtures/checkpoints/fuzz_inputs.py for `--examples` hypothesis
examples and prints, per reader, examples per second and the outcomes (a result, or which
QwenfitError). Any other exception, a MemoryError under the limit included, is a failure: the
script prints it and exits 1. The everyday test suite runs it with a handful of examples.
"""

from __future__ import annotations

import argparse
import collections
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "checkpoints"))


def _property(strategy: Any, run: Any, counts: Any, examples: int) -> Any:
    from hypothesis import HealthCheck, given, settings

    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def prop(case: Any) -> None:
        counts[run(case)] += 1

    return prop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="examples per reader")
    parser.add_argument("--memory-mib", type=int, default=3072, help="RLIMIT_AS in MiB (0: none)")
    parser.add_argument("--only", action="append", help="run only this target (repeatable)")
    args = parser.parse_args()
    if args.memory_mib:
        limit = args.memory_mib * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    import fuzz_inputs as fz

    failures = 0
    print(f"{'reader':14} {'examples':>8} {'examples/s':>10}  outcomes")
    for name, (strategy, run) in fz.TARGETS.items():
        if args.only and name not in args.only:
            continue
        counts: collections.Counter[str] = collections.Counter()
        prop = _property(strategy, run, counts, args.examples)
        start = time.perf_counter()
        try:
            prop()
        except Exception:  # the bug this run looks for: print it, go on with the next reader
            failures += 1
            traceback.print_exc()
            counts["FAILED"] += 1
        seconds = time.perf_counter() - start
        n = sum(counts.values())
        shown = ", ".join(f"{k} {v}" for k, v in counts.most_common())
        print(f"{name:14} {n:8d} {n / seconds:10.1f}  {shown}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
