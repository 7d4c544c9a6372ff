"""The listener's request reading and keep-alive parking, against the loop
core: a real event loop thread, real socket pairs, no subprocess and no
worker threads (the test takes dispatched connections from the hand-off and
gives them back as a worker does). Every wait is for a condition, with a
deadline."""

from __future__ import annotations

import socket
import time

import pytest

from mpmserver import scoreboard as sbm
from mpmserver import config as configmod
from mpmserver.child import admission
from mpmserver.child.connection import IN_WORKER, Connection, advance, make_nonblocking
from mpmserver.child.handoff import Handoff
from mpmserver.child.listener.listener import Listener, Siblings
from mpmserver.http.outcome import KEEP
from mpmserver.logs import ErrorLog

DEADLINE = 5.0
HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def wait_for(condition, what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.002)


class Record:
    """The scoreboard's child record, as the loop writes it."""

    def __init__(self) -> None:
        self.connections = (0, 0, 0, 0)
        self.response_codes = [0] * sbm.RESPONSE_CELLS  # the listener's own responses, by cell

    def set_connections(self, *counts: int) -> None:
        self.connections = counts

    def set_not_accepting(self, flag: bool) -> None:
        pass

    def set_recycle_cause(self, cause: int) -> None:
        pass


class Owner:
    def accepting(self) -> None:
        pass

    def drained(self) -> None:
        pass

    def graceful_stop(self) -> None:
        pass


class Board:
    master_pid = 0

    def fewest_connections(self, slot: int) -> None:
        return None


class Loop:
    """A listener with no listening socket: connections come in through
    ``open`` (what accepting does after accept())."""

    def __init__(self, **directives) -> None:
        cfg = configmod.from_kwargs(threads_per_child=1, **directives)
        limits, _ = admission.limits_from_config(cfg, siblings=False, fd_soft_limit=None)
        self.handoff = Handoff()
        self.record = Record()
        self.listener = Listener(cfg, [], self.handoff, limits, owner=Owner(),
                                 siblings=Siblings(Board(), 0, transfers=False), record=self.record,
                                 error_log=ErrorLog(None, "crit"), name="test")
        self.table = self.listener.table
        self.pairs: list[socket.socket] = []
        self.listener.start()

    def connect(self) -> tuple[socket.socket, Connection]:
        client, server = socket.socketpair()
        self.pairs += [client, server]
        client.settimeout(DEADLINE)
        conn = Connection(server, "127.0.0.1", 40000, 80)
        self.listener.core.threadsafe(self.listener.reader.open, conn)
        return client, conn

    def take(self) -> Connection:
        """The next dispatched connection, taken as a worker takes it."""
        wait_for(lambda: self.handoff.waiting() > 0, "a request dispatched")
        conn = self.handoff.take_waiting()
        advance(conn, IN_WORKER)
        if conn.blocking:
            make_nonblocking(conn)
        return conn

    def close(self) -> None:
        self.listener.shutdown()
        self.listener.thread.join(DEADLINE)
        assert not self.listener.thread.is_alive()
        for s in self.pairs:
            s.close()


@pytest.fixture
def make_loop():
    """Loop(**directives), closed (its thread joined, its sockets closed) after the test."""
    made: list[Loop] = []

    def make(**directives) -> Loop:
        made.append(Loop(**directives))
        return made[-1]
    yield make
    for lp in made:
        lp.close()


@pytest.fixture
def loop(make_loop):
    return make_loop()


def response(client: socket.socket) -> bytes:
    """All the server sends until it closes (or DEADLINE passes)."""
    out = b""
    while True:
        data = client.recv(65536)
        if not data:
            return out
        out += data


def test_a_head_that_comes_in_pieces_is_dispatched_once_complete(loop):
    client, conn = loop.connect()
    client.sendall(HEAD[:10])
    wait_for(lambda: conn.stage_bytes == 10, "the first piece read")
    client.sendall(HEAD[10:20])
    wait_for(lambda: conn.stage_bytes == 20, "the second piece read")
    assert loop.handoff.waiting() == 0 and conn.timer is not None  # watched, under its stage timer
    client.sendall(HEAD[20:])
    assert loop.take() is conn
    assert conn.buf == HEAD and conn.timer is None
    assert conn.state == IN_WORKER and loop.handoff.waiting() == 0


def test_a_head_sent_with_the_connect_is_dispatched_at_once_without_a_timer(loop):
    client, server = socket.socketpair()
    loop.pairs += [client, server]
    client.sendall(HEAD)
    conn = Connection(server, "127.0.0.1", 40000, 80)
    loop.listener.core.threadsafe(loop.listener.reader.open, conn)
    assert loop.take() is conn
    assert conn.timer is None and conn.buf == HEAD


def test_a_head_over_the_limit_gets_431(make_loop):
    loop = make_loop(limit_request_field_size=100)
    client, _ = loop.connect()
    client.sendall(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 200)  # no end of head yet
    assert response(client).startswith(b"HTTP/1.1 431 ")
    wait_for(lambda: loop.table.total == 0, "the connection counted closed")
    assert loop.handoff.waiting() == 0


def test_a_stage_timer_that_fires_answers_408(make_loop):
    loop = make_loop(timeout=0.3)
    client, _ = loop.connect()
    client.sendall(HEAD[:10])
    started = time.monotonic()
    assert response(client).startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < DEADLINE
    wait_for(lambda: loop.table.total == 0, "the connection counted closed")
    # The server's own response counts in the listener's row of the scoreboard.
    assert loop.record.response_codes[sbm.response_cell(408)] == 1 == sum(loop.record.response_codes)


def test_a_parked_connection_that_gets_a_new_request_is_read_again(loop):
    client, conn = loop.connect()
    client.sendall(HEAD)
    assert loop.take() is conn
    conn.buf = b""
    loop.handoff.give_back(conn, KEEP)  # nothing buffered: the worker parks it itself
    wait_for(lambda: loop.table.parked == 1, "the connection counted parked")
    client.sendall(HEAD[:7])
    client.sendall(HEAD[7:])
    assert loop.take() is conn
    assert conn.buf == HEAD and conn.state == IN_WORKER and loop.table.parked == 0


def test_a_worker_keep_with_part_of_the_next_head_reads_on(loop):
    client, conn = loop.connect()
    client.sendall(HEAD)
    assert loop.take() is conn
    conn.buf = HEAD[:12]  # a pipelined head, cut short
    loop.handoff.give_back(conn, KEEP)
    wait_for(lambda: conn.state != IN_WORKER, "the connection back in the loop")
    client.sendall(HEAD[12:])
    assert loop.take() is conn and conn.buf == HEAD


def test_a_parked_connection_past_keepalivetimeout_is_closed(make_loop):
    loop = make_loop(keep_alive_timeout=0.2)
    client, conn = loop.connect()
    client.sendall(HEAD)
    assert loop.take() is conn
    conn.buf = b""
    loop.handoff.give_back(conn, KEEP)
    wait_for(lambda: loop.table.parked == 1, "the connection counted parked")
    assert response(client) == b""  # closed without a response
    wait_for(lambda: loop.table.total == 0, "the connection counted closed")
    assert loop.record.connections[:2] == (0, 0)


def test_the_counts_are_published(loop):
    client, conn = loop.connect()
    wait_for(lambda: loop.record.connections[0] == 1, "one connection published")
    client.close()
    wait_for(lambda: loop.record.connections[0] == 0, "the closed connection published")
    assert conn.state.name == "CLOSED"
