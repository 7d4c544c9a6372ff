"""GracefulStopDrain and HealthPath: a graceful stop that lets a load balancer notice first."""

from __future__ import annotations

import signal
import socket
import time

from mpmserver.modules.health import health_answer, health_app
from tests.support.client import get
from tests.support.server import read_response, wait_for


def test_health_answer_and_the_app_is_never_reached():
    assert health_answer(None) == ("200 OK", b"ok\n")
    assert health_answer("draining") == ("503 Service Unavailable", b"draining\n")
    reason = [None]
    calls = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"app"]

    wrapped = health_app(app, "/healthz", lambda: reason[0])
    got = []
    assert wrapped({"PATH_INFO": "/healthz", "REQUEST_METHOD": "OPTIONS"},
                   lambda s, h: got.append(s)) == [b"ok\n"]
    reason[0] = "stopping"
    assert wrapped({"PATH_INFO": "/healthz", "REQUEST_METHOD": "HEAD"}, lambda s, h: got.append(s)) == []
    assert got == ["200 OK", "503 Service Unavailable"] and calls == []
    assert wrapped({"PATH_INFO": "/other", "REQUEST_METHOD": "GET"}, lambda s, h: None) == [b"app"]


def test_graceful_stop_drains_while_health_says_503_then_stops(server_factory):
    srv = server_factory("-w", "2", "--threads", "2", "--health-path", "/healthz",
                         "--graceful-stop-drain", "2").start()
    assert get(srv.port, "/healthz") == (200, b"ok\n")
    srv.signal(signal.SIGWINCH)
    began = time.monotonic()
    wait_for(lambda: get(srv.port, "/healthz")[0] == 503, 5, what="HealthPath to answer 503")
    # Still accepting new connections, on every child, while the balancer notices.
    assert get(srv.port, "/healthz") == (503, b"draining\n")
    assert all(get(srv.port, "/hello") == (200, b"Hello, World!") for _ in range(6))
    assert srv.proc.poll() is None
    assert srv.wait_exit(15) == 0
    assert time.monotonic() - began >= 1.9
    assert "draining for 2 s (GracefulStopDrain)" in srv.stderr
    assert "drain over (GracefulStopDrain), shutting down gracefully" in srv.stderr


def keep_alive_get(s: socket.socket) -> tuple[int, dict]:
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, _, _ = read_response(s)
    return status, headers


def test_keep_alive_responses_say_close_while_draining(server_factory):
    """A balancer's pooled connections leave a draining server: each answer
    during the drain closes its connection, and the next one opens elsewhere."""
    srv = server_factory("-w", "1", "--threads", "2", "--health-path", "/healthz",
                         "--graceful-stop-drain", "30").start()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        for _ in range(3):
            status, headers = keep_alive_get(s)
            assert status == 200 and "close" not in headers.get("connection", "")
    srv.signal(signal.SIGWINCH)
    wait_for(lambda: get(srv.port, "/healthz")[0] == 503, 5, what="HealthPath to answer 503")

    def answered_with_close() -> bool:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            status, headers = keep_alive_get(s)
            assert status == 200
            if headers.get("connection") != "close":
                return False
            assert s.recv(1) == b""  # and the server closed it
            return True
    wait_for(answered_with_close, 5, 0.05, "a keep-alive response with Connection: close during the drain")
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(15) == 0


def test_term_during_the_drain_stops_now_and_restarts_are_refused(server_factory):
    srv = server_factory("-w", "1", "--threads", "2", "--health-path", "/healthz",
                         "--graceful-stop-drain", "60").start()
    srv.signal(signal.SIGWINCH)
    wait_for(lambda: get(srv.port, "/healthz")[0] == 503, 5, what="HealthPath to answer 503")
    children = srv.children()
    srv.signal(signal.SIGUSR1)  # a restart during a drain would undo it: ignored
    wait_for(lambda: "caught SIGUSR1 while draining: ignored" in srv.stderr, 5, what="the log line")
    assert srv.children() == children and get(srv.port, "/healthz")[0] == 503
    began = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(15) == 0
    assert time.monotonic() - began < 10


def test_health_path_is_200_while_serving_without_a_drain(server_factory):
    srv = server_factory("-w", "1", "--threads", "2", "--health-path", "/healthz").start()
    assert get(srv.port, "/healthz") == (200, b"ok\n")
    assert get(srv.port, "/hello") == (200, b"Hello, World!")
