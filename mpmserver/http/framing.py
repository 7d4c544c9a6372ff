"""Response framing: how the body of a response is delimited on the wire (RFC 9112 6).

h11 parses every request, but the response head is built from the pieces
here (status line, Server line, header checks, framing headers) because going
through h11.Response costs about a third of a hello-world request (building
and re-validating the header list, its state machine). The framing decisions
are the ones h11 makes, in one pure function, tested rule by rule in
tests/unit/http/test_framing.py:

- no body for HEAD, 1xx, 204 and 304 responses;
- Content-Length given by the app: a fixed-length body;
- otherwise chunked to an HTTP/1.1 client, or delimited by closing the
  connection for an HTTP/1.0 client;
- the connection is kept only for HTTP/1.1 without "Connection: close" from
  either side and with a body whose end the client can find.
"""

from __future__ import annotations

import email.utils
import functools
import re
import time
from http import HTTPStatus

from .. import SERVER_SOFTWARE

NO_BODY = 0
FIXED = 1
CHUNKED = 2
UNTIL_CLOSE = 3

# The Server header, the one place it is spelled: its value, and its line in
# a response head.
SERVER_HEADER: bytes = SERVER_SOFTWARE.encode()
SERVER_LINE = b"Server: " + SERVER_HEADER + b"\r\n"

# Bound once; tests replace it to move the clock.
_now = time.time
# (second start, second end, value): one tuple so that threads swap it
# atomically and never pair one second's bounds with another's value.
_date_state: tuple[float, float, bytes] = (0.0, 0.0, b"")


def format_http_date(seconds: float) -> bytes:
    """An HTTP date (RFC 9110 IMF-fixdate) of any moment, e.g. a file's
    Last-Modified: English names whatever the locale."""
    return email.utils.formatdate(seconds, usegmt=True).encode("ascii")


def http_date() -> bytes:
    """The current time as an HTTP Date value (RFC 9110 IMF-fixdate),
    e.g. b"Mon, 23 Nov 2026 15:16:53 GMT"; formatted at most once a second.
    Two float comparisons beat int(t) and also notice a clock stepped back."""
    global _date_state
    lo, hi, value = _date_state
    now = _now()
    if lo <= now < hi:
        return value
    sec = int(now)
    value = format_http_date(sec)
    _date_state = (sec, sec + 1, value)
    return value


_REASONS = {s.value: s.phrase.encode("latin-1") for s in HTTPStatus}


def reason_phrase(code: int, default: bytes = b"") -> bytes:
    """The standard reason phrase for a status code (http.HTTPStatus's),
    e.g. b"Not Found"; ``default`` for a code it does not know."""
    return _REASONS.get(code, default)


# RFC 9110 5.1 token; a field value may hold HTAB, SP, VCHAR and obs-text only.
_token = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_bad_value = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
# Names already checked. A set, not functools.lru_cache: check_field takes
# 143 ns with it against 179 ns with a cached name check (Python 3.11).
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


# lru_cache: bounded like the dict it replaced and ~20 ns a call faster
# (82 ns against 101 ns, Python 3.11).
@functools.lru_cache(maxsize=256)
def status_line(code: int, reason: bytes) -> bytes:
    """The status line, e.g. b"HTTP/1.1 404 Not Found\\r\\n"; an empty
    reason gets the standard phrase (b"HTTP/1.1 299 \\r\\n" if none)."""
    return b"HTTP/1.1 %d %s\r\n" % (code, reason or reason_phrase(code))


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
        extra = b"Transfer-Encoding: chunked\r\n"
    if not keep:
        extra += b"Connection: close\r\n"
    return mode, extra, keep


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
