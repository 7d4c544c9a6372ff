"""TLS handshakes in the loop, never in a worker.

A connection accepted on a TLS listener (accept.py hands it here) first
waits, without any TLS state, for its whole first record: the socket's
receive low-water mark (SO_RCVLOWAT) is set to the bytes still missing, so
a client that sends part of a ClientHello and stalls wakes the loop neither
now nor later, and costs a descriptor and a timer. The record is judged by
peeking (modules/tls.classify_hello): plain HTTP is answered 400 as mod_ssl
does, garbage is closed, a client that asks by ALPN only for h2 gets a
no_application_protocol alert; a ClientHello is then wrapped (the
context's ServerTLSSocket) and the handshake driven by readable and
writable events. Done, the connection's StdEnvVars are computed once and it
reads its request as any other (reading.py's ``start``).

``RequestReadTimeout handshake=`` (default 10-20,MinRate=500), within
Timeout, bounds it all: the bytes of the first record earn time; past the
deadline the connection is closed (no 408: there is no TLS session to send
one over). Failures are logged at info and counted by reason.

A TLS connection never moves to a sibling (siblings.py): SCM_RIGHTS moves
the descriptor, not the TLS state in this process.

Everything here runs in the loop thread.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from ...http.errors import HeadError
from ...modules import reqtimeout, tls
from ...scoreboard import TLS_FAILURES
from ..connection import Connection, make_nonblocking
from ..tls_socket import prepare_context
from .core import LoopCore, Room, Rooms

# The most of the first record peeked at: a record's largest size.
PEEK_SIZE = 5 + 16384 + 2048
_LOWAT = getattr(socket, "SO_RCVLOWAT", None)
_READ, _WRITE = 1, 2


class Handshake(Room):
    def __init__(self, core: LoopCore, contexts: dict[Any, ssl.SSLContext]) -> None:
        super().__init__(core)
        for ctx in {id(c): c for c in contexts.values()}.values():
            prepare_context(ctx)
        config = core.config
        self.stage = config.request_read_timeout.handshake
        self.timeout = config.timeout
        self._failure_index = {name: i for i, name in enumerate(TLS_FAILURES)}
        self._hello: dict[Connection, ssl.SSLContext] = {}  # waiting for the first record
        self._watch: dict[Connection, int] = {}  # _READ or _WRITE: what the loop watches for
        self._loop = core.loop

    def bind(self, rooms: Rooms) -> None:
        super().bind(rooms)
        self._connect = rooms.reader.connect
        self._recv = rooms.reader.recv
        self._start = rooms.reader.start
        self._refuse = rooms.completion.refuse

    # -- the way in -------------------------------------------------------------------

    def open(self, conn: Connection, ctx: ssl.SSLContext) -> None:
        """A connection accepted on a TLS listener."""
        if not self._connect(conn):
            return
        make_nonblocking(conn)
        conn.stage_start = self._time()
        conn.stage_bytes = 0
        core = self.core
        core.tls_handshakes += 1
        core.publish_tls()
        self._hello[conn] = ctx
        self._set_deadline(conn)
        self._on_hello(conn)

    def _set_deadline(self, conn: Connection) -> None:
        until = min(conn.stage_start + self.timeout,
                    reqtimeout.deadline(self.stage, conn.stage_start, conn.stage_bytes))
        self._set_timer(conn, max(0.0, until - self._time()), self._on_timeout)

    # -- the first record, before any TLS state -----------------------------------------

    def _on_hello(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(PEEK_SIZE, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            data = b""
        if data == b"":
            self._fail(conn, "closed by the client before its ClientHello", "closed")
            return
        kind, needed, alpn = tls.classify_hello(data or b"")
        if kind == tls.HELLO_INCOMPLETE:
            if data and len(data) > conn.stage_bytes:
                conn.stage_bytes = len(data)
                self._set_deadline(conn)  # the bytes earned time (MinRate)
            self._low_water(conn, needed - len(data or b""))
            self._wait(conn, _READ, self._on_hello)
            return
        self._low_water(conn, 1)
        conn.stage_bytes = max(conn.stage_bytes, len(data))
        self._judge(conn, self._hello.pop(conn), kind, alpn)

    def _judge(self, conn: Connection, ctx: ssl.SSLContext, kind: str, alpn: list[bytes] | None) -> None:
        """The first record is all here: refuse it, or begin the handshake."""
        if kind == tls.HELLO_HTTP:
            self._plain_http(conn)
        elif kind == tls.HELLO_GARBAGE:
            self._fail(conn, "not a TLS ClientHello", "not_tls")
        elif tls.refuses_alpn(alpn):
            try:
                conn.sock.send(tls.NO_APPLICATION_PROTOCOL_ALERT)
            except OSError:
                pass
            offered = b", ".join(alpn or ()).decode("latin-1")
            self._fail(conn, f"ALPN offers only {offered}; this server speaks http/1.1", "alpn")
        else:
            self._wrap(conn, ctx)

    @staticmethod
    def _low_water(conn: Connection, size: int) -> None:
        """Readable only once ``size`` bytes are there (or the end)."""
        if _LOWAT is not None:
            try:
                conn.sock.setsockopt(socket.SOL_SOCKET, _LOWAT, max(1, size))
            except OSError:
                pass

    def _plain_http(self, conn: Connection) -> None:
        """mod_ssl's answer to plain HTTP on an https port: 400, explained."""
        self._count_failure("plain_http")
        self._end_handshake(conn)
        data = self._recv(conn)
        if data is None:
            return
        conn.buf = data
        self._refuse(conn, HeadError(400, tls.PLAIN_HTTP_REASON, "plain HTTP request on a TLS port"))

    # -- the handshake ---------------------------------------------------------------------

    def _wrap(self, conn: Connection, ctx: ssl.SSLContext) -> None:
        self._unwatch_io(conn)
        try:
            conn.sock = ctx.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            self._fail(conn, f"cannot start TLS: {exc}", "other")
            return
        self._drive(conn)

    def _drive(self, conn: Connection) -> None:
        sock = conn.sock
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait(conn, _READ, self._drive)
            return
        except ssl.SSLWantWriteError:
            self._wait(conn, _WRITE, self._drive)
            return
        except ssl.SSLError as exc:
            reason = exc.reason or type(exc).__name__
            self._fail(conn, f"TLS handshake failed: {reason}", tls.failure_reason(reason))
            return
        except OSError as exc:
            self._fail(conn, f"TLS handshake failed: {exc.strerror or exc}", "closed")
            return
        self.core.tls_open += 1  # published by _end_handshake
        self._end_handshake(conn)
        conn.tls = tls.std_env_vars(sock.version(), sock.cipher(), sock.session_reused, sock.sni,
                                    sock.getpeercert(True), sock.getpeercert())
        data = self._recv(conn)  # the request may have come with the client's Finished
        if data is not None:
            self._start(conn, data)

    # -- watching, ending -------------------------------------------------------------------

    def _wait(self, conn: Connection, what: int, callback: Any) -> None:
        now = self._watch.get(conn)
        if now == what:
            return
        self._unwatch_io(conn)
        if what == _READ:
            self._loop.add_reader(conn.fd, callback, conn)
        else:
            self._loop.add_writer(conn.fd, callback, conn)
        self._watch[conn] = what

    def _unwatch_io(self, conn: Connection) -> None:
        what = self._watch.pop(conn, None)
        if what == _READ:
            self._loop.remove_reader(conn.fd)
        elif what == _WRITE:
            self._loop.remove_writer(conn.fd)

    def _end_handshake(self, conn: Connection) -> None:
        """The handshake stage is over: its watch and timer go."""
        self._unwatch_io(conn)
        self._hello.pop(conn, None)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self.core.tls_handshakes -= 1
        self.core.publish_tls()

    def _count_failure(self, reason: str) -> None:
        self.core.tls_failures[self._failure_index[reason]] += 1

    def _fail(self, conn: Connection, why: str, reason: str) -> None:
        """End a handshake that failed: logged, counted under ``reason`` (a TLS_FAILURES name), closed."""
        self._count_failure(reason)
        error_log = self.core.error_log
        if error_log.enabled("info"):
            error_log.info(f"client {conn.client_addr}: {why}; connection closed")
        self._end_handshake(conn)
        self._close(conn)

    def _on_timeout(self, conn: Connection) -> None:
        conn.timer = None
        self._fail(conn, "TLS handshake not completed within RequestReadTimeout's handshake stage "
                         "or Timeout", "timeout")
