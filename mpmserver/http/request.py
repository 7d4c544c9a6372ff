"""One request in a worker: h11 parse, environ, wsgi.input, the app, the response, the access log.

`RequestCycle.run()` takes a connection whose buffer h11 already holds and
returns an Outcome for the connection. It reads and writes only through a
channel (response.Channel for a real socket), so it can be unit-tested with
h11 on the other end and no socket, as waitress tests a Task against a
channel. What every request of a child shares is a `ChildContext`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import h11

from ..logs import AccessRecord
from ..modules import reqtimeout
from ..modules.remoteip import apply as apply_remote_ip
from ..modules.remoteip import resolve as resolve_remote_ip
from ..scoreboard import (
    SERVER_BUSY_LOG,
    SERVER_BUSY_READ,
    SERVER_BUSY_WRITE,
    SERVER_GRACEFUL,
)
from . import protocol
from .errors import (
    BodyError,
    BodyTooLarge,
    BodyTooSlow,
    ClientDisconnected,
    HeadError,
    MalformedBody,
    RequestError,
    internal_error,
)
from .outcome import ABORT, CLOSE, FINISHED, KEEP, REFUSE, Outcome
from .response import Response
from .wsgi import FileWrapper, InputStream, build_environ

NEED_DATA = h11.NEED_DATA
Request = h11.Request
Data = h11.Data
EndOfMessage = h11.EndOfMessage
RECV_SIZE = 65536

# Apache's %X: how the connection ended after the response. A refused
# request's is set by the listener once its error response is written.
CONN_STATUS = {KEEP: "+", CLOSE: "-", ABORT: "X", REFUSE: "-", FINISHED: "-"}

# Every 32nd request on a connection asks whether the child should send the
# client to a less loaded sibling (a scoreboard read of a few microseconds).
REBALANCE_MASK = 31

# Bytes of an unread request body we read and discard to keep a connection
# alive; past this, closing is cheaper than reading.
DRAIN_LIMIT = 256 * 1024


def _never() -> bool:
    return False


def _no_body() -> bytes:
    return b""


def _client_closes(environ: dict, http_version: bytes) -> bool:
    """The client said it will send no further request: Connection: close,
    or HTTP/1.0 without keep-alive."""
    connection = environ.get("HTTP_CONNECTION")
    if connection is None:
        return http_version == b"1.0"
    connection = connection.lower()
    return "close" in connection or (http_version == b"1.0" and "keep-alive" not in connection)


@dataclass(eq=False)
class ChildContext:
    """What every request of a child shares; built once by the child."""

    config: Any
    app: Callable
    base_environ: dict
    error_log: Any
    access_log: Any = None
    # The most a request head may take (h11's buffer limit is set to it).
    head_limit: int = 1 << 20
    on_app_error: Callable[[BaseException], None] | None = None
    # True when this child holds clearly more connections than a sibling
    # (admission.prefers_sibling over the listener's count) and may send a
    # client away now (admission.SendAwayPace: one at a time).
    sends_away: Callable[[], bool] = field(default=_never)
    # RemoteIP settings (remoteip.RemoteIP); read only for connections from
    # a trusted proxy (conn.trusted).
    remote_ip: Any = None
    # MaxRequestsPerChild: called once per request; True when the child has
    # reached the limit (it has begun its graceful stop). None: no limit.
    count_request: Callable[[], bool] | None = None
    # MaxMemoryPerChild (and the published resident memory): called once per
    # request, after its response (memory.MemoryWatch.after_request). None:
    # no limit.
    check_memory: Callable[[], None] | None = None
    # GracefulStopDrain: set by the child once the master says the server
    # drains; every response then says Connection: close, so that clients and
    # a load balancer's pooled connections reconnect elsewhere.
    draining: bool = False
    # Spooling (spoolfile.Spooler): request bodies the listener received
    # into files, and the response queues of slow clients. None: no
    # response queue (ResponseSpool Off, or a test's context).
    spooler: Any = None


def header_list(headers: Any) -> list[tuple[bytes, bytes]]:
    """h11's Headers as a plain list of (lower-case name, value).

    Iterating h11.Headers goes through Sequence.__iter__ and __getitem__ per
    item, and a request's headers are walked by the environ and again by the
    access log: take the list once. h11 has no public list of the lower-cased
    pairs (raw_items() keeps the client's case), so its private _full_items
    is read: 0.4-0.7 us for a browser's six headers against 2.3-2.4 us for
    list(headers) (h11 0.16, timeit, 2026-12-06): a twentieth of a
    hello-world cycle. tests/unit/http/test_headers.py fails if h11 drops it;
    the fallback below keeps the server correct meanwhile.
    """
    try:
        return [(name, value) for _, name, value in headers._full_items]
    except (AttributeError, ValueError):  # a future h11 without _full_items
        return list(headers)


def check_trailers(trailers: Any, cfg: Any) -> None:
    """The head limits hold for a chunked body's trailer fields too (Apache)."""
    if cfg.limit_request_fields and len(trailers) > cfg.limit_request_fields:
        raise MalformedBody(f"more than LimitRequestFields ({cfg.limit_request_fields}) trailer fields",
                            status=431)
    limit = cfg.limit_request_field_size
    for name, value in trailers:
        if len(name) + len(value) + 2 > limit:
            raise MalformedBody(f"trailer field {name[:40]!r} longer than LimitRequestFieldSize ({limit})",
                                status=431)


class BodyReader:
    """What both kinds of request body share: reading the socket under
    RequestReadTimeout's body stage, with the scoreboard showing the read."""

    __slots__ = ("channel", "record", "cfg", "started", "read")

    def __init__(self, channel: Any, record: Any, cfg: Any):
        self.channel = channel
        self.record = record
        self.cfg = cfg
        # RequestReadTimeout's body stage: when the first read from the socket
        # began (0: none yet) and the bytes read since.
        self.started = 0.0
        self.read = 0

    def _recv(self) -> bytes:
        rec = self.record
        rec.set_status(SERVER_BUSY_READ)
        left = self._time_left()
        try:
            if left is None:
                data = self.channel.recv(RECV_SIZE)
            else:
                data = self.channel.recv_within(RECV_SIZE, left)
        except TimeoutError:
            if left is not None:
                raise BodyTooSlow("request body not received within RequestReadTimeout") from None
            raise ClientDisconnected("timed out reading the request body") from None
        except OSError as exc:
            raise ClientDisconnected(f"client connection broken: {exc}") from None
        finally:
            rec.set_status(SERVER_BUSY_WRITE)
        self.read += len(data)
        return data

    def _time_left(self) -> float | None:
        """Seconds RequestReadTimeout leaves for the next read, when that is
        less than Timeout (None: Timeout alone bounds it)."""
        stage = self.cfg.request_read_timeout.body
        if not stage.enabled:
            return None
        now = time.monotonic()
        if not self.started:
            self.started = now
        left = reqtimeout.deadline(stage, self.started, self.read) - now
        if left <= 0:
            raise BodyTooSlow("request body not received within RequestReadTimeout")
        return left if left < self.cfg.timeout else None


class Body(BodyReader):
    """The request body as wsgi.input pulls it: h11 events over the channel
    (a chunked body, or one whose client waits for 100 Continue).

    A chunked body's framing is checked (``chunks``) as its bytes arrive,
    before h11 reads them: h11 lets malformed chunk extensions and bare LFs
    in trailers through. Raises MalformedBody at once when what the head
    brought with it is already malformed (400 before the app runs)."""

    __slots__ = ("h", "limit", "received", "chunks")

    def __init__(self, h: h11.Connection, channel: Any, record: Any, cfg: Any,
                 chunks: protocol.ChunkedBody | None = None):
        super().__init__(channel, record, cfg)
        self.h = h
        self.limit = cfg.limit_request_body
        self.received = 0
        self.chunks = chunks
        if chunks is not None and not chunks.done:
            chunks.feed(h.trailing_data[0])  # what came with the head (raises MalformedBody)

    def pull(self) -> bytes:
        """The next body bytes, b"" at the end; raises a BodyError."""
        h = self.h
        while True:
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise MalformedBody(f"malformed request body: {exc}") from None
            if ev is NEED_DATA:
                data = self._recv()
                if self.chunks is not None:
                    self.chunks.feed(data)  # raises MalformedBody
                h.receive_data(data)
                continue
            t = type(ev)
            if t is Data:
                data = ev.data
                self.received += len(data)
                if self.limit and self.received > self.limit:
                    raise BodyTooLarge(f"request body exceeds LimitRequestBody {self.limit}")
                return bytes(data)
            if t is EndOfMessage:
                if ev.headers:
                    check_trailers(ev.headers, self.cfg)
                return b""
            raise ClientDisconnected("client closed the connection during the request body")

    def continue_100(self) -> None:
        """Before the app's first read: 100 Continue, if the client waits for it."""
        h = self.h
        if h.they_are_waiting_for_100_continue:
            self.channel.send(h.send(h11.InformationalResponse(status_code=100, headers=[])))

    def done(self) -> bool:
        """All of the body has been read (h11 has seen its end)."""
        return self.h.their_state is h11.DONE

    def rest(self) -> bytes:
        """The bytes after the body: the start of the next request."""
        return self.h.trailing_data[0]

    def drain(self) -> bool:
        """Discard what the app left unread so the next request starts at the
        right byte; False when that costs too much or fails (close instead)."""
        h = self.h
        drained = 0
        try:
            while True:
                ev = h.next_event()
                if ev is NEED_DATA:
                    data = self.channel.recv(RECV_SIZE)
                    if self.chunks is not None:
                        self.chunks.feed(data)  # a MalformedBody is an OSError: close
                    h.receive_data(data)
                    continue
                if type(ev) is Data:
                    drained += len(ev.data)
                    if drained > DRAIN_LIMIT:
                        return False
                    continue
                return type(ev) is EndOfMessage
        except (OSError, h11.RemoteProtocolError):
            return False


class LengthBody(BodyReader):
    """A Content-Length body, read without h11's per-chunk events.

    h11 has judged the framing: it parsed and validated Content-Length, and
    no Transfer-Encoding came (RFC 9112 6.3: then the body is exactly that
    many bytes). What is left to do is taking those bytes, first from what
    h11 holds after the head (the listener buffers small bodies whole),
    then from the socket; h11's Data and EndOfMessage events for them were
    about a sixth of a 10 KB POST's request cycle (43.8 -> 36.5 us in
    benchmarks/test_micro_request.py). Not for a client that
    waits for 100 Continue: that flag is h11's (Body serves it)."""

    __slots__ = ("buf", "left", "length")

    def __init__(self, buffered: bytes, length: int, channel: Any, record: Any, cfg: Any):
        super().__init__(channel, record, cfg)
        self.buf = buffered  # read, not yet given to the app: the body's, then the next request's
        self.left = length  # body bytes not yet given to the app
        self.length = length

    def pull(self) -> bytes:
        """The next body bytes, b"" at the end; raises a BodyError."""
        left = self.left
        if not left:
            return b""
        buf = self.buf
        if not buf:
            buf = self._recv()
            if not buf:
                # The client ended its side short of the length it declared:
                # a malformed request (400, as h11 judged it before this
                # reader), which a half-closed client still reads.
                raise MalformedBody(f"malformed request body: the client closed the connection after "
                                    f"{self.length - left} of {self.length} bytes")
        if len(buf) <= left:
            self.buf = b""
            self.left = left - len(buf)
            return buf
        self.buf = buf[left:]
        self.left = 0
        return buf[:left]

    def continue_100(self) -> None:
        """Nothing to do: a client waiting for 100 Continue gets a Body."""

    def done(self) -> bool:
        return not self.left

    def rest(self) -> bytes:
        return self.buf

    def drain(self) -> bool:
        """Discard what the app left unread (up to DRAIN_LIMIT); False when
        that costs too much or fails (close instead)."""
        if self.left > DRAIN_LIMIT:
            return False
        try:
            while self.left:
                self.pull()
        except OSError:  # a BodyError
            return False
        return True


class SpoolBody:
    """A body the listener received whole into a spool file
    (RequestBodySpool): the app reads it at the speed of the disk, with no
    socket and no RequestReadTimeout; what followed it (a pipelined
    request) came with it. Closed by the request cycle when the app is done."""

    __slots__ = ("spool",)

    def __init__(self, spool: Any):
        self.spool = spool  # spoolfile.BodySpool

    def pull(self) -> bytes:
        return self.spool.read(RECV_SIZE)

    def continue_100(self) -> None:
        """Nothing to do: a client waiting for 100 Continue is never spooled."""

    def done(self) -> bool:
        return True  # received to its end: what the app left unread needs no draining

    def rest(self) -> bytes:
        return self.spool.rest

    def drain(self) -> bool:
        return True

    def close(self) -> None:
        self.spool.close()


def _absolute_form(environ: dict, authority: bytes, target: bytes) -> None:
    """An absolute-form target's authority replaces Host (RFC 9112 3.2.2, as
    Apache does); REQUEST_URI stays the target as sent (Apache's, mod_wsgi's).
    SERVER_NAME stays the configured name, as for any Host: mpmserver never
    derives it from the request, so a client cannot set it this way either."""
    if authority:
        environ["HTTP_HOST"] = authority.decode("latin-1")
    environ["REQUEST_URI"] = target.decode("latin-1")


class RequestCycle:
    """A worker's request cycle; ``refusal`` holds the error of a REFUSE outcome."""

    def __init__(self, ctx: ChildContext, record: Any, handoff: Any):
        self.ctx = ctx
        self.record = record
        self.handoff = handoff  # read for its stop flag
        self.refusal: RequestError | None = None
        # The body of the request being served (None: it has none).
        self.body: Body | LengthBody | SpoolBody | None = None
        # A line the app wrote to wsgi.errors without its newline is logged
        # when its request ends, not held until the thread's next request.
        self._flush_errors = ctx.base_environ["wsgi.errors"].flush
        self._show_query = ctx.config.status_show_query  # StatusShowQuery: decided once per child
        self.head_rules = protocol.HeadRules.from_config(ctx.config)  # heads, and chunked bodies' trailers

    def run(self, conn: Any, h: h11.Connection, channel: Any) -> Outcome:
        self.body = None
        try:
            req = h.next_event()
        except h11.RemoteProtocolError as exc:
            return self._refuse(RequestError(400, "malformed request", str(exc)))
        if type(req) is not Request:
            return ABORT
        method = req.method
        version = req.http_version
        target = req.target
        request_line = b"%s %s HTTP/%s" % (method, target, version)
        authority = None
        # Not an origin-form target, CONNECT, not HTTP/1.x, or a fragment
        # (b"#"[0] is 35): judge the form.
        if target[0] != 47 or method[0] == 67 or version[0] != 49 or 35 in target:
            try:
                protocol.check_request_target(method, target, version)
            except HeadError as err:
                return self._refuse(err, self._record(conn, conn.client_addr, req, request_line,
                                                      header_list(req.headers), time.time()))
            if target[0] != 47 and target != b"*" and method != b"CONNECT":
                # Absolute-form: the app sees its path, and its authority as Host.
                authority, target = protocol.split_absolute_form(target)
        # The scoreboard (status page, ScoreBoardFile) gets no query string,
        # which may hold tokens, unless StatusShowQuery On. b"?"[0] is the
        # int 63 (folded at compile time): `int in bytes` costs 30 ns, `bytes in bytes` 190.
        self.record.begin_request(request_line if self._show_query or b"?"[0] not in target else
                                  b"%s %s HTTP/%s" % (method, target.partition(b"?")[0], version))
        return self._serve(conn, h, channel, req, request_line, target, authority)

    def _serve(self, conn: Any, h: h11.Connection, channel: Any, req: Any, request_line: bytes,
               target: bytes, authority: bytes | None) -> Outcome:
        ctx = self.ctx
        rec = self.record
        sent_before = channel.sent
        start = time.time()
        headers = header_list(req.headers)
        try:
            environ = build_environ(ctx.base_environ, req.method, target, req.http_version, headers,
                                    conn.client_addr, conn.client_port, conn.must_close)
        except HeadError as err:  # a singleton field sent twice (protocol.SINGLETON_FIELDS)
            return self._refuse(err, self._record(conn, conn.client_addr, req, request_line, headers, start))
        if authority is not None:
            _absolute_form(environ, authority, req.target)
        if conn.tls is not None:  # mod_ssl's StdEnvVars, computed once per connection
            environ.update(conn.tls)
        client = conn.client_addr
        if conn.trusted:
            # From a trusted proxy: its header names the client (per request:
            # a proxy's pooled connection carries many clients).
            resolved = resolve_remote_ip(ctx.remote_ip, client, headers, ctx.error_log.debug)
            if resolved is not None:
                apply_remote_ip(environ, resolved)
                client = resolved.addr
        if ctx.count_request is not None:
            # At MaxRequestsPerChild this begins the child's graceful stop, so
            # _must_close answers this request with Connection: close.
            ctx.count_request()
        body = self._body(conn, h, channel, environ)
        if type(body) is RequestError:
            return self._refuse(body, self._record(conn, client, req, request_line, headers, start))
        resp = Response(h, channel, ctx.error_log, self._must_close(conn, environ), req.method == b"HEAD",
                        req.http_version == b"1.1", request_line)
        outcome = self._call_app(conn, environ, resp, request_line)
        if type(body) is SpoolBody:
            body.close()  # its file is no longer needed (the bytes after it are kept)
        if outcome == CLOSE and _client_closes(environ, req.http_version) and (
                body is None or body.done()):
            # Nothing more will come from this client: no lingering drain.
            outcome = FINISHED
        # The status counts as this worker's response unless the listener
        # writes it (REFUSE: it counts the error response it writes).
        rec.end_request(resp.sent, 0 if outcome == REFUSE else resp.status_code)
        if ctx.check_memory is not None:
            ctx.check_memory()  # MaxMemoryPerChild: after the request, before the next
        self._flush_errors()
        if ctx.access_log is not None:
            rec.set_status(SERVER_BUSY_LOG)
            ar = self._record(conn, client, req, request_line, headers, start, resp,
                              channel.sent - sent_before, outcome)
            if outcome == REFUSE:
                # The listener writes the error response and logs it then.
                self.refusal = (self.refusal[0], ar)
                return outcome
            ctx.access_log.log(ar)
        if outcome == KEEP and body is not None and not body.done():
            # The app left (part of) the body unread.
            if h.they_are_waiting_for_100_continue or not body.drain():
                return CLOSE
        return outcome

    def rest(self, h: h11.Connection) -> bytes:
        """The bytes the connection holds after the request just served:
        the start of the next one (a LengthBody holds them, else h11)."""
        body = self.body
        return h.trailing_data[0] if body is None else body.rest()

    def _body(self, conn: Any, h: h11.Connection, channel: Any, environ: dict
              ) -> Body | LengthBody | SpoolBody | RequestError | None:
        """Set wsgi.input. None for a request without a body (neither
        Content-Length nor Transfer-Encoding, RFC 9112 6.3: most GETs): h11
        holds nothing of it, so there is nothing to read and nothing to drain
        before the next request. A RequestError for a declared length over
        LimitRequestBody (413 before the app runs)."""
        cl = environ.get("CONTENT_LENGTH")
        if (cl is None or cl == "0") and "HTTP_TRANSFER_ENCODING" not in environ:
            environ["wsgi.input"] = InputStream(_no_body)
            return None
        if conn.spool is not None:
            return self._spooled(conn, environ)
        limit = self.ctx.config.limit_request_body
        if limit and cl is not None and cl.isdigit() and int(cl) > limit:
            self.ctx.error_log.info(
                f"client {conn.client_addr}: request body of {cl} bytes exceeds LimitRequestBody {limit}")
            return RequestError(413, "Request body too large")
        if (cl is not None and "HTTP_TRANSFER_ENCODING" not in environ and cl.isdigit()
                and not h.they_are_waiting_for_100_continue):
            body = LengthBody(h.trailing_data[0], int(cl), channel, self.record, self.ctx.config)
        else:
            chunks = None
            if "HTTP_TRANSFER_ENCODING" in environ:
                # The listener's check of a body it buffered whole, else ours.
                chunks = conn.chunks
                conn.chunks = None
                if chunks is None or not chunks.done:
                    chunks = protocol.ChunkedBody(self.head_rules)
            try:
                body = Body(h, channel, self.record, self.ctx.config, chunks)
            except MalformedBody as exc:
                return exc.client_error()
        environ["wsgi.input"] = InputStream(body.pull, body.continue_100)
        self.body = body
        return body

    def _spooled(self, conn: Any, environ: dict) -> SpoolBody:
        """The body the listener spooled (this connection's first request in
        this worker: a pipelined one never is). A chunked body was decoded
        into the spool: the app gets its length as CONTENT_LENGTH, as
        waitress gives it."""
        body = SpoolBody(conn.spool)
        conn.spool = None
        environ["CONTENT_LENGTH"] = str(body.spool.size)
        environ["wsgi.input"] = InputStream(body.pull)
        self.body = body
        return body

    def _refuse(self, err: RequestError, record: AccessRecord | None = None) -> Outcome:
        """The server answers this request itself: the listener writes the
        error response and logs ``record`` (built here when the request was
        parsed; the listener makes one from the raw head otherwise)."""
        self.refusal = (err, record)
        return REFUSE

    def _must_close(self, conn: Any, environ: dict) -> bool:
        """Decided before headers go out, so that the client reads
        "Connection: close" on the response it gets."""
        cfg = self.ctx.config
        stopping = self.handoff.stopping
        if stopping:
            self.record.set_status(SERVER_GRACEFUL)
        if (not cfg.keep_alive or conn.must_close or stopping or self.ctx.draining
                or (cfg.max_keep_alive_requests and conn.requests + 1 >= cfg.max_keep_alive_requests)):
            return True
        connection = environ.get("HTTP_CONNECTION")
        if connection is not None and "close" in connection.lower():
            return True
        # Now and then, a child holding clearly more connections than an
        # accepting sibling sends one client away: it reconnects, and
        # admission places it on the sibling. Keep-alive clients that all
        # landed on the first child to start would otherwise stay there.
        # Asked last: a client leaving anyway must not use up the pace.
        return conn.requests & REBALANCE_MASK == REBALANCE_MASK and self.ctx.sends_away()

    def _call_app(self, conn: Any, environ: dict, resp: Response, request_line: bytes) -> Outcome:
        ctx = self.ctx
        result = None
        try:
            try:
                result = ctx.app(environ, resp.start_response)
                # sendfile cannot encrypt: over TLS the file is written as read.
                if type(result) is FileWrapper and conn.tls is None and result.fileno() is not None:
                    return resp.send_file(result)
                # A body in one piece ([body], the usual) is the last of the
                # response as it is sent: what the socket cannot take of it
                # may be left to the loop (write completion). Of a longer
                # iterable only finish()'s bytes are known to be last.
                resp.channel.tail_ok = type(result) is list and len(result) == 1
                for chunk in result:
                    if chunk:
                        resp.send_chunk(chunk)
                return resp.finish()
            finally:
                if result is not None and hasattr(result, "close"):
                    result.close()
        except (ClientDisconnected, ConnectionError, TimeoutError) as exc:
            # The client is gone or too slow: nothing to answer.
            if ctx.error_log.enabled("info"):
                ctx.error_log.info(f"client {conn.client_addr}: {exc} ({request_line!r})")
            return ABORT
        except BodyError as exc:
            err = exc.client_error()
        except Exception as exc:  # noqa: BLE001 - the app's errors must not kill the worker
            ctx.error_log.exception(f"exception in the app on {request_line.decode('latin-1')!r}", exc)
            if ctx.on_app_error is not None:
                ctx.on_app_error(exc)
            err = internal_error()
        if resp.headers_sent:
            return ABORT
        resp.status_code = err.status
        return self._refuse(err)

    def _record(self, conn: Any, client: str, req: Any, request_line: bytes, headers: list, start: float,
                resp: Response | None = None, bytes_out: int = 0, outcome: Outcome = REFUSE
                ) -> AccessRecord | None:
        """The access record of this request (None without an access log)."""
        if self.ctx.access_log is None:
            return None
        if resp is None:
            status = sent = 0
            response_headers = None
        else:
            status, sent, response_headers = resp.status_code, resp.sent, resp.headers or None
        # Positional: on the per-request path keywords cost ~0.5 us more (timeit).
        return AccessRecord(client, conn.client_port, conn.server_port, req.method, req.target,
                            "HTTP/" + req.http_version.decode("ascii"), request_line.decode("latin-1"),
                            status, sent, headers, response_headers, start, time.time() - start,
                            None, conn.peer_addr, bytes_out, CONN_STATUS[outcome], conn.tls)
