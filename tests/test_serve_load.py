"""A bounded load test on loopback: 2,000 requests, 32 at a time, no error
(benchmarks/serve_load.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from serve_support import allow_loopback


@pytest.mark.slow
def test_two_thousand_requests_without_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import serve_load

    allow_loopback(monkeypatch)
    r = serve_load.run(requests=2000, concurrency=32)
    print(
        f"\nserve load: p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
        f"p99 {r['p99_ms']:.1f} ms, {r['throughput']:.0f} requests/s"
    )
    assert r["errors"] == []
    assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"]
