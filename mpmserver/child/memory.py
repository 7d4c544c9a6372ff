"""A child's resident memory: read cheaply, published to the scoreboard, held under its limits.

MaxMemoryPerChild recycles a child gracefully (as MaxRequestsPerChild does)
after the request that took its resident memory past the limit: the check
runs at the end of every request, so a child overshoots by what its
requests in flight add, not by a second's worth of requests.
MaxMemoryPerChildHard is the bound for a runaway: past it the child stops
at once, cutting the requests it is serving (uWSGI's evil-reload-on-rss);
it is checked at the end of every request and every tenth of a second by
the child's main thread, which catches a request that never ends.

Both are resident memory (RSS), what the kernel's OOM killer and a
container's limit count, and not address space (RLIMIT_AS, uWSGI's
limit-as): a Python child with threads reserves several times its RSS in
address space (8 MiB of stack and up to 64 MiB of malloc arena per thread),
so an address-space bound means nothing a person can size, and a MemoryError
it raises may land in any thread, not only the runaway request.

Reading: os.pread of /proc/self/statm from a descriptor opened once per
child, about 1.5 us (benchmarks/test_micro_memory.py); getrusage's
ru_maxrss is the fallback where there is no /proc (a peak: a child past the
limit there is recycled all the same).

``decide`` is the policy, pure; ``MemoryWatch`` carries it out in a child.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any, Callable

__all__ = ["OK", "RECYCLE", "STOP", "MemoryReader", "MemoryWatch", "decide", "maxrss_bytes"]

OK = 0
RECYCLE = 1  # past MaxMemoryPerChild: a graceful stop
STOP = 2  # past MaxMemoryPerChildHard: stop now
TICK_SECONDS = 1.0
HARD_TICK_SECONDS = 0.1


def decide(rss: int, soft: int, hard: int) -> int:
    """What ``rss`` bytes mean under the limits (0: no such limit)."""
    if hard and rss > hard:
        return STOP
    if soft and rss > soft:
        return RECYCLE
    return OK


def maxrss_bytes(ru_maxrss: int, platform: str) -> int:
    """ru_maxrss in bytes: macOS reports bytes, Linux and the BSDs kilobytes."""
    return ru_maxrss if platform == "darwin" else ru_maxrss * 1024


class MemoryReader:
    """The resident memory of the process that made it. Make it in the
    process to measure (a forked child opens its own: a descriptor of
    /proc/self/statm opened by the master would go on reading the master)."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        try:
            self._fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = -1

    def rss(self, _pread: Callable[[int, int, int], bytes] = os.pread) -> int:
        """Resident bytes now (the peak where there is no /proc)."""
        if self._fd < 0:
            return maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, sys.platform)
        # statm: "size resident shared text lib data dt", in pages.
        return int(_pread(self._fd, 64, 0).split(None, 2)[1]) * self._page

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class MemoryWatch:
    """One child's memory: ``after_request`` in the worker threads (when a
    limit is set), ``tick`` each second in the child's main thread. Each
    reading is published to the child's process record (server-status,
    /metrics). ``recycle`` and ``stop`` are the child's graceful stop and
    immediate stop; each is called once."""

    def __init__(self, reader: MemoryReader, record: Any, soft: int, hard: int, *,
                 recycle: Callable[[], None], stop: Callable[[], None], error_log: Any, slot: int) -> None:
        self.reader = reader
        self.record = record
        self.soft = soft
        self.hard = hard
        self._recycle = recycle
        self._stop = stop
        self.error_log = error_log
        self.slot = slot
        self._done = OK  # the strongest verdict acted on

    @property
    def limited(self) -> bool:
        return bool(self.soft or self.hard)

    @property
    def period(self) -> float:
        """Seconds between two ticks: a tenth of a second under a hard bound
        (a runaway request then overshoots it by a tenth of a second's
        growth: one pread each time), else one."""
        return HARD_TICK_SECONDS if self.hard else TICK_SECONDS

    def after_request(self) -> None:
        """A worker's request ended: read, publish, act past a limit."""
        rss = self.reader.rss()
        self.record.publish_rss(rss)
        if (self.hard and rss > self.hard) or (self.soft and rss > self.soft):
            self._act(rss, "after a request")

    def publish(self) -> int:
        """Read and publish only: the figure at the child's start, which is
        never acted on (a limit below what a child needs to start would
        otherwise recycle every child before it serves)."""
        rss = self.reader.rss()
        self.record.publish_rss(rss)
        return rss

    def tick(self) -> None:
        """Once a second, from the child's main thread: the figure the status
        page shows between requests, and a runaway request's hard bound."""
        rss = self.reader.rss()
        self.record.publish_rss(rss)
        if decide(rss, self.soft, self.hard) != OK:
            self._act(rss, "while serving")

    def _act(self, rss: int, when: str) -> None:
        verdict = decide(rss, self.soft, self.hard)
        if verdict <= self._done:
            return
        self._done = verdict  # two threads may get here at once: at worst one line twice
        if verdict == STOP:
            self.error_log.warn(f"child {self.slot}: resident memory {rss >> 20} MB passed "
                                f"MaxMemoryPerChildHard {self.hard >> 20} MB, stopping now ({when})")
            self._stop()
        else:
            self.error_log.warn(f"child {self.slot}: resident memory {rss >> 20} MB passed "
                                f"MaxMemoryPerChild {self.soft >> 20} MB, recycling ({when})")
            self._recycle()
