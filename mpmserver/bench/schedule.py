"""Open-loop (fixed-rate) request scheduling, as wrk2 does it.

Each connection owns an evenly spaced sequence of intended send times. A
request is sent at its intended time if the connection has room for it, or as
soon as it gets room; its latency is measured from the intended time. So when
the server stalls for a second, every request that should have been sent
during that second reports the wait it would really have seen, instead of the
one unlucky request a closed-loop client records (coordinated omission).
"""

from __future__ import annotations

NS = 1_000_000_000


class OpenLoopSchedule:
    """Intended send times, in integer nanoseconds, for one connection."""

    __slots__ = ("interval", "next")

    def __init__(self, rate_per_s: float, start_ns: int, phase: float = 0.0) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate must be positive, not {rate_per_s}")
        self.interval = NS / rate_per_s
        # Kept as a float so long runs do not drift from rounding each step.
        self.next = start_ns + phase * self.interval

    def peek(self) -> int:
        return int(self.next)

    def advance(self) -> int:
        t = int(self.next)
        self.next += self.interval
        return t


def connection_schedules(total_rate: float, connections: int, start_ns: int,
                         first: int = 0, count: int | None = None) -> list[OpenLoopSchedule]:
    """Schedules for connections first..first+count of `connections`, staggered
    so that together they send one request every 1/total_rate seconds (rather
    than `connections` requests at once, then silence)."""
    if connections < 1:
        raise ValueError("need at least one connection")
    per_conn = total_rate / connections
    count = connections - first if count is None else count
    return [OpenLoopSchedule(per_conn, start_ns, (first + i) / connections)
            for i in range(count)]
