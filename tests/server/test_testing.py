"""mpmserver.testing.serve: the drop-in test server (issue 6)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mpmserver.scoreboard import SERVER_READY
from mpmserver.testing import AppError, LiveServer, RemoteTraceback, serve
from tests.support.client import get_url
from tests.support.server import ROOT, alive, children_of, wait_for

calls: list[str] = []  # the test double the in-process app writes to


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel by pickle")
        self.lock = threading.Lock()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    calls.append(path)
    if path == "/boom":
        1 / 0
    if path == "/unpicklable":
        raise Unpicklable()
    if path == "/echo":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    else:
        body = f"{path} pid={os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def baseline() -> tuple[set[str], set[str]]:
    """Open descriptors and threads before a server runs. One server first:
    uvloop opens a pipe once per process (libuv's), which is not a leak."""
    serve(app).stop()
    return open_fds(), thread_names()


# -- serving ----------------------------------------------------------------------

def test_in_process_serves_and_shares_the_app_with_the_test():
    calls.clear()
    with serve(app) as server:
        assert server.host == "127.0.0.1" and server.url == f"http://127.0.0.1:{server.port}"
        status, body = get_url(server.url + "/first")
        assert status == 200
        assert body == f"/first pid={os.getpid()}".encode()  # served by the test process itself
        assert calls == ["/first"]  # the app's side effects are visible to the test


def test_processes_mode_serves_from_forked_children():
    with serve(app, processes=2) as server:
        status, body = get_url(server.url + "/x")
        assert status == 200
        pid = int(body.split(b"pid=")[1])
        assert pid != os.getpid()
        snap = server.scoreboard()
        assert {p.pid for p in snap.processes} == set(children_of(snap.master_pid))
        assert pid in {p.pid for p in snap.processes}
        assert snap.processes_alive == 2


def test_app_given_as_module_string_in_both_modes():
    for processes in (0, 1):
        with serve("tests.apps.basic:app", processes=processes) as server:
            assert get_url(server.url + "/hello") == (200, b"Hello, World!")


def test_ready_when_serve_returns():
    # No sleep, no retry: the first request right after serve() is answered,
    # and the scoreboard already shows every process accepting.
    for processes in (0, 2):
        with serve(app, processes=processes, threads_per_child=3) as server:
            snap = server.scoreboard()
            live = [p for p in snap.processes if p.pid]
            assert len(live) == max(1, processes)
            for p in live:
                assert not p.not_accepting
                assert SERVER_READY in [w.status for w in p.workers[:3]]
            with socket.create_connection((server.host, server.port), timeout=5) as s:
                s.sendall(b"GET /now HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                assert s.recv(100).startswith(b"HTTP/1.1 200 ")


def test_directives_are_config_names_and_take_effect():
    with serve(app, threads_per_child=2, keep_alive=False) as server:
        snap = server.scoreboard()
        assert snap.thread_limit == 2
        r = requests.get(server.url + "/a", timeout=10)
        assert r.headers["Connection"] == "close"
        wait_for(lambda: server.scoreboard().total_accesses == 1, 10, what="the access counted")
    with pytest.raises(TypeError, match="threads_per_chid.*did you mean 'threads_per_child'"):
        serve(app, threads_per_chid=2)


def test_max_connections_per_child_recycles_children_in_processes_mode():
    with serve(app, processes=1, max_connections_per_child=2) as server:
        pids = set()
        for _ in range(3):
            status, body = get_url(server.url + "/p")
            assert status == 200
            pids.add(int(body.split(b"pid=")[1]))
        assert len(pids) == 2  # the third connection met a new child


# -- app errors ---------------------------------------------------------------------

def test_app_error_is_answered_500_and_reraised_with_its_traceback():
    with pytest.raises(ZeroDivisionError) as info:
        with serve(app) as server:
            assert get_url(server.url + "/boom")[0] == 500
            assert len(server.errors) == 1  # recorded before the 500 was sent
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "app" in frames  # the original traceback, down to the app's line


def test_app_error_in_a_child_process_is_reraised_in_the_test():
    with pytest.raises(ZeroDivisionError) as info:
        with serve(app, processes=1) as server:
            assert get_url(server.url + "/boom")[0] == 500
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "1 / 0" in cause.tb and "in app" in cause.tb


def test_unpicklable_error_from_a_child_arrives_as_app_error():
    with pytest.raises(AppError, match="Unpicklable: cannot travel by pickle") as info:
        with serve(app, processes=1) as server:
            assert get_url(server.url + "/unpicklable")[0] == 500
    assert "raise Unpicklable()" in info.value.__cause__.tb


def test_several_errors_are_raised_together():
    with pytest.raises(ExceptionGroup) as info:
        with serve(app) as server:
            get_url(server.url + "/boom")
            get_url(server.url + "/unpicklable")
    assert [type(e) for e in info.value.exceptions] == [ZeroDivisionError, Unpicklable]


def test_errors_can_be_inspected_and_acknowledged():
    with serve(app) as server:
        get_url(server.url + "/boom")
        assert [type(e) for e in server.errors] == [ZeroDivisionError]
        server.errors.clear()  # expected: leaving the block raises nothing


def test_raise_app_errors_false_keeps_them_for_inspection():
    with serve(app, processes=1, raise_app_errors=False) as server:
        get_url(server.url + "/boom")
    assert [type(e) for e in server.errors] == [ZeroDivisionError]


def test_app_error_is_chained_to_the_failure_it_caused():
    with pytest.raises(ZeroDivisionError) as info:
        with serve(app) as server:
            assert get_url(server.url + "/boom")[0] == 200
    assert isinstance(info.value.__context__, AssertionError)


# -- clean exit ---------------------------------------------------------------------------

def test_leaves_nothing_behind_even_when_the_body_raises():
    fds, threads = baseline()
    for processes in (0, 2):
        with pytest.raises(KeyError):
            with serve(app, processes=processes) as server:
                session = requests.Session()  # a keep-alive connection still open at exit
                assert session.get(server.url + "/k", timeout=10).status_code == 200
                raise KeyError("the test failed")
        session.close()
        assert thread_names() == threads
        assert children_of(os.getpid()) == []
        assert open_fds() == fds


def test_no_leak_over_50_start_stop_cycles():
    fds, threads = baseline()
    for i in range(50):
        with serve(app, threads_per_child=2) as server:
            assert get_url(server.url + f"/{i}")[0] == 200
    for _ in range(3):
        with serve(app, processes=1) as server:
            assert get_url(server.url + "/p")[0] == 200
    assert thread_names() == threads
    assert children_of(os.getpid()) == []
    assert open_fds() == fds


def test_stop_does_not_wait_for_a_stalled_client():
    server = serve(app, timeout=60, request_body_spool_exclude=["/echo"])
    try:
        s = socket.create_connection((server.host, server.port), timeout=5)
        # Head complete, body never comes: a worker is blocked reading it (a
        # body over RequestBodyBuffer, on a prefix excluded from spooling, is
        # read by the worker as the app reads it, not by the loop).
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc")
        wait_for(lambda: server.scoreboard().busy_workers == 1, 10, what="a worker reading the body")
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 5
    assert not any(t.name.startswith("mpmserver-") for t in threading.enumerate())
    s.close()


def test_stopped_server_refuses_connections():
    server = serve(app)
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=5)
    assert "stopped" in repr(server)


# -- several at once (as under pytest-xdist) --------------------------------------------------

def test_several_servers_at_once_each_on_its_own_port():
    servers: list[LiveServer] = []
    try:
        with ThreadPoolExecutor(4) as pool:
            servers = list(pool.map(lambda p: serve(app, processes=p), [0, 0, 1, 2]))
        assert len({s.port for s in servers}) == 4
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: get_url(f"{servers[i % 4].url}/n{i}"), range(40)))
        assert all(status == 200 for status, _ in results)
        assert all(body.startswith(f"/n{i} ".encode()) for i, (_, body) in enumerate(results))
    finally:
        for s in servers:
            s.stop()


def test_max_connections_per_child_recycles_in_process_too():
    fds, threads = baseline()
    with serve(app, max_connections_per_child=2, threads_per_child=2) as server:
        session = requests.Session()  # keeps the first child busy finishing
        assert session.get(server.url + "/1", timeout=10).status_code == 200
        for i in range(9):  # each urllib request is a new connection
            assert get_url(server.url + f"/{i}")[0] == 200
        assert session.get(server.url + "/again", timeout=10).status_code == 200
        # Counted after the response is sent: wait for the last one.
        wait_for(lambda: server.scoreboard().total_accesses == 11, 10, what="11 requests counted")
        served_by = [p.slot for p in server.scoreboard().processes if any(w.access_count for w in p.workers)]
        assert len(served_by) >= 2  # a successor child took over
        session.close()
    assert thread_names() == threads
    assert open_fds() == fds


def test_master_stops_when_the_test_process_is_killed():
    script = ("import time; from mpmserver.testing import serve; from tests.apps.basic import app; "
              "s = serve(app, processes=2); snap = s.scoreboard(); "
              "print(snap.master_pid, *[p.pid for p in snap.processes], flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 3 and all(alive(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    wait_for(lambda: not any(alive(p) for p in pids), 20, what="the orphaned master and children to exit")
