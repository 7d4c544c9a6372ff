"""Issue 4 over real sockets: Timeout, KeepAliveTimeout, MaxKeepAliveRequests.

The server runs with Timeout 2 s. Tests assert lower bounds on how long the
server waited (it must not cut a client early) and generous upper bounds
(deadlines), never tight timings.
"""

from __future__ import annotations

import select
import socket
import time

import pytest

from tests.support.hostile import (
    H,
    assert_healthy,
    assert_refused,
    start,
    start_module_server,
    workers_all_idle,
)
from tests.support.server import read_response, wait_for

TIMEOUT = 2.0


def read_until_close(c: socket.socket, deadline: float = 15.0) -> bytes:
    """Everything until EOF or reset; fails the test if the server never closes."""
    c.settimeout(deadline)
    chunks = []
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            chunks.append(d)
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server did not close the connection within {deadline}s") from None
    return b"".join(chunks)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    # The worker's own timeouts: a body the app reads from the socket (a
    # prefix excluded from RequestBodySpool) and a response the worker writes
    # itself (ResponseSpool off). The loop's spooled paths have theirs in
    # test_spooling.py and test_write_completion.py.
    s = start_module_server(tmp_path_factory, "--keep-alive-timeout", "1", "--max-keep-alive-requests", "3",
                            "--request-body-spool-exclude", "/read", "--response-spool", "0")
    yield s
    s.stop()


def test_request_head_sent_too_slowly_gets_408(srv):
    # Slowloris: a byte every 0.2 s keeps each read short, but the head as a
    # whole takes longer than Timeout.
    head = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 200
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        t0 = time.monotonic()
        for i in range(len(head)):
            if select.select([c], [], [], 0.2)[0]:
                break
            c.sendall(head[i:i + 1])
        else:
            raise AssertionError("no 408 after the whole slow head was sent")
        elapsed = time.monotonic() - t0
        resp = read_until_close(c)
    body = assert_refused(resp, 408)
    assert "Timeout" in body
    assert elapsed >= TIMEOUT * 0.7, f"refused after {elapsed:.2f}s, before Timeout"
    assert_healthy(srv)


def test_connection_that_sends_nothing_is_closed_without_a_response(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        t0 = time.monotonic()
        assert read_until_close(c) == b""
        assert time.monotonic() - t0 >= TIMEOUT * 0.7


def test_stalled_request_body_is_an_oserror_in_the_app_and_the_connection_closes(srv):
    # A body larger than RequestBodyBuffer (64 KiB) is read by the worker,
    # through the app's wsgi.input.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall(b"POST /read?stall HTTP/1.1\r\n" + H + b"Content-Length: 100000\r\n\r\n" + b"b" * 10)
        t0 = time.monotonic()
        read_until_close(c)
        elapsed = time.monotonic() - t0
    line = wait_for(lambda: [ln for ln in srv.stderr.splitlines() if "HOSTILE-APP stall" in ln],
                    10, what="the app's report of the failed read")[0]
    assert "ClientDisconnected oserror=True" in line, line
    assert elapsed >= TIMEOUT * 0.7
    assert_healthy(srv)


def test_stalled_small_body_gets_408_from_the_listener_and_never_reaches_the_app(srv):
    # A body up to RequestBodyBuffer is read by the event loop before a worker
    # sees the request: stalling it costs no thread, and Timeout ends it.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall(b"POST /read?small-stall HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n" + b"b" * 10)
        t0 = time.monotonic()
        resp = read_until_close(c)
        elapsed = time.monotonic() - t0
    assert resp.startswith(b"HTTP/1.1 408 "), resp[:100]
    assert b"request body not received within Timeout" in resp
    assert elapsed >= TIMEOUT * 0.7
    assert "HOSTILE-APP small-stall" not in srv.stderr
    assert_healthy(srv)


def test_client_that_stops_reading_the_response_is_dropped(srv):
    # 64 MiB response, a client that reads none of it: each blocked write
    # gives up after Timeout, and the worker is free again.
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(10)
    try:
        c.connect(("127.0.0.1", srv.port))
        c.sendall(b"GET /big HTTP/1.1\r\n" + H + b"\r\n")
        # The worker is busy writing, then blocked ...
        wait_for(lambda: not workers_all_idle(srv.scoreboard_path), 10, 0.01, "a worker to be busy")
        # ... then dropped after Timeout, while this client still holds its socket.
        wait_for(lambda: workers_all_idle(srv.scoreboard_path), 20, 0.05,
                 "the worker blocked on a non-reading client to be idle again")
        received = len(read_until_close(c, 30))
        assert received < 64 * 2**20, "the whole response arrived: the client was not dropped"
    finally:
        c.close()
    assert_healthy(srv)


def test_keep_alive_timeout_closes_an_idle_connection(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall(b"GET /hello HTTP/1.1\r\n" + H + b"\r\n")
        status, headers, body, rest = read_response(c)
        assert (status, body, rest) == (200, b"hello", b"")
        assert "close" not in headers.get("connection", "")
        t0 = time.monotonic()
        assert read_until_close(c) == b""  # closed silently, no 408
        assert time.monotonic() - t0 >= 0.5  # KeepAliveTimeout 1


def test_keep_alive_connection_is_reused_within_keep_alive_timeout(server_factory, tmp_path):
    s = start(server_factory, tmp_path, "--keep-alive-timeout", "10")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        for _ in range(3):
            c.sendall(b"GET /hello HTTP/1.1\r\n" + H + b"\r\n")
            assert read_response(c)[0] == 200
            time.sleep(0.3)  # idle, but far below KeepAliveTimeout


def test_max_keep_alive_requests_closes_after_n_with_connection_close(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        buf = b""
        for i in range(1, 4):
            c.sendall(b"GET /hello HTTP/1.1\r\n" + H + b"\r\n")
            status, headers, body, buf = read_response(c, buf)
            assert (status, body) == (200, b"hello")
            last = i == 3
            assert ("close" in headers.get("connection", "").lower()) == last, (i, headers)
        assert buf == b""
        assert read_until_close(c, 10) == b""


def test_pipelined_requests_past_max_keep_alive_requests_are_not_answered(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall((b"GET /hello HTTP/1.1\r\n" + H + b"\r\n") * 5)
        resp = read_until_close(c)
    assert resp.count(b"HTTP/1.1 200 OK") == 3
