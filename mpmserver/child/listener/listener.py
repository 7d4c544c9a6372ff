"""The listener: one event loop thread per child (uvloop, or asyncio).

It accepts connections while admission (admission.py) says the child can
take them, reads each request head without a worker thread, and pushes
connections with a complete, checked head into the hand-off (handoff.py).
Workers give connections back through the hand-off: keep-alive connections
wait here between requests (parked, status K); the server's own error
responses, the tail of a response the socket could not take (write
completion) and lingering close run in this loop too, in completion.py, so
idle and slow clients cost a file descriptor, never a thread.

Every connection's state is in the connection table (connection.py); the
counts published to the scoreboard are derived from it. Only `start`,
`stop`, `shutdown`, `crowded` and `sends_away` may be called from other threads; every
other method runs in the loop thread.
"""

from __future__ import annotations

import resource
import select
import socket
import sys
import threading
import time
from typing import Any, Callable

from ...eventloop import new_event_loop
from ...http import protocol
from ...http.errors import HeadError
from ...http.outcome import CLOSE, DONE, FINISHED, KEEP, REFUSE, Outcome
from ...modules import proxy_protocol, remoteip, reqtimeout
from ...scoreboard import RECYCLE_CONNECTIONS
from ...titles import set_thread_title
from .. import admission, transfer
from ..connection import (
    CLOSED,
    LINGERING,
    PARKED,
    QUEUED,
    READING_BODY,
    READING_HEAD,
    RECV_SIZE,
    WRITING,
    Connection,
    ConnectionTable,
)
from ..handoff import PARKED_BY_WORKER, Handoff
from .completion import Completion

ACCEPT_BATCH = 16
# How soon a child that stopped accepting asks admission again by itself.
RECHECK_SECONDS = 0.05
# How long a gracefully stopping child keeps an idle keep-alive connection.
STOP_GRACE_SECONDS = 1.0
# How long a child steps aside for a less loaded sibling.
STEP_ASIDE_SECONDS = 0.002
# After stepping aside this long without the sibling taking the connection,
# serve it: the sibling may be stuck.
STEP_ASIDE_LIMIT = 0.02
# Linux copies TCP_NODELAY from a listening socket to the sockets it accepts.
INHERITS_NODELAY = sys.platform.startswith("linux")
# How long a read of the siblings' connection counts serves admission.
FEWEST_TTL = 0.001
# After accept() fails (EMFILE and friends), wait this long instead of spinning.
ACCEPT_ERROR_PAUSE = 0.5
# While accepting, a worker's own close (DONE) does not wake the loop: the
# next accept drains it, or at the latest this timer, so the counts of an
# accepting child are at most this stale when no client comes.
DRAIN_SECONDS = 0.02
# A connection a worker parks waits for its next request in this epoll set,
# one-shot: the first bytes wake the loop once and disarm it; it stays in the
# set, disarmed, and its next parking re-arms it (one epoll_ctl per request,
# not an add and a delete). Closing the socket takes it out.
PARK_EVENTS = select.EPOLLIN | select.EPOLLONESHOT


def fd_soft_limit() -> int | None:
    """The descriptor limit admission must stay under; None when unlimited."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ValueError, OSError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


class Listener:
    def __init__(self, config: Any, sockets: list[socket.socket], handoff: Handoff, record: Any,
                 limits: admission.Limits, error_log: Any, *, name: str,
                 fewest_sibling: Callable[[], int | None],
                 on_accepting: Callable[[], None], on_drained: Callable[[], None],
                 request_stop: Callable[[], None], access_log: Any = None,
                 hand_over: tuple[int, int, Callable[[], list[tuple[int, int]]]] | None = None):
        self.config = config
        self.sockets = sockets
        self.handoff = handoff
        self.record = record  # the child sub-record of the scoreboard: this thread writes it
        self.limits = limits
        self.error_log = error_log
        self.access_log = access_log
        self.name = name
        self._fewest_sibling = fewest_sibling
        self._on_accepting = on_accepting
        self._on_drained = on_drained
        self._request_stop = request_stop
        # A listening socket's port never changes: no getsockname() per connection.
        # A unix socket has no port: 0.
        self.local_ports = {sock: sock.getsockname()[1] if sock.family != socket.AF_UNIX else 0
                            for sock in sockets}
        # What an accepted socket is made of, read once per listening socket:
        # socket.accept() reads family and type back as enums on every call.
        self._accepted_kind = {sock: (int(sock.family), int(sock.type), sock.proto, sock.family == socket.AF_UNIX)
                               for sock in sockets}
        self.head_limit = protocol.max_head_size(config)
        self.read_timeouts = config.request_read_timeout
        self.remote_ip = remoteip.from_config(config)  # None: RemoteIP off
        self.loop, _, warning = new_event_loop(config.event_loop)
        if warning:
            error_log.warn(warning)
        self.thread = threading.Thread(target=self._run, name="mpm-listener", daemon=True)
        self.ready = threading.Event()
        self.table = ConnectionTable()
        self.completion = Completion(self.loop, self.table, config, error_log, access_log,
                                     keep=self._keep, set_timer=self._set_timer, unwatch=self._unwatch,
                                     closed=self._closed, publish=self._publish)
        self.accepting = False
        self.accepted = 0  # connections accepted (MaxConnectionsPerChild)
        self._stopping = False  # this loop has carried out the stop
        self._recheck: Any = None
        self._announced = False  # on_accepting called (once: the child's "serving")
        self._drain_timer: Any = None  # drains deferred DONE reports while accepting
        self._aside_since: float | None = None  # since when we step aside for a sibling
        self._fewest_read: tuple[float, int | None] = (0.0, None)  # (when, value) for _fewest
        self._send_away_pace = admission.SendAwayPace()
        # Hand-overs to siblings (transfer.py): (master pid, our slot, the
        # scoreboard reader of siblings with an idle worker); None: no siblings.
        self._hand_over = hand_over
        # Until then (epoch) no sibling can have a worker idle long enough to
        # take a request (admission.siblings_busy_until): no scoreboard read.
        self._siblings_busy_until = 0.0
        self._rebalance_timer: Any = None  # looks again for a sibling while requests wait here
        self._transfer: transfer.Transfer | None = None  # bound when the loop starts
        self.handed_over = 0  # connections given to a sibling
        self.adopted = 0  # connections taken from a sibling
        # Keep-alive parking by the workers (Apache's keep-alive queue): the
        # poll set, the connections in it by descriptor (a worker adds one
        # before it registers the descriptor), and their KeepAliveTimeout
        # deadlines, oldest first, swept by one timer for the oldest.
        # Without epoll (not Linux) workers give every connection back to the loop.
        self._parking = select.epoll() if hasattr(select, "epoll") else None
        self._parked_fds: dict[int, Connection] = {}
        self._polling = False  # in _on_parked_readable, which publishes once at its end
        self._keepalive_queue: dict[Connection, float] = {}
        self._sweep_timer: Any = None

    # -- life cycle (any thread) ------------------------------------------------

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(10)

    def stop(self) -> None:
        """Stop accepting, gracefully: in-flight requests finish (answered with
        Connection: close; the hand-off's stop flag is already set) and parked
        keep-alive connections are closed after a grace of at most
        STOP_GRACE_SECONDS unless their next request comes first."""
        self._threadsafe(self._do_stop)

    def shutdown(self) -> None:
        """End the loop (the child is exiting)."""
        self._threadsafe(self.loop.stop)

    def cut_connections(self) -> None:
        """Shut down every connection's socket, whoever holds it: a worker
        blocked in recv() on one wakes up (closing would not wake it)."""
        self._threadsafe(self._cut_connections)

    def _cut_connections(self) -> None:
        for conn in self.table.connections():
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def crowded(self) -> bool:
        """This child holds clearly more connections than an accepting sibling.
        Any thread: it reads an int and the scoreboard."""
        limits = self.limits
        return limits.balance and admission.prefers_sibling(limits, self.table.total, self._fewest())

    def sends_away(self) -> bool:
        """Answer this request with Connection: close, so that its client
        reconnects to a sibling holding clearly fewer connections? Paced:
        one client at a time (admission.SendAwayPace). Worker threads ask;
        two asking at the same moment may both be told yes, which moves two
        clients instead of one."""
        now = time.monotonic()
        pace = self._send_away_pace
        if not pace.due(now) or not self.crowded():
            return False
        pace.sent(now)
        return True

    def _fewest(self) -> int | None:
        """The siblings' fewest connections, read from the scoreboard at most
        once per FEWEST_TTL: a burst of accepts reads every sibling's record
        once, not once per connection (2.3 us at ServerLimit 16)."""
        now = time.monotonic()
        read_at, fewest = self._fewest_read
        if now - read_at > FEWEST_TTL:
            fewest = self._fewest_sibling()
            self._fewest_read = (now, fewest)
        return fewest

    def _threadsafe(self, fn: Callable, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop already closed: the child is gone
            pass

    # -- the loop -------------------------------------------------------------------

    def _run(self) -> None:
        set_thread_title(self.thread.name)
        loop = self.loop
        self.handoff.attach_loop(loop.call_soon_threadsafe, self._on_returned, self._on_worker_idle)
        if self._parking is not None:
            loop.add_reader(self._parking.fileno(), self._on_parked_readable)
            self.handoff.attach_parking(self._park_by_worker)
        for sock in self.sockets:
            sock.setblocking(False)
            if INHERITS_NODELAY and sock.family != socket.AF_UNIX:
                # Once here rather than on every accepted socket, which inherits it.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open_transfer()
        self._admission()
        loop.call_soon(self.ready.set)
        try:
            loop.run_forever()
        finally:
            for conn in self.table.connections():
                self.completion.close(conn)
            if self._transfer is not None:
                self._transfer.close()
            loop.close()
            if self._parking is not None:
                self._parking.close()

    def _open_transfer(self) -> None:
        """Bind this child's receiving socket for hand-overs and watch it.
        Without it (the name is taken, say by a child of this slot still
        exiting) the child serves as before: it neither sends nor receives."""
        if self._hand_over is None:
            return
        master_pid, slot, _ = self._hand_over
        try:
            self._transfer = transfer.Transfer(master_pid, slot)
        except OSError as exc:
            self.error_log.warn(f"{self.name}: no hand-over of connections to siblings: {exc}")
            return
        self.loop.add_reader(self._transfer.fileno(), self._on_handed)

    def _do_stop(self) -> None:
        self._stopping = True
        self.handoff.drain_returned()  # closes deferred while the listener waited count
        self._pause_accepting()
        # Parked keep-alive connections get a short grace rather than being
        # closed at once: closing one at once would reset a busy client whose
        # next request is already on the way (a recycling child would lose
        # requests), while an idle client is closed within STOP_GRACE_SECONDS,
        # the same race as any keep-alive timeout. (A stop now, TERM, ends the
        # process instead.)
        grace = min(self.config.keep_alive_timeout, STOP_GRACE_SECONDS)
        for conn in self.table.connections():
            if conn.state == PARKED:
                self._set_timer(conn, grace, self._on_timeout)
        self._check_done()

    def _check_done(self) -> None:
        if self._stopping and not self.table.total:
            self._on_drained()

    # -- accepting --------------------------------------------------------------------

    def _on_worker_idle(self) -> None:
        """A worker went idle while the listener waited for one: the closes
        deferred meanwhile first (admission counts them), then admission."""
        self.handoff.drain_returned()
        self._admission()

    def _admission(self) -> None:
        if not self._stopping and self._admits() and not self.accepting:
            self._resume_accepting()

    def _admits(self) -> bool:
        """Ask admission whether to accept; pause if not. The decision is made
        under the hand-off's idle lock, so a worker that goes idle at that
        moment sees the listener waiting and wakes it."""
        table = self.table
        limits = self.limits
        stopping = self.handoff.stopping
        busy = table.total - table.parked
        accepted = self.accepted

        def decide(idle: int, waiting: int) -> bool:
            return admission.admits(limits, stopping=stopping, busy_connections=busy, accepted=accepted,
                                    idle_workers=idle, waiting=waiting)

        if self.handoff.admit(decide):
            return True
        self._pause_accepting()
        if self._recheck is None and not self._stopping:
            # A pause for balance between siblings ends with no event of ours
            # (our clients may all be idle): look again shortly.
            self._recheck = self.loop.call_later(RECHECK_SECONDS, self._on_recheck)
        return False

    def _on_recheck(self) -> None:
        self._recheck = None
        if not self.accepting:
            self._admission()

    def _resume_accepting(self) -> None:
        self._add_accept_readers()
        self.accepting = True
        self.handoff.defer_done(True)
        self.record.set_not_accepting(False)
        if not self._announced:
            self._announced = True
            self._on_accepting()

    def _pause_accepting(self) -> None:
        if self.accepting:
            self.accepting = False
            # A paused or stopping loop waits for closes: no deferring them.
            self.handoff.defer_done(False)
            self._remove_accept_readers()
            self.record.set_not_accepting(True)

    def _add_accept_readers(self) -> None:
        for sock in self.sockets:
            self.loop.add_reader(sock.fileno(), self._on_acceptable, sock)

    def _remove_accept_readers(self) -> None:
        for sock in self.sockets:
            try:
                self.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass

    def _steps_aside(self) -> bool:
        """Let a less loaded sibling take the waiting connection: stop watching
        the listening sockets for a moment (they are level-triggered, so
        watching would spin) while still counting as accepting. After
        STEP_ASIDE_LIMIT without the sibling taking it (a long GIL hold, a
        stopped process), serve it ourselves."""
        if not self.crowded():
            self._aside_since = None
            return False
        now = self.loop.time()
        if self._aside_since is None:
            self._aside_since = now
        if now - self._aside_since >= STEP_ASIDE_LIMIT:
            return False
        self._remove_accept_readers()
        self.loop.call_later(STEP_ASIDE_SECONDS, self._step_back)
        return True

    def _step_back(self) -> None:
        if self.accepting and not self._stopping:
            if not select.select(self.sockets, [], [], 0)[0]:
                # A sibling took what was waiting.
                self._aside_since = None
            self._add_accept_readers()

    def _on_acceptable(self, lsock: socket.socket) -> None:
        # Workers are woken once the batch is done, not one by one in the
        # middle of it, where each would wait for the GIL this thread holds.
        self.handoff.hold()
        try:
            self._accept_batch(lsock)
        finally:
            self.handoff.release()

    def _accept_batch(self, lsock: socket.socket) -> None:
        # The workers' deferred closes first: admission counts them.
        self.handoff.drain_returned()
        family, type_, proto, unix = self._accepted_kind[lsock]
        for _ in range(ACCEPT_BATCH):
            if not self._admits() or self._steps_aside():
                return
            try:
                # socket.accept() without its per-call enum conversions: the
                # new socket is blocking, as accept() leaves it (no default timeout).
                fd, addr = lsock._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_log.error(f"accept: {exc}")
                self._pause_accepting()
                self.loop.call_later(ACCEPT_ERROR_PAUSE, self._admission)
                return
            sock = socket.socket(family, type_, proto, fileno=fd)
            self._count_accepted()
            self._open(sock, addr, self.local_ports[lsock], unix)
            if not self.accepting:
                return

    def _count_accepted(self) -> None:
        self.accepted += 1
        if admission.must_recycle(self.limits, self.accepted):
            # This connection is still served; the child then recycles.
            self.error_log.info(
                f"{self.name} reached MaxConnectionsPerChild ({self.limits.max_connections}), recycling")
            self.record.set_recycle_cause(RECYCLE_CONNECTIONS)
            self._pause_accepting()
            self._request_stop()

    def _open(self, sock: socket.socket, addr: Any, local_port: int, unix: bool) -> None:
        # The socket stays blocking while the loop reads the head with
        # MSG_DONTWAIT: when the head came with the connect, the worker's
        # setblocking(False) is the one O_NONBLOCK change (each one is a system call
        # that lets go of the GIL); only a connection the loop waits on is
        # made non-blocking here.
        if not unix:
            if not INHERITS_NODELAY:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, addr[0], addr[1], local_port)
        else:
            conn = Connection(sock, remoteip.UNIX_PEER, 0, local_port)
        if self.remote_ip is not None and not self._remote_ip_connect(conn):
            return
        self._add(conn)
        conn.stage_start = self.loop.time()
        # Clients nearly always send their request with the connect: read
        # it now, so that a request waiting for a worker is counted before
        # the next accept (else one wake-up takes a whole backlog while
        # the workers are busy) and is dispatched without another loop turn,
        # and without a timer and a read watch set up only to be undone.
        self._on_readable(conn)
        if conn.state == READING_HEAD or conn.state == READING_BODY:
            sock.setblocking(False)
            if conn.timer is None:
                self._set_stage_timer(conn)
            self.loop.add_reader(conn.fd, self._on_readable, conn)

    def _add(self, conn: Connection) -> None:
        table = self.table
        if table.total >= self.limits.max_open and table.parked:
            self.completion.close(table.oldest_parked())
        table.add(conn)
        self._publish()

    def _remote_ip_connect(self, conn: Connection) -> bool:
        """RemoteIP's once-per-connection decisions; False when the connection is refused."""
        rip = self.remote_ip
        conn.trusted, conn.proxy_pending = remoteip.connect(rip, conn.peer_addr)
        if conn.proxy_pending and not rip.trust.trusts(conn.peer_addr):
            # Its PROXY header could name anyone: it would not be believed,
            # and without one the connection is not what this server expects.
            self.error_log.info(f"client {conn.peer_addr}: RemoteIPProxyProtocol is on and the peer is not "
                                "a RemoteIPTrustedProxy: connection closed")
            try:
                conn.sock.close()
            except OSError:
                pass
            return False
        return True

    def _read_proxy_header(self, conn: Connection) -> bool:
        """Consume the PROXY header at the start of conn.buf; True when it is
        done and request bytes follow it. A connection whose first bytes are
        not a PROXY header is closed (with no response: the peer is a proxy
        misconfigured, not a browser)."""
        try:
            header, used = proxy_protocol.parse(conn.buf)
        except proxy_protocol.ProxyProtocolError as exc:
            self.error_log.info(f"client {conn.peer_addr}: {exc}; connection closed")
            self.completion.close(conn)
            return False
        if header is None:
            return False
        conn.buf = conn.buf[used:]
        conn.proxy_pending = False
        if header.command == proxy_protocol.PROXY and header.src_addr is not None:
            conn.client_addr = header.src_addr
            conn.client_port = header.src_port
            rip = self.remote_ip
            conn.trusted = rip.header is not None and rip.trust.trusts(header.src_addr)
        # LOCAL (a health check) and address-less headers: the peer stays the client.
        return bool(conn.buf)

    # -- reading request heads ------------------------------------------------------

    def _set_timer(self, conn: Connection, delay: float, callback: Callable[[Connection], None]) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = self.loop.call_later(delay, callback, conn)

    def _begin_stage(self, conn: Connection, received: int = 0) -> None:
        """A head (or a buffered body) starts to arrive: start its clock."""
        conn.stage_start = self.loop.time()
        conn.stage_bytes = received
        self._set_stage_timer(conn)

    def _set_stage_timer(self, conn: Connection) -> None:
        """Timeout bounds a whole head and each wait for body bytes;
        RequestReadTimeout bounds each stage by time and rate. The timer is
        set for whichever ends first."""
        now = self.loop.time()
        if conn.state == READING_BODY:
            until = min(now + self.config.timeout, reqtimeout.deadline(
                self.read_timeouts.body, conn.stage_start, conn.stage_bytes))
        else:
            until = min(conn.stage_start + self.config.timeout, reqtimeout.deadline(
                self.read_timeouts.header, conn.stage_start, conn.stage_bytes))
        self._set_timer(conn, max(0.0, until - now), self._on_timeout)

    def _watch(self, conn: Connection, timeout: float) -> None:
        self._set_timer(conn, timeout, self._on_timeout)
        self.loop.add_reader(conn.fd, self._on_readable, conn)

    def _unwatch(self, conn: Connection) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn in self._keepalive_queue:  # parked by a worker, closed before its next request
            self._unpark(conn)
            self._forget_parking(conn)
            return
        try:
            self.loop.remove_reader(conn.fd)
        except (ValueError, OSError):
            pass

    def _recv(self, conn: Connection, flags: int = 0) -> bytes | None:
        """The connection's next bytes; b"" when none are there yet; None
        when the client ended or broke it (then it is closed)."""
        try:
            data = conn.sock.recv(RECV_SIZE, flags)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            self.completion.close(conn)
            return None
        return data

    def _on_readable(self, conn: Connection) -> None:
        data = self._recv(conn, socket.MSG_DONTWAIT)  # blocking right after accept
        if not data:
            return
        if conn.state == PARKED:
            # A parked connection that starts a request gets Timeout, not
            # KeepAliveTimeout, to finish its head.
            self.table.move(conn, READING_HEAD)
            self._publish()
            self._begin_stage(conn)
        conn.stage_bytes += len(data)
        conn.buf += data
        if conn.proxy_pending and not self._read_proxy_header(conn):
            return
        self._try_dispatch(conn)

    def _try_dispatch(self, conn: Connection, may_hand_over: bool = True, watched: bool = True) -> None:
        """Dispatch the request if it is all here; ``watched``: the loop
        watches the connection (a parked one just read is not watched yet)."""
        if conn.state == READING_BODY:
            if self._body_complete(conn):
                self._dispatch(conn, may_hand_over)
            else:
                self._set_stage_timer(conn)
            return
        try:
            end = self._check_head(conn)
        except HeadError as err:
            self.completion.refuse(conn, err)
            return
        if end < 0:
            if self.read_timeouts.header.min_rate:
                self._set_stage_timer(conn)  # the bytes earned more time
            return
        conn.blank_lines = 0
        wanted = self._body_to_buffer(conn.buf, end)
        if wanted:
            self.table.move(conn, READING_BODY)
            conn.wanted = wanted
            if not self._body_complete(conn):
                self._begin_stage(conn, len(conn.buf) - end)
                return
        self._dispatch(conn, may_hand_over, watched)

    def _dispatch(self, conn: Connection, may_hand_over: bool = True, watched: bool = True) -> None:
        if watched:
            self._unwatch(conn)
        if may_hand_over and self._transfer is not None and self._handed_over(conn):
            return
        self.table.move(conn, QUEUED)
        self.handoff.push(conn)
        if self._drain_timer is None:
            self._drain_timer = self.loop.call_later(DRAIN_SECONDS, self._on_drain_timer)

    def _on_drain_timer(self) -> None:
        """Drain the closes deferred while accepting when no accept came;
        again while workers still hold connections."""
        self._drain_timer = None
        self.handoff.drain_returned()
        if self.accepting and self.table.count(QUEUED):
            self._drain_timer = self.loop.call_later(DRAIN_SECONDS, self._on_drain_timer)

    # -- handing ready requests to siblings (transfer.py) ----------------------------

    def _handed_over(self, conn: Connection) -> bool:
        """Give a ready request that would wait here to a sibling with an
        idle worker; True when the sibling has it. Only a request that would
        wait pays for the scoreboard read, and while every sibling is busy
        too, only the first one in SETTLED_IDLE; the requests left waiting
        are looked at again then (_rebalance)."""
        handoff = self.handoff
        idle, waiting = handoff.idle_workers(), handoff.waiting()
        if not admission.would_wait(idle, waiting):
            return False
        slot = self._idle_sibling(idle, waiting)
        return slot is not None and self._send_to_sibling(conn, slot)

    def _idle_sibling(self, idle: int, waiting: int) -> int | None:
        """The sibling to hand a request that would wait to (admission's
        choice), or None; then the rebalance timer is set for the moment a
        sibling could have been idle long enough."""
        now = time.time()
        # Epoch times, as the scoreboard's: a clock stepped back must not
        # stop the reads for longer than SETTLED_IDLE.
        if not 0 < self._siblings_busy_until - now <= admission.SETTLED_IDLE:
            siblings, unsettled = self._siblings(now)
            slot = admission.hand_over_to(idle, waiting, siblings)
            if slot is not None:
                return slot
            self._siblings_busy_until = admission.siblings_busy_until(now, unsettled)
        self._rebalance_later(now)
        return None

    def _siblings(self, now: float) -> tuple[list[tuple[int, int]], float]:
        """The scoreboard's siblings with a worker idle for SETTLED_IDLE, and
        the earliest end of a request of a READY worker not yet counted."""
        return self._hand_over[2](now - admission.SETTLED_IDLE)

    def _rebalance_later(self, now: float) -> None:
        if self._rebalance_timer is None:
            self._rebalance_timer = self.loop.call_later(
                max(0.0, self._siblings_busy_until - now), self._rebalance)

    def _rebalance(self) -> None:
        """Requests still waiting here for a worker go to siblings that have
        been idle since (the oldest first, one per idle worker), so that no
        request waits behind slow ones for much longer than SETTLED_IDLE
        while a sibling idles; look again while some still wait."""
        self._rebalance_timer = None
        handoff = self.handoff
        beyond = handoff.waiting() - handoff.idle_workers()
        if beyond <= 0:  # none waits: the next that would sets the timer again
            return
        now = time.time()
        siblings, unsettled = self._siblings(now)
        for slot in admission.rebalance_to(beyond, siblings):
            conn = handoff.take_waiting()
            if conn is None:
                return
            if not self._send_to_sibling(conn, slot):
                handoff.push(conn)  # the sibling cannot take it now: back in the queue
                break
        self._siblings_busy_until = admission.siblings_busy_until(now, unsettled)
        if handoff.waiting() > handoff.idle_workers():
            self._rebalance_later(now)

    def _send_to_sibling(self, conn: Connection, slot: int) -> bool:
        fields = {"client_addr": conn.client_addr, "client_port": conn.client_port,
                  "server_port": conn.server_port, "peer_addr": conn.peer_addr,
                  "trusted": conn.trusted, "requests": conn.requests}
        if not self._transfer.send(slot, conn.sock, conn.buf, fields):
            return False  # queued here, as without a sibling
        self._forget_parking(conn)
        # The descriptor in flight keeps the connection open: close only
        # ours (no shutdown, which would end it for the sibling too).
        self.handed_over += 1
        self.completion.close(conn)
        return True

    def _on_handed(self) -> None:
        handed, refused = self._transfer.receive()
        for note in refused:
            self.error_log.warn(f"{self.name}: {note}")
        for h in handed:
            self._adopt(h)

    def _adopt(self, h: transfer.Handed) -> None:
        """A sibling's connection with a ready request: ours now, in
        READING_HEAD with the bytes it read, dispatched as if read here (and
        never handed on again, which could send it round in circles)."""
        sock = h.sock
        sock.setblocking(False)
        conn = Connection(sock, h.client_addr, h.client_port, h.server_port)
        conn.peer_addr = h.peer_addr
        conn.trusted = h.trusted
        conn.requests = h.requests
        conn.buf = h.buf
        self._add(conn)
        self.adopted += 1
        self._begin_stage(conn, len(h.buf))
        self.loop.add_reader(conn.fd, self._on_readable, conn)
        self._try_dispatch(conn, may_hand_over=False)

    def _body_to_buffer(self, buf: bytes, end: int) -> int:
        """RequestBodyBuffer: the length buf must reach before a worker sees
        the request (0: dispatch now); minus the cap for a chunked body."""
        cfg = self.config
        limit = cfg.request_body_buffer
        if not limit:
            return 0
        length = protocol.declared_body(buf[:end])
        if length > 0:
            # Over LimitRequestBody: the worker answers 413 without reading it.
            fits = length <= limit and (not cfg.limit_request_body or length <= cfg.limit_request_body)
            return end + length if fits else 0
        return -(end + limit) if length < 0 else 0

    @staticmethod
    def _body_complete(conn: Connection) -> bool:
        wanted = conn.wanted
        if wanted > 0:
            return len(conn.buf) >= wanted
        # Chunked: as much as is buffered, or bytes that end as a whole
        # chunked body does (last chunk, trailers, then an empty line). An end
        # like that inside the data only means the worker reads the rest.
        return len(conn.buf) >= -wanted or conn.buf.endswith(b"\r\n\r\n")

    def _check_head(self, conn: Connection) -> int:
        """Where the complete, checked head at the start of conn.buf ends,
        or -1 while it is incomplete; raises HeadError."""
        cfg = self.config
        buf = conn.buf
        skip, end = protocol.split_head(buf)
        if skip:
            # Empty lines before a request are counted over the whole wait,
            # however the client splits them (Apache allows 10).
            conn.blank_lines += buf.count(b"\n", 0, skip)
            if conn.blank_lines > protocol.LIMIT_BLANK_LINES:
                raise HeadError(400, "too many empty lines before the request line")
        if end < 0:
            if skip:
                conn.buf = buf = buf[skip:]
            protocol.check_partial_head(buf, cfg.limit_request_line, cfg.limit_request_fields,
                                        cfg.limit_request_field_size)
            if len(buf) > self.head_limit:
                raise HeadError(431, "request header block too large")
            return -1
        conn.buf, flags = protocol.checked_head(
            buf, skip, end, cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size)
        conn.must_close = bool(flags)
        return end - skip

    def _on_timeout(self, conn: Connection) -> None:
        conn.timer = None
        if conn.state == PARKED or not conn.buf or conn.proxy_pending:
            # Idle keep-alive, or a connection that never sent a byte: just close
            # (a 408 to a browser's pre-opened connection would only confuse it).
            self.completion.close(conn)
            return
        body = conn.state == READING_BODY
        stage = self.read_timeouts.body if body else self.read_timeouts.header
        slow = reqtimeout.deadline(stage, conn.stage_start, conn.stage_bytes) <= self.loop.time() + 0.01
        self.completion.refuse(conn, HeadError(408, f"request {'body' if body else 'head'} not received within "
                                          f"{'RequestReadTimeout' if slow else 'Timeout'}"))

    # -- connections given back by workers -----------------------------------------

    def _on_returned(self, conn: Connection, outcome: Outcome, refusal: Any) -> None:
        if refusal is PARKED_BY_WORKER:
            self._parked_by_worker(conn)
            return
        if outcome == DONE:
            # The worker closed the socket: its descriptor may already be a
            # new connection's, so only the counts change.
            self._closed(conn)
            return
        if conn.sock.gettimeout() != 0.0:  # a worker that failed before it made it non-blocking
            conn.sock.setblocking(False)
        if refusal is not None and outcome != REFUSE:
            self.completion.complete_write(conn, outcome, refusal)
        elif outcome == KEEP:
            self._keep(conn)
        elif outcome == CLOSE or outcome == FINISHED:
            self.completion.linger(conn)
        elif outcome == REFUSE:
            self.completion.refuse(conn, *refusal)
        else:
            self.completion.close(conn)

    def _keep(self, conn: Connection) -> None:
        # Even when stopping: the response promised keep-alive (the stop came
        # after its headers), so the client may already be sending its next
        # request, which will be answered with Connection: close.
        if conn.buf:
            # Part of the next request is already here.
            self.table.move(conn, READING_HEAD)
            self._begin_stage(conn, len(conn.buf))
            self.loop.add_reader(conn.fd, self._on_readable, conn)
            self._try_dispatch(conn)
            return
        self.table.move(conn, PARKED)
        timeout = self.config.keep_alive_timeout
        if self._stopping:
            timeout = min(timeout, STOP_GRACE_SECONDS)
        self._watch(conn, timeout)
        self._publish()

    # -- keep-alive connections parked by workers --------------------------------

    def _park_by_worker(self, conn: Connection) -> None:
        """A worker thread's: watch the idle connection it gives back
        (epoll_ctl is thread-safe; the loop's next poll sees it unwoken).
        The descriptor is known before it can fire. The socket is
        non-blocking already, as the loop needs it: the worker made it so
        before its first request (Worker.serve) and its Channel keeps it."""
        fd = conn.fd
        fds = self._parked_fds
        try:
            if fds.get(fd) is conn:  # in the set from its last parking, disarmed
                try:
                    self._parking.modify(fd, PARK_EVENTS)
                    return
                except FileNotFoundError:
                    pass
            fds[fd] = conn
            self._parking.register(fd, PARK_EVENTS)
        except (OSError, ValueError):  # ValueError: the set is closed, the child exits
            # Not watched: its keep-alive deadline still closes it. (This
            # thread owns the connection, so no other one has its descriptor.)
            fds.pop(fd, None)

    def _parked_by_worker(self, conn: Connection) -> None:
        """The loop's side of a worker's parking: count it parked, and give
        it its keep-alive deadline."""
        self.table.move(conn, PARKED)
        if not self._polling:  # else published once, after the poll
            self._publish()
        timeout = self.config.keep_alive_timeout
        if self._stopping:
            # Its own timer: a grace shorter than the queue's deadlines.
            self._set_timer(conn, min(timeout, STOP_GRACE_SECONDS), self._on_timeout)
        deadline = self.loop.time() + timeout
        self._keepalive_queue[conn] = deadline
        if self._sweep_timer is None:
            self._sweep_timer = self.loop.call_later(timeout, self._sweep)

    def _unpark(self, conn: Connection) -> None:
        """Take a connection out of the keep-alive queue. It stays in the
        parking set, armed until it closes (which takes it out) or disarmed
        once polled; _forget_parking takes it out while it stays open."""
        del self._keepalive_queue[conn]

    def _forget_parking(self, conn: Connection) -> None:
        """The loop's: the connection leaves this child open (to a sibling)
        or is closed by the loop: out of the parking set, so that the set
        names no descriptor of a socket it no longer has (a socket given
        to a sibling lives on there)."""
        if self._parked_fds.get(conn.fd) is conn:
            del self._parked_fds[conn.fd]
            try:
                self._parking.unregister(conn.fd)
            except (OSError, ValueError):
                pass

    def _sweep(self) -> None:
        """Close the parked connections past KeepAliveTimeout (oldest first:
        their deadlines are in order); come back for the next one."""
        self._sweep_timer = None
        queue = self._keepalive_queue
        now = self.loop.time()
        while queue:
            conn, deadline = next(iter(queue.items()))
            if deadline > now:
                self._sweep_timer = self.loop.call_later(deadline - now, self._sweep)
                return
            self.completion.close(conn)  # its _unwatch takes it out of the queue
            queue.pop(conn, None)

    def _on_parked_readable(self) -> None:
        """Parked connections have bytes (or an end): read their heads as for
        any parked connection; publish the counts once, after them all."""
        # A worker queues its record before it registers the socket, so
        # polling first, then draining, counts every connection polled as
        # PARKED before it is read (drained first, a worker could slip a
        # park in between, its socket polled with its record not drained).
        events = self._parking.poll(0)
        self._polling = True
        try:
            self.handoff.drain_returned()
            parked_fds = self._parked_fds
            for fd, _ in events:
                conn = parked_fds.get(fd)
                if conn is None or conn.state != PARKED:
                    continue  # closed since (a worker's close leaves its descriptor named here)
                self._unpark(conn)
                self._read_parked(conn)
        finally:
            self._polling = False
        self._publish()

    def _read_parked(self, conn: Connection) -> None:
        """The next request on a parked connection: most often its whole head
        in one read, dispatched at once with no timer set; a part of it gets
        the Timeout clock and the loop's watch to read the rest."""
        data = self._recv(conn)
        if not data:
            if data is not None:  # woken for nothing
                self._watch(conn, self.config.keep_alive_timeout)
            return
        # Timeout, not KeepAliveTimeout, bounds the rest of the head.
        self.table.move(conn, READING_HEAD)
        conn.stage_start = self.loop.time()
        conn.stage_bytes = len(data)
        conn.buf = data
        self._try_dispatch(conn, watched=False)
        state = conn.state
        if state == READING_HEAD or state == READING_BODY:
            if conn.timer is None:
                self._set_stage_timer(conn)
            self.loop.add_reader(conn.fd, self._on_readable, conn)

    def _closed(self, conn: Connection) -> None:
        """A connection's socket is closed: count it gone."""
        self.table.move(conn, CLOSED)
        self._publish()
        if self._stopping:
            self._check_done()
        elif not self.accepting:
            self._admission()

    def _publish(self) -> None:
        table = self.table
        self.record.set_connections(table.total, table.parked, table.count(LINGERING), table.count(WRITING))

