"""What the master is told and what it makes of it: signals, the drain
before a stop (GracefulStopDrain), the end of a binary upgrade, and the
answer to HAProxy's agent-check.

Apache's model: the signal handler only notes the signal (signals.py); the
loop hands each to Control.handle(), which decides what it means here and
calls the master's verbs (begin_shutdown, restart) or the binary upgrade's
(BinaryUpgrade.begin). The master owns the children and the stop.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterable
from typing import Any, Protocol

from .. import config as configmod
from ..deploy.listen import forget_unix_files
from ..deploy.systemd_notify import Supervisor
from ..deploy.upgrade_takeover import BinaryUpgrade
from ..logs import ErrorLog, signal_name
from ..modules.agent_listen import AgentListen
from ..scoreboard import Scoreboard
from .signals import IGNORED_SIGNALS, SIGNALS_ACTED_ON

__all__ = ["Control", "Controlled"]


class Controlled(Protocol):
    """What of the master Control reads and calls (master.Master is one)."""
    cfg: Any
    error_log: ErrorLog
    generation: int
    scoreboard: Scoreboard | None
    supervisor: Supervisor
    upgrade: BinaryUpgrade
    agent: AgentListen | None
    notify_socket_env: str | None
    children: Iterable[Any]  # of ChildInfo

    @property
    def stop(self) -> Any: ...
    @property
    def sockets(self) -> list[socket.socket]: ...
    def begin_shutdown(self, mode: str) -> None: ...
    def restart(self, graceful: bool) -> None: ...
    def graceful_refused(self, why: str) -> None: ...
    def close_agent(self) -> None: ...


class Control:
    """The master's answers to the outside world. ``drain_until`` is the
    monotonic time a GracefulStopDrain ends, while one runs."""

    def __init__(self, master: Controlled) -> None:
        self.master = master
        self.drain_until: float | None = None

    @property
    def going_away(self) -> str | None:
        """"stopping", "draining", or None while serving (the agent's and HealthPath's word)."""
        if self.master.stop is not None:
            return "stopping"
        return "draining" if self.drain_until is not None else None

    def handle(self, signum: int) -> None:
        m = self.master
        if signum == signal.SIGCHLD:
            return  # the loop reaps after every wake-up
        if signum in IGNORED_SIGNALS:
            m.error_log.warn(f"caught {signal_name(signum)}: not a signal the master acts on, ignored "
                             f"({SIGNALS_ACTED_ON})")
        elif signum in (signal.SIGTERM, signal.SIGINT):
            m.error_log.announce(f"caught {signal_name(signum)}, shutting down")
            m.begin_shutdown("now")
        elif signum == signal.SIGWINCH:
            self._graceful_stop_told()
        elif self.going_away is not None:
            # A restart or an upgrade now would undo the stop (or the drain before it).
            m.error_log.warn(f"caught {signal_name(signum)} while {self.going_away}: ignored")
            if signum == signal.SIGUSR1:
                m.graceful_refused(f"the server is {self.going_away}")
        elif signum == signal.SIGHUP:
            m.error_log.notice("SIGHUP received.  Attempting to restart")
            self._restart_told(graceful=False)
        elif signum == signal.SIGUSR1:
            m.error_log.notice("Graceful restart requested, doing restart")
            self._restart_told(graceful=True)
        elif signum == signal.SIGUSR2:
            m.upgrade.begin(m.sockets, m.agent.fileno() if m.agent is not None else -1, m.notify_socket_env)

    def _graceful_stop_told(self) -> None:
        """WINCH: drain first if GracefulStopDrain asks, else stop gracefully now."""
        m = self.master
        if self.going_away is not None:
            return
        if m.cfg.graceful_stop_drain > 0:
            self.begin_drain()
        else:
            m.error_log.announce("caught SIGWINCH, shutting down gracefully")
            m.begin_shutdown("graceful")

    def _restart_told(self, graceful: bool) -> None:
        """A restart between RELOADING=1 and READY=1 (Type=notify-reload).
        READY=1 follows once a child of the new generation serves, or once
        the restart has failed (the master says so: restart_failed)."""
        m = self.master
        m.supervisor.reloading()
        m.restart(graceful=graceful)

    def begin_drain(self) -> None:
        """GracefulStopDrain: keep serving while HealthPath answers 503; the
        graceful stop begins when the drain is over (end_drain_when_due)."""
        m = self.master
        secs = m.cfg.graceful_stop_drain
        m.error_log.announce(f"caught SIGWINCH, draining for {secs:g} s (GracefulStopDrain), "
                             "then shutting down gracefully")
        self.drain_until = time.monotonic() + secs
        for info in m.children:
            m.scoreboard.process(info.slot).set_draining(True)
        m.supervisor.stopping()

    def end_drain_when_due(self) -> None:
        if self.drain_until is None:
            return
        if self.master.stop is not None:  # stopped now (TERM) during the drain
            self.drain_until = None
        elif time.monotonic() >= self.drain_until:
            self.drain_until = None
            self.master.error_log.announce("drain over (GracefulStopDrain), shutting down gracefully")
            self.master.begin_shutdown("graceful")

    def taken_over_by(self, pid: int) -> None:
        """The binary upgrade's new master serves: stop gracefully, leaving it the sockets."""
        m = self.master
        m.error_log.announce(f"binary upgrade: the new master (pid {pid}) serves; "
                             "this one stops gracefully")
        m.supervisor.taken_over(pid)
        m.close_agent()  # the new master answers the probes on its copy
        forget_unix_files(m.sockets)  # the new master's now
        self.drain_until = None
        m.begin_shutdown("graceful")

    def answer_agent(self) -> None:
        """HAProxy's agent-check: one line per connection, then close."""
        m = self.master
        m.agent.answer(m.scoreboard.snapshot(), m.cfg.threads_per_child,
                       configmod.daemons_limit(m.cfg), self.going_away)
