"""A server started for the listener's tests (both event loops) and the
checks they share (test_listener.py, test_parking.py)."""

import pytest

from mpmserver.scoreboard import Scoreboard
from tests.support.client import closed_by_server, connect  # noqa: F401 (re-exported for the listener tests)
from tests.support.server import wait_for

HELLO = b"Hello, World!"
GET = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(params=["uvloop", "asyncio"])
def start(request, server_factory, tmp_path):
    """start(children, threads, *args) -> (server, scoreboard reader)."""
    attached = []

    def make(children: int, threads: int, *args: str):
        sbfile = str(tmp_path / f"sb{len(attached)}")
        s = server_factory("--event-loop", request.param, "--server-limit", str(children),
                           "--start-servers", str(children), "--threads-per-child", str(threads),
                           "--min-spare-threads", "1", "--max-spare-threads", str(children * threads),
                           "--max-request-workers", str(children * threads),
                           "--scoreboard-file", sbfile, *args).start()
        wait_for(lambda: len(s.children()) == children, what=f"{children} children")
        sb = Scoreboard.attach(sbfile)
        attached.append(sb)
        # The readiness probe's worker may still be finishing: start from rest.
        wait_for(lambda: sb.snapshot().busy_workers == 0, what="every worker idle")
        return s, sb
    yield make
    for sb in attached:
        sb.close(remove=False)


def live(sb):
    return [p for p in sb.snapshot().processes if p.pid]
