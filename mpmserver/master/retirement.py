"""Retiring the old generation after a graceful restart (pure): which old
children to stop, and when, so that the listening sockets are never left
without a child to accept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .actions import Action, StopChild

if TYPE_CHECKING:
    from ..scoreboard import ScoreboardSnapshot

__all__ = ["retire_generation"]


def retire_generation(snap: ScoreboardSnapshot, tpc: int, generation: int,
             children: Iterable[tuple[int, int, int]], *, stopping: int) -> list[Action]:
    """After a graceful restart: which children of older generations to stop now.

    ``children``: (pid, slot, generation) of the live children not yet told
    to stop; ``stopping``: how many told to stop are still alive.  The old
    generation serves until every child of the current one has started:
    then each old child is stopped, one that is still starting included
    (it never touches the listening sockets).  So an app that takes a while
    to import, or restarts faster than that, or old children recycling
    meanwhile, never leave the listening sockets without a child to accept.
    With no child of the current generation (no free slot for one), room is
    made one step at a time: the old children still starting, else one that
    serves, and only when no stopping child is about to free a slot.
    """
    children = list(children)
    current = [(pid, slot) for pid, slot, gen in children if gen == generation]
    old = [(pid, slot) for pid, slot, gen in children if gen < generation]
    if current:
        if all(_has_started(snap, slot, pid, tpc) for pid, slot in current):
            return [StopChild(slot, pid) for pid, slot in old]
        return []
    if stopping or not old:
        return []
    starting = [StopChild(slot, pid) for pid, slot in old if not _has_started(snap, slot, pid, tpc)]
    return starting or [StopChild(old[-1][1], old[-1][0])]


def _has_started(snap: ScoreboardSnapshot, slot: int, pid: int, tpc: int) -> bool:
    """This child's record is its own and it has started (scoreboard's has_started)."""
    proc = snap.processes[slot]
    return proc.pid == pid and proc.has_started(tpc)
