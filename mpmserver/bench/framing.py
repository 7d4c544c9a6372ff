"""Minimal incremental HTTP/1.1 response framing for the load generator.

The generator only needs to know where each response ends, its status and
whether the server will close the connection. So it reads the status line,
three headers (Content-Length, Transfer-Encoding, Connection) and skips the
body without keeping it: a 1 MB body costs a few length subtractions, not a
copy. Pipelined responses arriving in one read are all returned.
"""

from __future__ import annotations

_HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024

# States
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE = range(7)


class FramingError(Exception):
    """The server sent something that is not a valid HTTP/1.1 response."""


def _parse_head(head: bytes, no_body: bool) -> tuple[int, int, bool]:
    """Status, body length (-1 chunked, -2 until close) and close flag of a
    response head (without the final CRLFCRLF)."""
    lines = head.split(b"\r\n")
    status_line = lines[0]
    if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12 or status_line[12:13] not in (b" ", b""):
        raise FramingError(f"bad status line {status_line[:80]!r}")
    try:
        status = int(status_line[9:12])
    except ValueError:
        raise FramingError(f"bad status code in {status_line[:80]!r}") from None
    http10 = status_line[7:8] == b"0"
    length = None
    chunked = False
    close = http10
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise FramingError(f"bad header line {line[:80]!r}")
        n = name.strip().lower()
        if n == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise FramingError(f"bad Content-Length {value[:40]!r}") from None
            if length < 0:
                raise FramingError(f"negative Content-Length {length}")
        elif n == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
        elif n == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                close = False
    if no_body or status < 200 or status in (204, 304):
        return status, 0, close
    if chunked:
        return status, -1, close
    if length is not None:
        return status, length, close
    return status, -2, True


class ResponseParser:
    """Feed bytes in, get (status, close) for each complete response out.

    `expect_no_body` tells the parser the requests are HEAD, whose responses
    carry Content-Length but no body. A response framed by the end of the
    connection completes in `eof()`.
    """

    __slots__ = ("buf", "state", "remaining", "status", "close", "no_body")

    def __init__(self, expect_no_body: bool = False) -> None:
        self.buf = b""
        self.state = _HEAD
        self.remaining = 0
        self.status = 0
        self.close = False
        self.no_body = expect_no_body

    def in_progress(self) -> bool:
        """True when part of a response has been received."""
        return bool(self.buf) or self.state != _HEAD

    def feed(self, data: bytes) -> list[tuple[int, bool]]:
        """The responses ``data`` completes, as (status, close). Heads and
        Content-Length bodies (nearly every response) are read here, in
        one loop; a chunked body in _chunked."""
        done: list[tuple[int, bool]] = []
        buf = self.buf + data if self.buf else data
        pos = 0
        n = len(buf)
        state = self.state
        while pos < n:
            if state == _HEAD:
                end = buf.find(_HEAD_END, pos)
                if end < 0:
                    if n - pos > MAX_HEAD:
                        raise FramingError(f"response head longer than {MAX_HEAD} bytes")
                    break
                self.status, length, self.close = _parse_head(buf[pos:end], self.no_body)
                pos = end + 4
                if length == 0:
                    done.append((self.status, self.close))
                elif length > 0:
                    state, self.remaining = _BODY, length
                elif length == -1:
                    state = _CHUNK_SIZE
                else:
                    state = _UNTIL_CLOSE
                    pos = n
            elif state == _BODY:
                take = min(self.remaining, n - pos)
                pos += take
                self.remaining -= take
                if not self.remaining:
                    state = _HEAD
                    done.append((self.status, self.close))
            elif state == _UNTIL_CLOSE:  # the rest is body: eof() completes it
                pos = n
            else:
                pos, state = self._chunked(buf, pos, state)
                if state != _HEAD:
                    break  # the rest of the chunked body is still to come
                done.append((self.status, self.close))
        self.state = state
        self.buf = buf[pos:] if pos < n else b""
        return done

    def _chunked(self, buf: bytes, pos: int, state: int) -> tuple[int, int]:
        """Read a chunked body from ``buf[pos:]`` in ``state`` (one of the
        chunk states); return where it stopped and the state there: _HEAD
        when the body (trailers too) is complete, else the state to resume
        in once more bytes come."""
        n = len(buf)
        while True:
            if state == _CHUNK_SIZE:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if n - pos > 1024:
                        raise FramingError("chunk size line too long")
                    return pos, state
                size = _chunk_size(buf[pos:end])
                pos = end + 2
                if size == 0:
                    state = _TRAILER
                else:
                    state, self.remaining = _CHUNK_DATA, size
            elif state == _CHUNK_DATA:
                take = min(self.remaining, n - pos)
                pos += take
                self.remaining -= take
                if self.remaining:
                    return pos, state
                state = _CHUNK_END
            elif state == _CHUNK_END:
                if n - pos < 2:
                    return pos, state
                if buf[pos:pos + 2] != b"\r\n":
                    raise FramingError("chunk data not followed by CRLF")
                pos += 2
                state = _CHUNK_SIZE
            else:  # _TRAILER: lines up to an empty one
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if n - pos > MAX_HEAD:
                        raise FramingError("trailer too long")
                    return pos, state
                empty = end == pos
                pos = end + 2
                if empty:
                    return pos, _HEAD

    def eof(self) -> list[tuple[int, bool]]:
        """The server closed the connection: complete a close-delimited
        response, or raise if a response was cut short."""
        if self.state == _UNTIL_CLOSE:
            self.state = _HEAD
            return [(self.status, True)]
        if self.in_progress():
            raise FramingError("connection closed in the middle of a response")
        return []


def _chunk_size(line: bytes) -> int:
    """The size on a chunk-size line (extensions after ";" ignored)."""
    size_text = line.split(b";", 1)[0].strip()
    try:
        size = int(size_text, 16)
    except ValueError:
        raise FramingError(f"bad chunk size {size_text[:40]!r}") from None
    if size < 0 or size_text[:1] in (b"-", b"+"):
        raise FramingError(f"bad chunk size {size_text[:40]!r}")
    return size
