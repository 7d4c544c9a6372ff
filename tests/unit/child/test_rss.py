"""MaxMemoryPerChild's memory reading (issue 14: ru_maxrss is bytes on macOS)."""

import resource

from mpmserver.child import child
from mpmserver.child.child import maxrss_bytes, rss_bytes


def test_ru_maxrss_units_per_platform():
    assert maxrss_bytes(1000, "darwin") == 1000          # bytes on macOS
    assert maxrss_bytes(1000, "linux") == 1000 * 1024    # kilobytes elsewhere
    assert maxrss_bytes(1000, "freebsd14") == 1000 * 1024


def test_without_proc_the_peak_is_used_in_bytes(monkeypatch):
    def no_proc(*a, **k):
        raise OSError("no /proc")
    monkeypatch.setattr("builtins.open", no_proc)
    monkeypatch.setattr(child.sys, "platform", "darwin")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert rss_bytes() == peak


def test_with_proc_about_the_same_as_the_peak():
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert 0 < rss_bytes() <= peak_kb * 1024 * 1.05
