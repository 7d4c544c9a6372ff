"""The connection state machine and the connection table (no socket, no thread)."""

import pytest

from mpmserver.child.connection import (
    CLOSED,
    IN_WORKER,
    LINGERING,
    PARKED,
    QUEUED,
    READING_BODY,
    READING_HEAD,
    WRITING,
    ConnectionTable,
    ConnState,
    IllegalTransition,
    advance,
)


class FakeSock:
    def fileno(self):
        return 7


def conn():
    from mpmserver.child.connection import Connection

    return Connection(FakeSock(), "192.0.2.1", 40000, 80)


LEGAL = {
    READING_HEAD: {QUEUED, READING_BODY, WRITING, PARKED, LINGERING, CLOSED},  # PARKED: a file from an Alias
    READING_BODY: {QUEUED, WRITING, CLOSED},
    QUEUED: {IN_WORKER, CLOSED},
    IN_WORKER: {PARKED, READING_HEAD, WRITING, LINGERING, CLOSED},
    PARKED: {READING_HEAD, LINGERING, CLOSED},
    WRITING: {PARKED, READING_HEAD, LINGERING, CLOSED},
    LINGERING: {CLOSED},
    CLOSED: set(),
}


def put_in(c, state):
    c.state = state
    return c


@pytest.mark.parametrize("old", list(ConnState))
@pytest.mark.parametrize("new", list(ConnState))
def test_every_transition_is_allowed_or_refused_as_documented(old, new):
    c = put_in(conn(), old)
    if new in LEGAL[old]:
        assert advance(c, new) == old
        assert c.state == new
    else:
        with pytest.raises(IllegalTransition) as info:
            advance(c, new)
        assert old.name in str(info.value) and new.name in str(info.value)
        assert c.state == old


def test_a_keep_alive_life_and_the_counts_derived_from_it():
    t = ConnectionTable()
    a, b = conn(), conn()
    t.add(a)
    t.add(b)
    assert (len(t), t.count(READING_HEAD)) == (2, 2)
    t.move(a, QUEUED)
    advance(a, IN_WORKER)  # a worker takes it: same bucket, the loop is not told
    assert t.count(QUEUED) == 1 and t.count(IN_WORKER) == 1
    t.move(a, PARKED)
    assert (t.parked, t.count(QUEUED), t.oldest_parked()) == (1, 0, a)
    t.move(b, QUEUED)
    advance(b, IN_WORKER)
    t.move(b, PARKED)
    assert t.parked_connections() == [a, b]  # oldest first: a is given up first
    t.move(a, READING_HEAD)
    assert t.oldest_parked() is b and t.parked == 1
    t.move(a, WRITING)
    t.move(a, LINGERING)
    assert t.count(LINGERING) == 1
    t.move(a, CLOSED)
    t.move(b, CLOSED)
    assert (len(t), t.parked, t.count(LINGERING), t.connections()) == (0, 0, 0, [])


def test_closing_twice_is_refused():
    t = ConnectionTable()
    c = conn()
    t.add(c)
    t.move(c, CLOSED)
    with pytest.raises(IllegalTransition):
        t.move(c, CLOSED)
    assert len(t) == 0
