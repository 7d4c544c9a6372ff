"""Per-response framing costs: the Date header (formatted once a second, read per response).

Run: python -m pytest benchmarks/test_micro_framing.py --benchmark-only -q -p no:cacheprovider
"""

from __future__ import annotations

from mpmserver.http.framing import http_date


def test_http_date(benchmark):
    value = benchmark(http_date)
    assert value.endswith(b" GMT")
