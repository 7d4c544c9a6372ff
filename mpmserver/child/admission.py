"""Admission: whether a child takes another connection. Pure: counts in, a yes or no out.

A request never waits inside a busy child while a sibling could serve it
(worker MPM): a child accepts only while a worker is free for the request,
and otherwise leaves the connection in the kernel's queue, where any child
that frees a worker takes it. A request on a connection the child already
holds (keep-alive) cannot be left to the kernel: when it would wait, it is
transferred to a sibling with an idle worker (transfer_to; transfer.py moves it). Connections parked in keep-alive and heads
still arriving cost a descriptor, not a thread, so they do not count
(Apache's event MPM counts every connection).

Between siblings: a child's threads share one GIL, so a child also steps
aside for an accepting sibling with clearly fewer connections, and now and
then sends one of its keep-alive clients there (one at a time:
SendAwayPace); without that one child can end up with every keep-alive
client while another sits idle.
The caller makes the one scoreboard read this needs
(Scoreboard.fewest_connections) and passes the figure in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

# Descriptors kept out of MaxOpenConnectionsPerChild's reach: listening
# sockets, logs, the scoreboard, the app's own files.
RESERVED_FDS = 64


@dataclass(slots=True)
class Limits:
    """A child's admission limits, fixed for its life."""

    max_open: int  # MaxOpenConnectionsPerChild, bounded by the descriptor limit
    max_connections: int  # MaxConnectionsPerChild with its jitter; 0 = no limit
    factor: float  # min(1, AsyncRequestWorkerFactor)
    balance: bool  # there are siblings to balance with
    slack: int  # how many more connections than the least loaded sibling is "clearly more"
    max_requests: int = 0  # MaxRequestsPerChild with its jitter; 0 = no limit


def limits_from_config(cfg: Any, *, siblings: bool, fd_soft_limit: int | None,
                       randint: Callable[[int, int], int] = random.randint) -> tuple[Limits, str | None]:
    """The limits a child runs with, and a warning when the descriptor limit lowers one."""
    max_connections = cfg.max_connections_per_child
    if max_connections and cfg.max_connections_per_child_jitter:
        max_connections += randint(0, cfg.max_connections_per_child_jitter)
    max_requests = cfg.max_requests_per_child
    if max_requests and cfg.max_connections_per_child_jitter:
        max_requests += randint(0, cfg.max_connections_per_child_jitter)
    max_open, warning = bound_by_fd_limit(cfg.max_open_connections_per_child, fd_soft_limit)
    limits = Limits(
        max_open=max_open,
        max_connections=max_connections,
        factor=min(1.0, cfg.async_request_worker_factor),
        balance=siblings,
        slack=max(2, cfg.threads_per_child // 2),
        max_requests=max_requests,
    )
    return limits, warning


def bound_by_fd_limit(max_open: int, fd_soft_limit: int | None) -> tuple[int, str | None]:
    """MaxOpenConnectionsPerChild above the descriptor limit (which the child
    has raised to its hard limit) would end in EMFILE, not in admission."""
    if fd_soft_limit is None:
        return max_open, None
    room = max(1, fd_soft_limit - RESERVED_FDS)
    if max_open <= room:
        return max_open, None
    return room, (f"MaxOpenConnectionsPerChild {max_open} is above the file descriptor limit "
                  f"({fd_soft_limit}): using {room}; raise the hard limit (ulimit -Hn) to allow more")


def admits(limits: Limits, *, stopping: bool, busy_connections: int, accepted: int,
           idle_workers: int, waiting: int) -> bool:
    """Accept one more connection?

    ``busy_connections``: open connections that are not parked (parked ones
    do not count against MaxOpenConnectionsPerChild: the oldest is given up
    when a new client needs its place). ``accepted``: connections accepted so
    far (MaxConnectionsPerChild). AsyncRequestWorkerFactor below 1 keeps a
    share of the idle workers for parked clients' next requests; above 1 it
    changes nothing.
    """
    if closed_to_new(limits, stopping=stopping, busy_connections=busy_connections, accepted=accepted):
        return False
    return waiting < idle_workers * limits.factor


def closed_to_new(limits: Limits, *, stopping: bool, busy_connections: int, accepted: int) -> bool:
    """No new connection at all, however long it waited: the child stops,
    holds MaxOpenConnectionsPerChild busy connections, or reached
    MaxConnectionsPerChild."""
    if stopping or busy_connections >= limits.max_open:
        return True
    return bool(limits.max_connections) and accepted >= limits.max_connections


# Fair waiting between new and kept-alive clients. A busy child leaves a new
# connection in the kernel's queue so that a sibling with an idle worker takes
# it; its kept-alive clients' requests meanwhile go to the hand-off without
# asking admission. Under steady load no worker is ever idle, so the new
# connection waited until a lull: the 50-220 ms p99 of keep-alive at c32 on
# 2 x 4, made of the reconnections MaxKeepAliveRequests forces (with
# MaxKeepAliveRequests 0: 7 ms). Once it has waited this long with no
# sibling taking it, a busy child accepts it anyway: its request joins the
# hand-off's queue behind the requests that were ready before it and ahead
# of those that come after (arrival order), and waits as long as they do.
# An accepting sibling takes a connection within microseconds, so this only
# ends waits that would have gone on. Only while requests wait in the
# hand-off (they came from kept-alive clients, past admission): with none
# waiting, a worker soon goes idle and admission takes the connection as
# usual, and the kernel's queue, shared by every child, stays the fairest.
# One connection per turn: the backlog behind it keeps going to whichever
# child has a worker first.
FAIR_WAIT = 0.001


def fair_turn(limits: Limits, *, stopping: bool, busy_connections: int, accepted: int,
              waited: float, waiting: int) -> bool:
    """Accept one connection that has waited ``waited`` seconds in the listen
    queue although no worker is idle here, while ``waiting`` requests wait
    in the hand-off (see FAIR_WAIT)?"""
    if closed_to_new(limits, stopping=stopping, busy_connections=busy_connections, accepted=accepted):
        return False
    return waiting > 0 and waited >= FAIR_WAIT


# A crowded child sends its keep-alive clients to a sibling one at a time:
# the next not sooner than this after the last, by when the client has
# reconnected and the counts show where it went. Every connection of a
# crowded child asks on its 32nd request (the request cycle's
# REBALANCE_MASK), all within a few milliseconds under load, and the counts
# move only once a client is back: unpaced, a child sent most of its clients
# away at once and got many of them back (the sibling, busy too, was not
# accepting), round after round. Under wrk -c32 that was 300 reconnects in
# 5 s and 7% of keep-alive POST throughput (paced: 83 reconnects).
SEND_AWAY_INTERVAL = 0.1


class SendAwayPace:
    """When a crowded child may next send a client away (SEND_AWAY_INTERVAL
    after the last). Times come from the caller's monotonic clock."""

    __slots__ = ("interval", "_next")

    def __init__(self, interval: float = SEND_AWAY_INTERVAL) -> None:
        self.interval = interval
        self._next = 0.0

    def due(self, now: float) -> bool:
        return now >= self._next

    def sent(self, now: float) -> None:
        self._next = now + self.interval


def prefers_sibling(limits: Limits, open_connections: int, fewest_sibling: int | None) -> bool:
    """Leave a connection to an accepting sibling with clearly fewer connections.

    ``fewest_sibling``: the fewest connections of an accepting sibling, or None
    when there is none."""
    return fewest_sibling is not None and open_connections > fewest_sibling + limits.slack


# A sibling's worker counts as idle for a transfer only once it has been
# idle this long (seconds since its last request ended). A worker of a busy
# sibling is READY for moments between its requests; transferring it a request
# then only moves the wait there, and costs both listeners more than the
# request (profiled under wrk -c32: 21% of a child's GIL time, keep-alive
# throughput 0.6x). A child idle for longer than this is the one issue 16
# is about: its request is answered at once instead of waiting seconds.
SETTLED_IDLE = 0.01


def siblings_busy_until(now: float, earliest_unsettled: float) -> float:
    """When a scan that found no sibling idle for SETTLED_IDLE may find one:
    a READY worker not yet counted settles SETTLED_IDLE after its last
    request ended, a busy one no sooner than SETTLED_IDLE from now. Until
    then the listener need not read the scoreboard again (times: epoch)."""
    return min(now, earliest_unsettled) + SETTLED_IDLE


def would_wait(idle_workers: int, waiting: int) -> bool:
    """A request pushed now would wait for a worker: every idle worker has a
    request waiting already. The cheap test made before any sibling is read."""
    return waiting >= idle_workers


def transfer_to(idle_workers: int, waiting: int, idle_siblings: list[tuple[int, int]]) -> int | None:
    """The slot of the sibling to transfer a ready request to, or None to queue it here.

    A request that would wait inside this child while a sibling has an idle
    worker goes to that sibling (the one with the most idle workers, so
    that a burst of transfers from several children spreads out).
    ``idle_siblings``: (slot, idle workers) of the accepting siblings
    (Scoreboard.idle_siblings), counting workers idle for SETTLED_IDLE."""
    if not would_wait(idle_workers, waiting):
        return None
    best = None
    most = 0
    for slot, idle in idle_siblings:
        if idle > most:
            best, most = slot, idle
    return best


def rebalance_to(waiting: int, idle_siblings: list[tuple[int, int]]) -> list[int]:
    """The slots to transfer requests already waiting here to, oldest first: at
    most ``waiting`` (the requests that wait beyond this child's idle
    workers), each sibling as many as it has idle workers, the most idle
    first (``idle_siblings`` as for transfer_to)."""
    slots: list[int] = []
    for slot, idle in sorted(idle_siblings, key=lambda s: -s[1]):
        slots.extend([slot] * min(idle, waiting - len(slots)))
    return slots


def must_recycle(limits: Limits, accepted: int) -> bool:
    """MaxConnectionsPerChild reached: the child stops accepting and recycles."""
    return bool(limits.max_connections) and accepted >= limits.max_connections


def must_recycle_on_requests(limits: Limits, served: int) -> bool:
    """MaxRequestsPerChild reached (``served`` counts this request): the child
    answers it with Connection: close and recycles gracefully.

    Unlike MaxConnectionsPerChild (Apache's meaning: connections), this counts
    requests, so a child behind a proxy's keep-alive pool, which carries
    every request over a few connections, still recycles (gunicorn's
    max_requests, uWSGI's max-requests)."""
    return bool(limits.max_requests) and served >= limits.max_requests
