"""Options and fixtures for the end-to-end workloads.

Run:  python -m pytest benchmarks/test_workloads.py --benchmark-json=out.json
      python -m pytest benchmarks/test_workloads.py --benchmark-compare
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mpmserver workloads")
    group.addoption("--workload-seconds", type=float, default=5.0,
                    help="measured seconds per end-to-end workload (default 5)")
    group.addoption("--workload-warmup", type=float, default=1.0,
                    help="unmeasured seconds before each workload (default 1)")


@pytest.fixture(scope="session")
def workload_seconds(request: pytest.FixtureRequest) -> float:
    return request.config.getoption("--workload-seconds")


@pytest.fixture(scope="session")
def workload_warmup(request: pytest.FixtureRequest) -> float:
    return request.config.getoption("--workload-warmup")


@pytest.fixture(scope="session")
def workload_server():
    """mpmserver serving benchmarks.apps:app, 2 children x 16 threads."""
    from mpmserver.bench.workloads import start_server

    srv = start_server()
    try:
        yield srv
    finally:
        srv.stop()
