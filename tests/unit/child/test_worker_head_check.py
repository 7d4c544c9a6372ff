"""A worker checks a pipelined head as the listener checks one
(protocol.take_head): the stricter rules win, so a partial head already
certain to be refused is refused by the worker, not given back to wait."""

from __future__ import annotations

import socket

from mpmserver import config as configmod
from mpmserver.child.connection import QUEUED, Connection, advance
from mpmserver.child.handoff import Handoff
from mpmserver.child.worker import Worker
from mpmserver.http import protocol
from mpmserver.http.outcome import KEEP, REFUSE
from mpmserver.http.request import ChildContext
from mpmserver.http.wsgi import base_environ
from mpmserver.logs import ErrorLog, ErrorStream
from mpmserver.scoreboard import Scoreboard

HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"hi"]


def serve(buf: bytes, **directives) -> tuple[list, bytes, Connection]:
    """One worker's serve() of a connection whose buffer is ``buf``: what it
    gave back, and what the client received."""
    cfg = configmod.from_kwargs(threads_per_child=1, **directives)
    error_log = ErrorLog(None, "crit")
    ctx = ChildContext(cfg, hello, base_environ("localhost", 80, ErrorStream(error_log)), error_log,
                       head_limit=protocol.max_head_size(cfg))
    handoff = Handoff()
    returned: list = []
    # The loop's side, run at once: what the worker gives back.
    handoff.attach_loop(lambda fn: fn(), lambda conn, outcome, detail: returned.append((outcome, detail)),
                        lambda: None)
    sb = Scoreboard.create(1, 1)
    client, server = socket.socketpair()
    try:
        client.settimeout(5)
        conn = Connection(server, "127.0.0.1", 40000, 80)
        advance(conn, QUEUED)
        conn.buf = buf
        Worker(ctx, handoff, sb.worker(0, 0), 0, 0).serve(conn)
        server.shutdown(socket.SHUT_WR)  # the worker is done writing: read all it wrote
        received = b""
        while data := client.recv(65536):
            received += data
        return returned, received, conn
    finally:
        client.close()
        server.close()
        sb.close()


def test_a_pipelined_partial_head_over_the_field_limit_is_refused_by_the_worker():
    returned, received, _ = serve(HEAD + b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 200, limit_request_field_size=100)
    assert received.startswith(b"HTTP/1.1 200 ")
    [(outcome, (err, record))] = returned
    assert outcome == REFUSE and err.status == 431 and record is None


def test_a_pipelined_complete_head_is_answered_in_the_worker():
    returned, received, conn = serve(HEAD + HEAD)
    assert received.count(b"HTTP/1.1 200 ") == 2 and conn.requests == 2
    assert returned == [(KEEP, None)]


def test_a_pipelined_partial_head_within_the_limits_is_given_back_to_wait():
    returned, _, conn = serve(HEAD + b"\r\nGET / HT")
    assert [outcome for outcome, _ in returned] == [KEEP]
    assert conn.buf == b"GET / HT" and conn.blank_lines == 1  # the empty line counted, dropped
