"""The binary upgrade's mechanism (USR2, ``-k upgrade``), on both sides.

The old master starts a new one from its own command line with the
listening sockets (upgrade_spawn.py), watches the pipe the new master says "ok" on,
and is taken over (the old master then stops gracefully) or rolls back (writes its
PidFile again and serves on). The new master tells the old one once a child
of its own serves. What the new master is handed, and what the words on the pipe
mean, is upgrade.py's (pure); the state of one upgrade is this module's.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..logs import signal_name
from ..safefiles import PidFile
from . import upgrade
from .listen import own_upgraded_files, takeover_sockets

__all__ = ["BinaryUpgrade"]


@dataclass
class Upgrading:
    """An upgrade under way: the new master, the pipe it says "ok" on, its deadline."""
    pid: int
    ready_r: int
    deadline: float


class BinaryUpgrade:
    def __init__(self, error_log: Any, pid_file: PidFile) -> None:
        self.error_log = error_log
        self.pid_file = pid_file
        # The command a new master starts with (set by the command line;
        # None refuses USR2).
        self.argv: list[str] | None = None
        # Where argv was first run (before Chdir): the new master starts there.
        self.cwd: str | None = None
        self.upgrading: Upgrading | None = None
        self.taken_over = False  # the new master serves; this one stops
        # In a new master: what the old one handed us (its ready pipe is
        # closed once we have told it, or at exit).
        self.inherited: upgrade.Inherited | None = None

    # -- in the new master ------------------------------------------------------------

    def take_inherited(self) -> upgrade.Inherited | None:
        """What an old master handed this one, if it started us. Raises OSError."""
        try:
            self.inherited = upgrade.take_environ(os.environ)
        except ValueError as exc:
            raise OSError(str(exc)) from None
        return self.inherited

    def tell_old_master(self) -> None:
        """Once, when a child serves: say so on the pipe the old master passed."""
        if self.inherited is None or self.inherited.ready_fd < 0:
            return
        fd, self.inherited = self.inherited.ready_fd, None
        own_upgraded_files()
        try:
            os.write(fd, upgrade.ready_message(os.getpid()))
        except OSError as exc:  # it is gone (stopped meanwhile): we serve anyway
            self.error_log.info(f"binary upgrade: cannot tell the old master we serve: {exc}")
        finally:
            os.close(fd)

    def pipes(self) -> list[int]:
        """Descriptors of the upgrade a forked child must not keep."""
        fds = [self.inherited.ready_fd] if self.inherited is not None else []
        if self.upgrading is not None:
            fds.append(self.upgrading.ready_r)
        return [fd for fd in fds if fd >= 0]

    # -- in the old master --------------------------------------------------------------

    def begin(self, sockets: Sequence[socket.socket], agent_fd: int, notify_socket: str | None) -> None:
        """USR2: rename the PidFile to .oldbin, start the new master."""
        if self.upgrading is not None:
            self.error_log.warn(f"caught SIGUSR2 during a binary upgrade (new master pid "
                                f"{self.upgrading.pid}): ignored")
            return
        if self.argv is None:
            self.error_log.warn("caught SIGUSR2: a binary upgrade needs a server started by the mpmserver "
                                "command; ignored")
            return
        from .upgrade_spawn import spawn_new_master

        if self.pid_file.path:
            oldbin = upgrade.oldbin_path(self.pid_file.path)
            if (why := self.pid_file.rename(oldbin)) is not None:
                self.error_log.warn(f"binary upgrade: cannot rename the PidFile to {oldbin}: {why}")
        r, w = os.pipe()
        try:
            pid = spawn_new_master(self.argv, takeover_sockets(sockets), w, agent_fd, notify_socket,
                                   cwd=self.cwd)
        except OSError as exc:
            os.close(r)
            self._failed(f"cannot fork the new master: {exc}")
            return
        finally:
            os.close(w)
        self.upgrading = Upgrading(pid, r, time.monotonic() + upgrade.UPGRADE_TIMEOUT)
        self.error_log.announce(f"caught SIGUSR2: binary upgrade, new master pid {pid} "
                                f"({' '.join(self.argv)}); serving until it does")

    def wait_limit(self, wait: float) -> float:
        """How long the master's loop may sleep: not past the upgrade's deadline."""
        if self.upgrading is None:
            return wait
        return min(wait, self.upgrading.deadline - time.monotonic())

    def check(self, readable: Sequence[Any]) -> int | None:
        """The new master's pid once it serves (taken over now); rolls back
        when none of its children served in time."""
        up = self.upgrading
        if up is None or self.taken_over:
            return None
        if up.ready_r in readable:
            message = os.read(up.ready_r, 64)
            os.close(up.ready_r)
            up.ready_r = -1
            if upgrade.served_by(message) is not None:
                self.taken_over, self.upgrading = True, None
                return up.pid
        if time.monotonic() >= up.deadline:
            try:
                os.kill(up.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self._failed(f"no child of the new master (pid {up.pid}) served within "
                         f"{upgrade.UPGRADE_TIMEOUT:g} s; stopped it")
        return None

    def exited(self, pid: int, status: int) -> None:
        """A process that is not a child exited: a failure if it is the new
        master and it had not taken over."""
        if self.upgrading is None or pid != self.upgrading.pid or self.taken_over:
            return
        how = (f"was killed by {signal_name(os.WTERMSIG(status))}" if os.WIFSIGNALED(status)
               else f"exited with status {os.WEXITSTATUS(status)}")
        self._failed(f"the new master (pid {pid}) {how} before serving (why: in the error "
                     "log above, or on standard error for an error before the log opened)")

    def _failed(self, why: str) -> None:
        """Roll back: keep serving, with the PidFile back where it was."""
        up, self.upgrading = self.upgrading, None
        if up is not None and up.ready_r >= 0:
            os.close(up.ready_r)
        try:
            self.pid_file.write_again()
        except OSError as exc:
            self.error_log.error(f"binary upgrade: {exc}")
        self.error_log.error(f"binary upgrade failed: {why}; rolled back, pid {os.getpid()} serves on")

    def close(self) -> None:
        """At exit: a new master that never served closes its pipe (the old
        master learns it from our exit)."""
        if self.inherited is not None and self.inherited.ready_fd >= 0:
            os.close(self.inherited.ready_fd)
        self.inherited = None

