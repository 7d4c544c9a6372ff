"""Request-head checks: what h11 lets through, mpmserver refuses.

Named after Apache's server/protocol.c. The listener collects a request head
(request line, header lines, blank line) before h11 sees it; the functions
here decide whether it may go on. h11 (0.16) then does the real parsing.

What h11 0.16 accepts that we refuse (see tests/unit/http/test_protocol.py):
- bare LF line endings, and obs-fold continuation lines (h11 unfolds them);
- control characters other than NUL/CR in header values (0x01-0x08,
  0x0b-0x1f, 0x7f);
- arbitrarily long request lines and header blocks once they arrive in one
  piece (h11 issue 182: max_incomplete_event_size is only checked while an
  event is incomplete);
- leading empty lines before the request line are the other way round: h11
  refuses them ("no request line received"), RFC 9112 2.2 says a server
  SHOULD ignore them, so split_head() tells the caller how many bytes to drop.
- Transfer-Encoding together with Content-Length: h11 frames by
  Transfer-Encoding and keeps both headers; check_head flags it so the server
  drops Content-Length and closes after the response (RFC 9112 6.3).

Header names containing "_" pass these checks (h11 accepts them too); the
WSGI layer drops them, because HTTP_X_FOO could otherwise be spoofed by a
header spelled X_Foo.

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import HeadError

__all__ = [
    "HeadError",
    "MUST_CLOSE",
    "DROP_CONTENT_LENGTH",
    "LIMIT_BLANK_LINES",
    "HeadRules",
    "take_head",
    "split_head",
    "check_head",
    "check_partial_head",
    "check_request_target",
    "declared_body",
    "max_head_size",
]

# check_head result bits. Any non-zero result means "close after answering".
MUST_CLOSE = 1
# Transfer-Encoding and Content-Length both present: the body is framed by
# Transfer-Encoding (as h11 does), and Content-Length must not reach the app.
DROP_CONTENT_LENGTH = 2

# Apache's DEFAULT_LIMIT_BLANK_LINES: empty lines tolerated before a request
# line, so a client cannot keep a connection busy with CRLFs alone.
LIMIT_BLANK_LINES = 10


# -- finding the head ----------------------------------------------------------

_LEADING_EMPTY_LINES = re.compile(rb"(?:\r?\n){0,%d}" % LIMIT_BLANK_LINES)


def split_head(buf: bytes | bytearray) -> tuple[int, int]:
    """Return ``(skip, end)`` for a buffer that should start with a request.

    skip: number of leading empty-line bytes (CRLF or LF, RFC 9112 2.2) to
    drop before the request line; end: index in ``buf`` just past the blank
    line ending the head, or -1 while the head is incomplete. The head is
    ``buf[skip:end]``.

    Never raises: at most LIMIT_BLANK_LINES empty lines are skipped, and a
    head that still starts with an empty line is refused (400) by
    check_head/check_partial_head.
    """
    # Any first byte above CR is neither CR nor LF: the common case.
    if buf and buf[0] > 13:
        end = buf.find(b"\r\n\r\n")
        return 0, (end + 4 if end >= 0 else -1)
    skip = _LEADING_EMPTY_LINES.match(buf).end()
    end = buf.find(b"\r\n\r\n", skip)
    return skip, (end + 4 if end >= 0 else -1)


# -- checking the head ---------------------------------------------------------


def _make_table() -> bytes:
    # One translate() pass prepares the fast checks: forbidden controls become
    # NUL, CR becomes LF (so a clean head has exactly two LFs per CRLF), HTAB
    # becomes SP (so one search finds both obs-fold forms), and letters are
    # lowered (so header names can be matched case-insensitively).
    table = bytearray(range(256))
    for b in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F):
        table[b] = 0
    table[0x0D] = 0x0A
    table[0x09] = 0x20
    for b in range(ord("A"), ord("Z") + 1):
        table[b] = b + 32
    return bytes(table)


_TABLE = _make_table()
# LimitRequestFields 0 (Apache: unlimited) as a number the comparisons accept.
_NO_LIMIT = 1 << 62
# Controls forbidden in a head line: all but HTAB (CR is judged before this).
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# In the translated head (where CRLF is two LFs and HTAB is SP): the start of
# an obs-fold line, or of a Transfer-Encoding or Content-Length header. One
# regex search with a literal first byte is cheaper here than three
# substring searches; a GET without a body matches none of them.
_unusual = re.compile(rb"\n(?: |transfer-encoding:|content-length:)").search
_fold = re.compile(rb"\n ").search
# In the translated head: the value of each Transfer-Encoding line.
_TE_VALUES = re.compile(rb"\ntransfer-encoding:([^\n]*)")
_CL_VALUES = re.compile(rb"\ncontent-length:([^\n]*)")
# An absolute-form target starts with a scheme (RFC 9112 3.2.2).
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://").match
# authority-form: host:port, for CONNECT only (RFC 9112 3.2.3).
_AUTHORITY_FORM = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[^/?#@\[\]: ]+):[0-9]+").fullmatch



def check_head(head: bytes, limit_request_line: int, limit_request_fields: int,
               limit_request_field_size: int) -> int:
    """Refuse what h11 would let through; return flag bits for the server.

    ``head`` is the request line, the header lines and the blank line, CRLF
    terminated, with leading empty lines already dropped (split_head). The
    limits are Apache's LimitRequestLine, LimitRequestFields and
    LimitRequestFieldSize; line lengths exclude the CRLF.

    Returns 0 for an ordinary request, otherwise a combination of MUST_CLOSE
    (answer, then close the connection) and DROP_CONTENT_LENGTH (do not show
    Content-Length to the application). Raises HeadError:

    - 414 request line longer than limit_request_line;
    - 431 a header line longer than limit_request_field_size, or more than
      limit_request_fields header lines;
    - 400 a bare LF or bare CR, a control character (0x00-0x1F except HTAB,
      and 0x7F) anywhere, an obs-fold line (starting with SP or HTAB);
    - 501 a Transfer-Encoding other than exactly one "chunked".

    Header names containing "_" are allowed here; the WSGI layer drops them.
    limit_request_fields 0 means no limit, as in Apache.
    """
    if not limit_request_fields:
        limit_request_fields = _NO_LIMIT
    t = head.translate(_TABLE)
    crlf = head.count(b"\r\n")
    n = len(head)
    # Everything unusual goes to _diagnose, which walks the lines in order to
    # name the first problem; a typical head costs a handful of C-level scans.
    if (t.find(b"\x00") >= 0 or t.count(b"\n") != crlf + crlf or head[0] < 14
            or crlf - 2 > limit_request_fields or n > limit_request_line
            or n > limit_request_field_size):
        _diagnose(head, limit_request_line, limit_request_fields, limit_request_field_size, True)
    if _unusual(t) is None:
        return 0
    # Rare: an obs-fold line, a Transfer-Encoding or a Content-Length header.
    if _fold(t) is not None:
        _diagnose(head, limit_request_line, limit_request_fields, limit_request_field_size, True)
        raise HeadError(400, "obs-fold (header line starting with whitespace) is not accepted")
    return _framing_flags(t)


def check_partial_head(buf: bytes | bytearray, limit_request_line: int, limit_request_fields: int,
                       limit_request_field_size: int, start: int = 0) -> None:
    """Refuse an incomplete head as soon as it is certain to be refused.

    ``buf[start:]`` is what has arrived of a head (``start`` = skip from
    split_head) and does not yet contain the final blank line. Raises the
    same HeadError check_head would for the complete lines, and 414/431 as
    soon as the line still arriving is over its limit, so a 1 MB request line
    is refused after LimitRequestLine bytes instead of at the end. A CR at the
    very end is taken to be the first half of a CRLF.
    """
    if not limit_request_fields:
        limit_request_fields = _NO_LIMIT
    if start:
        buf = buf[start:]
    _diagnose(buf, limit_request_line, limit_request_fields, limit_request_field_size, False)


def _diagnose(buf: bytes, limit_request_line: int, limit_request_fields: int,
              limit_request_field_size: int, complete: bool) -> None:
    # The slow path: line by line, in the order Apache reads them (a line's
    # length is judged before its content), so the reported error is the
    # first one a client would hit.
    lines = buf.split(b"\n")
    last = len(lines) - 1
    fields = 0
    for i, raw in enumerate(lines):
        if i == last:
            if complete:
                return
            line = raw[:-1] if raw.endswith(b"\r") else raw  # CR awaiting its LF
        elif raw.endswith(b"\r"):
            line = raw[:-1]
        else:
            raise HeadError(400, "bare LF line ending; lines must end with CRLF")
        if i == 0:
            if not line and i < last:
                raise HeadError(400, f"no request line (more than {LIMIT_BLANK_LINES} empty lines before it?)")
            if len(line) > limit_request_line:
                raise HeadError(414, f"request line longer than LimitRequestLine ({limit_request_line} bytes)")
            if b"\r" in line:
                raise HeadError(400, "bare CR in the request line")
            if _CTL.search(line) is not None:
                raise HeadError(400, "control character in the request line")
            continue
        if not line and i < last:
            if complete and i != last - 1:
                raise HeadError(400, "bytes after the blank line ending the head")
            return  # the blank line ending the head
        if len(line) > limit_request_field_size:
            raise HeadError(431, f"header line longer than LimitRequestFieldSize ({limit_request_field_size} bytes)")
        if i < last:
            fields += 1
            if fields > limit_request_fields:
                raise HeadError(431, f"more than LimitRequestFields ({limit_request_fields}) header lines")
        if b"\r" in line:
            raise HeadError(400, "bare CR in a header line")
        if line[:1] in (b" ", b"\t"):
            raise HeadError(400, "obs-fold (header line starting with whitespace) is not accepted")
        if _CTL.search(line) is not None:
            raise HeadError(400, "control character in a header line")


def check_request_target(method: bytes, target: bytes, http_version: bytes) -> None:
    """The request target's form must suit the method (RFC 9112 3.2), and a
    major version of 2 or more gets 505 (h11 parses "HTTP/2.0" as 2.0).

    For the parts of a request line h11 has parsed; raises HeadError. The
    caller skips it for the common case, an origin-form target ("/...") of
    a method other than CONNECT over HTTP/1.x.
    """
    if http_version[:1] >= b"2":
        raise HeadError(505, "only HTTP/1.x is supported")
    if method == b"CONNECT":
        if _AUTHORITY_FORM(target) is None:
            raise HeadError(400, "CONNECT needs an authority-form target (host:port)")
    elif target == b"*":
        if method != b"OPTIONS":
            raise HeadError(400, "the asterisk-form target is for OPTIONS only")
    elif target[:1] != b"/" and _ABSOLUTE_FORM(target) is None:
        raise HeadError(400, "the request target must be a path or an absolute URI")


def _framing_flags(t: bytes) -> int:
    # t is the translated head: lower case, HTAB as SP, CR as LF.
    lengths = _CL_VALUES.findall(t)
    # h11 accepts "Content-Length: 5, 5" and repeated equal Content-Length
    # lines and keeps one; a proxy in front may read them otherwise
    # (request smuggling): the strict reading refuses them (RFC 9112 6.3).
    if len(lengths) > 1 or (lengths and b"," in lengths[0]):
        raise HeadError(400, "more than one Content-Length value")
    values = _TE_VALUES.findall(t)
    if not values:
        return 0
    if len(values) != 1:
        raise HeadError(501, "more than one Transfer-Encoding header; only Transfer-Encoding: chunked is supported")
    if values[0].strip(b" ") != b"chunked":
        raise HeadError(501, "only Transfer-Encoding: chunked is supported")
    flags = 0
    if lengths:
        flags = MUST_CLOSE | DROP_CONTENT_LENGTH
    # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty
    # framing; process it, then close.
    first_line_end = t.find(b"\n")
    if t.endswith(b" http/1.0", 0, first_line_end):
        flags |= MUST_CLOSE
    return flags


@dataclass(frozen=True, slots=True)
class HeadRules:
    """The head limits both readers of a head apply (the listener, and a
    worker for a pipelined request): LimitRequestLine, LimitRequestFields,
    LimitRequestFieldSize, and the most a whole head may take (max_head_size)."""

    line: int
    fields: int
    field_size: int
    size: int

    @classmethod
    def from_config(cls, cfg: Any) -> HeadRules:
        return cls(cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size,
                   max_head_size(cfg))


def take_head(buf: bytes, blank_lines: int, rules: HeadRules) -> tuple[bytes, int, int, int]:
    """The one check of a request head at the start of ``buf``, whoever
    read it (the listener, or a worker after a pipelined request).

    Returns ``(buf, end, flags, blank_lines)``: the buffer without the empty
    lines before the request; where the head ends in it, or -1 while it is
    incomplete; check_head's flags (0 while incomplete); and the empty lines
    skipped so far, counted over the whole wait however the client splits
    them (``blank_lines``: the count before; Apache allows 10). An
    incomplete head is refused as soon as it is certain to be
    (check_partial_head), or once it is larger than ``rules.size`` (431).
    Raises HeadError.
    """
    skip, end = split_head(buf)
    if skip:
        blank_lines += buf.count(b"\n", 0, skip)
        if blank_lines > LIMIT_BLANK_LINES:
            raise HeadError(400, "too many empty lines before the request line")
        buf = buf[skip:]
        if end >= 0:
            end -= skip
    if end < 0:
        check_partial_head(buf, rules.line, rules.fields, rules.field_size)
        if len(buf) > rules.size:
            raise HeadError(431, "request header block too large")
        return buf, -1, 0, blank_lines
    return buf, end, check_head(buf[:end], rules.line, rules.fields, rules.field_size), blank_lines


def max_head_size(cfg: Any) -> int:
    """The most a request head may take under the configured limits; h11's
    own buffer limit is set to it. LimitRequestFields 0 means no limit on the
    count (Apache); memory is still bounded, as if by a thousand fields."""
    fields = cfg.limit_request_fields or 1000
    return cfg.limit_request_line + 2 + fields * (cfg.limit_request_field_size + 2) + 2


# A head's Content-Length, Transfer-Encoding and Expect lines as (name,
# value): one scan (0.7 us on wrk's POST head, against 1.1 us for a
# substring check and a search per header).
_BODY_LINES = re.compile(rb"\r\n(content-length|transfer-encoding|expect):[ \t]*([^\r]*)", re.IGNORECASE).findall


def declared_body(head: bytes) -> int:
    """What a head check_head accepted says of its body: its length, 0 for
    none, -1 for a chunked body (whatever Content-Length says), and 0 too
    when the client waits for "100 Continue" before it sends the body
    (RequestBodyBuffer must not wait for it). Ends with the head's blank line.
    """
    length = 0
    for name, value in _BODY_LINES(head):
        kind = name[0] | 0x20  # the name's first letter, lower case
        if kind == 0x65:  # e: Expect
            if value[:12].lower() == b"100-continue":
                return 0
        elif kind == 0x74:  # t: Transfer-Encoding
            if value.rstrip(b" \t").lower() == b"chunked":
                length = -1
        elif length == 0:  # Content-Length
            value = value.rstrip(b" \t")
            if value.isdigit():
                length = int(value)
    return length
