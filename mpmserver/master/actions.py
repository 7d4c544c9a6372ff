"""What the master's pure policies ask it to do: the actions they return.

maintenance.py, retirement.py, request_timeout.py and stopping.py never
fork, signal or log themselves; they return these, and Master.apply()
carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Action", "Log", "RestartOutcome", "Shutdown", "SignalChild", "Spawn", "StopChild"]


@dataclass(frozen=True, slots=True)
class Spawn:
    """Fork a new child into this scoreboard slot."""
    slot: int


@dataclass(frozen=True, slots=True)
class StopChild:
    """Ask this child to stop gracefully (finish in-flight work, then exit 0)."""
    slot: int
    pid: int


@dataclass(frozen=True, slots=True)
class SignalChild:
    """Send this signal to this child (TERM or KILL; the master drops it if
    the pid is no longer its child)."""
    pid: int
    signal: int


@dataclass(frozen=True, slots=True)
class Log:
    """Write a line to the error log; level is error/warn/notice/info/debug."""
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class RestartOutcome:
    """A graceful restart is decided. ``served``: a child of the new
    generation started, the old one retires. Else it is abandoned: the
    generation goes back to ``generation`` (the one still serving), every
    child of a newer one is stopped, and ``reason`` says why (one line)."""
    served: bool
    generation: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The master must stop its children and exit non-zero."""
    reason: str


Action = Spawn | StopChild | SignalChild | Log | RestartOutcome
