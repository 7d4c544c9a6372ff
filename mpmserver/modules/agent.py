"""AgentListen: HAProxy's agent-check answered from the scoreboard (pure).

With ``agent-check agent-port N`` on a ``server`` line, HAProxy connects to
that port every ``agent-inter``, reads one line, and the connection closes.
The line here says how much of this host's capacity is free, so that
HAProxy sends more traffic to the hosts with idle threads:

- serving: ``up ready 37%``, where 37% is the free share of the threads this
  server may run (MaxRequestWorkers, rounded to whole children): the idle
  threads of the serving children plus ThreadsPerChild for each child that
  could still be started. HAProxy sets the server's weight to that share of
  its configured weight. ``ready`` cancels a ``drain`` or ``maint`` said
  earlier (by a drain before a restart of this host). Never under 1%: at 0%
  HAProxy would send nothing, and with every host busy, fail every request
  instead of queueing it.
- draining (GracefulStopDrain): ``drain``: weight 0, sessions continue.
- stopping: ``maint``: no new traffic until a new server says ``ready``.

The master answers (agent_listen.py's socket, watched by the master's loop);
the children never see the probes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["free_capacity", "agent_answer"]


def free_capacity(snap: Any, threads_per_child: int, max_children: int) -> int:
    """Free capacity, 1..100 (percent): idle threads of the current
    generation's children and whole children not yet started, over
    ``max_children`` x ``threads_per_child``."""
    total = max_children * threads_per_child
    if total <= 0:
        return 1
    running = sum(1 for p in snap.processes if p.pid and not p.quiescing)
    free = snap.idle_workers + max(0, max_children - running) * threads_per_child
    return max(1, min(100, round(100 * free / total)))


def agent_answer(snap: Any, threads_per_child: int, max_children: int, going_away: str | None) -> bytes:
    """The line for one probe; ``going_away`` is None, "draining" or "stopping"."""
    if going_away == "draining":
        return b"drain\n"
    if going_away is not None:
        return b"maint\n"
    return f"up ready {free_capacity(snap, threads_per_child, max_children)}%\n".encode()
