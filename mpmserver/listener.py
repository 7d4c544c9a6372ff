"""The listener: one event loop thread per child (uvloop, or asyncio).

It accepts connections while the child can take them (admission), reads each
request head without a worker thread, and hands connections with a complete,
checked head to the workers through the child's ready queue. Keep-alive
connections come back here between requests (parking, status K) and closing
connections are drained here (lingering close), so idle and slow clients cost
a file descriptor, never a thread.

All methods named `_on_*` and `_do_*` run in the loop thread; `park`, `close`,
`refuse`, `wake` and `stop` are called from other threads and hop into it.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import select
import socket
import threading
from typing import TYPE_CHECKING

from . import SERVER_SOFTWARE, protocol

try:  # imported here, in the master: a child may run as a user who cannot read site-packages
    import uvloop
except ImportError:  # pragma: no cover - depends on the platform
    uvloop = None
from .connection import Connection
from .logs import http_date

if TYPE_CHECKING:
    from .child import Child

SERVER_HEADER = SERVER_SOFTWARE.encode()
# How long a closing connection is drained so the client reads our response
# before the kernel would answer its late bytes with a reset (Apache: 2 s).
LINGER_SECONDS = 2.0
RECV_SIZE = 65536
ACCEPT_BATCH = 16
# Descriptors kept out of MaxOpenConnectionsPerChild's reach: listening
# sockets, logs, the scoreboard, the app's own files.
RESERVED_FDS = 64
# How soon a child that stopped accepting asks admission again by itself.
RECHECK_SECONDS = 0.05
# How long a gracefully stopping child keeps an idle keep-alive connection.
STOP_GRACE_SECONDS = 1.0
# How long a child steps aside for a less loaded sibling.
STEP_ASIDE_SECONDS = 0.002
# After stepping aside this long without the sibling taking the connection,
# serve it: the sibling may be stuck.
STEP_ASIDE_LIMIT = 0.02


def new_event_loop(kind: str) -> tuple[asyncio.AbstractEventLoop, str | None]:
    """The loop for `EventLoop kind`; falls back to asyncio with a warning."""
    if kind == "uvloop":
        if uvloop is None:
            return asyncio.new_event_loop(), "EventLoop uvloop: uvloop is not installed, using asyncio"
        return uvloop.new_event_loop(), None
    return asyncio.new_event_loop(), None


class Listener:
    def __init__(self, child: "Child", sockets: list[socket.socket]):
        self.child = child
        self.sockets = sockets
        # A listening socket's port never changes: no getsockname() per connection.
        self.local_ports = {sock: sock.getsockname()[1] for sock in sockets}
        self.config = child.config
        self.loop, warning = new_event_loop(child.config.event_loop)
        if warning:
            child.error_log.warn(warning)
        self.thread = threading.Thread(target=self._run, name="mpmserver-listener", daemon=True)
        self.ready = threading.Event()
        self.conns: set[Connection] = set()  # every open connection of the child
        # Of which waiting for their next request (K), oldest first: the ones
        # given up when the child needs room.
        self._parked: dict[Connection, None] = {}
        self.accepting = False
        self.stopping = False
        self._recheck = None
        self._incoming: collections.deque[Connection] = collections.deque()
        self._wake_pending = False
        self._aside_since: float | None = None  # since when we step aside for a sibling
        self._lock = child.idle_lock
        self.head_limit = child.max_head_size
        self._bound_by_fd_limit()

    @property
    def parked(self) -> int:
        return len(self._parked)

    def _bound_by_fd_limit(self) -> None:
        """MaxOpenConnectionsPerChild above the descriptor limit (which the
        child has raised to its hard limit) would end in EMFILE, not admission."""
        try:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        except (ValueError, OSError):
            return
        if soft == resource.RLIM_INFINITY:
            return
        room = max(1, soft - RESERVED_FDS)
        if self.child.max_open > room:
            self.child.error_log.warn(
                f"MaxOpenConnectionsPerChild {self.child.max_open} is above the file descriptor limit "
                f"({soft}): using {room}; raise the hard limit (ulimit -Hn) to allow more")
            self.child.max_open = room

    # -- life cycle --------------------------------------------------------

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        for sock in self.sockets:
            sock.setblocking(False)
        self._admission()
        loop.call_soon(self.ready.set)
        try:
            loop.run_forever()
        finally:
            for conn in list(self.conns):
                self._do_close(conn)
            loop.close()

    def stop(self, graceful: bool) -> None:
        """Stop accepting. Graceful: in-flight requests finish (answered with
        Connection: close) and parked keep-alive connections are closed after a
        grace of at most STOP_GRACE_SECONDS unless their next request comes
        first. Not graceful: parked connections are closed at once."""
        self._threadsafe(self._do_stop, graceful)

    def _do_stop(self, graceful: bool) -> None:
        self.stopping = True
        self._pause_accepting()
        # Stopping now closes parked keep-alive connections at once. A graceful
        # stop gives them a short grace instead: closing one at once would reset
        # a busy client whose next request is already on the way (a recycling
        # child would lose requests), while an idle client is closed within
        # STOP_GRACE_SECONDS, the same race as any keep-alive timeout.
        grace = min(self.config.keep_alive_timeout, STOP_GRACE_SECONDS)
        for conn in list(self.conns):
            if not conn.parked:
                continue
            if not graceful:
                self._do_close(conn)
            else:
                if conn.timer is not None:
                    conn.timer.cancel()
                conn.timer = self.loop.call_later(grace, self._on_timeout, conn)
        self._check_done()

    def _check_done(self) -> None:
        if self.stopping and not self.conns:
            self.child.listener_drained()

    def shutdown(self) -> None:
        """End the loop (the child is exiting)."""
        self._threadsafe(self.loop.stop)

    def _threadsafe(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop already closed: the child is gone
            pass

    # -- accepting -----------------------------------------------------------

    def wake(self) -> None:
        """A worker went idle while accepting was paused."""
        self._threadsafe(self._admission)

    def _admission(self) -> None:
        if self.stopping:
            return
        if self._admits():
            if not self.accepting:
                self._resume_accepting()

    def _admits(self) -> bool:
        """Ask the child whether to accept; pause if not. The decision and the
        flag change happen under the idle lock, so a worker that goes idle at
        that moment sees accepting == False and wakes us."""
        with self._lock:
            # Parked connections do not count against MaxOpenConnectionsPerChild:
            # the oldest is given up when a new client needs its place.
            if self.child.admits(len(self.conns) - len(self._parked)):
                return True
            was = self.accepting
            self.accepting = False
        if was:
            self._remove_accept_readers()
            self.child.set_not_accepting(True)
        if self._recheck is None and not self.stopping:
            # A pause for balance between siblings ends with no event of ours
            # (our clients may all be idle): look again shortly.
            self._recheck = self.loop.call_later(RECHECK_SECONDS, self._on_recheck)
        return False

    def _step_aside(self) -> None:
        """Let a less loaded sibling take the waiting connection: stop watching
        the listening sockets for a moment (they are level-triggered, so
        watching would spin) while still counting as accepting."""
        self._remove_accept_readers()
        self.loop.call_later(STEP_ASIDE_SECONDS, self._step_back)

    def _step_back(self) -> None:
        if self.accepting and not self.stopping:
            if not select.select(self.sockets, [], [], 0)[0]:
                # A sibling took what was waiting.
                self._aside_since = None
            for sock in self.sockets:
                self.loop.add_reader(sock.fileno(), self._on_acceptable, sock)

    def _on_recheck(self) -> None:
        self._recheck = None
        if not self.accepting:
            self._admission()

    def _resume_accepting(self) -> None:
        if self.stopping:
            return
        for sock in self.sockets:
            self.loop.add_reader(sock.fileno(), self._on_acceptable, sock)
        self.accepting = True
        self.child.set_not_accepting(False)

    def _pause_accepting(self) -> None:
        with self._lock:
            was = self.accepting
            self.accepting = False
        if was:
            self._remove_accept_readers()
            self.child.set_not_accepting(True)

    def _remove_accept_readers(self) -> None:
        for sock in self.sockets:
            try:
                self.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass

    def _on_acceptable(self, lsock: socket.socket) -> None:
        child = self.child
        for _ in range(ACCEPT_BATCH):
            if not self._admits():
                return
            if child.prefers_sibling(len(self.conns)):
                now = self.loop.time()
                if self._aside_since is None:
                    self._aside_since = now
                if now - self._aside_since < STEP_ASIDE_LIMIT:
                    self._step_aside()
                    return
                # The sibling has not taken the connection: it may be stuck (a
                # long GIL hold, a stopped process). Serve it ourselves.
            else:
                self._aside_since = None
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and friends: stop for a moment instead of spinning.
                child.error_log.error(f"accept: {exc}")
                self._pause_accepting()
                self.loop.call_later(0.5, self._admission)
                return
            if not child.accept_connection():
                # MaxConnectionsPerChild reached: this one is still served.
                self._pause_accepting()
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, addr[0], addr[1], self.local_ports[lsock])
            if len(self.conns) >= child.max_open and self._parked:
                self._do_close(next(iter(self._parked)))
            self.conns.add(conn)
            self._watch(conn, self.config.timeout)
            self._publish()
            # Clients nearly always send their request with the connect: read
            # it now, so that a request waiting for a worker is counted before
            # the next accept (else one wake-up takes a whole backlog while
            # the workers are busy) and is dispatched without another loop turn.
            self._on_readable(conn)
            if not self.accepting:
                return

    # -- reading request heads -----------------------------------------------

    def _watch(self, conn: Connection, timeout: float) -> None:
        conn.timer = self.loop.call_later(timeout, self._on_timeout, conn)
        self.loop.add_reader(conn.fd, self._on_readable, conn)

    def _unwatch(self, conn: Connection) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        try:
            self.loop.remove_reader(conn.fd)
        except (ValueError, OSError):
            pass

    def _on_readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._do_close(conn)
            return
        if not data:
            self._do_close(conn)
            return
        if conn.parked:
            # A parked connection that starts a request gets Timeout, not
            # KeepAliveTimeout, to finish its head.
            self._unpark(conn)
            self._publish()
            if conn.timer is not None:
                conn.timer.cancel()
            conn.timer = self.loop.call_later(self.config.timeout, self._on_timeout, conn)
        conn.buf += data
        self._try_dispatch(conn)

    def _try_dispatch(self, conn: Connection) -> None:
        cfg = self.config
        buf = conn.buf
        skip, end = protocol.split_head(buf)
        try:
            if skip:
                # Empty lines before a request are counted over the whole wait,
                # however the client splits them (Apache allows 10).
                conn.blank_lines += buf.count(b"\n", 0, skip)
                if conn.blank_lines > protocol.LIMIT_BLANK_LINES:
                    raise protocol.HeadError(400, "too many empty lines before the request line")
            if end < 0:
                if skip:
                    conn.buf = buf = buf[skip:]
                protocol.check_partial_head(buf, cfg.limit_request_line, cfg.limit_request_fields,
                                            cfg.limit_request_field_size)
                if len(buf) > self.head_limit:
                    raise protocol.HeadError(431, "request header block too large")
                return
            conn.buf, flags = protocol.checked_head(
                buf, skip, end, cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size)
            conn.must_close = bool(flags)
        except protocol.HeadError as err:
            self._unwatch(conn)
            self._do_refuse(conn, err)
            return
        self._unwatch(conn)
        conn.blank_lines = 0
        self.child.dispatch(conn)

    def _on_timeout(self, conn: Connection) -> None:
        conn.timer = None
        if conn.parked or not conn.buf:
            # Idle keep-alive, or a connection that never sent a byte: just close
            # (a 408 to a browser's pre-opened connection would only confuse it).
            self._do_close(conn)
            return
        self._unwatch(conn)
        self._do_refuse(conn, protocol.HeadError(408, "request head not received within Timeout"))

    # -- connections coming back from workers ------------------------------------

    def park(self, conn: Connection) -> None:
        # Coalesced: under load several workers hand connections back between
        # two turns of the loop, and one wake-up (a write to the loop's self-
        # pipe, a GIL hand-over) serves them all. The flag is cleared before
        # the queue is drained, so a connection appended after a drain read
        # the flag as False and schedules the next one.
        self._incoming.append(conn)
        if not self._wake_pending:
            self._wake_pending = True
            self._threadsafe(self._drain_incoming)

    def _drain_incoming(self) -> None:
        self._wake_pending = False
        incoming = self._incoming
        while incoming:
            self._do_park(incoming.popleft())

    def _do_park(self, conn: Connection) -> None:
        # Even when stopping: the response promised keep-alive (the stop came
        # after its headers), so the client may already be sending its next
        # request, which will be answered with Connection: close.
        conn.sock.setblocking(False)
        if conn.buf:
            # Part of the next request is already here.
            self._watch(conn, self.config.timeout)
            self._try_dispatch(conn)
            return
        conn.parked = True
        self._parked[conn] = None
        timeout = self.config.keep_alive_timeout
        if self.stopping:
            timeout = min(timeout, STOP_GRACE_SECONDS)
        self._watch(conn, timeout)
        self._publish()

    def close(self, conn: Connection, linger: bool = True) -> None:
        self._threadsafe(self._do_linger if linger else self._do_close, conn)

    def refuse(self, conn: Connection, err: protocol.HeadError) -> None:
        self._threadsafe(self._do_refuse, conn, err)

    def _do_refuse(self, conn: Connection, err: protocol.HeadError) -> None:
        self.child.note_refused(conn, err)
        data = protocol.error_response(err.status, err.reason, SERVER_HEADER, http_date())
        try:
            conn.sock.setblocking(False)
            conn.sock.send(data)
        except OSError:
            self._do_close(conn)
            return
        self._do_linger(conn)

    def _do_linger(self, conn: Connection) -> None:
        """Stop writing, then read and drop what the client still sends for up
        to LINGER_SECONDS, so it receives our last response instead of a reset."""
        if conn.parked:
            self._unpark(conn)
        self._unwatch(conn)
        sock = conn.sock
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._do_close(conn)
            return
        conn.timer = self.loop.call_later(LINGER_SECONDS, self._do_close, conn)
        self.loop.add_reader(conn.fd, self._on_linger_readable, conn)

    def _on_linger_readable(self, conn: Connection) -> None:
        try:
            while True:
                if not conn.sock.recv(RECV_SIZE):
                    break
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._do_close(conn)

    def _do_close(self, conn: Connection) -> None:
        if conn not in self.conns:
            return
        self._unwatch(conn)
        if conn.parked:
            self._unpark(conn)
        self.conns.discard(conn)
        try:
            conn.sock.close()
        except OSError:
            pass
        self._publish()
        if self.stopping:
            self._check_done()
        elif not self.accepting:
            self._admission()

    def _unpark(self, conn: Connection) -> None:
        conn.parked = False
        del self._parked[conn]

    def _publish(self) -> None:
        self.child.publish_connections(len(self.conns), self.parked)
