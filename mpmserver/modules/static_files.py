"""What a request for a file Alias serves gets: the status, the headers,
and which bytes of which file (Apache's default handler, with mod_mime's
types and nginx's gzip_static choice of a precompressed sibling).

- the representation: a precompressed sibling (name.br, name.gz, as
  WhiteNoise and ``gzip_static`` make them) when Accept-Encoding allows it,
  with ``Vary: Accept-Encoding`` whenever a sibling exists;
- conditional requests (RFC 9110 13): If-None-Match (weak comparison), else
  If-Modified-Since: 304;
- a single byte range (RFC 9110 14): 206 with Content-Range, 416 when it
  starts past the end; several ranges, a malformed Range, or an If-Range
  that does not match are answered with the whole file (200), as RFC 9110
  allows;
- HEAD: the headers GET would get, no body.

Pure: the request's fields, the file's facts and the clock are arguments.
"""

from __future__ import annotations

import email.utils
import mimetypes
import re
from typing import NamedTuple

__all__ = ["FileFacts", "Decision", "decide", "request_fields", "choose_encoding", "content_type",
           "etag_of", "ENCODINGS"]

# The precompressed siblings looked for, in order of preference, with the
# Content-Encoding each stands for.
ENCODINGS: tuple[tuple[bytes, bytes], ...] = ((b".br", b"br"), (b".gz", b"gzip"))

# The web's types, fixed (mimetypes' tables differ between Python versions
# and systems: .js was application/javascript, .woff2 unknown on some).
_WEB_TYPES = {
    ".css": "text/css", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
    ".map": "application/json", ".html": "text/html", ".htm": "text/html", ".txt": "text/plain",
    ".xml": "application/xml", ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon", ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf",
    ".otf": "font/otf", ".wasm": "application/wasm", ".webmanifest": "application/manifest+json",
    ".pdf": "application/pdf", ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg",
}
# The standard library's own table only (not /etc/mime.types): the same
# answer on every machine.
_STDLIB_TYPES = mimetypes.MimeTypes()
_TEXT_TYPES = ("text/", "application/json", "application/xml", "image/svg+xml", "application/manifest+json")


class FileFacts(NamedTuple):
    """One representation of a file, as its open descriptor's fstat gave it."""

    size: int
    mtime: float
    etag: bytes  # with its quotes
    last_modified: bytes  # IMF-fixdate


class Decision(NamedTuple):
    status: int  # 200, 206, 304 or 416
    headers: list[tuple[bytes, bytes]]  # all but Date, Server, Connection
    offset: int  # of the body in the file
    count: int  # body bytes to send (0 for HEAD, 304, 416)


def etag_of(size: int, mtime_ns: int) -> bytes:
    """Apache's default FileETag (MTime Size): size and mtime in microseconds, in hex."""
    return b'"%x-%x"' % (size, mtime_ns // 1000)


def content_type(name: str) -> bytes:
    """The Content-Type of a file name; text types in UTF-8 (as WhiteNoise)."""
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > name.rfind("/") else ""
    kind = _WEB_TYPES.get(ext) or _STDLIB_TYPES.guess_type("x" + ext, strict=False)[0] \
        or "application/octet-stream"
    if kind.startswith(_TEXT_TYPES) or kind == "text/javascript":
        kind += "; charset=utf-8"
    return kind.encode("ascii")


# The request fields that decide: name (lower case) and value, from the head.
_FIELDS = re.compile(rb"\r\n(if-none-match|if-modified-since|range|if-range|accept-encoding|connection|host)"
                     rb":[ \t]*([^\r]*)", re.IGNORECASE).findall


def request_fields(head: bytes) -> dict[bytes, bytes]:
    """The fields of a request head (request line first, CRLF line ends)
    this module reads, by lower-case name; repeated lines joined with ", "."""
    fields: dict[bytes, bytes] = {}
    for name, value in _FIELDS(head):
        name = name.lower()
        value = value.rstrip(b" \t")
        fields[name] = fields[name] + b", " + value if name in fields else value
    return fields


def choose_encoding(accept: bytes | None, available: tuple[bytes, ...]) -> int:
    """The index in ``available`` (Content-Encoding names, preferred first)
    of the one to send, or -1 for the file itself. A coding is acceptable
    when Accept-Encoding lists it (or ``*``) with a q above 0."""
    if not accept or not available:
        return -1
    q: dict[bytes, float] = {}
    for item in accept.lower().split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip()
        weight = 1.0
        params = params.strip()
        if params.startswith(b"q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        q[coding] = weight
    star = q.get(b"*", 0.0)
    for i, coding in enumerate(available):
        if q.get(coding, star) > 0:
            return i
    return -1


def _etag_matches(header: bytes, etag: bytes) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2): W/ is ignored."""
    if header.strip() == b"*":
        return True
    bare = etag
    for candidate in header.split(b","):
        candidate = candidate.strip()
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == bare:
            return True
    return False


def _parse_date(value: bytes) -> float | None:
    try:
        parsed = email.utils.parsedate_tz(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    return None if parsed is None else float(email.utils.mktime_tz(parsed))


def _not_modified(fields: dict[bytes, bytes], facts: FileFacts) -> bool:
    inm = fields.get(b"if-none-match")
    if inm is not None:
        return _etag_matches(inm, facts.etag)
    ims = fields.get(b"if-modified-since")
    if ims is not None:
        since = _parse_date(ims)
        return since is not None and int(facts.mtime) <= since
    return False


_RANGE = re.compile(rb"bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*\Z", re.IGNORECASE)


def _byte_range(fields: dict[bytes, bytes], facts: FileFacts) -> tuple[int, int] | None | bool:
    """(first, last) of a satisfiable single range; False when unsatisfiable
    (416); None for the whole file (no Range, one to ignore)."""
    value = fields.get(b"range")
    if value is None:
        return None
    if_range = fields.get(b"if-range")
    if if_range is not None:
        if if_range.startswith(b'"'):  # a strong comparison: a weak tag never matches
            if if_range.strip() != facts.etag:
                return None
        elif _parse_date(if_range) != int(facts.mtime):
            return None
    m = _RANGE.match(value)
    if m is None:  # several ranges, another unit, or malformed: the whole file
        return None
    first, last = m.group(1), m.group(2)
    size = facts.size
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            return False
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        return False
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def decide(head_only: bool, fields: dict[bytes, bytes], facts: FileFacts, common: list[tuple[bytes, bytes]]
           ) -> Decision:
    """The answer to a GET (or HEAD: ``head_only``) of a file whose chosen
    representation is ``facts``; ``common``: the headers every answer about
    it carries (Content-Type, Content-Encoding, Vary, Cache-Control,
    Expires), decided by the caller once per representation."""
    validators = [(b"Last-Modified", facts.last_modified), (b"ETag", facts.etag)]
    if _not_modified(fields, facts):
        return Decision(304, validators + common, 0, 0)
    size = facts.size
    span = _byte_range(fields, facts) if not head_only else None
    if span is False:
        return Decision(416, [(b"Content-Range", b"bytes */%d" % size), (b"Content-Length", b"0")]
                        + validators, 0, 0)
    if span is None:
        headers = [(b"Content-Length", b"%d" % size), (b"Accept-Ranges", b"bytes")]
        return Decision(200, headers + validators + common, 0, 0 if head_only else size)
    first, last = span
    count = last - first + 1
    headers = [(b"Content-Length", b"%d" % count), (b"Content-Range", b"bytes %d-%d/%d" % (first, last, size)),
               (b"Accept-Ranges", b"bytes")]
    return Decision(206, headers + validators + common, first, count)
