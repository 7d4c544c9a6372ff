"""Cost of MaxMemoryPerChild's check at the end of each request (child/memory.py)
and of counting a response by status code.

Run: python -m pytest -q -p no:cacheprovider -p no:xdist benchmarks/test_micro_memory.py --benchmark-only \
     --benchmark-columns=min,median
"""

import os
import resource

import pytest

from mpmserver.child.memory import MemoryReader, MemoryWatch
from mpmserver.logs import ErrorLog
from mpmserver.scoreboard import Scoreboard


@pytest.fixture(scope="module")
def board():
    sb = Scoreboard.create(16, 64)
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def reader():
    r = MemoryReader()
    yield r
    r.close()


def test_statm_pread(benchmark, reader):
    """The reading: os.pread of /proc/self/statm from the descriptor opened once."""
    benchmark(reader.rss)


def test_statm_open_read_close(benchmark):
    """What the once-a-second check did before: open, read, close (for comparison)."""
    def read() -> int:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    benchmark(read)


def test_getrusage(benchmark):
    """The other cheap reading (a peak, not the current size: not what is used)."""
    benchmark(resource.getrusage, resource.RUSAGE_SELF)


def test_after_request(benchmark, board, reader):
    """The whole per-request cost with MaxMemoryPerChild set: read, publish, compare."""
    watch = MemoryWatch(reader, board.process(3), 1 << 40, 0, recycle=lambda: None, stop=lambda: None,
                        error_log=ErrorLog(None, "crit"), slot=3)
    benchmark(watch.after_request)


def test_end_request_with_status(benchmark, board):
    """end_request with the response's status counted (one array increment more)."""
    w = board.worker(7, 33)
    w.thread_started(os.getpid(), 1, 0)
    w.begin_request(b"GET / HTTP/1.1")
    benchmark(w.end_request, 1234, 200)
