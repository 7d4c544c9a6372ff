"""The master as PID 1 (a container without an init): orphans re-parented to
it are reaped, not left as zombies, and ignored (they are not its children).

The master runs under `unshare --pid --fork`, so that it is PID 1 of a new
PID namespace, as in a container; skipped where namespaces cannot be made.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from tests.support.server import Server, alive, children_of, http, proc_title, wait_for

UNSHARE = shutil.which("unshare")


def _can_unshare() -> str | None:
    """None, or why a PID namespace cannot be made here."""
    if UNSHARE is None:
        return "unshare (util-linux) is not installed"
    try:
        done = subprocess.run([UNSHARE, "--pid", "--fork", "--kill-child", "true"], capture_output=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare --pid --fork failed: {exc}"
    if done.returncode != 0:
        return f"unshare --pid --fork failed here (needs root or user namespaces): {done.stderr.decode().strip()}"
    return None


WHY_NOT = _can_unshare()

pytestmark = [pytest.mark.external, pytest.mark.root]  # unshare --pid: root (or user namespaces)


class Pid1Server(Server):
    def command(self) -> list[str]:
        return [UNSHARE, "--pid", "--fork", "--kill-child", *super().command()]


def ns_pid(pid: int) -> int:
    """The pid of ``pid`` inside its own namespace (the last NSpid field)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {pid}")


@pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
def test_master_as_pid_1_reaps_adopted_orphans_and_ignores_them(tmp_path):
    srv = Pid1Server("-w", "1", "--threads", "2", app="tests.apps.orphan_app:app",
                     tmp_path=tmp_path)
    try:
        srv.start()
        [master] = wait_for(lambda: children_of(srv.pid), 10, what="the master under unshare")
        assert ns_pid(master) == 1
        served = set(children_of(master))
        assert b"left an orphan" in http(srv.port, b"GET /orphan?2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")

        # The shell exited; its `sleep` is now the master's, though the master never forked it.
        def orphan():
            return [p for p in children_of(master) if p not in served and proc_title(p).startswith("sleep")]
        [sleeper] = wait_for(orphan, 10, what="the orphan re-parented to the master")
        # Once it exits it is reaped at once (SIGCHLD wakes the master): no zombie, gone from /proc.
        wait_for(lambda: not alive(sleeper), 10, what="the orphan to exit")
        wait_for(lambda: not os.path.exists(f"/proc/{sleeper}"), 5, what="the master to reap the orphan")
        # An exit that is not a child's changes nothing: the same child serves, nothing was logged about it.
        assert set(children_of(master)) == served
        assert b"Hello" in http(srv.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert "exited" not in srv.stderr and "crash" not in srv.stderr
        os.kill(master, signal.SIGTERM)  # PID 1 gets no default handlers: the master's own must work
        assert srv.wait_exit(15) in (0, 128 + signal.SIGTERM)
    finally:
        srv.stop()
