"""Readiness notification to systemd (sd_notify without libsystemd).

The sender only: one AF_UNIX datagram per message to the address in
NOTIFY_SOCKET, a new socket each time (messages are rare, and no file
descriptor is left for the children to inherit). What the messages say is
systemd.py's. A failure to send is reported once through ``on_error`` and
never stops the server: systemd then times the start out by itself.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import MutableMapping
from typing import Any, Callable

from . import systemd

__all__ = ["Notifier"]


class Notifier:
    def __init__(self, address: str | bytes, on_error: Callable[[str], None] | None = None):
        self.address = address
        self.on_error = on_error
        self._reported = False
        self._last_status: str | None = None
        self._last_count: tuple[float, int] | None = None  # (monotonic time, total accesses)

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None,
                     on_error: Callable[[str], None] | None = None) -> "Notifier | None":
        """The notifier NOTIFY_SOCKET asks for, or None. The variable is
        removed, as sd_notify(unset_environment=1) does, so that the app in
        the children does not talk to systemd in the master's name."""
        environ = os.environ if environ is None else environ
        address = systemd.notify_address(environ.pop("NOTIFY_SOCKET", None))
        return None if address is None else cls(address, on_error)

    def send(self, *assignments: str) -> bool:
        data = systemd.message(*assignments)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full receive queue drops the message, never blocks the master
                sock.sendto(data, self.address)
        except OSError as exc:
            if not self._reported and self.on_error is not None:
                self._reported = True
                where = self.address.decode(errors="replace").replace("\0", "@") \
                    if isinstance(self.address, bytes) else self.address
                self.on_error(f"cannot notify systemd at NOTIFY_SOCKET {where}: {exc.strerror or exc}")
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(systemd.READY, *([status] if status else []))

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(*systemd.reloading(usec))

    def takeover(self, pid: int) -> bool:
        """A binary upgrade: name the new main process and say it serves.
        systemd reads MAINPID= before READY=1 in one message, and takes
        READY=1 only from the main process."""
        return self.send(f"MAINPID={pid}", systemd.READY)

    def stopping(self) -> bool:
        return self.send(systemd.STOPPING)

    def status_from(self, snap: Any, clock: float, state: str | None = None) -> str:
        """STATUS= for this scoreboard snapshot; requests/s over the time
        since the previous call (left out after a HUP zeroed the counts)."""
        count = snap.total_accesses
        rate = None
        if self._last_count is not None:
            then, before = self._last_count
            if clock > then and count >= before:
                rate = (count - before) / (clock - then)
        self._last_count = (clock, count)
        return systemd.status_text(snap.processes_alive, snap.busy_workers, snap.idle_workers, rate, state)

    def status(self, text: str) -> None:
        """Send STATUS= when it changed since the last one sent."""
        if text != self._last_status and self.send(text):
            self._last_status = text


class Supervisor:
    """What the service manager (systemd) is told, and when: the master's one
    owner of that conversation. Without NOTIFY_SOCKET every call does nothing.

    READY=1 is due at start and after each restart, once a child of the
    current generation serves; STOPPING=1 is said once. A master started by a
    binary upgrade is not yet systemd's main process (systemd would reject its
    messages): it stays silent until the old master, its parent, has named it
    (MAINPID= with READY=1, see taken_over) and exited.
    """

    def __init__(self, notifier: Notifier | None, old_master: int | None = None) -> None:
        self._notifier = notifier if old_master is None else None
        self._held = (notifier, old_master) if notifier is not None and old_master is not None else None
        self.ready_due = old_master is None  # after an upgrade, the old master said it for us
        self._stopping_told = False
        self._failed_restart: str | None = None  # the STATUS= state while a failed restart is the news

    def child_serves(self, current_generation: bool) -> None:
        if self.ready_due and current_generation:
            self.ready_due = False
            if self._notifier is not None:
                self._notifier.ready()

    def status(self, snap: Any, draining: bool) -> None:
        """Once a second: the STATUS= line (sent when it changed)."""
        if self._held is not None and os.getppid() != self._held[1]:
            self._notifier, self._held = self._held[0], None
        if self._notifier is not None:
            state = "draining" if draining else self._failed_restart
            self._notifier.status(self._notifier.status_from(snap, time.monotonic(), state))

    def reloading(self) -> None:
        """A restart begins (Type=notify-reload): READY=1 follows through
        child_serves once the new generation serves, or restart_failed."""
        if self._notifier is not None:
            self._notifier.reloading()
        self.ready_due = True
        self._failed_restart = None

    def restart_failed(self, text: str) -> None:
        """A restart was skipped or abandoned and what served serves on:
        READY=1 with ``text`` as STATUS=, which stays the state the status
        line shows until the next restart."""
        self.ready_due = False
        self._failed_restart = " ".join(text.split())
        if self._notifier is not None:
            self._notifier.ready(f"STATUS={self._failed_restart}")

    def stopping(self) -> None:
        """STOPPING=1, once, when a stop (or the drain before one) begins."""
        if not self._stopping_told:
            self._stopping_told = True
            if self._notifier is not None:
                self._notifier.stopping()

    def taken_over(self, new_master: int) -> None:
        """A binary upgrade: systemd follows the new master (MAINPID= and
        READY=1 in one message, our word being the only one it takes until
        then), and this master says nothing more: its stop is not the
        service's, so no STOPPING=1."""
        if self._notifier is not None:
            self._notifier.takeover(new_master)
        self._notifier = None
