"""RequestReadTimeout on a real server: heads and bodies slower than MinRate get a 408, a fast enough upload is served."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.client import parse as parse_response
from tests.support.hostile import H, assert_healthy, start_module_server
from tests.support.server import wait_for

SPEC = "header=2-3,MinRate=200 body=2,MinRate=200"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    # Timeout 30: here RequestReadTimeout must be what ends a slow request.
    # /read is excluded from spooling: its large bodies reach the app as they arrive.
    s = start_module_server(tmp_path_factory, "--timeout", "30", "--request-read-timeout", SPEC,
                            "--request-body-spool-exclude", "/read")
    yield s
    s.stop()


def trickle(port: int, head: bytes, body: bytes, rate: float, limit: float = 15.0) -> tuple[bytes, float]:
    """Send head at once, then body at `rate` bytes a second (10 pieces a
    second); stop when the server answers. (response, seconds)."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as c:
        t0 = time.monotonic()
        c.sendall(head)
        piece = max(1, int(rate / 10))
        sent = 0
        c.setblocking(False)
        while time.monotonic() - t0 < limit:
            try:
                data = c.recv(65536)
            except BlockingIOError:
                data = None
            if data:
                c.setblocking(True)
                rest = b""
                try:
                    while more := c.recv(65536):
                        rest += more
                except OSError:
                    pass
                return data + rest, time.monotonic() - t0
            if data == b"":
                return b"", time.monotonic() - t0
            if sent < len(body):
                try:
                    c.send(body[sent:sent + piece])
                    sent += piece
                except OSError:
                    pass
            time.sleep(0.1)
    raise AssertionError("no answer")


def test_a_head_slower_than_min_rate_gets_408_before_timeout(srv):
    head = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: "
    resp, elapsed = trickle(srv.port, b"", head + b"s" * 2000, rate=50)
    assert resp.startswith(b"HTTP/1.1 408 "), resp[:100]
    assert b"RequestReadTimeout" in resp
    # header=2-3: at least 2 s, at most 3 s; the bound that tells the rule
    # apart is Timeout (30 s), so a loaded machine's scheduling cannot fail it.
    assert 1.5 <= elapsed < 15, elapsed
    assert_healthy(srv)


def test_a_small_body_slower_than_min_rate_gets_408_from_the_listener(srv):
    head = b"POST /read?rt-small HTTP/1.1\r\n" + H + b"Content-Length: 4000\r\n\r\n"
    resp, elapsed = trickle(srv.port, head, b"b" * 4000, rate=100)
    assert resp.startswith(b"HTTP/1.1 408 "), resp[:100]
    assert b"request body" in resp
    assert "HOSTILE-APP rt-small" not in srv.stderr  # the app never saw it
    assert_healthy(srv)


def test_a_large_spooled_body_slower_than_min_rate_gets_408_from_the_listener(srv):
    # Over RequestBodyBuffer: spooled by the listener (RequestBodySpool), under the same rate.
    head = b"POST /spooled HTTP/1.1\r\n" + H + b"Content-Length: 200000\r\n\r\n"
    resp, elapsed = trickle(srv.port, head, b"b" * 200000, rate=100)
    assert resp.startswith(b"HTTP/1.1 408 "), resp[:100]
    assert b"request body" in resp
    assert_healthy(srv)


def test_a_large_body_slower_than_min_rate_is_an_oserror_in_the_app_and_a_408(srv):
    # Over RequestBodyBuffer and not spooled (RequestBodySpoolExclude): the
    # worker reads it, through the app's wsgi.input.
    head = b"POST /read?rt-large HTTP/1.1\r\n" + H + b"Content-Length: 200000\r\n\r\n"
    resp, elapsed = trickle(srv.port, head, b"b" * 200000, rate=100)
    assert resp.startswith(b"HTTP/1.1 408 "), resp[:100]
    line = wait_for(lambda: [ln for ln in srv.stderr.splitlines() if "HOSTILE-APP rt-large" in ln], 10,
                    what="the app's report")[0]
    assert "BodyTooSlow oserror=True" in line
    assert_healthy(srv)


def test_a_fast_enough_upload_is_served(srv):
    head = b"POST /read?rt-ok HTTP/1.1\r\n" + H + b"Content-Length: 3000\r\n\r\n"
    resp, _ = trickle(srv.port, head, b"b" * 3000, rate=2000)
    assert parse_response(resp)[:3:2] == (200, b"read 3000")
