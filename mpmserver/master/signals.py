"""The master's signals: which it acts on, which it ignores, and the
self-pipe that turns them into wake-ups of its loop.

A handler only queues the signal number; the loop, woken through the pipe
(signal.set_wakeup_fd), acts on it outside the handler, where fork, kill
and logging are safe. What each signal means is control.py's.
"""

from __future__ import annotations

import os
import select
import signal
from typing import Any

__all__ = ["HANDLED_SIGNALS", "IGNORED_SIGNALS", "SIGNALS_ACTED_ON", "SignalPipe"]

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGWINCH, signal.SIGCHLD)
# Signals whose default action would kill the master (leaving its PidFile and
# children behind) but that it does not act on: logged and ignored. Not the
# faults (SEGV, BUS, FPE, ILL, ABRT, TRAP, SYS), nor KILL and STOP.
IGNORED_SIGNALS = tuple(s for s in (
    signal.SIGQUIT, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGXFSZ,
    getattr(signal, "SIGPWR", None), getattr(signal, "SIGIO", None), getattr(signal, "SIGSTKFLT", None),
    *range(signal.SIGRTMIN, signal.SIGRTMAX + 1)) if s is not None)
SIGNALS_ACTED_ON = ("TERM and INT stop, WINCH stops gracefully, HUP restarts, USR1 restarts gracefully, "
                    "USR2 upgrades the binary")


class SignalPipe:
    """The signals caught since the last wait, and the pipe that wakes the loop."""

    def __init__(self) -> None:
        self._r = self._w = -1
        self._caught: list[int] = []

    def install(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._r, self._w = r, w
        signal.set_wakeup_fd(w)
        for signum in HANDLED_SIGNALS + IGNORED_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._caught.append(signum)

    def wait(self, watched: list[Any], timeout: float) -> list[Any]:
        """Sleep until a signal arrives, one of ``watched`` is readable, or
        ``timeout`` passes; what of ``watched`` is readable."""
        readable: list[Any] = []
        try:
            readable, _, _ = select.select([self._r, *watched], [], [], timeout)
        except InterruptedError:
            pass
        try:
            while os.read(self._r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        return readable

    def stop_pending(self) -> bool:
        """A TERM or INT caught and not yet taken (the master was busy)."""
        return any(s in (signal.SIGTERM, signal.SIGINT) for s in self._caught)

    def take(self) -> list[int]:
        """The signals caught since the last call, oldest first."""
        caught, self._caught = self._caught, []
        return caught

    def forget_in_child(self) -> None:
        """In a forked child: the master's handlers and pipe are not its own."""
        signal.set_wakeup_fd(-1)
        for signum in IGNORED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)

    def close(self) -> None:
        if self._w < 0:
            return
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:  # not the main thread: nothing was set from here
            pass
        os.close(self._r)
        os.close(self._w)
        self._r = self._w = -1
