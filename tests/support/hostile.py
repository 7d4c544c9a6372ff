"""The hostile-client server (tests/apps/hostile_apps.py): one child of THREADS
workers with a short Timeout and a scoreboard file, and the checks that it is
still healthy; shared by the hostile, timeout, reqtimeout, slow-body, fuzz,
write-completion and privilege tests."""

from __future__ import annotations

from mpmserver.scoreboard import SERVER_DEAD, SERVER_READY, Scoreboard
from tests.support.client import parse
from tests.support.server import Server, http, wait_for

APP = "tests.apps.hostile_apps:app"

THREADS = 4

H = b"Host: t\r\n"


def server_args(scoreboard: str, *extra: str) -> list[str]:
    """One child x THREADS workers, short Timeout, a scoreboard file to read."""
    return ["--start-servers", "1", "--threads-per-child", str(THREADS), "--min-spare-threads", "1",
            "--max-spare-threads", "64", "--max-request-workers", str(THREADS * 2),
            "--timeout", "2", "--scoreboard-file", scoreboard, *extra]


def workers_all_idle(scoreboard_path: str) -> bool:
    """Every worker of every live child is READY: none died, none is stuck."""
    snap = Scoreboard.attach(scoreboard_path).snapshot()
    live = [p for p in snap.processes if p.pid and not p.quiescing]
    if not live:
        return False
    for p in live:
        statuses = [w.status for w in p.workers[:THREADS]]
        if any(st != SERVER_READY for st in statuses):
            return False
        if any(w.status != SERVER_DEAD for w in p.workers[THREADS:]):
            return False
    return True


def assert_healthy(s, timeout: float = 20.0) -> None:
    """A normal request succeeds and every worker is back to idle."""
    status, _, body = parse(http(s.port, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert (status, body) == (200, b"hello")
    wait_for(lambda: workers_all_idle(s.scoreboard_path), timeout, 0.05,
             "every worker to be idle (SERVER_READY) in the scoreboard")


def start_module_server(tmp_path_factory, *extra: str) -> Server:
    tmp = tmp_path_factory.mktemp("hostile")
    sb = str(tmp / "scoreboard")
    s = Server(*server_args(sb, *extra), app=APP, tmp_path=tmp)
    s.scoreboard_path = sb
    return s.start()


def start(server_factory, tmp_path, *extra: str):
    sb = str(tmp_path / "scoreboard")
    s = server_factory(*server_args(sb, *extra), app=APP)
    s.scoreboard_path = sb
    return s.start()


def assert_refused(resp: bytes, status: int) -> str:
    """A short error response with Connection: close, and nothing after it."""
    code, headers, body = parse(resp)
    assert code == status, resp[:300]
    assert headers.get("connection", "").lower() == "close"
    assert int(headers["content-length"]) == len(body) < 300
    assert resp.endswith(body), "bytes after the error response"
    return body.decode()
