"""Cost of the scoreboard calls on the per-request path.

Run: python -m pytest -q -p no:cacheprovider -p no:xdist benchmarks/test_micro_scoreboard.py --benchmark-only \
     --benchmark-columns=min,median
"""

import os

import pytest

from mpmserver.scoreboard import SERVER_BUSY_READ, SERVER_READY, Scoreboard


@pytest.fixture(scope="module")
def board():
    sb = Scoreboard.create(16, 64)  # Apache's default ServerLimit x ThreadLimit
    yield sb
    sb.close()


@pytest.fixture
def worker(board):
    w = board.worker(7, 33)
    w.thread_started(os.getpid(), 1, 0)
    w.begin_connection("127.0.0.1:54321")
    return w


def test_set_status(benchmark, worker):
    benchmark(worker.set_status, SERVER_BUSY_READ)


def test_begin_request(benchmark, worker):
    benchmark(worker.begin_request, b"GET /index.html HTTP/1.1")


def test_end_request(benchmark, worker):
    worker.begin_request(b"GET / HTTP/1.1")
    benchmark(worker.end_request, 1234)


def test_per_request(benchmark, worker):
    """What a worker writes for a keep-alive request without a body and
    without an access log (child/worker.py, http/request.py): the
    connection's client (Worker.serve, once per dispatch: a kept-alive
    connection goes back to the listener after each request), W with the
    request line (RequestCycle.run), the counts (end_request), then _ once
    the connection is given back (Worker.run). A body adds R and W per read
    of the socket, an access log L. test_micro_request.py's server_cycle
    pays these inside the real worker."""
    begin_connection, begin, end = worker.begin_connection, worker.begin_request, worker.end_request
    set_status = worker.set_status

    def one_request():
        begin_connection("127.0.0.1")
        begin(b"GET /index.html HTTP/1.1")
        end(1234)
        set_status(SERVER_READY)

    benchmark(one_request)


def test_set_connections(benchmark, board):
    benchmark(board.process(3).set_connections, 10, 4)


def test_snapshot_16x64(benchmark, board):
    """The master takes one per maintenance cycle (once a second)."""
    snap = benchmark(board.snapshot)
    assert len(snap.processes) == 16


def test_snapshot_16x64_all_changed(benchmark, board):
    """Worst case: every worker record changed since the previous snapshot."""
    workers = [board.worker(i, j) for i in range(16) for j in range(64)]
    for w in workers:
        w.thread_started(os.getpid(), 1, 0)

    def touch_all():
        for w in workers:
            w.begin_request(b"GET / HTTP/1.1")
            w.end_request(1)

    benchmark.pedantic(board.snapshot, setup=touch_all, rounds=30)


def test_render_metrics_16x64(benchmark, board):
    """One /metrics page: a snapshot rendered, with a duration histogram per slot."""
    from mpmserver.modules.metrics import render_metrics

    for i in range(16):
        board.process(i).spawned(os.getpid(), 0)
    snap = board.snapshot()
    text = benchmark(render_metrics, snap)
    assert text.count('mpmserver_request_duration_seconds_count{slot=') == 16
