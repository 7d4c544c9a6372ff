"""sd_notify from a real server: READY, RELOADING and STOPPING on the NOTIFY_SOCKET."""

from __future__ import annotations

import signal
import time

from tests.support.server import Server
from tests.support.systemd import receive_until


def test_notify_ready_reloading_and_stopping(tmp_path, notify_socket, monkeypatch):
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    srv = Server("-w", "1", "--threads", "2", tmp_path=tmp_path)
    try:
        seen: list[str] = []
        srv.start(wait=False)
        receive_until(sock, "READY=1", seen)
        # READY=1 comes once a child serves, then a STATUS line from the scoreboard.
        status = receive_until(sock, "", [], 5)  # the next datagram
        assert status[-1].startswith("STATUS=1 child, ") and "idle threads" in status[-1]
        srv.wait_ready()
        for sig in (signal.SIGUSR1, signal.SIGHUP):
            seen = []
            srv.signal(sig)
            receive_until(sock, "READY=1", seen)
            reloading = [m for m in seen if "RELOADING=1" in m.split("\n")]
            assert reloading, seen
            usec = int(reloading[0].split("MONOTONIC_USEC=")[1].split("\n")[0])
            assert abs(usec - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 60_000_000
            assert seen.index(reloading[0]) < len(seen) - 1  # READY=1 after RELOADING=1
            srv.wait_ready()
        seen = []
        srv.signal(signal.SIGTERM)
        receive_until(sock, "STOPPING=1", seen)
        assert srv.wait_exit(15) == 0
    finally:
        srv.stop()
