"""Response framing: how the body of a response is delimited on the wire (RFC 9112 6).

h11 parses every request; the response head is written here because going
through h11.Response costs about a third of a hello-world request (building
and re-validating the header list, its state machine). The decisions are the
ones h11 makes, in one pure function, tested rule by rule in
tests/test_framing.py:

- no body for HEAD, 1xx, 204 and 304 responses;
- Content-Length given by the app: a fixed-length body;
- otherwise chunked to an HTTP/1.1 client, or delimited by closing the
  connection for an HTTP/1.0 client;
- the connection is kept only for HTTP/1.1 without "Connection: close" from
  either side and with a body whose end the client can find.
"""

from __future__ import annotations

import re

NO_BODY = 0
FIXED = 1
CHUNKED = 2
UNTIL_CLOSE = 3

_REASONS = {
    100: b"Continue", 101: b"Switching Protocols", 200: b"OK", 201: b"Created", 202: b"Accepted",
    204: b"No Content", 206: b"Partial Content", 301: b"Moved Permanently", 302: b"Found",
    303: b"See Other", 304: b"Not Modified", 307: b"Temporary Redirect", 308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 408: b"Request Timeout", 409: b"Conflict", 410: b"Gone",
    413: b"Content Too Large", 414: b"URI Too Long", 415: b"Unsupported Media Type",
    429: b"Too Many Requests", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout",
}

# RFC 9110 5.1 token; a field value may hold HTAB, SP, VCHAR and obs-text only.
_token = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_bad_value = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
_good_names: set[bytes] = set()


def check_field(name: bytes, value: bytes) -> None:
    """Refuse a header h11 would refuse (and CR/LF/NUL: response splitting)."""
    if name not in _good_names:
        if not _token(name):
            raise ValueError(f"invalid response header name {name!r}")
        if len(_good_names) < 1024:
            _good_names.add(name)
    if _bad_value(value):
        raise ValueError(f"response header {name.decode('latin-1')!r} has a control character (CR, LF, NUL...)")


_status_lines: dict[tuple[int, bytes], bytes] = {}


def status_line(code: int, reason: bytes) -> bytes:
    key = (code, reason)
    line = _status_lines.get(key)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (code, reason or _REASONS.get(code, b""))
        if len(_status_lines) < 256:
            _status_lines[key] = line
    return line


def frame(code: int, content_length: int, *, http11: bool, head_request: bool,
          close: bool) -> tuple[int, bytes, bool]:
    """Decide the framing of a response.

    content_length: the app's Content-Length, or -1 if it gave none.
    close: the server or either side asked for "Connection: close".
    Returns (mode, extra header bytes to append to the head, keep_alive).
    """
    if head_request or code < 200 or code in (204, 304):
        mode = NO_BODY
    elif content_length >= 0:
        mode = FIXED
    elif http11:
        mode = CHUNKED
    else:
        mode = UNTIL_CLOSE
    keep = http11 and not close and mode != UNTIL_CLOSE
    extra = b""
    if mode == CHUNKED:
        extra = b"transfer-encoding: chunked\r\n"
    if not keep:
        extra += b"connection: close\r\n"
    return mode, extra, keep


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
