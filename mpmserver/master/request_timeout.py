"""RequestTimeout (pure): the children running a request for too long, and
the requests a child took with it when it went.

A thread stuck in the app cannot be interrupted, so the whole child is
stopped gracefully, then killed after a grace; what it was running is
logged by the master (lost_requests.py), since nobody else will.
"""

from __future__ import annotations

from collections.abc import Mapping
from signal import SIGKILL
from typing import TYPE_CHECKING, Any

from ..scoreboard import SERVER_BUSY_READ, SERVER_BUSY_WRITE, SERVER_GRACEFUL
from .actions import Action, Log, SignalChild, StopChild
from .maintenance import MaintenanceState

if TYPE_CHECKING:
    from ..scoreboard import ProcessSnapshot, ScoreboardSnapshot, WorkerSnapshot

__all__ = ["REQUEST_RUNNING", "hung_requests", "requests_lost"]

# Worker states in which a request is running (G: in a child told to stop).
REQUEST_RUNNING = frozenset((SERVER_BUSY_READ, SERVER_BUSY_WRITE, SERVER_GRACEFUL))


def hung_requests(snap: ScoreboardSnapshot, cfg: Any, state: MaintenanceState,
                  children: Mapping[int, int], *, now: float, clock: float) -> list[Action]:
    """Stop each child running a request longer than RequestTimeout; kill it
    if it is still there max(GracefulShutdownTimeout, RequestTimeout) later.

    ``children``: the master's live children, pid -> slot.  ``now`` is wall
    time, the scoreboard's clock; ``clock`` is monotonic, for the grace.  A
    thread stuck in the app cannot be interrupted, so the whole child goes:
    gracefully first, so that its other requests can finish.
    """
    stopped = state.hung_stopped
    for pid in [p for p in stopped if p not in children]:
        del stopped[pid]  # reaped since: its pid means nothing any more
    timeout = cfg.request_timeout
    if not timeout:
        return []
    grace = max(cfg.graceful_shutdown_timeout, timeout)
    actions: list[Action] = []
    for pid, slot in children.items():
        if pid in stopped:
            if clock - stopped[pid] > grace:  # again each cycle until it is reaped
                actions += [Log("error", f"child pid {pid} did not finish its hung request, "
                                         "killing it"), SignalChild(pid, SIGKILL)]
            continue
        proc = snap.processes[slot]
        if proc.pid != pid:
            continue  # the record is another process's: not this child's requests
        hung = _hung_worker(proc, cfg.threads_per_child, now, timeout)
        if hung is not None:
            t, w = hung
            actions += [Log("error", f"RequestTimeout: request {w.request!r} from {w.client} on "
                                     f"child pid {pid} thread {t} has run "
                                     f"{now - w.start_time:.1f}s (RequestTimeout {timeout:g}s); "
                                     "stopping the child gracefully"), StopChild(slot, pid)]
            stopped[pid] = clock
    return actions


def _running(w: WorkerSnapshot) -> bool:
    # stop_time < start_time: the request has begun and not yet ended.
    return w.status in REQUEST_RUNNING and bool(w.start_time) and w.stop_time < w.start_time


def _hung_worker(proc: ProcessSnapshot, threads: int, now: float,
                 timeout: float) -> tuple[int, WorkerSnapshot] | None:
    for t, w in enumerate(proc.workers[:threads]):
        if _running(w) and now - w.start_time > timeout:
            return t, w
    return None


def requests_lost(proc: ProcessSnapshot, threads: int) -> list[WorkerSnapshot]:
    """The requests a child that is gone was still running (killed after
    RequestTimeout, crashed, exited from the app): nobody else will log them."""
    return [w for w in proc.workers[:threads] if _running(w)]
