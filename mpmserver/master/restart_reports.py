"""How restarts went, told to whoever waits for it: ``-k graceful`` (a
numbered record beside the PidFile, deploy/graceful.py), systemd (STATUS=)
and ``/metrics`` (the scoreboard's restart-failure counter).

The master decides what happened (master.py, maintenance.py); this owns
the telling and the one piece of state it needs, the number of graceful
restarts asked for, which ``-k graceful`` waits past.
"""

from __future__ import annotations

from typing import Any

from ..deploy import graceful

__all__ = ["RestartReports"]


class RestartReports:
    """Built in the master's setup, once the PidFile, systemd's notifier and
    the scoreboard exist."""

    def __init__(self, pid_file: Any, supervisor: Any, scoreboard: Any, error_log: Any) -> None:
        self.pid_file = pid_file
        self.supervisor = supervisor
        self.scoreboard = scoreboard
        self.error_log = error_log
        self.asked = 0  # graceful restarts asked for (USR1), numbering their outcomes

    def graceful_asked(self) -> None:
        self.asked += 1

    def refused(self, why: str, generation: int) -> None:
        """USR1 not acted on (the server is stopping): -k graceful is told why."""
        self.asked += 1
        self.record(False, generation, f"not restarted: {why}")

    def failed(self, reason: str, generation: int, graceful_restart: bool = True) -> None:
        """What served before serves on: counted, told to systemd and to -k graceful."""
        self.scoreboard.count_restart_failure()
        kind = "graceful restart" if graceful_restart else "restart (HUP)"
        self.supervisor.restart_failed(f"{kind} failed, still serving generation {generation}: {reason}")
        if graceful_restart:
            self.record(False, generation, reason)

    def record(self, served: bool, generation: int, reason: str = "") -> None:
        """The outcome -k graceful waits for, beside the PidFile."""
        if not self.pid_file.path:
            return
        record = graceful.Record(self.asked, served, generation, reason)
        try:
            self.pid_file.write_companion(graceful.record_path(self.pid_file.path),
                                          graceful.format_record(record), "restart record")
        except OSError as exc:
            self.error_log.warn(f"{exc}; -k graceful cannot learn how the restart went")
