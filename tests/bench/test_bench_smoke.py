"""Every end-to-end workload of benchmarks/ run once for about a second
against the real server: the harness works and the server survives each."""

import pytest

from mpmserver.bench.workloads import (
    HOST,
    WORKLOADS,
    repo_root,
    run_workload,
    start_server,
)

from tests.support.fdlimit import raise_nofile

# The idle connections, the load's, and what pytest and the server hold open.
DESCRIPTORS = max(w.idle_connections + w.connections for w in WORKLOADS) + 256

pytestmark = pytest.mark.skipif(repo_root() is None, reason="needs the checkout's benchmarks/apps.py")


@pytest.fixture(scope="module")
def fd_limit_problem():
    # Before the server starts, so that its children inherit the raised limit.
    return raise_nofile(DESCRIPTORS)


@pytest.fixture(scope="module")
def server(fd_limit_problem):
    srv = start_server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize("workload", WORKLOADS, ids=[w.name for w in WORKLOADS])
def test_workload_runs_clean(server, fd_limit_problem, workload):
    if workload.idle_connections and fd_limit_problem:
        pytest.skip(fd_limit_problem)
    rep = run_workload(workload, HOST, server.port, seconds=1.0, warmup=0.2)
    assert rep["requests"] == rep["responses"] + rep["errors_total"]
    assert rep["errors_total"] == 0, (rep["errors"], rep["error_examples"], server.output())
    assert rep["responses"] > 0
    assert rep["status"] == {"200": rep["responses"]}
    if workload.idle_connections:
        assert rep["idle_served"] == workload.idle_connections
    if workload.path == "/file":
        # Bytes count within the measured window; responses in flight at its
        # end finish after it, so allow one body per connection.
        assert rep["bytes_read"] >= (rep["responses"] - workload.connections) * 1024 * 1024
