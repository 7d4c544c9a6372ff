"""The listener's loop core: the loop thread, the connection table, the
timers and watches every room uses, and the counts published to the scoreboard.

The rooms (accept.py, reading.py, spooling.py, parking.py, completion.py,
siblings.py, handshake.py, static.py) are built around one LoopCore by
listener.py, which then calls each room's ``bind()``: a room binds the
methods it calls of the others once per child (the per-request path pays no
attribute chain). The faces below are what a
room may call of another; rooms import this module, never each other (no
import cycle).

Threads: ``start``, ``shutdown``, ``threadsafe`` and ``cut_connections``
may be called from any thread (the last three only schedule work in the
loop); ``table.total`` is an int other threads may read. Everything else
runs in the loop thread.
"""

from __future__ import annotations

import select
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ...eventloop import new_event_loop
from ...scoreboard import TLS_FAILURES
from ...titles import set_thread_title
from ..connection import CLOSED, LINGERING, WRITING, Connection, ConnectionTable

# A connection a worker parks waits for its next request in this epoll set,
# one-shot: the first bytes wake the loop once and disarm it; it stays in the
# set, disarmed, and its next parking re-arms it (one epoll_ctl per request,
# not an add and a delete). Closing the socket takes it out.
PARK_EVENTS = select.EPOLLIN | select.EPOLLONESHOT if hasattr(select, "EPOLLONESHOT") else 0


class Reading(Protocol):
    """reading.RequestReader, as the other rooms see it."""

    def open(self, conn: Connection) -> None: ...
    def connect(self, conn: Connection) -> bool: ...
    def add(self, conn: Connection) -> None: ...
    def start(self, conn: Connection, data: bytes, may_transfer: bool = True) -> None: ...
    def recv(self, conn: Connection, flags: int = 0) -> bytes | None: ...
    def on_readable(self, conn: Connection) -> None: ...
    def on_timeout(self, conn: Connection) -> None: ...


class Spooling(Protocol):
    """spooling.BodySpooling, as the other rooms see it."""

    limits: Any  # spool.SpoolLimits

    def begin(self, conn: Connection, end: int, length: int) -> bool: ...
    def chunked(self, conn: Connection, end: int) -> bool: ...
    def begin_chunked(self, conn: Connection, end: int) -> bool: ...
    def feed(self, conn: Connection, data: bytes) -> bool: ...


class Closing(Protocol):
    """completion.Completion, as the other rooms see it."""

    def close(self, conn: Connection) -> None: ...
    def refuse(self, conn: Connection, err: Any, record: Any = None) -> None: ...
    def linger(self, conn: Connection) -> None: ...
    def release(self, conn: Connection) -> None: ...
    def complete_write(self, conn: Connection, outcome: Any, tail: Any) -> None: ...


class Keeping(Protocol):
    """parking.Parking, as the other rooms see it."""

    def keep(self, conn: Connection) -> None: ...
    def parked(self, conn: Connection) -> None: ...


class Admitting(Protocol):
    """accept.Acceptor, as the other rooms see it."""

    accepting: bool

    def admission(self) -> None: ...
    def kept_alive_queued(self) -> None: ...  # parked clients' requests went to the hand-off


class Handshaking(Protocol):
    """handshake.Handshake, as the other rooms see it."""

    def open(self, conn: Connection, ctx: Any) -> None: ...


class Serving(Protocol):
    """static.StaticFiles, as the reader sees it."""

    def serve(self, conn: Connection, end: int, watched: bool) -> bool: ...


class Transferring(Protocol):
    """siblings.SiblingTransfer, as the other rooms see it."""

    def transferred(self, conn: Connection) -> bool: ...


@dataclass(frozen=True, slots=True)
class Siblings:
    """This child's view of its siblings in the scoreboard: how loaded they
    are (balance at accept) and which have an idle worker (transfer)."""

    scoreboard: Any  # scoreboard.Scoreboard
    slot: int
    transfers: bool  # requests may be transferred (balance on, under a real master)

    def fewest_connections(self) -> int | None:
        return self.scoreboard.fewest_connections(self.slot)

    def idle(self, idle_since: float) -> tuple[list[tuple[int, int]], float]:
        """(slot, idle workers) of the siblings with a worker idle since
        ``idle_since`` (epoch), and the earliest end of a request of a READY
        worker not yet counted (Scoreboard.idle_siblings)."""
        return self.scoreboard.idle_siblings(self.slot, idle_since)


class Rooms(Protocol):
    """What listener.Listener assembles: every room, for the rooms' ``bind()``."""

    core: LoopCore
    reader: Reading
    completion: Closing
    parking: Keeping
    acceptor: Admitting
    transfer: Transferring | None
    handshake: Handshaking | None  # None: no TLS listener
    static: Serving | None
    spooling: Spooling


class Owner(Protocol):
    """The child the listener reports to (child.Child; the test server's)."""

    def accepting(self) -> None: ...  # the first accept: the child serves
    def drained(self) -> None: ...  # the last connection closed after a stop
    def graceful_stop(self) -> None: ...  # the listener wants the child recycled


class Room:
    """A room of the listener: the core's primitives, bound once per child
    (the per-request path then reads no attribute chain)."""

    def __init__(self, core: LoopCore) -> None:
        self.core = core
        loop = core.loop
        self._time = loop.time
        self._call_later = loop.call_later
        self._table = core.table
        self._move = core.table.move
        self._publish = core.publish
        self._set_timer = core.set_timer
        self._unwatch = core.unwatch

    def bind(self, rooms: Rooms) -> None:
        """Bind what this room calls of the others (all exist by now)."""
        self._close = rooms.completion.close


class LoopCore:
    """The loop, its thread and life cycle, the connection table, the
    per-connection timer and read watch, the parking set's membership, and
    publishing the counts."""

    def __init__(self, config: Any, record: Any, error_log: Any, name: str, owner: Owner) -> None:
        self.config = config
        self.record = record  # the child sub-record of the scoreboard: this thread writes it
        self.error_log = error_log
        self.name = name
        self.owner = owner
        self.loop, _, warning = new_event_loop(config.event_loop)
        if warning:
            error_log.warn(warning)
        self.thread = threading.Thread(target=self._run, name="mpm-listener", daemon=True)
        self.ready = threading.Event()
        self.table = ConnectionTable()
        self.stopping = False  # this loop has carried out the stop
        # Connections a worker parked (parking.py), with their KeepAliveTimeout
        # deadlines, oldest first; and the parking set's descriptors. Here
        # because unwatch() must take a connection out of both.
        self.keepalive_queue: dict[Connection, float] = {}
        self.parked_fds: dict[int, Connection] = {}
        # Without epoll (not Linux) workers give every connection back to the loop.
        self.parking_set = select.epoll() if hasattr(select, "epoll") else None
        # TLS (handshake.py): open TLS connections past their handshake,
        # handshakes in progress, failed handshakes by scoreboard.TLS_FAILURES.
        self.tls_open = 0
        self.tls_handshakes = 0
        self.tls_failures = [0] * len(TLS_FAILURES)
        self._begin: Callable[[], None] = lambda: None
        self._end: Callable[[], None] = lambda: None

    def bind(self, rooms: Rooms, begin: Callable[[], None], end: Callable[[], None]) -> None:
        """``begin`` runs in the loop thread before it is ready, ``end`` after it stops."""
        self._close = rooms.completion.close
        self._acceptor = rooms.acceptor
        self._begin, self._end = begin, end

    # -- life cycle (any thread) ------------------------------------------------

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(10)

    def shutdown(self) -> None:
        """End the loop (the child is exiting)."""
        self.threadsafe(self.loop.stop)

    def threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop already closed: the child is gone
            pass

    def cut_connections(self) -> None:
        """Shut down every connection's socket, whoever holds it: a worker
        blocked in recv() on one wakes up (closing would not wake it). Any
        thread: the cut itself runs in the loop thread, which owns the table."""
        self.threadsafe(self._cut_connections)

    def _cut_connections(self) -> None:
        for conn in self.table.connections():
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self) -> None:
        set_thread_title(self.thread.name)
        loop = self.loop
        self._begin()
        loop.call_soon(self.ready.set)
        try:
            loop.run_forever()
        finally:
            for conn in self.table.connections():
                self._close(conn)
            self._end()
            loop.close()
            if self.parking_set is not None:
                self.parking_set.close()

    def check_done(self) -> None:
        if self.stopping and not self.table.total:
            self.owner.drained()

    # -- timers and watches (loop thread) -----------------------------------------

    def set_timer(self, conn: Connection, delay: float, callback: Callable[[Connection], None]) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = self.loop.call_later(delay, callback, conn)

    def unwatch(self, conn: Connection) -> None:
        """Stop every watch on the connection: its timer, and its read watch,
        in the loop or in the parking set."""
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn in self.keepalive_queue:  # parked by a worker, closed before its next request
            del self.keepalive_queue[conn]
            self.forget_parking(conn)
            return
        try:
            self.loop.remove_reader(conn.fd)
        except (ValueError, OSError):
            pass

    def forget_parking(self, conn: Connection) -> None:
        """The connection leaves this child open (to a sibling) or is closed
        by the loop: out of the parking set, so that the set names no
        descriptor of a socket it no longer has (a socket transferred to a
        sibling lives on there)."""
        if self.parked_fds.get(conn.fd) is conn:
            del self.parked_fds[conn.fd]
            try:
                self.parking_set.unregister(conn.fd)
            except (OSError, ValueError):
                pass

    # -- the table and the counts (loop thread) -------------------------------------

    def closed(self, conn: Connection) -> None:
        """A connection's socket is closed: count it gone; a stopping child
        may be done, a paused one may accept again."""
        self.table.move(conn, CLOSED)
        self.publish()
        if conn.tls is not None:
            self.tls_open -= 1
            self.publish_tls()
        if self.stopping:
            self.check_done()
        elif not self._acceptor.accepting:
            self._acceptor.admission()

    def publish(self) -> None:
        table = self.table
        self.record.set_connections(table.total, table.parked, table.count(LINGERING), table.count(WRITING))

    def publish_tls(self) -> None:
        self.record.set_tls(self.tls_open, self.tls_handshakes, self.tls_failures)
