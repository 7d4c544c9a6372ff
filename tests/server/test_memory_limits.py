"""MaxMemoryPerChild holds under load, MaxMemoryPerChildHard stops a runaway,
and each child's resident memory is published (issue 25 item 3).

A sampler reads every child's resident memory from /proc/PID/statm every
few milliseconds, from outside the server: what a person with `top` or a
container's memory accounting would see.
"""

from __future__ import annotations

import http.client
import os
import threading

from tests.support.load import Hammer
from tests.support.client import get
from tests.support.server import alive, wait_for

MB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
MPM_APP = "tests.apps.mpm_apps:app"


def rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class RssSampler:
    """The largest resident memory seen of any child of ``server``."""

    def __init__(self, server) -> None:
        self.server = server
        self.peak = 0
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            for pid in self.server.children():
                self.pids.add(pid)
                self.peak = max(self.peak, rss_of(pid))


def test_max_memory_per_child_holds_under_load(server_factory):
    # Every request keeps 1 MB in its child: without a check at each
    # request's end, children were caught at 3-8x the limit.
    s = server_factory("--fixed-servers", "2", "--threads-per-child", "4",
                       "--max-memory-per-child", "64M", app=MPM_APP).start()
    hammers = [Hammer(s.port, "/grow?mb=1", keep_alive=i % 2 == 0) for i in range(6)]
    with RssSampler(s) as sampler:
        for h in hammers:
            h.start()
        try:
            wait_for(lambda: s.stderr.count("passed MaxMemoryPerChild 64 MB, recycling") >= 8, 60, 0.05,
                     "eight memory recycles")
        finally:
            for h in hammers:
                h.stop()
    failures = [f for h in hammers for f in h.failures]
    served = sum(h.ok for h in hammers)
    print(f"\n{served} requests, {len(sampler.pids)} children seen, peak child RSS {sampler.peak / MB:.1f} MB")
    assert failures == [], failures[:5]
    assert served >= 200
    assert 32 * MB < sampler.peak <= 128 * MB, sampler.peak / MB
    assert "exit signal" not in s.stderr and "crashed" not in s.stderr


def test_max_memory_per_child_hard_stops_a_runaway_request_and_the_server_serves_on(server_factory):
    s = server_factory("--fixed-servers", "1", "--threads-per-child", "2",
                       "--max-memory-per-child", "64M", "--max-memory-per-child-hard", "160M",
                       app=MPM_APP).start()
    first = s.children()
    with RssSampler(s) as sampler:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=20)
        conn.request("GET", "/runaway")
        try:
            resp = conn.getresponse()
            answer = resp.status
        except (ConnectionError, http.client.HTTPException):
            answer = None  # cut: the child stopped under it
        conn.close()
        wait_for(lambda: not any(alive(p) for p in first), 10, 0.02, "the runaway child to stop")
    assert answer is None
    assert sampler.peak < 160 * MB + 96 * MB, sampler.peak / MB  # a tenth of a second of growth, and a margin for a busy machine
    assert "passed MaxMemoryPerChildHard 160 MB, stopping now (while serving)" in s.stderr
    assert get(s.port, "/hello")[0] == 200  # the replacement serves
    assert "exit signal" not in s.stderr
