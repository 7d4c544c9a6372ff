"""End-to-end workloads: the real server driven by `mpmserver bench`'s engine.

pytest-benchmark times each run once (the wall time is not the figure to
read); requests/s and latency percentiles are in each benchmark's extra_info,
so --benchmark-json and --benchmark-compare follow them across commits.

    python -m pytest benchmarks/test_workloads.py --workload-seconds 5 --benchmark-json=out.json
"""

from __future__ import annotations

import pytest

from mpmserver.bench.workloads import HOST, WORKLOADS, run_workload


@pytest.mark.parametrize("workload", WORKLOADS, ids=[w.name for w in WORKLOADS])
def test_workload(benchmark, workload_server, workload, workload_seconds, workload_warmup):
    rep = benchmark.pedantic(run_workload, args=(workload, HOST, workload_server.port,
                                                 workload_seconds, workload_warmup),
                             rounds=1, iterations=1)
    lat = rep["latency_ms"]
    benchmark.extra_info.update({
        "requests_per_s": round(rep["requests_per_s"], 1),
        "transfer_bytes_per_s": round(rep["transfer_bytes_per_s"]),
        "p50_ms": lat["p50"], "p90_ms": lat["p90"], "p99_ms": lat["p99"],
        "p99_9_ms": lat["p99.9"], "max_ms": lat["max"],
        "responses": rep["responses"], "errors": rep["errors_total"],
        "connections": workload.connections, "pipeline": workload.pipeline,
        "generator_cpu": rep["generator_cpu"][0],
    })
    if "idle_served" in rep:
        benchmark.extra_info["idle_served"] = rep["idle_served"]
    print(f"\n{workload.name}: {rep['requests_per_s']:.0f} req/s, p50 {lat['p50']:.2f} ms, "
          f"p99 {lat['p99']:.2f} ms, errors {rep['errors_total']}")
    for w in rep["warnings"]:
        print(f"warning: {w}")
    assert rep["requests"] == rep["responses"] + rep["errors_total"]
    assert rep["responses"] > 0, rep["error_examples"]
