"""The schedule of a stop of every child (pure): shutdown, and the first
half of a HUP restart. Apache's reclaim_child_processes(): TERM at once,
again at 3, 5 and 7 s, then KILL at 9 s and every second after; a graceful
stop sends nothing until GracefulShutdownTimeout, then stops now.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from signal import SIGKILL, SIGTERM

from .actions import Action, Log, SignalChild

__all__ = ["MSG_GRACEFUL_EXPIRED", "RECLAIM_KILL_AT", "RECLAIM_TERM_AT", "StopState", "stop_step"]

# Apache's reclaim_child_processes(): when stopping now, every child gets a
# TERM at these seconds, then a KILL at RECLAIM_KILL_AT and every second after.
RECLAIM_TERM_AT = (0.0, 3.0, 5.0, 7.0)
RECLAIM_KILL_AT = 9.0
MSG_GRACEFUL_EXPIRED = "GracefulShutdownTimeout expired, stopping the remaining children"


@dataclass
class StopState:
    """How far a stop of every child has gone; owned by the master, advanced
    by stop_step() with the seconds since the stop began."""

    # A graceful stop waits this long (math.inf: GracefulShutdownTimeout 0)
    # before it turns into an immediate one; None: stopping now.
    graceful_for: float | None = None
    now_since: float = 0.0              # seconds into the stop when stopping now began
    terms_sent: int = 0                 # how many of RECLAIM_TERM_AT were sent
    next_kill: float = RECLAIM_KILL_AT  # seconds after now_since

    @classmethod
    def graceful(cls, timeout: float) -> StopState:
        return cls(graceful_for=timeout or math.inf)

    @property
    def is_graceful(self) -> bool:
        return self.graceful_for is not None


def stop_step(stop: StopState, elapsed: float, pids: Iterable[int]) -> list[Action]:
    """What to send now, ``elapsed`` seconds into a stop, to the children
    still alive (Apache's reclaim_child_processes()).  A graceful stop sends
    nothing until GracefulShutdownTimeout, then stops now."""
    if stop.graceful_for is not None:
        if elapsed < stop.graceful_for:
            return []
        stop.graceful_for = None
        stop.now_since = elapsed
        return [Log("notice", MSG_GRACEFUL_EXPIRED), *stop_step(stop, elapsed, pids)]
    since = elapsed - stop.now_since
    if since >= stop.next_kill:
        stop.next_kill = since + 1.0
        stop.terms_sent = len(RECLAIM_TERM_AT)  # a TERM after a KILL would be pointless
        return [a for pid in pids for a in (
            Log("error", f"child process {pid} still did not exit, sending a SIGKILL"),
            SignalChild(pid, SIGKILL))]
    due = sum(1 for at in RECLAIM_TERM_AT if since >= at)
    if due <= stop.terms_sent:
        return []
    first = stop.terms_sent == 0  # the stop itself: nothing to complain about yet
    stop.terms_sent = due  # one TERM for several times passed at once is enough
    return [a for pid in pids for a in (
        *([] if first else [Log("warn", f"child process {pid} still did not exit, "
                                        "sending a SIGTERM")]),
        SignalChild(pid, SIGTERM))]
