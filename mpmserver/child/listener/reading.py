"""Reading requests in the loop: from the first bytes to the hand-off.

A connection starts (or resumes) reading a request in one way, ``start``:
accepted (accept.py, after RemoteIP's decision and the PROXY header),
adopted from a sibling (siblings.py), kept alive with part of its next
request already read (parking.py), or woken in the parking set. Its head is
checked as a worker checks a pipelined one (protocol.take_head); its body
may be received first (spool.body_plan): a small one into memory
(RequestBodyBuffer), a larger one into a spool file (RequestBodySpool,
spooling.py); the request is then
dispatched: to a sibling when it would wait here (siblings.py), else into
the hand-off; a request for a file an Alias serves is answered in the loop
instead (static.py). Timeout and RequestReadTimeout bound each stage; a stage
timer that fires answers 408.

Everything here runs in the loop thread.
"""

from __future__ import annotations

import socket
from typing import Any

from ...http import protocol
from ...http.errors import BodyError, HeadError
from ...http.protocol import EXPECTS_CONTINUE, take_head
from ...http.spool import CONTINUE, STREAM, answering_continue, body_plan, without_expect
from ...modules import proxy_protocol, remoteip, reqtimeout
from ..connection import (
    PARKED,
    QUEUED,
    READING_BODY,
    READING_HEAD,
    RECV_SIZE,
    Connection,
    close_socket,
    make_nonblocking,
)
from ..handoff import Handoff
from .core import LoopCore, Room, Rooms

# While accepting, a worker's own close (DONE) does not wake the loop: the
# next accept drains it, or at the latest this timer, so the counts of an
# accepting child are at most this stale when no client comes.
DRAIN_SECONDS = 0.02


class RequestReader(Room):
    def __init__(self, core: LoopCore, handoff: Handoff, max_open: int) -> None:
        super().__init__(core)
        config = core.config
        self.handoff = handoff
        self.max_open = max_open
        self.rules = protocol.HeadRules.from_config(config)
        self.read_timeouts = config.request_read_timeout
        self.timeout = config.timeout
        self.remote_ip = remoteip.from_config(config)  # None: RemoteIP off
        self.body_buffer = config.request_body_buffer  # RequestBodyBuffer; 0: off
        self._drain_timer: Any = None  # drains deferred DONE reports while accepting
        self._add_reader = core.loop.add_reader
        self._push = handoff.push

    def bind(self, rooms: Rooms) -> None:
        super().bind(rooms)
        self._refuse = rooms.completion.refuse
        self._transferred = rooms.transfer.transferred if rooms.transfer is not None else None
        self._static = rooms.static.serve if rooms.static is not None else None  # None: no Alias
        self._acceptor = rooms.acceptor
        spooling = rooms.spooling
        self.spool_limits = limits = spooling.limits
        # Whether the loop takes any body before a worker sees it (buffered or spooled).
        self.takes_bodies = bool(limits.body_buffer or limits.body_spool)
        self._spool_begin = spooling.begin
        self._spool_chunked = spooling.chunked
        self._spool_begin_chunked = spooling.begin_chunked
        self._spool_feed = spooling.feed

    # -- the ways in -------------------------------------------------------------------

    def open(self, conn: Connection) -> None:
        """A connection just accepted: RemoteIP's decision, then its first bytes.

        Clients nearly always send their request with the connect: it is
        read now (MSG_DONTWAIT: the socket is still blocking), so that a
        request waiting for a worker is counted before the next accept (else
        one wake-up takes a whole backlog while the workers are busy) and is
        dispatched without another loop turn, and without a timer and a read
        watch set up only to be undone."""
        if self.remote_ip is not None and not self._remote_ip_connect(conn):
            return
        self.add(conn)
        data = self.recv(conn, socket.MSG_DONTWAIT)
        if data is not None:
            self.start(conn, data)

    def connect(self, conn: Connection) -> bool:
        """open() for a connection whose first bytes someone else reads (a
        TLS handshake): RemoteIP's decision, then counted; False when refused."""
        if self.remote_ip is not None and not self._remote_ip_connect(conn):
            return False
        self.add(conn)
        return True

    def add(self, conn: Connection) -> None:
        """Count a new connection (READING_HEAD); past MaxOpenConnectionsPerChild
        the oldest parked one makes room."""
        table = self._table
        if table.total >= self.max_open and table.parked:
            self._close(table.oldest_parked())
        table.add(conn)
        self._publish()

    def start(self, conn: Connection, data: bytes, may_transfer: bool = True) -> None:
        """The one way a connection in READING_HEAD, not watched, starts
        reading a request: ``data`` is what has arrived of it. A complete
        request is dispatched at once (most often: no timer, no watch);
        otherwise the loop watches for the rest under the stage's timer.
        ``may_transfer`` is False for a connection a sibling transferred (it
        is never sent on again, which could send it round in circles)."""
        conn.stage_start = self._time()
        conn.stage_bytes = len(data)
        conn.buf = data
        if data and (not conn.proxy_pending or self._read_proxy_header(conn)):
            self._try_dispatch(conn, may_transfer, False)
        state = conn.state
        if state == READING_HEAD or state == READING_BODY:
            if conn.blocking:  # the loop waits on it: the socket must not block
                make_nonblocking(conn)
            if conn.timer is None:
                self._set_stage_timer(conn)
            self._add_reader(conn.fd, self.on_readable, conn)

    def on_readable(self, conn: Connection) -> None:
        """More bytes of a request the loop watches (or of the next request of
        a connection parked without a parking set)."""
        data = self.recv(conn)
        if not data:
            return
        if conn.state == PARKED:
            # Timeout, not KeepAliveTimeout, bounds the head from here.
            self._unwatch(conn)
            self._move(conn, READING_HEAD)
            self._publish()
            self.start(conn, data)
            return
        conn.stage_bytes += len(data)
        if conn.spool is not None:  # the body goes to its spool, not to conn.buf
            self._spool_more(conn, data)
            return
        conn.buf += data
        if conn.proxy_pending and not self._read_proxy_header(conn):
            return
        self._try_dispatch(conn, new=data)

    def recv(self, conn: Connection, flags: int = 0) -> bytes | None:
        """The connection's next bytes; b"" when none are there yet; None
        when the client ended or broke it (then it is closed)."""
        try:
            data = conn.sock.recv(RECV_SIZE, flags)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return None
        return data

    # -- RemoteIP and the PROXY header, at connect ------------------------------------

    def _remote_ip_connect(self, conn: Connection) -> bool:
        """RemoteIP's once-per-connection decisions; False when the connection is refused."""
        rip = self.remote_ip
        conn.trusted, conn.proxy_pending = remoteip.connect(rip, conn.peer_addr)
        if conn.proxy_pending and not rip.trust.trusts(conn.peer_addr):
            # Its PROXY header could name anyone: it would not be believed,
            # and without one the connection is not what this server expects.
            self.core.error_log.info(f"client {conn.peer_addr}: RemoteIPProxyProtocol is on and the peer is "
                                     "not a RemoteIPTrustedProxy: connection closed")
            close_socket(conn.sock, False)
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
            self.core.error_log.info(f"client {conn.peer_addr}: {exc}; connection closed")
            self._close(conn)
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

    # -- the head, the buffered body, the dispatch --------------------------------------

    def _try_dispatch(self, conn: Connection, may_transfer: bool = True, watched: bool = True,
                      new: bytes = b"") -> None:
        """Dispatch the request if it is all here; ``watched``: the loop
        watches the connection (start() has not set a watch yet); ``new``:
        the bytes just added to conn.buf, in READING_BODY."""
        if conn.state == READING_BODY:
            try:
                complete = self._body_complete(conn, new)
            except BodyError as err:  # a malformed chunked body; a spool refused
                self._refuse_body(conn, err)
                return
            if complete:
                self._dispatch(conn, may_transfer, watched)
            else:
                self._set_stage_timer(conn)
            return
        try:
            conn.buf, end, flags, blank_lines = take_head(conn.buf, conn.blank_lines, self.rules)
        except HeadError as err:
            self._refuse(conn, err)
            return
        if end < 0:
            conn.blank_lines = blank_lines
            if self.read_timeouts.header.min_rate:
                self._set_stage_timer(conn)  # the bytes earned more time
            return
        conn.must_close = bool(flags)
        conn.blank_lines = 0
        static = self._static
        if static is not None and static(conn, end, watched):
            return  # a file an Alias serves: answered in the loop
        length = protocol.declared_body(conn.buf[:end]) if self.takes_bodies else 0
        if length == EXPECTS_CONTINUE:
            length, end = self._answer_continue(conn, end)
        if length and body_plan(length, self.spool_limits, conn.buf) != STREAM:
            self._move(conn, READING_BODY)
            arrived = len(conn.buf) - end
            try:
                complete = self._body_begin(conn, end, length)
            except BodyError as err:  # a malformed chunked body; a spool refused
                self._refuse_body(conn, err)
                return
            if not complete:
                conn.stage_start = self._time()
                conn.stage_bytes = arrived
                self._set_stage_timer(conn)
                return
        self._dispatch(conn, may_transfer, watched)

    def _dispatch(self, conn: Connection, may_transfer: bool, watched: bool) -> None:
        if watched:
            self._unwatch(conn)
        transferred = self._transferred
        # A spooled body stays with this child: its file is here.
        if may_transfer and transferred is not None and conn.spool is None and transferred(conn):
            return
        self._move(conn, QUEUED)
        self._push(conn)
        if self._drain_timer is None:
            self._drain_timer = self._call_later(DRAIN_SECONDS, self._on_drain_timer)

    def _on_drain_timer(self) -> None:
        """Drain the closes deferred while accepting when no accept came;
        again while workers still hold connections."""
        self._drain_timer = None
        self.handoff.drain_returned()
        if self._acceptor.accepting and self._table.count(QUEUED):
            self._drain_timer = self._call_later(DRAIN_SECONDS, self._on_drain_timer)

    def _answer_continue(self, conn: Connection, end: int) -> tuple[int, int]:
        """A client waiting for "100 Continue": for a body the loop would
        spool, answer it here and take the Expect line out of the head
        (the worker must not answer again); (the body's length, the head's
        end). Otherwise (0, end): a worker answers when the app reads."""
        length = protocol.declared_body(conn.buf[:end], expect=False)
        if not answering_continue(length, self.spool_limits, conn.buf):
            return 0, end
        try:
            sent = conn.sock.send(CONTINUE, socket.MSG_DONTWAIT)  # 25 bytes: a fresh send queue takes them
        except OSError:
            sent = 0
        if sent != len(CONTINUE):
            return 0, end
        conn.buf, end = without_expect(conn.buf, end)
        return length, end

    def _body_begin(self, conn: Connection, end: int, length: int) -> bool:
        """Start receiving the body of the request whose head ends at
        ``end`` (spool.body_plan said BUFFER or SPOOL); True when all of it
        is here. Raises a BodyError."""
        if length > self.body_buffer:  # SPOOL: a Content-Length body into a file
            return self._spool_begin(conn, end, length)
        new = b""
        if length > 0:
            conn.wanted = end + length
        else:
            conn.wanted = -(end + self.body_buffer)
            conn.chunks = protocol.ChunkedBody(self.rules)
            new = conn.buf[end:]
        return self._body_complete(conn, new)

    def _body_complete(self, conn: Connection, new: bytes) -> bool:
        """Whether the buffered body is all here; ``new``: the bytes just
        added to conn.buf. Raises a BodyError (a malformed chunked body, a
        spool refused)."""
        wanted = conn.wanted
        if wanted > 0:
            return len(conn.buf) >= wanted
        # Chunked: its framing, checked as it arrives, says where it ends (a
        # pipelined request may follow at once: RFC 9112 9.3.2); or as much
        # as RequestBodyBuffer holds is here: the rest goes to a spool
        # (RequestBodySpool), else the worker reads it.
        # A body checked to its end stays on conn.chunks: the worker then
        # does not check it again (request.RequestCycle._body).
        if conn.chunks.feed(new) >= 0:
            return True
        if len(conn.buf) >= -wanted:
            end = -wanted - self.body_buffer
            if self._spool_chunked(conn, end):
                return self._spool_begin_chunked(conn, end)
            conn.chunks = None  # checked in part: the worker checks it all
            return True
        return False

    def _spool_more(self, conn: Connection, data: bytes) -> None:
        """More bytes of a body being spooled (RequestBodySpool)."""
        try:
            complete = self._spool_feed(conn, data)
        except BodyError as err:
            self._refuse_body(conn, err)
            return
        if complete:
            self._dispatch(conn, False, True)
        else:
            self._set_stage_timer(conn)

    def _refuse_body(self, conn: Connection, err: BodyError) -> None:
        """Answer a body the loop will not take (400, 413, 431, 503); its spool goes at once."""
        if conn.spool is not None:
            conn.spool.close()
            conn.spool = None
        self._refuse(conn, err.client_error())

    # -- stage timers and 408 -------------------------------------------------------------

    def _set_stage_timer(self, conn: Connection) -> None:
        """Timeout bounds a whole head and each wait for body bytes;
        RequestReadTimeout bounds each stage by time and rate. The timer is
        set for whichever ends first."""
        now = self._time()
        timeout = self.timeout
        if conn.state == READING_BODY:
            until = min(now + timeout, reqtimeout.deadline(
                self.read_timeouts.body, conn.stage_start, conn.stage_bytes))
        else:
            until = min(conn.stage_start + timeout, reqtimeout.deadline(
                self.read_timeouts.header, conn.stage_start, conn.stage_bytes))
        self._set_timer(conn, max(0.0, until - now), self.on_timeout)

    def on_timeout(self, conn: Connection) -> None:
        """A stage timer fired (or a parked connection's grace ended)."""
        conn.timer = None
        if conn.state == PARKED or not conn.buf or conn.proxy_pending:
            # Idle keep-alive, or a connection that never sent a byte: just close
            # (a 408 to a browser's pre-opened connection would only confuse it).
            self._close(conn)
            return
        body = conn.state == READING_BODY
        stage = self.read_timeouts.body if body else self.read_timeouts.header
        slow = reqtimeout.deadline(stage, conn.stage_start, conn.stage_bytes) <= self._time() + 0.01
        self._refuse(conn, HeadError(408, f"request {'body' if body else 'head'} not received within "
                                          f"{'RequestReadTimeout' if slow else 'Timeout'}"))
