"""Micro-benchmarks of the per-request path (pytest-benchmark).

    pytest benchmarks/test_micro_request.py --benchmark-only

`test_h11_cycle` is the floor an h11 server pays: parse a GET and serialize a
13-byte response with h11 alone. `test_server_cycle` is mpmserver's whole
per-request path in a worker (request.RequestCycle) (h11 parse, head checks, environ, the app,
start_response, head serialization, scoreboard, one send) on a real socket
pair; issue 8 asks it to stay under 1.5x the h11 floor.
`test_server_cycle_post10k` is the same for compare.py's post10k: a 10 KB
body read through wsgi.input and echoed.
"""

import socket

import h11
import pytest

from benchmarks.apps import echo
from mpmserver import config as configmod
from mpmserver.child.connection import Connection
from mpmserver.child.handoff import Handoff
from mpmserver.http import protocol
from mpmserver.http.outcome import KEEP
from mpmserver.http.request import ChildContext, RequestCycle
from mpmserver.http.response import Channel, Response
from mpmserver.http.wsgi import base_environ, build_environ
from mpmserver.logs import ErrorLog, ErrorStream
from mpmserver.scoreboard import Scoreboard

REQUEST = (b"GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
           b"Accept: text/plain,text/html;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n"
           b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n")
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "13")]
# What wrk sends for compare.py's post10k.
POST_10K = (b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 10240\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 10240)


def hello(environ, start_response):
    start_response("200 OK", HEADERS)
    return [b"Hello, World!"]


def test_h11_cycle(benchmark):
    def cycle():
        c = h11.Connection(h11.SERVER)
        c.receive_data(REQUEST)
        c.next_event()
        c.next_event()
        out = c.send(h11.Response(status_code=200, headers=[(b"content-type", b"text/plain"),
                                                             (b"content-length", b"13")]))
        out += c.send(h11.Data(data=b"Hello, World!"))
        out += c.send(h11.EndOfMessage())
        return out
    assert benchmark(cycle).endswith(b"Hello, World!")


def test_h11_parse_only(benchmark):
    def parse():
        c = h11.Connection(h11.SERVER)
        c.receive_data(REQUEST)
        return c.next_event(), c.next_event()
    benchmark(parse)


def test_check_head(benchmark):
    benchmark(protocol.check_head, REQUEST, 8190, 100, 8190)


def test_build_environ(benchmark):
    c = h11.Connection(h11.SERVER)
    c.receive_data(REQUEST)
    req = c.next_event()
    base = base_environ("localhost", 8080, None)
    env = benchmark(build_environ, base, req.method, req.target, req.http_version, req.headers,
                    "127.0.0.1", 40000)
    assert env["PATH_INFO"] == "/plaintext"


def _context(cfg, app=hello):
    error_log = ErrorLog(None, "error")
    return ChildContext(cfg, app, base_environ("localhost", 8080, ErrorStream(error_log)), error_log)


def test_start_response_and_head(benchmark):
    error_log = ErrorLog(None, "error")
    h = h11.Connection(h11.SERVER)
    h.receive_data(REQUEST)
    h.next_event()

    def respond():
        r = Response(h, None, error_log, False, False, True, b"GET / HTTP/1.1")
        r.start_response("200 OK", HEADERS)
        return r.head_bytes() + r.body_bytes(b"Hello, World!")
    assert benchmark(respond).endswith(b"Hello, World!")


@pytest.fixture
def cycle_on_socketpair():
    cfg = configmod.from_kwargs(threads_per_child=1)
    sb = Scoreboard.create(1, 1)
    cycle = RequestCycle(_context(cfg), sb.worker(0, 0), Handoff())
    a, b = socket.socketpair()
    a.setblocking(False)  # as a worker keeps it (its Channel waits up to Timeout)
    yield cycle, a, b
    a.close()
    b.close()
    sb.close()


def server_cycle(cycle, sock, peer, request=REQUEST):
    """One whole request in a worker: checks, h11, app, response, the client's read."""
    conn = Connection(sock, "127.0.0.1", 40000, 8080)
    channel = Channel(sock, 5.0)  # made once per connection by the worker
    cfg = cycle.ctx.config
    head = request[:request.index(b"\r\n\r\n") + 4]

    def one():
        protocol.check_head(head, cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size)
        h = h11.Connection(h11.SERVER)
        h.receive_data(request)
        outcome = cycle.run(conn, h, channel)
        peer.recv(65536)  # the client reads the response (one syscall, as a real one would)
        return outcome
    return one


def test_server_cycle(benchmark, cycle_on_socketpair):
    assert benchmark(server_cycle(*cycle_on_socketpair)) == KEEP


def test_server_cycle_post10k(benchmark, cycle_on_socketpair):
    """compare.py's post10k in a worker: a 10 KB body that came with its head
    (the listener reads both), read by the echo app and sent back."""
    cycle = cycle_on_socketpair[0]
    cycle.ctx.app = echo
    assert benchmark(server_cycle(*cycle_on_socketpair, request=POST_10K)) == KEEP


def test_server_cycle_access_log(benchmark, cycle_on_socketpair, tmp_path):
    """The same cycle with a combined access log written to a file
    (issue 8: at most 10% slower than without)."""
    from mpmserver.logs import COMBINED, AccessLog

    cycle = cycle_on_socketpair[0]
    cycle.ctx.access_log = AccessLog(str(tmp_path / "access.log"), COMBINED)
    assert benchmark(server_cycle(*cycle_on_socketpair)) == KEEP
    cycle.ctx.access_log.close()
    assert (tmp_path / "access.log").read_text().count('"GET /plaintext HTTP/1.1" 200 13') > 10
