"""A child's memory (child/memory.py): the reading, the policy, and what a watch does with them."""

import resource

from mpmserver.child import memory
from mpmserver.child.memory import OK, RECYCLE, STOP, MemoryReader, MemoryWatch, decide, maxrss_bytes

MB = 1 << 20


def test_ru_maxrss_units_per_platform():
    assert maxrss_bytes(1000, "darwin") == 1000          # bytes on macOS
    assert maxrss_bytes(1000, "linux") == 1000 * 1024    # kilobytes elsewhere
    assert maxrss_bytes(1000, "freebsd14") == 1000 * 1024


def test_the_reading_is_about_the_peak_and_the_fallback_is_the_peak(monkeypatch):
    reader = MemoryReader()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert 10 * MB < reader.rss() <= peak_kb * 1024 * 1.05
    reader.close()  # as if there were no /proc
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert reader.rss() == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_the_reading_follows_memory_kept_and_freed():
    reader = MemoryReader()
    before = reader.rss()
    kept = bytearray(64 * MB)  # zeroed pages: resident once written
    kept[::4096] = b"x" * len(kept[::4096])
    assert reader.rss() - before > 60 * MB
    del kept
    assert reader.rss() - before < 8 * MB
    reader.close()


def test_policy():
    assert decide(100 * MB, 0, 0) == OK
    assert decide(64 * MB, 64 * MB, 0) == OK  # at the limit is not past it
    assert decide(65 * MB, 64 * MB, 0) == RECYCLE
    assert decide(65 * MB, 64 * MB, 128 * MB) == RECYCLE
    assert decide(129 * MB, 64 * MB, 128 * MB) == STOP
    assert decide(129 * MB, 0, 128 * MB) == STOP


class Reader:
    def __init__(self) -> None:
        self.value = 10 * MB

    def rss(self) -> int:
        return self.value


class Record:
    def __init__(self) -> None:
        self.rss = 0

    def publish_rss(self, rss: int) -> None:
        self.rss = rss


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warn(self, msg: str) -> None:
        self.lines.append(("warn", msg))


def watch(soft: int, hard: int) -> tuple[MemoryWatch, Reader, Record, Log, list[str]]:
    reader, record, log, did = Reader(), Record(), Log(), []
    w = MemoryWatch(reader, record, soft, hard, recycle=lambda: did.append("recycle"),
                    stop=lambda: did.append("stop"), error_log=log, slot=3)
    return w, reader, record, log, did


def test_past_the_limit_a_request_recycles_once_and_says_so_at_warn_with_the_figure():
    w, reader, record, log, did = watch(64 * MB, 0)
    w.after_request()
    assert record.rss == 10 * MB and did == [] and log.lines == []
    reader.value = 70 * MB
    w.after_request()
    w.after_request()
    w.tick()
    assert record.rss == 70 * MB and did == ["recycle"]
    assert log.lines == [("warn", "child 3: resident memory 70 MB passed MaxMemoryPerChild 64 MB, "
                                  "recycling (after a request)")]


def test_past_the_hard_bound_the_child_stops_even_while_recycling():
    w, reader, record, log, did = watch(64 * MB, 128 * MB)
    reader.value = 70 * MB
    w.after_request()
    reader.value = 200 * MB
    w.tick()  # a runaway request in progress: the main thread's second
    w.after_request()
    assert did == ["recycle", "stop"]
    assert log.lines[-1] == ("warn", "child 3: resident memory 200 MB passed MaxMemoryPerChildHard 128 MB, "
                                     "stopping now (while serving)")


def test_without_limits_the_watch_only_publishes():
    w, reader, record, log, did = watch(0, 0)
    assert not w.limited
    reader.value = 1 << 40
    w.tick()
    assert record.rss == 1 << 40 and did == [] and log.lines == []


def test_the_figure_at_start_is_published_but_never_acted_on():
    # A limit below what a child needs to start would otherwise recycle
    # every child before it serves a request.
    w, reader, record, log, did = watch(1 << 20, 2 << 20)
    reader.value = 30 * MB
    assert w.publish() == 30 * MB and record.rss == 30 * MB
    assert did == [] and log.lines == []
