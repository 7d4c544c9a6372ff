"""The Child object on its own (no process): what it decides at creation."""

import socket

from mpmserver import config as configmod
from mpmserver.child import Child
from mpmserver.logs import ErrorLog
from mpmserver.scoreboard import Scoreboard


def hello(environ, start_response):
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]


def test_max_connections_per_child_jitter_spreads_the_limits():
    cfg = configmod.from_kwargs(threads_per_child=1, max_connections_per_child=100,
                                max_connections_per_child_jitter=50)
    sb = Scoreboard.create(1, 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        limits = []
        for _ in range(30):
            child = Child(cfg, hello, [sock], sb, 0, 0, ErrorLog(None, "error"))
            limits.append(child.max_connections)
            child.listener.loop.close()
    sb.close()
    assert all(100 <= n <= 150 for n in limits), limits
    # Children do not all recycle at the same connection count.
    assert len(set(limits)) > 5


def test_no_jitter_means_the_exact_limit():
    cfg = configmod.from_kwargs(threads_per_child=1, max_connections_per_child=100)
    sb = Scoreboard.create(1, 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        child = Child(cfg, hello, [sock], sb, 0, 0, ErrorLog(None, "error"))
        child.listener.loop.close()
    sb.close()
    assert child.max_connections == 100
