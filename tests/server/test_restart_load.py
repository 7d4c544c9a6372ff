"""Graceful restarts and recycling under mixed load lose nothing (issue 16, item 1).

SIGUSR1 every 0.5 s for 20 s while keep-alive clients, new-connection
clients and clients posting 100 KB bodies run, with an app that takes a
second to import (tests/apps/slow_import.py): every request is answered
(no reset, no connection closed before a response). Then the same with
MaxMemoryPerChild recycling children at the same time. The clients are
tests/server/test_mpm.py's Hammer.
"""

from __future__ import annotations

import signal
import time

from tests.support.load import Hammer, Sampler
from tests.support.server import wait_for

SLOW_APP = "tests.apps.slow_import:app"
BODY = bytes(range(256)) * 400  # 100 KB
RESTART_EVERY = 0.5
RESTART_FOR = 20.0
SERVER_LIMIT = 12


def start(server_factory, *extra: str):
    return server_factory("--start-servers", "2", "--threads-per-child", "4", "--min-spare-threads", "1",
                          "--max-spare-threads", "16", "--max-request-workers", "8",
                          "--server-limit", str(SERVER_LIMIT), "--log-level", "info", *extra,
                          app=SLOW_APP).start()


def mixed_load(port: int) -> dict[str, list[Hammer]]:
    """The issue's mix, scaled to a test: keep-alive, new connections, 100 KB posts."""
    return {
        "keep-alive": [Hammer(port, "/hello", keep_alive=True).start() for _ in range(4)],
        "new": [Hammer(port, "/hello").start() for _ in range(4)],
        "post": [Hammer(port, "/echo", keep_alive=True, body=BODY).start() for _ in range(2)],
    }


def restart_repeatedly(s, every: float, duration: float) -> int:
    """USR1 every ``every`` seconds for ``duration`` seconds; how many were sent."""
    sent = 0
    t_end = time.monotonic() + duration
    next_at = time.monotonic()
    while time.monotonic() < t_end:
        s.signal(signal.SIGUSR1)
        sent += 1
        next_at += every
        time.sleep(max(0.0, next_at - time.monotonic()))
    return sent


def p99(latencies: list[float]) -> float:
    if not latencies:
        return float("inf")
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def report(load: dict[str, list[Hammer]]) -> str:
    return "; ".join(f"{kind}: {sum(h.ok for h in hs)} ok, {sum(len(h.failures) for h in hs)} failed, "
                     f"p99 {p99([x for h in hs for x in h.latencies]) * 1000:.0f} ms"
                     for kind, hs in load.items())


def run_under_load(s, extra_hammers: list[Hammer] = ()) -> tuple[dict[str, list[Hammer]], int, int]:
    """Mixed load, restarts, then the load stops: (the hammers, USR1 sent, most children seen)."""
    sampler = Sampler(s.pid)
    load = mixed_load(s.port)
    hammers = [h for hs in load.values() for h in hs] + list(extra_hammers)
    try:
        wait_for(lambda: all(h.ok for h in hammers), 10, 0.02, "every client to get an answer")
        sent = restart_repeatedly(s, RESTART_EVERY, RESTART_FOR)
        # The last generation takes over: every client is still answered after it.
        marks = [h.ok for h in hammers]
        wait_for(lambda: all(h.ok > n for h, n in zip(hammers, marks)), 15, 0.05,
                 "every client to be answered after the last restart")
    finally:
        for h in hammers:
            h.stop()
        seen = sampler.stop()
    return load, sent, seen


def failures_of(hammers: list[Hammer]) -> list[str]:
    return [f for h in hammers for f in h.failures]


def assert_shared(load: dict[str, list[Hammer]]) -> None:
    """New connections keep their share: each kind is served, none starved
    (the issue saw 8,136 new-connection requests against 161,701 keep-alive)."""
    ka = sum(h.ok for h in load["keep-alive"])
    new = sum(h.ok for h in load["new"])
    assert new * 10 >= ka, report(load)
    assert sum(h.ok for h in load["post"]) >= 20, report(load)


def test_graceful_restarts_every_half_second_lose_nothing(server_factory):
    s = start(server_factory)
    load, sent, seen = run_under_load(s)
    hammers = [h for hs in load.values() for h in hs]
    print(f"\n{sent} graceful restarts: {report(load)}; at most {seen} children")
    assert failures_of(hammers) == [], (report(load), failures_of(hammers)[:5], s.stderr[-3000:])
    assert_shared(load)
    assert s.proc.poll() is None
    assert seen <= SERVER_LIMIT, seen
    assert "exit signal" not in s.stderr and "exit status" not in s.stderr, s.stderr[-3000:]


def test_graceful_restarts_with_memory_recycling_lose_nothing(server_factory):
    s = start(server_factory, "--max-memory-per-child", "64M")
    # Every 0.25 s a child keeps 16 MB more: each passes 64 MB within a few
    # seconds and is recycled while the restarts go on.
    grower = Hammer(s.port, "/grow?mb=16", pause=0.25).start()
    load, sent, seen = run_under_load(s, [grower])
    hammers = [h for hs in load.values() for h in hs] + [grower]
    print(f"\n{sent} graceful restarts with recycling: {report(load)}; at most {seen} children")
    assert failures_of(hammers) == [], (report(load), failures_of(hammers)[:5], s.stderr[-3000:])
    assert "passed MaxMemoryPerChild 64 MB, recycling" in s.stderr
    assert_shared(load)
    assert s.proc.poll() is None
    assert seen <= SERVER_LIMIT, seen
