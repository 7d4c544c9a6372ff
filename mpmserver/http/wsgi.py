"""The WSGI adapter (PEP 3333): environ, wsgi.input, start_response's checks, file_wrapper.

Socket-free: the request cycle (request.py) builds the environ from h11's
request with build_environ(), wraps a callable that yields body bytes in
InputStream, and checks the app's status and headers with check_status()
and encode_headers(), so every rule here can be unit-tested without a
network. What the app sees when reading the body fails is in errors.py.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import unquote_to_bytes

from .. import SERVER_SOFTWARE
from .errors import HeadError
from .framing import check_field
from .protocol import SINGLETON_FIELDS

# Hop-by-hop headers (RFC 9110 7.6.1) belong to the server; PEP 3333 forbids
# apps from setting them. "connection: close" is the one exception we honour.
HOP_BY_HOP = frozenset(
    {b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
     b"trailer", b"trailers", b"transfer-encoding", b"upgrade",
     b"proxy-connection"}
)

_STATUS_CHECK = frozenset(b"0123456789")


class InputStream:
    """wsgi.input: reads exactly the request body and never past it.

    `pull` returns the next chunk of body bytes, or b"" at the end of the body;
    it raises an errors.BodyError (an OSError) on a broken body.
    `on_first_read` runs once before the first pull (100-continue lives there).
    """

    __slots__ = ("_pull", "_buf", "_eof", "_on_first_read")

    def __init__(self, pull: Callable[[], bytes], on_first_read: Callable[[], None] | None = None):
        self._pull = pull
        self._buf = b""
        self._eof = False
        self._on_first_read = on_first_read

    def _fill(self) -> bool:
        if self._eof:
            return False
        if self._on_first_read is not None:
            first, self._on_first_read = self._on_first_read, None
            first()
        chunk = self._pull()
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            data, self._buf = self._buf, b""
            return data
        while len(self._buf) < size and self._fill():
            pass
        data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                end = nl + 1
                if limit is not None:
                    end = min(end, limit)
                break
            if limit is not None and len(self._buf) >= limit:
                end = limit
                break
            if not self._fill():
                end = len(self._buf) if limit is None else min(limit, len(self._buf))
                break
        data, self._buf = self._buf[:end], self._buf[end:]
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class FileWrapper:
    """wsgi.file_wrapper; the worker sends a real file with os.sendfile."""

    def __init__(self, filelike: Any, blksize: int = 65536):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def fileno(self) -> int | None:
        try:
            fd = self.filelike.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        try:
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
        except OSError:
            return None
        return fd

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data


def base_environ(server_name: str, server_port: int, errors: Any) -> dict[str, Any]:
    """The part of environ that is the same for every request of a child."""
    return {
        "SCRIPT_NAME": "",
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": errors,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }


# Header name -> environ key, memoised: the set of header names a server sees is
# small, and building "HTTP_" + upper + replace per header per request is not free.
_KEY_CACHE: dict[bytes, str | None] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}


def _environ_key(name: bytes) -> str | None:
    key = _KEY_CACHE.get(name)
    if key is None and name not in _KEY_CACHE:
        # A header name with "_" would alias a dashed one (X_User vs X-User) once
        # dashes become underscores: drop it, as Apache and nginx do.
        if b"_" in name:
            key = None
        else:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_KEY_CACHE) < 4096:
            _KEY_CACHE[name] = key
    return key


# Small constant values, decoded once: a request's method and protocol are
# almost always one of these.
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_PROTOCOLS = {b"1.1": "HTTP/1.1", b"1.0": "HTTP/1.0"}


def build_environ(
    base: dict[str, Any],
    method: bytes,
    target: bytes,
    http_version: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    remote_addr: str,
    remote_port: int,
    drop_content_length: bool = False,
) -> dict[str, Any]:
    environ = base.copy()
    path, _, query = target.partition(b"?")
    if b"%" in path:
        path = unquote_to_bytes(path)
    environ["REQUEST_METHOD"] = _METHODS.get(method) or method.decode("ascii")
    environ["PATH_INFO"] = path.decode("latin-1")
    environ["QUERY_STRING"] = query.decode("latin-1")
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(http_version) or "HTTP/" + http_version.decode("ascii")
    environ["REMOTE_ADDR"] = remote_addr
    environ["REMOTE_PORT"] = str(remote_port)
    environ["REQUEST_URI"] = target.decode("latin-1")
    known = _KEY_CACHE.get
    for name, value in headers:
        key = known(name)
        if key is None:
            key = _environ_key(name)  # a name not seen yet, or one that is dropped
            if key is None:
                continue
        if key in environ:
            if name in SINGLETON_FIELDS:
                _singleton_again(environ[key], value)
                continue
            # A repeated header: one value, as a comma list (cookies: "; ").
            environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value.decode("latin-1")
        else:
            environ[key] = value.decode("latin-1")
    if drop_content_length:
        environ.pop("CONTENT_LENGTH", None)
    return environ


def _singleton_again(first: str, value: bytes) -> None:
    # A field defined as one value came again (rare: only repeats reach
    # here, so ordinary requests pay nothing): the same value is kept once,
    # another is refused, as gunicorn does, so that a proxy in front and the
    # app cannot each take a different copy.
    if value.decode("latin-1") != first:
        raise HeadError(400, "a field that takes one value was sent twice with different values")


# Statuses already parsed: an app uses a few (0.6 us to check and parse
# "200 OK", 0.05 us to find it here).
_statuses: dict[str, tuple[int, bytes]] = {}


def parse_status(status: str) -> tuple[int, bytes]:
    """The app's status as (code, reason); TypeError or ValueError for one
    that is not like '200 OK'."""
    parsed = _statuses.get(status) if type(status) is str else None
    if parsed is not None:
        return parsed
    if not isinstance(status, str):
        raise TypeError(f"WSGI status must be str, got {type(status).__name__}")
    if len(status) < 4 or status[3] != " " or not set(status[:3].encode("latin-1")) <= _STATUS_CHECK:
        raise ValueError(f"bad WSGI status {status!r}: must be like '200 OK'")
    parsed = int(status[:3]), status[4:].encode("latin-1")
    if len(_statuses) < 256:
        _statuses[status] = parsed
    return parsed


# What encode_headers() returns: (pairs, block, content_length, has_date,
# has_server, close). One tuple, built in the one walk over the app's headers,
# so that writing the head walks them no more.
AppHeaders = tuple[list[tuple[bytes, bytes]], bytes, int, bool, bool, bool]


def encode_headers(headers: list[tuple[str, str]]) -> AppHeaders:
    """Validate the app's headers and encode them for the wire (_encode);
    a list equal to one seen lately is looked up, not walked again: most
    apps send the same few header lists (often one constant) over and over,
    and the walk was a tenth of a worker's time per request outside h11.
    A hit is by value: a str subclass or a named tuple equal to a header
    accepted before passes, as the plain one did. The result is shared
    between responses: never mutated."""
    if type(headers) is not list:
        raise TypeError(f"WSGI response headers must be a list, got {type(headers).__name__}")
    try:
        return _encode_known(tuple(headers))
    except TypeError:
        # An item that cannot be a key (a list, say), or a bad header: the
        # walk says what is wrong.
        return _encode(headers)


def _encode(headers: Iterable[tuple[str, str]]) -> AppHeaders:
    """Validate the app's headers and encode them for the wire, in one walk.

    Returns (pairs, block, content_length, has_date, has_server, close):
    pairs of (lower-case name, value) for the access log; block, the header
    lines for the response head with each name in the case the app gave
    (gunicorn, waitress and Apache keep it; some clients compare
    case-sensitively), without Connection, which the framing writes;
    content_length, the app's Content-Length or -1; whether the app set Date
    and Server; close, whether it asked for "Connection: close".

    Refuses what h11 would (names that are not tokens, control characters in
    values: CR, LF and NUL would split the response), hop-by-hop headers
    (PEP 3333) and a Content-Length that is not a number; raises ValueError
    or TypeError, which the worker turns into a 500.
    """
    pairs = []
    lines = []
    content_length = -1
    has_date = has_server = close = False
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise TypeError(f"WSGI response header must be a (name, value) tuple, got {item!r}")
        name, value = item
        if type(name) is not str or type(value) is not str:
            raise TypeError(f"WSGI header name and value must be str: {item!r}")
        wire_name = name.encode("latin-1")
        bname = wire_name.lower()
        bvalue = value.encode("latin-1")
        check_field(bname, bvalue)
        pairs.append((bname, bvalue))
        if bname == b"content-length":
            if not bvalue.isdigit():
                raise ValueError(f"bad Content-Length {bvalue!r} from the app")
            content_length = int(bvalue)
        elif bname == b"date":
            has_date = True
        elif bname == b"server":
            has_server = True
        elif bname == b"connection":
            if bvalue.strip().lower() != b"close":
                raise ValueError(f"hop-by-hop header Connection: {value!r} not allowed from a WSGI app")
            close = True
            continue
        elif bname in HOP_BY_HOP:
            raise ValueError(f"hop-by-hop header {name!r} not allowed from a WSGI app")
        lines.append(wire_name + b": " + bvalue + b"\r\n")
    return pairs, b"".join(lines), content_length, has_date, has_server, close


# By value: 1.4 us to walk two headers against 0.14 us to look them up
# (Python 3.11). Bounded for apps whose headers differ every time (a
# Content-Length per body, a session cookie); only valid lists are kept.
_encode_known = functools.lru_cache(maxsize=512)(_encode)


def reraise(exc_info: tuple) -> None:
    try:
        raise exc_info[1].with_traceback(exc_info[2])
    finally:
        exc_info = None  # type: ignore[assignment]
