"""How the master reports and handles its children's exits, against the real server.

A child that dies in the middle of a request (the app's os._exit, a signal)
is logged in Apache's words and replaced; the server keeps serving. Only a
child that could not start (exit code 15 before its workers ran) stops the
server (tests/server/test_mpm.py: test_app_failing_at_import_stops_the_server).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest

from tests.apps.mpm_apps import release_path
from tests.support.client import get
from tests.support.load import busy_workers
from tests.support.server import http as raw_http
from tests.support.server import wait_for
from tests.support.timing import timing

EXIT_APP = "tests.apps.exit_apps:app"
SMALL = ("--start-servers", "1", "--threads-per-child", "2", "--min-spare-threads", "1",
         "--max-spare-threads", "8", "--max-request-workers", "4")


def kill_one_child(s, path: str) -> int:
    """The only child dies on a request to ``path``; its pid."""
    [victim] = wait_for(lambda: (k := s.children()) and len(k) == 1 and k, 10, what="one child")
    try:
        reply = raw_http(s.port, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode(), timeout=10)
    except OSError:
        reply = b""
    assert reply == b"", reply  # the connection dies with the child, unanswered
    return victim


def assert_still_serving(s, victim: int) -> None:
    wait_for(lambda: (k := s.children()) and victim not in k, 10, 0.05, "a replacement child")
    assert get(s.port, "/hello") == (200, b"Hello, World!")
    assert s.proc.poll() is None


@pytest.mark.parametrize("code", [3, 15], ids=["exit3", "exit15_childfatal"])
def test_child_exiting_mid_request_is_logged_and_replaced(server_factory, code):
    s = server_factory(*SMALL, app=EXIT_APP).start()  # started: it has answered a request
    victim = kill_one_child(s, f"/exit?code={code}")
    wait_for(lambda: f"child pid {victim} exit status {code}" in s.stderr, 10, 0.05,
             "the exit to be logged")
    assert_still_serving(s, victim)
    # Exit code 15 from a child that was serving is the app's doing, not a
    # child that could not start: the server goes on.
    assert "Fatal error" not in s.stderr and "exiting" not in s.stderr


def test_child_killed_by_a_signal_is_logged_in_apaches_words(server_factory):
    s = server_factory(*SMALL, app=EXIT_APP).start()
    victim = kill_one_child(s, f"/signal?sig={int(signal.SIGSEGV)}")
    wait_for(lambda: f"child pid {victim} exit signal Segmentation fault (11)" in s.stderr, 10, 0.05,
             "the signal to be logged")
    assert_still_serving(s, victim)


def test_children_told_to_stop_are_not_reported(server_factory):
    s = server_factory(*SMALL, app=EXIT_APP).start()
    [old] = wait_for(lambda: (k := s.children()) and len(k) == 1 and k, 10, what="one child")
    s.signal(signal.SIGUSR1)  # graceful restart: the old child exits because it was asked to
    wait_for(lambda: (k := s.children()) and old not in k, 10, 0.05, "the old child to go")
    s.signal(signal.SIGTERM)
    assert s.wait_exit(15) == 0
    assert "exit status" not in s.stderr and "exit signal" not in s.stderr


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_master_sleeps_while_children_finish_a_graceful_stop(server_factory, tmp_path, record_property):
    board = tmp_path / "scoreboard"
    s = server_factory(*SMALL, "--scoreboard-file", str(board), app="tests.apps.mpm_apps:app").start()
    key = uuid.uuid4().hex
    results = []
    held = threading.Thread(target=lambda: results.append(get(s.port, f"/hold?key={key}", 30)),
                            daemon=True)
    held.start()
    try:
        wait_for(lambda: busy_workers(board) >= 1, 10, 0.05, "the held request to start")
        s.signal(signal.SIGWINCH)
        time.sleep(0.3)
        before, t0 = cpu_seconds(s.pid), time.monotonic()
        time.sleep(1.5)  # the window measured, not a wait for a condition
        used, wall = cpu_seconds(s.pid) - before, time.monotonic() - t0
        # Waiting for the held request, the master only wakes to check the
        # stop schedule (a few ms a second): it used to spin on select(0)
        # here, a whole core, and still a third of one on a 2-core machine
        # loaded three times over. A tenth of a core is a spin, not a figure.
        assert used < 0.1 * wall, f"the master used {used:.2f} s of CPU in {wall:.2f} s"
        timing(record_property, "graceful stop: the master's CPU while it waits", used / wall * 1000,
               "ms per s", 200)
        assert s.proc.poll() is None
    finally:
        open(release_path(key), "w").close()
        held.join(20)
        os.unlink(release_path(key))
    assert results and results[0][0] == 200
    assert s.wait_exit(15) == 0
