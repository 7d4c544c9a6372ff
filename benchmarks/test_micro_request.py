"""Micro-benchmarks of the per-request path (pytest-benchmark).

    pytest benchmarks/test_micro_request.py --benchmark-only

`test_h11_cycle` is the floor an h11 server pays: parse a GET and serialize a
13-byte response with h11 alone. `test_server_cycle` is mpmserver's whole
per-request path for a keep-alive request, on a real socket pair, run by the
production code itself: the listener's head check (protocol.take_head, with
the head rules of the configuration), then the worker's `Worker.serve`
(h11 with its head limit, request.RequestCycle: environ, the app,
start_response, head serialization, the scoreboard, one send; then the
connection given back through the hand-off), then the client's read. Not in
it: the loop's recv, the hand-off's push and take, and the loop's parking
of the connection given back (benchmarks/test_micro_connection.py times
those). Issue 8 asks it to stay under 1.5x the h11 floor.
`test_server_cycle_post10k` is the same for compare.py's post10k: a 10 KB
body that came with its head, read through wsgi.input and echoed.
"""

import socket

import h11
import pytest

from benchmarks.apps import POST_10K, echo
from mpmserver import config as configmod
from mpmserver.child.connection import PARKED, QUEUED, READING_HEAD, Connection, advance
from mpmserver.child.handoff import Handoff
from mpmserver.child.worker import Worker
from mpmserver.http import protocol
from mpmserver.http.outcome import KEEP
from mpmserver.http.request import ChildContext
from mpmserver.http.response import Response
from mpmserver.http.spool import SpoolLimits
from mpmserver.http.spoolfile import Spooler
from mpmserver.http.wsgi import base_environ, build_environ
from mpmserver.logs import ErrorLog, ErrorStream
from mpmserver.scoreboard import Scoreboard

REQUEST = (b"GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
           b"Accept: text/plain,text/html;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n"
           b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n")
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "13")]


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
    rules = protocol.HeadRules.from_config(configmod.from_kwargs())
    benchmark(protocol.check_head, REQUEST, rules.line, rules.fields, rules.field_size)


def test_build_environ(benchmark):
    c = h11.Connection(h11.SERVER)
    c.receive_data(REQUEST)
    req = c.next_event()
    base = base_environ("localhost", 8080, None)
    env = benchmark(build_environ, base, req.method, req.target, req.http_version, req.headers,
                    "127.0.0.1", 40000)
    assert env["PATH_INFO"] == "/plaintext"


def _context(cfg, app=hello):
    """The child's context, as child.py builds it (the head limit and the spooler too)."""
    error_log = ErrorLog(None, "error")
    return ChildContext(cfg, app, base_environ("localhost", 8080, ErrorStream(error_log)), error_log,
                        head_limit=protocol.max_head_size(cfg),
                        spooler=Spooler(SpoolLimits.from_config(cfg)) if cfg.response_spool else None)


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
def worker_on_socketpair():
    """A worker (not started: the benchmark calls its serve()) whose hand-off
    gives connections back at once, and a socket pair: the server's end,
    the client's end. MaxKeepAliveRequests 0, as compare.py runs the server:
    the connection serves every round, never closed for its count."""
    cfg = configmod.from_kwargs(threads_per_child=1, max_keep_alive_requests=0)
    sb = Scoreboard.create(1, 1)
    handoff = Handoff()
    given_back = []
    # The loop's side, run at once: what the worker gives back.
    handoff.attach_loop(lambda fn: fn(), lambda conn, outcome, detail: given_back.append(outcome),
                        lambda: None)
    worker = Worker(_context(cfg), handoff, sb.worker(0, 0), 0, 0)
    a, b = socket.socketpair()
    yield worker, a, b, given_back
    a.close()
    b.close()
    sb.close()


def server_cycle(worker, sock, peer, given_back, request=REQUEST):
    """One request of a keep-alive connection: the listener's head check,
    the worker's serve(), the client's read. Returns what the worker gave
    the connection back with."""
    conn = Connection(sock, "127.0.0.1", 40000, 8080)
    rules = protocol.HeadRules.from_config(worker.ctx.config)  # the listener's (reading.py)
    take_head = protocol.take_head
    serve = worker.serve

    def one():
        # The listener: the head checked where it arrived, then dispatched.
        conn.buf, _, flags, conn.blank_lines = take_head(request, conn.blank_lines, rules)
        conn.must_close = bool(flags)
        advance(conn, QUEUED)
        serve(conn)  # the first round makes the socket non-blocking, as a worker does once
        peer.recv(65536)  # the client reads the response (one syscall, as a real one would)
        # The loop parks the connection; its next request wakes it.
        advance(conn, PARKED)
        advance(conn, READING_HEAD)
        return given_back.pop()
    return one


def test_server_cycle(benchmark, worker_on_socketpair):
    assert benchmark(server_cycle(*worker_on_socketpair)) == KEEP


def test_server_cycle_post10k(benchmark, worker_on_socketpair):
    """compare.py's post10k: a 10 KB body that came with its head (the
    listener reads both), read by the echo app and sent back."""
    worker = worker_on_socketpair[0]
    worker.ctx.app = echo
    assert benchmark(server_cycle(*worker_on_socketpair, request=POST_10K)) == KEEP


def test_server_cycle_access_log(benchmark, worker_on_socketpair, tmp_path):
    """The same cycle with a combined access log written to a file
    (issue 8: at most 10% slower than without)."""
    from mpmserver.logs import COMBINED, AccessLog

    ctx = worker_on_socketpair[0].ctx
    ctx.access_log = AccessLog(str(tmp_path / "access.log"), COMBINED)
    assert benchmark(server_cycle(*worker_on_socketpair)) == KEEP
    ctx.access_log.close()
    assert (tmp_path / "access.log").read_text().count('"GET /plaintext HTTP/1.1" 200 13') > 10
