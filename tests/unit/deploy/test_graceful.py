"""-k graceful's record of a graceful restart's outcome (deploy/graceful.py), as data."""

import pytest

from mpmserver.deploy.graceful import Record, format_record, outcome, parse_record, record_path


def test_a_record_is_one_line_and_reads_back():
    rec = Record(3, False, 7, "SyntaxError: '(' was\nnever closed")
    text = format_record(rec)
    assert text == "3 failed 7 SyntaxError: '(' was never closed\n"
    assert parse_record(text) == Record(3, False, 7, "SyntaxError: '(' was never closed")
    assert parse_record(format_record(Record(0, True, 0))) == Record(0, True, 0)
    assert record_path("/run/mpm.pid") == "/run/mpm.pid.restart"


@pytest.mark.parametrize("text", [None, "", "garbage", "x served 1", "1 maybe 1", "1 served"])
def test_what_is_not_a_record(text):
    assert parse_record(text) is None


@pytest.mark.parametrize("now, alive, state", [
    (Record(2, True, 1), True, "waiting"),      # the record from before USR1
    (None, True, "waiting"),
    (Record(3, True, 2), True, "served"),
    (Record(3, False, 1, "ImportError: x"), True, "failed"),
    (Record(2, True, 1), False, "failed"),      # the master is gone
])
def test_outcome(now, alive, state):
    got, message = outcome(2, now, alive)
    assert got == state
    if state == "failed" and alive:
        assert message == "graceful restart failed, still serving generation 1: ImportError: x"
