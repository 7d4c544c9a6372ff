"""A worker thread's request cycle: h11 over a blocking socket, the WSGI app, the response.

A worker takes a connection whose request head the listener has already read
and checked, runs requests on it while complete ones are buffered
(pipelining), then hands it back to the listener to wait for the next one
(keep-alive parking) or to close it. The scoreboard record of the thread
changes at each step; this file is the only writer of that record.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import h11

from . import SERVER_SOFTWARE, framing, protocol
from .logs import AccessRecord, http_date
from .scoreboard import (
    SERVER_BUSY_LOG,
    SERVER_BUSY_READ,
    SERVER_BUSY_WRITE,
    SERVER_CLOSING,
    SERVER_GRACEFUL,
    SERVER_READY,
)
from .wsgi import (
    BodyTooLarge,
    ClientDisconnected,
    FileWrapper,
    InputStream,
    build_environ,
    check_status,
    encode_headers,
    reraise,
)

if TYPE_CHECKING:
    from .child import Child
    from .connection import Connection

SERVER_HEADER = SERVER_SOFTWARE.encode()
SERVER_LINE = b"server: " + SERVER_HEADER + b"\r\n"
NEED_DATA = h11.NEED_DATA
Request = h11.Request
Data = h11.Data
EndOfMessage = h11.EndOfMessage

# What happens to the connection after a request cycle.
KEEP = 0  # keep-alive: next request or park
CLOSE = 1  # close after a lingering drain (the client may still be sending)
ABORT = 2  # close at once: the client is gone or the response is broken

# Every 32nd request on a connection asks whether the child should send the
# client to a less loaded sibling (a scoreboard read of a few microseconds).
REBALANCE_MASK = 31

# Bytes of an unread request body we read and discard to keep a connection
# alive; past this, closing is cheaper than reading.
DRAIN_LIMIT = 256 * 1024


class BadRequestBody(OSError):
    """The request body is malformed (a broken chunk) or breaks a limit."""

    status = 400

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def header_list(headers: Any) -> list[tuple[bytes, bytes]]:
    """h11's Headers as a plain list of (lower-case name, value).

    Iterating h11.Headers goes through Sequence.__iter__ and __getitem__ per
    item (about 1.3 us for a browser's headers), and a request's headers are
    walked by the environ and again by the access log: take the list once.
    """
    try:
        return [(name, value) for _, name, value in headers._full_items]
    except (AttributeError, ValueError):  # a future h11 without _full_items
        return list(headers)


def check_trailers(trailers: Any, cfg: Any) -> None:
    """The head limits hold for a chunked body's trailer fields too (Apache)."""
    if cfg.limit_request_fields and len(trailers) > cfg.limit_request_fields:
        raise BadRequestBody(f"more than LimitRequestFields ({cfg.limit_request_fields}) trailer fields",
                             status=431)
    limit = cfg.limit_request_field_size
    for name, value in trailers:
        if len(name) + len(value) + 2 > limit:
            raise BadRequestBody(f"trailer field {name[:40]!r} longer than LimitRequestFieldSize ({limit})",
                                 status=431)


class Worker:
    def __init__(self, child: "Child", index: int):
        self.child = child
        self.index = index
        self.record = child.scoreboard.worker(child.slot, index)
        self.thread = threading.Thread(target=self.run, name=f"mpmserver-worker-{index}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        child = self.child
        rec = self.record
        rec.thread_started(os.getpid(), threading.get_native_id(), child.generation)
        get = child.ready.get
        idle = child.worker_idle
        busy = child.worker_busy
        set_status = rec.set_status
        try:
            while True:
                idle()
                conn = get()
                busy()
                if conn is None:
                    return
                try:
                    self.serve(conn)
                except BaseException as exc:  # noqa: BLE001 - a worker must survive anything
                    child.error_log.exception(f"worker {self.index}: unexpected error on {conn!r}", exc)
                    child.listener.close(conn, linger=False)
                set_status(SERVER_READY)
        finally:
            rec.thread_exited()

    # -- a connection -----------------------------------------------------

    def serve(self, conn: "Connection") -> None:
        child = self.child
        cfg = child.config
        sock = conn.sock
        sock.settimeout(cfg.timeout)
        self.record.begin_connection(conn.client_addr)
        buf = conn.buf
        conn.buf = b""
        while True:
            h = h11.Connection(h11.SERVER, max_incomplete_event_size=child.max_head_size)
            h.receive_data(buf)
            outcome = self.cycle(conn, h)
            conn.requests += 1
            if outcome != KEEP:
                self.record.set_status(SERVER_CLOSING)
                child.listener.close(conn, linger=outcome == CLOSE)
                return
            buf = h.trailing_data[0]
            if buf:
                # Pipelined: the next request may already be here; if its head
                # is complete, answer it now without a trip through the listener.
                skip, end = protocol.split_head(buf)
                if end >= 0:
                    try:
                        buf, flags = protocol.checked_head(
                            buf, skip, end, cfg.limit_request_line, cfg.limit_request_fields,
                            cfg.limit_request_field_size)
                    except protocol.HeadError as err:
                        child.listener.refuse(conn, err)
                        return
                    conn.must_close = bool(flags)
                    continue
            conn.buf = buf
            child.listener.park(conn)
            return

    # -- one request --------------------------------------------------------

    def cycle(self, conn: "Connection", h: h11.Connection) -> int:
        child = self.child
        cfg = child.config
        rec = self.record
        sock = conn.sock
        try:
            req = h.next_event()
        except h11.RemoteProtocolError as exc:
            return self.send_error(conn, 400, str(exc) or "Bad Request")
        if type(req) is not Request:
            return ABORT
        method = req.method
        target = req.target
        version = req.http_version
        request_line = b"%s %s HTTP/%s" % (method, target, version)
        rec.begin_request(request_line)
        start = time.time()
        headers = header_list(req.headers)
        environ = build_environ(
            child.base_environ, method, target, version, headers,
            conn.client_addr, conn.client_port, conn.must_close,
        )
        limit = cfg.limit_request_body
        if limit:
            cl = environ.get("CONTENT_LENGTH")
            if cl is not None and cl.isdigit() and int(cl) > limit:
                child.error_log.info(f"client {conn.client_addr}: request body of {cl} bytes exceeds LimitRequestBody {limit}")
                return self.send_error(conn, 413, "Request body too large")

        # Reading the body. 100 Continue is sent only when the app first reads.
        received = 0

        def pull() -> bytes:
            nonlocal received
            while True:
                try:
                    ev = h.next_event()
                except h11.RemoteProtocolError as exc:
                    raise BadRequestBody(f"malformed request body: {exc}") from None
                if ev is NEED_DATA:
                    rec.set_status(SERVER_BUSY_READ)
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        raise ClientDisconnected("timed out reading the request body") from None
                    except OSError as exc:
                        raise ClientDisconnected(f"client connection broken: {exc}") from None
                    finally:
                        rec.set_status(SERVER_BUSY_WRITE)
                    h.receive_data(data)
                    continue
                t = type(ev)
                if t is Data:
                    data = ev.data
                    received += len(data)
                    if limit and received > limit:
                        raise BodyTooLarge(f"request body exceeds LimitRequestBody {limit}")
                    return bytes(data)
                if t is EndOfMessage:
                    if ev.headers:
                        check_trailers(ev.headers, cfg)
                    return b""
                raise ClientDisconnected("client closed the connection during the request body")

        def continue_100() -> None:
            if h.they_are_waiting_for_100_continue:
                sock.sendall(h.send(h11.InformationalResponse(status_code=100, headers=[])))

        environ["wsgi.input"] = InputStream(pull, continue_100)

        # Decided before headers go out, so that the client reads
        # "Connection: close" on the response it gets.
        close = (
            not cfg.keep_alive
            or conn.must_close
            or child.stopping
            or (cfg.max_keep_alive_requests and conn.requests + 1 >= cfg.max_keep_alive_requests)
            # Now and then, a child holding clearly more connections than an
            # accepting sibling sends one client away: it reconnects, and
            # admission places it on the sibling. Keep-alive clients that all
            # landed on the first child to start would otherwise stay there.
            or (conn.requests & REBALANCE_MASK == REBALANCE_MASK and child.prefers_sibling(child.open_connections()))
        )
        if child.stopping:
            rec.set_status(SERVER_GRACEFUL)

        if not close:
            connection = environ.get("HTTP_CONNECTION")
            close = connection is not None and "close" in connection.lower()
        resp = Response(h, sock, child, close, method == b"HEAD", version == b"1.1", request_line)
        result = None
        outcome = KEEP
        try:
            try:
                result = child.app(environ, resp.start_response)
                if type(result) is FileWrapper and result.fileno() is not None:
                    outcome = resp.send_file(result)
                else:
                    for chunk in result:
                        if chunk:
                            resp.send_chunk(chunk)
                    outcome = resp.finish()
            finally:
                if result is not None and hasattr(result, "close"):
                    result.close()
        except (ClientDisconnected, ConnectionError, TimeoutError) as exc:
            # The client is gone or too slow: nothing to answer.
            if child.error_log.enabled("info"):
                child.error_log.info(f"client {conn.client_addr}: {exc} ({request_line!r})")
            return ABORT
        except Exception as exc:  # noqa: BLE001 - the app's errors must not kill the worker
            status = getattr(exc, "status", None)
            if isinstance(exc, (BodyTooLarge, BadRequestBody)) and status:
                child.error_log.info(f"client {conn.client_addr}: {exc}")
            else:
                child.error_log.exception(f"exception in the app on {request_line.decode('latin-1')!r}", exc)
                child.app_error(exc)
                status = 500
            if resp.headers_sent:
                outcome = ABORT
            else:
                outcome = self.send_error(conn, status, str(exc))
                resp.status_code = status

        duration = time.time() - start
        rec.end_request(resp.sent)
        access_log = child.access_log
        if access_log is not None:
            rec.set_status(SERVER_BUSY_LOG)
            ar = AccessRecord()
            ar.remote_addr = conn.client_addr
            ar.remote_port = conn.client_port
            ar.local_port = conn.server_port
            ar.method = method
            ar.target = target
            ar.protocol = "HTTP/" + version.decode("ascii")
            ar.request_line = request_line.decode("latin-1")
            ar.status = resp.status_code
            ar.bytes_sent = resp.sent
            ar.request_headers = headers
            ar.response_headers = resp.headers or ()
            ar.start_time = start
            ar.duration = duration
            ar.remote_user = None
            access_log.log(ar)
        if outcome != KEEP:
            return outcome
        if h.their_state is not h11.DONE:
            # The app left (part of) the body unread; discard it so the next
            # request starts at the right byte, unless that costs too much.
            if h.they_are_waiting_for_100_continue or not self.drain_body(h, sock):
                return CLOSE
        return KEEP

    def drain_body(self, h: h11.Connection, sock: socket.socket) -> bool:
        drained = 0
        try:
            while True:
                ev = h.next_event()
                if ev is NEED_DATA:
                    data = sock.recv(65536)
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

    def send_error(self, conn: "Connection", status: int, reason: str) -> int:
        """Answer an error before any response header went out; then close."""
        if status >= 500:
            reason = "The server encountered an internal error."
        try:
            conn.sock.sendall(protocol.error_response(status, reason, SERVER_HEADER, http_date()))
        except OSError:
            return ABORT
        return CLOSE


class Response:
    """One response: start_response, write() and the body go through here.

    Headers are held back until the first non-empty body chunk (PEP 3333) so
    that the head and a small body leave in one send. Framing is decided by
    framing.frame(); the head is serialized here, once.
    """

    __slots__ = ("h", "sock", "child", "close", "head_request", "http11", "request_line",
                 "status_code", "reason", "headers", "headers_sent", "remaining",
                 "sent", "mode", "keep", "app_close")

    def __init__(self, h: h11.Connection, sock: socket.socket, child: "Child", close: bool,
                 head_request: bool, http11: bool, request_line: bytes):
        self.h = h
        self.sock = sock
        self.child = child
        self.close = close
        self.head_request = head_request
        self.http11 = http11
        self.request_line = request_line
        self.status_code = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.headers_sent = False
        self.remaining = -1  # declared Content-Length still to send; -1 = none declared
        self.sent = 0
        self.mode = framing.NO_BODY
        self.keep = False
        self.app_close = False

    def start_response(self, status: str, response_headers: list, exc_info: Any = None):
        if exc_info:
            try:
                if self.headers_sent:
                    reraise(exc_info)
            finally:
                exc_info = None
        elif self.headers is not None:
            raise AssertionError("start_response called a second time without exc_info")
        check_status(status)
        self.headers = encode_headers(response_headers)
        self.status_code = int(status[:3])
        self.reason = status[4:].encode("latin-1")
        return self.write

    def head_bytes(self) -> bytes:
        hdrs = self.headers
        if hdrs is None:
            raise AssertionError("the app returned a body before calling start_response")
        has_date = has_server = False
        content_length = -1
        close = self.close
        parts = [framing.status_line(self.status_code, self.reason)]
        append = parts.append
        for name, value in hdrs:
            if name == b"content-length":
                if not value.isdigit():
                    raise ValueError(f"bad Content-Length {value!r} from the app")
                content_length = int(value)
            elif name == b"date":
                has_date = True
            elif name == b"server":
                has_server = True
            elif name == b"connection":
                # "close" is the only value encode_headers lets through; the
                # framing adds it back below.
                close = True
                continue
            append(name + b": " + value + b"\r\n")
        if not has_date:
            append(b"date: " + http_date() + b"\r\n")
        if not has_server:
            append(SERVER_LINE)
        # A client still waiting for 100 Continue has not sent its body and
        # will not now: the connection cannot be reused.
        if self.h.they_are_waiting_for_100_continue:
            close = True
        self.mode, extra, self.keep = framing.frame(
            self.status_code, content_length, http11=self.http11,
            head_request=self.head_request, close=close)
        if self.mode == framing.FIXED:
            self.remaining = content_length
        append(extra)
        append(b"\r\n")
        self.headers_sent = True
        return b"".join(parts)

    def body_bytes(self, chunk: bytes) -> bytes:
        mode = self.mode
        if mode == framing.FIXED:
            remaining = self.remaining
            if len(chunk) > remaining:
                self.child.error_log.error(
                    f"app sent more than its Content-Length on {self.request_line!r}; truncated")
                chunk = chunk[:remaining]
            self.remaining = remaining - len(chunk)
        elif mode == framing.NO_BODY:
            return b""
        self.sent += len(chunk)
        if mode == framing.CHUNKED:
            return framing.chunk(chunk)
        return chunk

    def send_chunk(self, chunk: bytes) -> None:
        if type(chunk) is not bytes:
            raise TypeError(f"the app's body iterable yielded {type(chunk).__name__}, not bytes")
        if self.headers_sent:
            out = self.body_bytes(chunk)
        else:
            out = self.head_bytes() + self.body_bytes(chunk)
        if out:
            send_all(self.sock, out)

    def write(self, data: bytes) -> None:
        """The PEP 3333 write() callable."""
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        out = b"" if self.headers_sent else self.head_bytes()
        if data:
            out += self.body_bytes(data)
        if out:
            send_all(self.sock, out)

    def finish(self) -> int:
        """End the body; the connection's fate: KEEP, CLOSE or ABORT."""
        out = b"" if self.headers_sent else self.head_bytes()
        mode = self.mode
        if mode == framing.FIXED and self.remaining > 0:
            self.child.error_log.error(
                f"app sent {self.remaining} bytes less than its Content-Length on "
                f"{self.request_line!r}; closing the connection")
            if out:
                send_all(self.sock, out)
            return ABORT
        if mode == framing.CHUNKED:
            out += framing.LAST_CHUNK
        if out:
            send_all(self.sock, out)
        return KEEP if self.keep else CLOSE

    def send_file(self, wrapper: FileWrapper) -> int:
        """A wsgi.file_wrapper response with sendfile: the head is corked with
        MSG_MORE so that it leaves with the first bytes of the file."""
        fd = wrapper.fileno()
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        size = max(0, os.fstat(fd).st_size - offset)
        if self.headers is None:
            raise AssertionError("the app returned a body before calling start_response")
        declared = None
        for name, value in self.headers:
            if name == b"content-length":
                declared = int(value)
        if declared is None:
            self.headers.append((b"content-length", str(size).encode()))
            count = size
        elif declared > size:
            raise ValueError(f"file_wrapper: Content-Length {declared} but the file has {size} bytes left")
        else:
            count = declared
        sock = self.sock
        head = self.head_bytes()
        if self.mode != framing.FIXED:
            # HEAD, 204, 304: no body at all.
            send_all(sock, head)
            return KEEP if self.keep else CLOSE
        send_all(sock, head, MSG_MORE)
        if count:
            _sendfile(sock, fd, offset, count)
        self.remaining = 0
        self.sent = count
        return KEEP if self.keep else CLOSE


MSG_MORE = getattr(socket, "MSG_MORE", 0)


def send_all(sock: socket.socket, data: bytes, flags: int = 0) -> None:
    """sendall with Apache's Timeout semantics: the timeout bounds each write,
    not the whole response (socket.sendall's timeout is a total since Python
    3.5, which would cut a large response to a slow but reading client)."""
    n = sock.send(data, flags)
    if n == len(data):
        return
    view = memoryview(data)
    while n < len(view):
        n += sock.send(view[n:], flags)


def _sendfile(sock: socket.socket, fd: int, offset: int, count: int) -> None:
    """os.sendfile on a socket that has a timeout (non-blocking underneath)."""
    timeout = sock.gettimeout()
    sockfd = sock.fileno()
    poller = None
    while count > 0:
        try:
            n = os.sendfile(sockfd, fd, offset, count)
        except BlockingIOError:
            if poller is None:
                import select

                poller = select.poll()
                poller.register(sockfd, select.POLLOUT)
            if not poller.poll(None if timeout is None else timeout * 1000):
                raise TimeoutError("timed out sending a file") from None
            continue
        if n == 0:
            raise ConnectionError("client closed the connection during sendfile")
        offset += n
        count -= n
