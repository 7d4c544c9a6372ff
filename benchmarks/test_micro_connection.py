"""Micro-benchmarks of the new-connection path, step by step (pytest-benchmark).

    pytest -p no:cacheprovider benchmarks/test_micro_connection.py --benchmark-only

(without --benchmark-only it also runs the one check that is not a timing:
that accepted sockets inherit TCP_NODELAY from the listening socket)

What the listener and a worker do for a client that connects, sends one
request with `Connection: close`, reads the response and closes (issue 15),
in the order it happens (listener/accept.py `_on_acceptable` ..
completion.py `close`):

 1. admission: `Acceptor._admits` (the hand-off's lock, admission.admits) and
    `_steps_aside` (`crowded()`: a scoreboard read of every sibling),
    once per accepted connection and once more for the accept that finds
    the backlog empty;
 2. accept (+ setblocking(False) + setsockopt(TCP_NODELAY) before issue 15);
 3. a Connection, the table's add, the scoreboard publish (`LoopCore.publish`);
 4. a Timeout timer and add_reader, paid only when the head did not come
    with the connect (reading.py `RequestReader.start`);
 5. reading the head at accept: one recv;
 6. `protocol.take_head`: split_head + check_head;
 7. the hand-off: push, take (the worker's side, lock twice), and the way
    back (give_back: call_soon_threadsafe, a loop wake-up);
 8. the write: one send of the whole response;
 9. the close: the lingering close (`Completion.linger`: publish, shutdown(SHUT_WR),
    a 2 s timer, add_reader; then a loop wake-up on the client's FIN, recv,
    `close`: remove_reader, publish, close) vs a plain close.

Each test times one step on real sockets over loopback TCP where the step
is a system call, and the server's own objects otherwise: the steps of the
listener (admission, crowded, publish, the lingering and the plain close)
are its own methods, on a listener whose loop is not running;
`test_accept_read_dispatch` runs the listener's whole accept path (steps
1-7, the loop's side). Nothing here
changes mpmserver; the cuts this suggests are in benchmarks/README.md.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from mpmserver import config as configmod
from mpmserver.child import admission
from mpmserver.child.connection import (
    CLOSED,
    IN_WORKER,
    LINGERING,
    QUEUED,
    Connection,
    ConnectionTable,
    advance,
)
from mpmserver.child.handoff import Handoff
from mpmserver.child.listener.listener import Listener, Siblings
from mpmserver.eventloop import new_event_loop
from mpmserver.http import protocol
from mpmserver.http.outcome import CLOSE, DONE
from mpmserver.logs import ErrorLog
from mpmserver.scoreboard import RESPONSE_CELLS, Scoreboard

# What wrk -H 'Connection: close' sends.
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nDate: Sun, 29 Nov 2026 10:00:00 GMT\r\nServer: mpmserver\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!")
ROUNDS = 2000


@pytest.fixture
def listening():
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4096)
    lsock.setblocking(False)
    yield lsock
    lsock.close()


class Pairs:
    """Connected (client, server) TCP pairs over loopback, made in setup
    (untimed) and closed after the benchmark."""

    def __init__(self, lsock: socket.socket) -> None:
        self.lsock = lsock
        self.addr = lsock.getsockname()
        self.open: list[socket.socket] = []

    def client(self, send: bytes = b"") -> socket.socket:
        c = socket.create_connection(self.addr)
        if send:
            c.sendall(send)
        self.open.append(c)
        return c

    def pair(self, send: bytes = b"") -> tuple[socket.socket, socket.socket]:
        c = self.client(send)
        self.lsock.setblocking(True)
        s, _ = self.lsock.accept()
        self.lsock.setblocking(False)
        self.open.append(s)
        return c, s

    def reap(self) -> None:
        """Close what earlier rounds left, so descriptors stay few."""
        if len(self.open) > 200:
            for s in self.open:
                s.close()
            self.open.clear()

    def backlogged(self) -> tuple[tuple[socket.socket], dict]:
        """A benchmark's setup: a client connected with its request sent,
        waiting in the listening socket's backlog; the step gets the
        listening socket."""
        self.reap()
        self.client(REQUEST)
        return (self.lsock,), {}

    def close(self) -> None:
        for s in self.open:
            s.close()
        self.open.clear()


@pytest.fixture
def pairs(listening):
    p = Pairs(listening)
    yield p
    p.close()


def _accept_one(lsock):
    sock, addr = lsock.accept()
    return sock


# -- 2. accept + socket options -------------------------------------------------


def test_accept(benchmark, pairs):
    """accept() alone (the connection is already in the backlog)."""
    def step(lsock):
        sock, _ = lsock.accept()
        pairs.open.append(sock)
    benchmark.pedantic(step, setup=pairs.backlogged, rounds=ROUNDS)


def test_accept_setblocking_nodelay(benchmark, pairs):
    """What the listener did to a new socket before issue 15: accept,
    setblocking(False), setsockopt(TCP_NODELAY)."""
    def step(lsock):
        sock, addr = lsock.accept()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pairs.open.append(sock)
    benchmark.pedantic(step, setup=pairs.backlogged, rounds=ROUNDS)


def test_accept_and_read_the_head_nonblocking(benchmark, pairs):
    """Before issue 15 part 2: accept, setblocking(False), TCP_NODELAY, recv."""
    def step(lsock):
        sock, addr = lsock.accept()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pairs.open.append(sock)
        return sock.recv(65536)
    benchmark.pedantic(step, setup=pairs.backlogged, rounds=ROUNDS)


def test_accept_private(benchmark, pairs):
    """What listener/accept.py does instead of socket.accept(): the private
    _accept() and a socket object from the kinds read once per listening
    socket (no enum conversions, no default-timeout call): the measured
    reason the private call stays (compare test_accept)."""
    kind = (int(pairs.lsock.family), int(pairs.lsock.type), pairs.lsock.proto)

    def step(lsock):
        fd, addr = lsock._accept()
        pairs.open.append(socket.socket(*kind, fileno=fd))
    benchmark.pedantic(step, setup=pairs.backlogged, rounds=ROUNDS)


class _Record:
    response_codes = [0] * RESPONSE_CELLS  # the listener's row of responses by status code

    def set_connections(self, *counts):
        pass

    def set_not_accepting(self, flag):
        pass


class _Owner:
    def accepting(self):
        pass


class _Board:
    master_pid = 0


@pytest.fixture
def make_listener():
    """make_listener(pairs, event_loop=None, record=None, scoreboard=None,
    balance=False): a Listener on pairs' listening socket, its loop not
    running (a benchmark turns it), four workers counted idle; closed
    after. ``record``: the child's scoreboard record (default: one that
    writes nothing); ``scoreboard``: the siblings' (with ``balance``)."""
    made = []

    def make(pairs, event_loop=None, *, record=None, scoreboard=None, balance=False):
        cfg = configmod.from_kwargs(threads_per_child=4, event_loop=event_loop)
        limits = admission.Limits(max_open=8192, max_connections=0, factor=1.0, balance=balance, slack=2)
        handoff = Handoff()
        handoff._idle = 4  # four workers waiting: admission says yes
        listener = Listener(cfg, [pairs.lsock], handoff, limits, owner=_Owner(),
                            siblings=Siblings(scoreboard or _Board(), 0, transfers=False),
                            record=record or _Record(), error_log=ErrorLog(None, "crit"), name="bench")
        made.append(listener)
        return listener
    yield make
    for listener in made:
        listener.core.loop.close()


@pytest.fixture(params=["uvloop", "asyncio"])
def listener_of(request, make_listener):
    """listener_of(pairs): make_listener's, once with each event loop."""
    def make(pairs):
        listener = make_listener(pairs, request.param)
        if type(listener.core.loop).__module__.split(".")[0] != request.param:
            pytest.skip(f"{request.param} is not installed")
        return listener
    return make


def test_accept_read_dispatch(benchmark, pairs, listener_of):
    """The listener's own path for a connection whose request came with the
    connect: Acceptor._on_acceptable (admission, accept, the Connection,
    RequestReader.open: add, publish, one recv, take_head, the dispatch into
    the hand-off), then the accept that finds the backlog empty. The loop is
    not running (its drain timer never fires); the setup closes what the
    round before dispatched, as a worker would (untimed)."""
    listener = listener_of(pairs)
    handoff = listener.handoff
    table = listener.table
    on_acceptable = listener.acceptor._on_acceptable

    def setup():
        conn = handoff.take_waiting()
        if conn is not None:
            advance(conn, IN_WORKER)
            conn.sock.close()
            table.move(conn, CLOSED)
        return pairs.backlogged()
    benchmark.pedantic(on_acceptable, setup=setup, rounds=ROUNDS)
    assert handoff.waiting() == 1
    setup()


def test_setsockopt_nodelay(benchmark, pairs):
    _, s = pairs.pair()
    benchmark(s.setsockopt, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def test_setblocking(benchmark, pairs):
    """One O_NONBLOCK change (ioctl). A connection got three before issue 15's
    cuts (non-blocking at accept, the worker's settimeout, non-blocking again
    when given back); now one, the worker's, when its head came with the connect."""
    _, s = pairs.pair()
    benchmark(s.setblocking, False)


def test_nodelay_is_inherited_from_the_listening_socket(listening):
    """Linux copies TCP_NODELAY from the listening socket to accepted ones:
    it can be set once per listening socket instead of once per connection."""
    listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = socket.create_connection(listening.getsockname())
    listening.setblocking(True)
    s, _ = listening.accept()
    try:
        inherited = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        s.close()
        c.close()
    if not inherited:
        pytest.skip("this kernel does not copy TCP_NODELAY to accepted sockets")
    assert inherited


# -- 1. admission ----------------------------------------------------------------


def test_admits(benchmark, pairs, make_listener):
    """Acceptor._admits when admission says yes: the closure, the hand-off's
    lock, admission.admits."""
    listener = make_listener(pairs)
    assert benchmark(listener.acceptor._admits)


@pytest.mark.parametrize("server_limit", [2, 16])
def test_fewest_sibling(benchmark, pairs, make_listener, server_limit):
    """Acceptor.crowded(), on every accept (and on the accept that finds
    nothing): the siblings' fewest connections, read from the scoreboard
    (Scoreboard.fewest_connections reads every sibling's record) at most
    once per accept.FEWEST_TTL, else the value read last, then
    admission.prefers_sibling. ServerLimit 16 is the default; compare.py's
    2 x 4 runs with it."""
    sb = Scoreboard.create(server_limit, 4)
    try:
        for slot in range(2):  # two live children, as in compare.py's runs
            rec = sb.process(slot)
            rec.spawned(os.getpid(), 0)
            rec.set_connections(slot * 3, 0)
        assert sb.fewest_connections(0) == 3
        listener = make_listener(pairs, scoreboard=sb, balance=True)
        for _ in range(5):  # five open here: not clearly more than the sibling's three (slack 2)
            listener.table.add(Connection(pairs.pair()[1], "127.0.0.1", 40000, 8080))
        assert benchmark(listener.acceptor.crowded) is False
    finally:
        sb.close()


# -- 3, 4. the connection's bookkeeping --------------------------------------------


@pytest.fixture
def child_record():
    sb = Scoreboard.create(2, 4)
    yield sb.process(0)
    sb.close()


def test_publish(benchmark, pairs, make_listener, child_record):
    """LoopCore.publish: three per Connection: close connection (open,
    linger, close), each a seqlocked write of the child's record."""
    listener = make_listener(pairs, record=child_record)
    benchmark(listener.core.publish)


def test_connection_and_table(benchmark, pairs):
    """Connection(...) + table.add + the moves of a Connection: close
    connection (QUEUED, LINGERING, CLOSED), without the socket calls."""
    _, s = pairs.pair()
    table = ConnectionTable()

    def step():
        conn = Connection(s, "127.0.0.1", 40000, 8080)
        table.add(conn)
        table.move(conn, QUEUED)
        advance(conn, IN_WORKER)  # the worker's move: the same bucket, no table change
        table.move(conn, LINGERING)
        table.move(conn, CLOSED)
    benchmark(step)


@pytest.fixture(params=["uvloop", "asyncio"])
def loop(request):
    lp, name, _ = new_event_loop(request.param)
    if name != request.param:
        lp.close()
        pytest.skip(f"{request.param} is not installed")
    yield lp
    lp.close()


def test_watch_unwatch(benchmark, loop, pairs):
    """A Timeout timer and a read watch undone with nothing in between
    (call_later, cancel, add_reader/remove_reader: two epoll_ctl): what every
    connection whose head arrived with the connect paid before issue 15,
    and what RequestReader.start saves it now."""
    _, s = pairs.pair()
    fd = s.fileno()
    cb = lambda *a: None  # noqa: E731

    def step():
        t = loop.call_later(60.0, cb)
        loop.add_reader(fd, cb)
        t.cancel()
        loop.remove_reader(fd)
    benchmark(step)


# -- 5, 6. the head ------------------------------------------------------------------


def test_recv_head_at_accept(benchmark, pairs):
    """The one recv that reads the head sent with the connect."""
    def setup():
        pairs.reap()
        c, s = pairs.pair(REQUEST)
        s.setblocking(False)
        return (s,), {}
    benchmark.pedantic(lambda s: s.recv(65536), setup=setup, rounds=ROUNDS)


def test_check_head(benchmark):
    """protocol.take_head on a complete head (the listener's check, and a
    worker's of a pipelined head): split_head + check_head."""
    rules = protocol.HeadRules.from_config(configmod.from_kwargs())
    assert benchmark(protocol.take_head, REQUEST, 0, rules)[1] == len(REQUEST)


# -- 7. the hand-off ---------------------------------------------------------------


def test_handoff_push_take(benchmark):
    """push (the listener) + take (a worker: the lock twice, the queue),
    with no thread waiting: the bookkeeping, not the thread switch."""
    h = Handoff()
    conn = object()

    def step():
        h.push(conn)
        return h.take()
    assert benchmark(step) is conn


def test_handoff_to_a_waiting_worker(benchmark):
    """push to a worker blocked in take(), which answers at once: the
    thread switch and wake-up a connection pays to reach a worker."""
    h = Handoff()
    back = Handoff()  # the worker answers through a second queue
    stop = object()

    def worker():
        while True:
            c = h.take()
            if c is stop:
                return
            back.push(c)
    t = threading.Thread(target=worker, daemon=True)
    t.start()
    conn = object()

    def step():
        h.push(conn)
        return back.take()
    try:
        assert benchmark(step) is conn
    finally:
        h.push(stop)
        t.join(5)


def test_give_back_wakes_the_loop(benchmark, loop):
    """give_back from a worker thread with the loop idle: call_soon_threadsafe
    (a write to the loop's wake-up pipe), the loop waking, drain_returned.
    Coalesced under load; one per connection when connections are few."""
    h = Handoff()
    done = threading.Event()
    h.attach_loop(loop.call_soon_threadsafe, lambda c, o, d: loop.stop(), lambda: None)
    conn = object()

    def step():
        t = threading.Thread(target=h.give_back, args=(conn, CLOSE))
        t.start()
        loop.run_forever()
        t.join()
    benchmark(step)
    done.set()


@pytest.mark.parametrize("deferred", [False, True], ids=["wakes", "deferred"])
def test_give_back_done(benchmark, loop, deferred):
    """A worker's report of a connection it closed itself (DONE), the
    worker's side: before, it woke the loop (call_soon_threadsafe, a write to
    the loop's wake-up descriptor) on top of take()'s wake-up when the
    listener waited for a worker; now it only appends while the listener
    accepts or waits for a worker. (The loop's wake-up it saves, ~30 us and
    a GIL switch, is in test_give_back_wakes_the_loop.)"""
    h = Handoff()
    h.attach_loop(loop.call_soon_threadsafe, lambda c, o, d: None, lambda: None)
    h.defer_done(deferred)
    conn = object()

    def setup():
        h._returned.clear()
        h._return_pending = False
        return (), {}
    benchmark.pedantic(lambda: h.give_back(conn, DONE), setup=setup, rounds=ROUNDS)
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_thread_start_baseline(benchmark):
    """The thread start inside test_give_back_wakes_the_loop, to subtract."""
    def step():
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
    benchmark(step)


# -- 8. the write --------------------------------------------------------------------


def test_write_response(benchmark, pairs):
    """The worker's one send of a whole small response (head and body)."""
    c, s = pairs.pair()
    s.settimeout(5)
    c.setblocking(False)

    def step():
        s.send(RESPONSE)
        try:
            c.recv(65536)  # keep the client's buffer from filling (untimed would be nicer)
        except BlockingIOError:
            pass
    benchmark(step)


# -- 9. the close ----------------------------------------------------------------------


def _served_in_worker(pairs, table):
    """A connection the client has closed, as a worker gives it back."""
    conn = Connection(_closing_pair(pairs, True), "127.0.0.1", 40000, 8080)
    table.add(conn)
    table.move(conn, QUEUED)
    advance(conn, IN_WORKER)
    return conn


def _closing_pair(pairs, client_closed: bool):
    """A served connection: request read, response written and read by the
    client; the client has closed its side already when client_closed."""
    pairs.reap()
    c, s = pairs.pair(REQUEST)
    s.recv(65536)
    s.sendall(RESPONSE)
    c.recv(65536)
    if client_closed:
        c.close()
        pairs.open.remove(c)
    s.setblocking(False)
    return s


def test_close_plain(benchmark, pairs):
    """close() on a served connection: what a server does without lingering."""
    benchmark.pedantic(lambda s: s.close(), setup=lambda: ((_closing_pair(pairs, True),), {}), rounds=ROUNDS)


def test_close_lingering_syscalls(benchmark, pairs):
    """The system calls of the lingering close when the client has already
    closed: shutdown(SHUT_WR), the recv that sees its FIN, close."""
    def step(s):
        s.shutdown(socket.SHUT_WR)
        assert s.recv(65536) == b""
        s.close()
    benchmark.pedantic(step, setup=lambda: ((_closing_pair(pairs, True),), {}), rounds=ROUNDS)


def test_close_lingering_in_the_loop(benchmark, pairs, request, listener_of):
    """The listener's whole lingering close when the client has already
    closed, run by the listener's own Completion: linger (table move,
    publish, shutdown, a 2 s timer, add_reader), the loop turns until the
    readable event is handled, then _on_linger_readable + close (recv,
    cancel, remove_reader, move, close, publish)."""
    listener = listener_of(pairs)
    loop = listener.core.loop
    table = listener.table
    linger = listener.completion.linger

    def setup():
        return (_served_in_worker(pairs, table),), {}

    def step(conn):
        linger(conn)
        while conn.state != CLOSED:
            loop.call_soon(loop.stop)
            loop.run_forever()
    benchmark.pedantic(step, setup=setup, rounds=ROUNDS)


def test_close_plain_in_the_loop(benchmark, pairs, make_listener, child_record):
    """What a connection that needs no lingering costs instead (a client
    that said Connection: close and sent nothing more: FINISHED): the
    worker's close, then the loop's count of it (LoopCore.closed: the
    table move, the publish)."""
    listener = make_listener(pairs, record=child_record)
    listener.acceptor.admission()  # accepting, as a serving child is (else closed() asks admission)
    table = listener.table
    closed = listener.core.closed

    def setup():
        return (_served_in_worker(pairs, table),), {}

    def step(conn):
        conn.sock.close()
        closed(conn)
    benchmark.pedantic(step, setup=setup, rounds=ROUNDS)


def test_loop_turn_baseline(benchmark, loop):
    """run_forever until a call_soon'd stop: the harness cost inside the
    tests above that run the loop once (subtract it from them)."""
    def step():
        loop.call_soon(loop.stop)
        loop.run_forever()
    benchmark(step)
