"""The Date header's value: http.framing.http_date(), cached per second."""

from __future__ import annotations

import email.utils
import re
import time

import pytest

from mpmserver.http import framing
from mpmserver.http.framing import http_date

T0 = 1795447013.25  # Mon, 23 Nov 2026 15:16:53.25 UTC


@pytest.fixture
def far_time_zone(monkeypatch):
    """A local time zone far from UTC (POSIX TZ string, no tzdata needed)."""
    monkeypatch.setenv("TZ", "XST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_http_date_format():
    value = http_date()
    assert re.fullmatch(rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                        rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                        rb"\d{4} \d\d:\d\d:\d\d GMT", value)
    parsed = email.utils.parsedate_to_datetime(value.decode()).timestamp()
    assert abs(parsed - time.time()) < 5


@pytest.mark.parametrize("t, expected", [
    (0, b"Thu, 01 Jan 1970 00:00:00 GMT"),
    (T0, b"Mon, 23 Nov 2026 15:16:53 GMT"),
    (951782400, b"Tue, 29 Feb 2000 00:00:00 GMT"),
])
def test_http_date_values(monkeypatch, t, expected):
    monkeypatch.setattr(framing, "_now", lambda: t)
    assert http_date() == expected


def test_http_date_follows_a_clock_stepped_back(monkeypatch):
    clock = [T0 + 3600]
    monkeypatch.setattr(framing, "_now", lambda: clock[0])
    assert http_date() == b"Mon, 23 Nov 2026 16:16:53 GMT"
    clock[0] = T0
    assert http_date() == b"Mon, 23 Nov 2026 15:16:53 GMT"


def test_http_date_is_cached_per_second(monkeypatch, far_time_zone):
    # The local time zone must not leak into the header.
    clock = [T0]
    monkeypatch.setattr(framing, "_now", lambda: clock[0])
    first = http_date()
    clock[0] = T0 + 0.7
    assert http_date() is first  # same second: no new formatting
    clock[0] = T0 + 1
    second = http_date()
    assert second == b"Mon, 23 Nov 2026 15:16:54 GMT"
    assert second is not first
