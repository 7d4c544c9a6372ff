"""Keep-alive parking (Apache's keep-alive queue): connections between requests.

A worker that finishes a request with nothing of the next one buffered
parks the connection itself (``park``, in the worker thread: epoll_ctl is
thread-safe, so the loop is not woken) and gives it back as
PARKED_BY_WORKER; the loop then only counts it (``parked``) and gives it its
KeepAliveTimeout deadline. The loop parks the same way a connection whose
response tail it wrote (``keep``). The parking set is one-shot: the first
bytes wake the loop once (``on_parked_readable``), which reads them and
starts the request (reading.py). One timer for the oldest deadline sweeps
the idle ones (``sweep``). Without epoll (not Linux) a parked connection is
watched by the loop itself.

Threads: ``park`` runs in worker threads; everything else in the loop thread.
"""

from __future__ import annotations

from typing import Any

from ..connection import PARKED, READING_HEAD, Connection
from ..handoff import Handoff
from .core import PARK_EVENTS, LoopCore, Room, Rooms

# How long a gracefully stopping child keeps an idle keep-alive connection.
STOP_GRACE_SECONDS = 1.0


class Parking(Room):
    def __init__(self, core: LoopCore, handoff: Handoff) -> None:
        super().__init__(core)
        self.handoff = handoff
        self.keep_alive_timeout = core.config.keep_alive_timeout
        # A stopping child's grace for a parked connection (see stop()).
        self._grace = min(self.keep_alive_timeout, STOP_GRACE_SECONDS)
        self._polling = False  # in on_parked_readable, which publishes once at its end
        self._stopping = False  # the child stops: parked connections get a grace (stop())
        self._sweep_timer: Any = None
        self._queue = core.keepalive_queue
        self._fds = core.parked_fds
        self._set = core.parking_set

    def bind(self, rooms: Rooms) -> None:
        super().bind(rooms)
        self._start = rooms.reader.start
        self._recv = rooms.reader.recv
        self._on_readable = rooms.reader.on_readable
        self._on_timeout = rooms.reader.on_timeout
        self._acceptor = rooms.acceptor

    def begin(self) -> None:
        """Loop thread, before it serves: watch the parking set, and let
        the workers park in it."""
        if self._set is not None:
            self.core.loop.add_reader(self._set.fileno(), self.on_parked_readable)
            self.handoff.attach_parking(self.park)

    # -- parking ----------------------------------------------------------------------

    def park(self, conn: Connection) -> None:
        """A worker thread's (or the loop's): watch an idle connection in the
        parking set. The descriptor is known before it can fire. The socket
        is non-blocking already, as the loop needs it: the worker made it so
        before its first request (Worker.serve) and its Channel keeps it."""
        fd = conn.fd
        fds = self._fds
        try:
            if fds.get(fd) is conn:  # in the set from its last parking, disarmed
                try:
                    self._set.modify(fd, PARK_EVENTS)
                    return
                except FileNotFoundError:
                    pass
            fds[fd] = conn
            self._set.register(fd, PARK_EVENTS)
        except (OSError, ValueError):  # ValueError: the set is closed, the child exits
            # Not watched: its keep-alive deadline still closes it. (This
            # thread owns the connection, so no other one has its descriptor.)
            fds.pop(fd, None)

    def parked(self, conn: Connection) -> None:
        """The loop's side of a parking: count it parked, and give it its
        keep-alive deadline."""
        self._move(conn, PARKED)
        if not self._polling:  # else published once, after the poll
            self._publish()
        timeout = self.keep_alive_timeout
        if self._stopping:
            # Its own timer: a grace shorter than the queue's deadlines.
            self._set_timer(conn, self._grace, self._on_timeout)
        self._queue[conn] = self._time() + timeout
        if self._sweep_timer is None:
            self._sweep_timer = self._call_later(timeout, self.sweep)

    def keep(self, conn: Connection) -> None:
        """Keep-alive, in the loop (after write completion, or a worker's
        KEEP with part of the next request read): read on if bytes are here,
        else park. Even when stopping: the response promised keep-alive (the
        stop came after its headers), so the client may already be sending
        its next request, which will be answered with Connection: close."""
        if conn.buf:
            self._move(conn, READING_HEAD)
            self._start(conn, conn.buf)
            return
        if self._set is not None:
            self.park(conn)
            self.parked(conn)
            return
        self._move(conn, PARKED)
        self._set_timer(conn, self._grace if self._stopping else self.keep_alive_timeout, self._on_timeout)
        self.core.loop.add_reader(conn.fd, self._on_readable, conn)
        self._publish()

    def stop(self) -> None:
        """A graceful stop: parked connections get a short grace rather than
        being closed at once: closing one at once would reset a busy client
        whose next request is already on the way (a recycling child would
        lose requests), while an idle client is closed within
        STOP_GRACE_SECONDS, the same race as any keep-alive timeout."""
        self._stopping = True
        for conn in self._table.parked_connections():
            self._set_timer(conn, self._grace, self._on_timeout)

    # -- waking and sweeping -------------------------------------------------------------

    def on_parked_readable(self) -> None:
        """Parked connections have bytes (or an end): read the next request of
        each; publish the counts once, after them all."""
        # A worker queues its record before it registers the socket, so
        # polling first, then draining, counts every connection polled as
        # PARKED before it is read (drained first, a worker could slip a
        # park in between, its socket polled with its record not drained).
        events = self._set.poll(0)
        self._polling = True
        try:
            self.handoff.drain_returned()
            fds = self._fds
            queue = self._queue
            recv = self._recv
            for fd, _ in events:
                conn = fds.get(fd)
                if conn is None or conn.state != PARKED:
                    continue  # closed since (a worker's close leaves its descriptor named here)
                # Out of the keep-alive queue; it stays in the set, disarmed,
                # until it closes or parks again.
                del queue[conn]
                data = recv(conn)
                if not data:
                    if data is not None:  # woken for nothing: armed again
                        self.park(conn)
                        queue[conn] = self._time() + self.keep_alive_timeout
                    continue
                # Timeout, not KeepAliveTimeout, bounds the rest of the head.
                self._move(conn, READING_HEAD)
                self._start(conn, data)
        finally:
            self._polling = False
        self._publish()
        if not self._acceptor.accepting:
            # Their requests bypass admission: a new connection must not
            # wait behind them for ever (fair waiting, accept.py).
            self._acceptor.kept_alive_queued()

    def sweep(self) -> None:
        """Close the parked connections past KeepAliveTimeout (oldest first:
        their deadlines are in order); come back for the next one."""
        self._sweep_timer = None
        queue = self._queue
        now = self._time()
        while queue:
            conn, deadline = next(iter(queue.items()))
            if deadline > now:
                self._sweep_timer = self._call_later(deadline - now, self.sweep)
                return
            self._close(conn)  # its unwatch takes it out of the queue
            queue.pop(conn, None)
