"""`mpmserver bench` and wrk agree on requests/s against the same server.

The server is the bottleneck on purpose: each request sleeps 10 ms and there
are fewer connections than threads, so the true rate is set by the server
(about connections / 10 ms) and a generator that loses or miscounts
responses, or mismeasures time, shows up as a gap to wrk.
"""

import statistics

import pytest

from mpmserver.bench.load import LoadConfig, build_request
from mpmserver.bench.runner import run_load
from mpmserver.bench.workloads import HOST, repo_root, start_server
from mpmserver.bench.wrk import run_wrk, wrk_path
from tests.support.timing import timing

pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(wrk_path() is None, reason="wrk is not installed"),
    pytest.mark.skipif(repo_root() is None, reason="needs the checkout's benchmarks/apps.py"),
]


def test_bench_and_wrk_measure_the_same_rate(record_property):
    server = start_server(procs=2, threads=16)
    try:
        url = f"http://{HOST}:{server.port}/sleep"
        cfg = LoadConfig(HOST, server.port, build_request("GET", "/sleep", f"{HOST}:{server.port}",
                                                         [], b"", True),
                         connections=16, duration=2.0, requests=None, warmup=0.3)
        ours, theirs = [], []
        for _ in range(3):  # alternate, so drift hits both alike
            theirs.append(run_wrk(url, 16, 2.0)["requests_per_s"])
            rep = run_load(cfg)
            assert not rep["generator_saturated"]
            ours.append(rep["requests_per_s"])
    finally:
        server.stop()
    assert statistics.median(ours) > 500, (ours, theirs)  # 16 connections at ~10 ms: about 1,500/s
    # Each run against the wrk run just before it: a neighbour's load on this
    # shared machine moves both of a pair alike, and the median pair judges.
    # Half apart is a counting error (a rate off by a factor), not a busy
    # neighbour; how close they are is a figure (10% is the target).
    gap = statistics.median(abs(a - b) / b for a, b in zip(ours, theirs))
    assert gap < 0.5, f"mpmserver bench {ours} vs wrk {theirs}"
    timing(record_property, "mpmserver.bench against wrk: the median gap", gap * 100, "%", 10)
