"""Writing a response: start_response, the head, the body, sendfile, and the connection's fate.

The request cycle (request.py) gives a Response the h11 connection (for
what the client asked: HEAD, 100-continue) and a channel to write to; a
Response decides the framing (framing.py) and returns an Outcome. The
channel is the only thing that touches the socket, so a Response can be
unit-tested with a channel that collects bytes and h11 on the other end.
"""

from __future__ import annotations

import os
import select
import socket
from typing import Any

import h11

from . import framing
from .framing import http_date
from .outcome import ABORT, CLOSE, KEEP, Outcome
from .spoolfile import OutQueue
from .wsgi import FileWrapper, encode_headers, parse_status, reraise

MSG_MORE = getattr(socket, "MSG_MORE", 0)
# Write completion: the most of a response's last bytes a worker leaves to
# the event loop when the socket cannot take them (memory held per slow
# reader); a larger rest is written by the worker until it fits.
TAIL_LIMIT = 1 << 20


class Channel:
    """A worker's socket, with Apache's Timeout semantics: ``timeout``
    bounds each wait to read and each wait to write, not a whole response
    (socket.sendall's timeout is a total since Python 3.5, which would cut a
    large response to a slow but reading client).

    The socket stays non-blocking, as the listener keeps it: a read or a
    write that can go ahead (most of them) is one system call, and only one
    that would block waits, in poll(). (A socket in Python's timeout mode
    polls before every call, and switching modes per connection costs a
    system call each way.) With ``timeout`` None the socket's own mode
    decides, as for a blocking socket or one with a timeout.

    Write completion: a send or a sendfile the socket cannot take whole
    leaves the rest in ``tail``, a spoolfile.OutQueue, instead of waiting,
    and everything the response sends after it is queued behind it: with a
    ``spooler`` (ResponseSpool), up to its bounds (memory, then a temporary
    file); without one, only the last bytes of the response (``tail_ok``, at
    most TAIL_LIMIT) and a file's rest. The worker hands the tail to the
    loop when the app is done. Past a bound, the worker writes what waits
    itself, waiting for the client as before."""

    __slots__ = ("sock", "timeout", "sent", "tail", "tail_ok", "spooler", "_poller")

    def __init__(self, sock: socket.socket, timeout: float | None = None, spooler: Any = None):
        self.sock = sock
        self.timeout = sock.gettimeout() if timeout is None else timeout
        self.sent = 0  # bytes written so far, for the access log's %O
        self.tail: OutQueue | None = None
        self.tail_ok = False
        self.spooler = spooler  # spoolfile.Spooler; None: ResponseSpool Off
        self._poller: Any = None

    def _wait(self, events: int, seconds: float | None, what: str) -> None:
        """Until the socket is ready for ``events``; TimeoutError after ``seconds``."""
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(self.sock.fileno(), events)
        else:
            poller.modify(self.sock.fileno(), events)
        if not poller.poll(None if seconds is None else seconds * 1000):
            raise TimeoutError(f"timed out {what}")

    def recv(self, size: int) -> bytes:
        return self.recv_within(size, self.timeout)

    def recv_within(self, size: int, seconds: float | None) -> bytes:
        """recv, waiting at most ``seconds`` for bytes (RequestReadTimeout's
        wait may be shorter than Timeout)."""
        sock = self.sock
        while True:
            try:
                return sock.recv(size)
            except BlockingIOError:
                self._wait(select.POLLIN, seconds, "reading")

    def send(self, data: bytes, flags: int = 0) -> None:
        if self.tail is not None:  # queueing: everything goes behind what waits
            self._queue(data)
            return
        sock = self.sock
        try:
            n = sock.send(data, flags)
        except BlockingIOError:
            n = 0
        if n == len(data):
            self.sent += n
            return
        self._send_rest(data, n, flags)

    def _send_rest(self, data: bytes, n: int, flags: int) -> None:
        """The socket took ``n`` bytes of ``data``: queue the rest (write
        completion), or wait for the client to take it."""
        view = memoryview(data)
        spooler = self.spooler
        if spooler is not None:
            queue = spooler.queue()
            if queue.append(view[n:]):
                self.tail = queue
                self.sent += len(view)
                return
            queue.close()
        sock = self.sock
        try:
            while n < len(view):
                # Only reached when the socket is full.
                if self.tail_ok and len(view) - n <= TAIL_LIMIT:
                    self.tail = OutQueue()
                    self.tail.append(view[n:])
                    self.tail_ok = False
                    n = len(view)
                    return
                try:
                    n += sock.send(view[n:], flags)
                except BlockingIOError:
                    self._wait(select.POLLOUT, self.timeout, "writing")
        finally:
            self.sent += n

    def _queue(self, data: bytes) -> None:
        """Queue ``data`` behind the tail. What the client has taken meanwhile
        goes first, without waiting: a streaming response (server-sent
        events) keeps flowing, and once the queue is empty the socket is
        written directly again. Past the queue's bounds, write what waits
        first (this thread waits for the client: the bound was hit)."""
        tail = self.tail
        tail.send_to(self.sock)
        if tail.empty:
            tail.close()
            self.tail = None
            self.send(data)
            return
        if not tail.append(data):
            self._flush_tail()
            self.send(data)
            return
        self.sent += len(data)

    def _flush_tail(self) -> None:
        tail = self.tail
        while True:
            tail.send_to(self.sock)
            if tail.empty:
                break
            self._wait(select.POLLOUT, self.timeout, "writing")
        tail.close()
        self.tail = None

    def sendfile(self, fd: int, offset: int, count: int, leave_tail: bool = False) -> None:
        """os.sendfile on a socket that has a timeout (non-blocking underneath).
        ``leave_tail``: when the socket would block, leave the rest in
        ``tail`` (with a duplicate of ``fd``) instead of waiting; behind a
        tail, the file's region is queued (sent by the loop, still by sendfile)."""
        if self.tail is not None and count > 0:  # queueing: behind what waits
            self.tail.append_file(os.dup(fd), offset, count)
            self.sent += count
            return
        sockfd = self.sock.fileno()
        while count > 0:
            try:
                n = os.sendfile(sockfd, fd, offset, count)
            except BlockingIOError:
                if leave_tail:
                    self.tail = OutQueue()
                    self.tail.append_file(os.dup(fd), offset, count)
                    self.sent += count
                    return
                self._wait(select.POLLOUT, self.timeout, "sending a file")
                continue
            if n == 0:
                raise ConnectionError("client closed the connection during sendfile")
            offset += n
            count -= n
            self.sent += n


class Response:
    """One response: start_response, write() and the body go through here.

    Headers are held back until the first non-empty body chunk (PEP 3333) so
    that the head and a small body leave in one send. Framing is decided by
    framing.frame(); the head is serialized here, once.
    """

    __slots__ = ("h", "channel", "error_log", "close", "head_request", "http11", "request_line",
                 "status_code", "reason", "headers", "block", "content_length", "has_date",
                 "has_server", "app_close", "headers_sent", "remaining",
                 "sent", "mode", "keep")

    def __init__(self, h: h11.Connection, channel: Channel, error_log: Any, close: bool,
                 head_request: bool, http11: bool, request_line: bytes):
        self.h = h
        self.channel = channel
        self.error_log = error_log
        self.close = close
        self.head_request = head_request
        self.http11 = http11
        self.request_line = request_line
        self.status_code = 0
        self.reason = b""
        # What wsgi.encode_headers() made of the app's headers: the pairs of
        # (lower-case name, value) here, and block, content_length, has_date,
        # has_server and app_close, set by start_response.
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.headers_sent = False
        self.remaining = -1  # declared Content-Length still to send; -1 = none declared
        self.sent = 0
        self.mode = framing.NO_BODY
        self.keep = False

    def start_response(self, status: str, response_headers: list, exc_info: Any = None):
        if exc_info:
            try:
                if self.headers_sent:
                    reraise(exc_info)
            finally:
                exc_info = None
        elif self.headers is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self.status_code, self.reason = parse_status(status)
        (self.headers, self.block, self.content_length, self.has_date, self.has_server,
         self.app_close) = encode_headers(response_headers)
        return self.write

    def head_bytes(self) -> bytes:
        if self.headers is None:
            raise AssertionError("the app returned a body before calling start_response")
        parts = [framing.status_line(self.status_code, self.reason), self.block]
        if not self.has_date:
            parts.append(b"Date: " + http_date() + b"\r\n")
        if not self.has_server:
            parts.append(framing.SERVER_LINE)
        # A client still waiting for 100 Continue has not sent its body and
        # will not now: the connection cannot be reused.
        close = self.close or self.app_close or self.h.they_are_waiting_for_100_continue
        content_length = self.content_length
        self.mode, extra, self.keep = framing.frame(
            self.status_code, content_length, http11=self.http11,
            head_request=self.head_request, close=close)
        if self.mode == framing.FIXED:
            self.remaining = content_length
        parts.append(extra)
        parts.append(b"\r\n")
        self.headers_sent = True
        return b"".join(parts)

    def body_bytes(self, chunk: bytes) -> bytes:
        mode = self.mode
        if mode == framing.FIXED:
            remaining = self.remaining
            if len(chunk) > remaining:
                self.error_log.error(
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
            self.channel.send(out)

    def write(self, data: bytes) -> None:
        """The PEP 3333 write() callable."""
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        out = b"" if self.headers_sent else self.head_bytes()
        if data:
            out += self.body_bytes(data)
        if out:
            self.channel.send(out)

    def finish(self) -> Outcome:
        """End the body; the connection's fate: KEEP, CLOSE or ABORT."""
        out = b"" if self.headers_sent else self.head_bytes()
        mode = self.mode
        if mode == framing.FIXED and self.remaining > 0:
            self.error_log.error(
                f"app sent {self.remaining} bytes less than its Content-Length on "
                f"{self.request_line!r}; closing the connection")
            if out:
                self.channel.send(out)
            return ABORT
        if mode == framing.CHUNKED:
            out += framing.LAST_CHUNK
        channel = self.channel
        if out:
            channel.tail_ok = True  # behind a tail (the rest of the last chunk), queued anyway
            channel.send(out)
        channel.tail_ok = False  # the next response's first bytes are not a tail
        return KEEP if self.keep else CLOSE

    def send_file(self, wrapper: FileWrapper) -> Outcome:
        """A wsgi.file_wrapper response with sendfile: the head is corked with
        MSG_MORE so that it leaves with the first bytes of the file."""
        fd = wrapper.fileno()
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        size = max(0, os.fstat(fd).st_size - offset)
        if self.headers is None:
            raise AssertionError("the app returned a body before calling start_response")
        declared = self.content_length
        if declared < 0:
            value = str(size).encode()
            # A new list: encode_headers' may be shared with other responses.
            self.headers = self.headers + [(b"content-length", value)]
            self.block += b"Content-Length: " + value + b"\r\n"
            self.content_length = count = size
        elif declared > size:
            raise ValueError(f"file_wrapper: Content-Length {declared} but the file has {size} bytes left")
        else:
            count = declared
        channel = self.channel
        head = self.head_bytes()
        if self.mode != framing.FIXED:
            # HEAD, 204, 304: no body at all.
            channel.send(head)
            return KEEP if self.keep else CLOSE
        channel.send(head, MSG_MORE)
        if count:
            channel.sendfile(fd, offset, count, leave_tail=True)
        self.remaining = 0
        self.sent = count
        return KEEP if self.keep else CLOSE


