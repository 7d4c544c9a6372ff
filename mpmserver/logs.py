"""Error log and access log.

Both logs write every line with a single os.write() on an O_APPEND
descriptor and hold no lock: the kernel appends each write whole, so lines
from many threads and many forked children never interleave, and a fork
can never inherit a lock held by another thread.

Log files are opened, and reopened, through safefiles.open_append: the root
master never appends through a link it did not make (see safefiles.py).

The access log runs on the per-request path, so an Apache LogFormat is
compiled once into one generated function returning an f-string; nothing
about the format string is looked at per request.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Iterable

from .safefiles import open_append

__all__ = [
    "LEVEL_NAMES",
    "LEVELS",
    "ErrorLog",
    "ErrorStream",
    "AccessRecord",
    "parse_request_line",
    "AccessLog",
    "compile_format",
    "escape_logitem",
    "signal_name",
    "COMMON",
    "COMBINED",
]

# Apache's LogLevel names, most severe first: a level's number is its index.
LEVEL_NAMES = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
# Name -> number. trace1..trace8 are accepted so Apache configs load
# unchanged, but mpmserver has no trace messages finer than debug.
LEVELS: dict[str, int] = {
    **{name: num for num, name in enumerate(LEVEL_NAMES)},
    **{f"trace{i}": LEVEL_NAMES.index("debug") for i in range(1, 9)},
}
_ERROR = LEVELS["error"]

COMMON = '%h %l %u %t "%r" %>s %b'
COMBINED = COMMON + ' "%{Referer}i" "%{User-Agent}i"'

# English names whatever the locale: Apache's log timestamps are never localised.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Bound once; tests replace it to move the clock.
_now = time.time


def _level_number(level: str) -> int:
    try:
        return LEVELS[level]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown log level {level!r}; use one of: {', '.join(LEVELS)}"
        ) from None


def _file_target(target: str, what: str) -> str:
    if target.startswith(("|", "syslog:")):
        raise ValueError(f"{what} {target!r}: piped logs and syslog are not supported; "
                         "give a file path (rotate with reopen(), e.g. on a graceful restart)")
    # Absolute, so that reopen() still finds it after the process chdir()s.
    return os.path.abspath(target)


def _reopen_in_place(path: str | None, fd: int, what: str) -> None:
    """Open path again and dup2 it onto fd: threads writing at that moment go
    to the old or the new file, never to a closed or reused descriptor."""
    if path is None or fd < 0:
        return
    new = open_append(path, what)
    try:
        os.dup2(new, fd, inheritable=False)
    finally:
        os.close(new)


def _close_file(fd: int) -> None:
    if fd > 2:  # never stdin, stdout or stderr
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """The rare short write (pipe full, signal) finishes the line."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _second_cache(render: Callable[[int], str]) -> Callable[[float], str]:
    """render(second) memoised for the latest whole second.

    The state is one tuple swapped in by a single assignment, so concurrent
    threads see either the old or the new (second, text) pair, never a mix.
    http.framing.http_date() inlines the same logic (a call less per request: ~20 ns).
    """
    # Two float comparisons beat int(t) and also notice a clock stepped back.
    state: tuple[float, float, str] = (0.0, 0.0, "")

    def get(t: float) -> str:
        nonlocal state
        lo, hi, text = state
        if lo <= t < hi:
            return text
        sec = int(t)
        text = render(sec)
        state = (sec, sec + 1, text)
        return text

    return get


# --------------------------------------------------------------------------
# Log timestamps

def _render_clf_time(sec: int) -> str:
    """Apache's %t: [23/Nov/2026:15:16:53 +0000], local time."""
    t = time.localtime(sec)
    off = t.tm_gmtoff or 0
    sign = "-" if off < 0 else "+"
    off = abs(off) // 60
    return (f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{off // 60:02d}{off % 60:02d}]")


def _render_ctime_parts(sec: int) -> tuple[str, str]:
    """Error log stamp halves around the microseconds: '[Mon Nov 23 15:16:53', ' 2026]'."""
    t = time.localtime(sec)
    return (f"[{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}", f" {t.tm_year}]")


# --------------------------------------------------------------------------
# Escaping (Apache's ap_escape_logitem)

def _build_escape_table() -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in range(256) if c < 0x20 or c >= 0x7f}
    table.update({ord("\b"): "\\b", ord("\n"): "\\n", ord("\r"): "\\r",
                  ord("\t"): "\\t", ord("\v"): "\\v",
                  ord('"'): '\\"', ord("\\"): "\\\\"})
    return table


_ESCAPE_TABLE = _build_escape_table()


def _escape_slow(s: str) -> str:
    if not s.isascii():
        try:
            # Text decoded as latin-1 maps 1:1 back to the bytes on the wire.
            s.encode("latin-1")
        except UnicodeEncodeError:
            # Anything wider is escaped as its UTF-8 bytes, as Apache would
            # have seen them (surrogateescape'd bytes as the original byte).
            try:
                raw = s.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raw = s.encode("utf-8", "backslashreplace")
            s = raw.decode("latin-1")
    return s.translate(_ESCAPE_TABLE)


def escape_logitem(s: str | bytes) -> str:
    """Make client-supplied text safe for a log line, as Apache does.

    Control characters and bytes >= 0x7f become \\xhh (\\n \\r \\t \\b \\v keep
    their C spelling), '"' becomes \\" and '\\' becomes \\\\, so a client cannot
    forge a log line or break a quoted field. str is read as latin-1 when it
    fits (that is how raw header bytes decode), otherwise as UTF-8.
    """
    if s.__class__ is bytes:
        return _escape_bytes(s)  # type: ignore[arg-type]
    return _escape_str(s)  # type: ignore[arg-type]


# Bytes a log line may carry as they are. bytes.translate() deleting them
# is the quickest C-level test that nothing else is present (~2 ns a byte).
_SAFE_BYTES = bytes(c for c in range(0x20, 0x7f) if c not in (0x22, 0x5c))
_IDENTITY = bytes(range(256))


def _escape_str(s: str) -> str:
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return s
    return _escape_slow(s)


def _escape_bytes(b: bytes) -> str:
    if b.translate(_IDENTITY, _SAFE_BYTES):
        return _escape_slow(b.decode("latin-1"))
    return b.decode("latin-1")


# --------------------------------------------------------------------------
# Error log

def _at_level(name: str) -> Callable[["ErrorLog", str], None]:
    """ErrorLog's method for one level: log(name, msg) without the lookup."""
    num = LEVELS[name]

    def method(self: ErrorLog, msg: str) -> None:
        if self._level >= num:
            self._emit(name, msg)

    method.__name__, method.__qualname__ = name, f"ErrorLog.{name}"
    method.__doc__ = f"Write ``msg`` at level {name} if enabled (see log())."
    return method


class ErrorLog:
    """Apache-style error log:
    ``[Mon Nov 23 15:16:53.123456 2026] [warn] [pid 1234:tid 140234] message``.

    target None writes to stderr; a path is opened for appending (created if
    missing). Messages less severe than ``level`` are dropped. The tid is
    Python's threading.get_ident() (the pthread id, as Apache prints); set
    ``show_tid = False`` for processes with a single thread, such as the
    master.

    Write errors are ignored: the error log has nowhere to report its own
    failure, and a full disk must not take requests down with it.
    """

    __slots__ = ("path", "show_tid", "_fd", "_level", "_stamp")

    def __init__(self, target: str | None = None, level: str = "warn") -> None:
        self._level = _level_number(level)
        self.show_tid = True
        self._stamp = _second_cache(_render_ctime_parts)  # type: ignore[arg-type]
        if target is None:
            self.path: str | None = None
            self._fd = 2
        else:
            self.path = _file_target(target, "error log file")
            self._fd = open_append(self.path, "error log file")

    def set_level(self, level: str) -> None:
        """Change the threshold (e.g. after a graceful restart)."""
        self._level = _level_number(level)

    def enabled(self, level: str) -> bool:
        """Whether a message at ``level`` would be written; lets callers skip
        building expensive messages."""
        return _level_number(level) <= self._level

    def log(self, level: str, message: str) -> None:
        """Write ``message`` at ``level`` (an Apache level name) if enabled.

        The message is written as given; pass client-supplied text through
        escape_logitem() first.
        """
        if _level_number(level) <= self._level:
            self._emit(level, message)

    # log.error(msg), log.warn(msg)...: log() with the level fixed.
    emerg, alert, crit, error, warn, notice, info, debug = map(_at_level, LEVEL_NAMES)

    def announce(self, message: str) -> None:
        """Write ``message`` at level notice whatever LogLevel is: the
        start-up and shutdown lines, which Apache logs regardless of it."""
        self._emit("notice", message)

    def exception(self, message: str, exc: BaseException | None = None) -> None:
        """Log ``message`` at level error followed by the full traceback of
        ``exc`` (default: the exception being handled), all in one write so
        other processes' lines cannot land inside the traceback."""
        if self._level < _ERROR:
            return
        if exc is None:
            exc = sys.exc_info()[1]
        if exc is not None:
            tb = "".join(traceback.format_exception(exc)).rstrip("\n")
            message = f"{message}\n{tb}"
        self._emit("error", message)

    def _emit(self, level: str, message: str) -> None:
        t = _now()
        head, year = self._stamp(t)
        usec = int((t % 1.0) * 1e6)
        if self.show_tid:
            line = (f"{head}.{usec:06d}{year} [{level}] "
                    f"[pid {os.getpid()}:tid {threading.get_ident()}] {message}\n")
        else:
            line = f"{head}.{usec:06d}{year} [{level}] [pid {os.getpid()}] {message}\n"
        data = line.encode("utf-8", "backslashreplace")
        try:
            n = os.write(self._fd, data)
            if n != len(data):
                _write_all(self._fd, data[n:])
        except OSError:
            pass

    def reopen(self) -> None:
        """Reopen the file (after log rotation or a restart).

        The new file is dup2()'d onto the same descriptor number, so threads
        writing at that moment go to the old or the new file, never to a
        closed or reused descriptor. On failure the old file stays in use
        and OSError names the path.
        """
        _reopen_in_place(self.path, self._fd, "error log file")

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Close the file (stderr is left open). Later messages are dropped."""
        fd, self._fd = self._fd, -1
        _close_file(fd)


class _PendingLine(threading.local):
    # A class attribute: a thread with nothing pending reads it without the
    # AttributeError a plain threading.local would raise (flush() runs after
    # every request: 0.45 us with getattr's default, 0.06 us this way).
    buf = ""


class ErrorStream:
    """File-like object for environ['wsgi.errors'].

    Every complete line becomes an error log line at level error. A partial
    line waits, per thread, until its newline or flush(); the worker calls
    flush() when a request ends, so an app's last unterminated line is
    written with its request rather than held until the thread's next one.
    A line still without a newline at MAX_PENDING characters is written cut.
    """

    __slots__ = ("_log", "_local")

    # A line with no newline in sight is cut here rather than held forever.
    MAX_PENDING = 8192

    def __init__(self, log: ErrorLog) -> None:
        self._log = log
        self._local = _PendingLine()

    def write(self, s: str) -> int:
        if s.__class__ is not str:
            if isinstance(s, (bytes, bytearray)):
                s = bytes(s).decode("utf-8", "backslashreplace")
            else:
                raise TypeError(f"wsgi.errors.write() takes str, not {type(s).__name__}")
        n = len(s)
        pending = self._local.buf
        if pending:
            s = pending + s
        if "\n" in s:
            *lines, s = s.split("\n")
            for line in lines:
                self._log.error(line.rstrip("\r"))
        if len(s) >= self.MAX_PENDING:
            self._log.error(s)
            s = ""
        self._local.buf = s
        return n

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Write this thread's pending partial line, if any, as a log line."""
        pending = self._local.buf
        if pending:
            self._local.buf = ""
            self._log.error(pending)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


# --------------------------------------------------------------------------
# Access log

def parse_request_line(line: str) -> tuple[bytes, bytes, str]:
    """(method, target, protocol) of a request line as far as it goes, for
    %m, %U/%q and %H: b"-", b"" and "-" stand for the missing parts (Apache
    logs "-" for an unparsed method and protocol). Split at the first two
    spaces, as Apache's ap_parse_request_line() reads method, URI, protocol."""
    parts = line.split(" ", 2)
    method = parts[0] or "-"
    target = parts[1] if len(parts) > 1 else ""
    protocol = parts[2] if len(parts) > 2 and parts[2] else "-"
    return method.encode("latin-1"), target.encode("latin-1"), protocol


class AccessRecord:
    """What the worker knows about one request when it logs it.

    remote_addr: client IP str (RemoteIP's client); peer_addr: the peer that
    connected (a proxy); remote_port/local_port: int;
    method, target: bytes as h11 gives them; protocol: str like "HTTP/1.1";
    request_line: str (the first line of the request, latin-1 decoded);
    status: int; bytes_sent: int, response body bytes (%b); bytes_out: int,
    every byte written for the response, head included (%O); conn_status:
    "X" aborted before the response was complete, "+" kept alive, "-"
    closed after it (%X);
    request_headers/response_headers: list[tuple[bytes, bytes]] with
    lower-case names; start_time: epoch float; duration: seconds float;
    remote_user: str or None; tls: the connection's mod_ssl variables
    (SSL_PROTOCOL, SSL_CIPHER, ...) or None on plain HTTP.

    This constructor is the one builder of access records: the request cycle
    passes method, target and protocol as h11 parsed them (no second parse
    per request); the listener (a request refused before h11 saw it) and the
    master (a request that died with its child) pass only the request line,
    which parse_request_line() splits.
    """

    __slots__ = ("remote_addr", "remote_port", "local_port", "method", "target",
                 "protocol", "request_line", "status", "bytes_sent",
                 "request_headers", "response_headers", "start_time", "duration",
                 "remote_user", "peer_addr", "bytes_out", "conn_status", "tls")

    def __init__(self, remote_addr: str = "-", remote_port: int = 0, local_port: int = 0,
                 method: bytes | None = None, target: bytes | None = None, protocol: str | None = None,
                 request_line: str = "-", status: int = 0, bytes_sent: int = 0,
                 request_headers: list[tuple[bytes, bytes]] | None = None,
                 response_headers: list[tuple[bytes, bytes]] | None = None,
                 start_time: float = 0.0, duration: float = 0.0,
                 remote_user: str | None = None, peer_addr: str | None = None,
                 bytes_out: int = 0, conn_status: str = "-", tls: dict[str, str] | None = None) -> None:
        self.remote_addr = remote_addr
        # The peer that connected (a proxy, behind RemoteIP): %{c}a.
        self.peer_addr = remote_addr if peer_addr is None else peer_addr
        self.remote_port = remote_port
        self.local_port = local_port
        if method is None:
            # Only the request line is known (a request refused before h11
            # parsed it, one that died with its child): split it here.
            request_line = request_line or "-"
            method, target, protocol = parse_request_line(request_line)
        self.method = method
        self.target = target
        self.protocol = protocol
        self.request_line = request_line
        self.status = status
        self.bytes_sent = bytes_sent
        self.request_headers = [] if request_headers is None else request_headers
        self.response_headers = [] if response_headers is None else response_headers
        self.start_time = start_time
        self.duration = duration
        self.remote_user = remote_user
        self.bytes_out = bytes_out
        self.conn_status = conn_status
        self.tls = tls  # the connection's TLS variables (modules/tls.std_env_vars), for %{VAR}x

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k, None)!r}" for k in self.__slots__)
        return f"AccessRecord({fields})"


def _header_getter(name: str) -> Callable[[list[tuple[bytes, bytes]]], str]:
    key = name.lower().encode("latin-1")

    identity, safe, slow = _IDENTITY, _SAFE_BYTES, _escape_slow

    def get(headers: list[tuple[bytes, bytes]]) -> str:
        value = None
        for k, v in headers:
            if k == key:
                # Repeated fields are joined as Apache merges them on input.
                value = v if value is None else value + b", " + v
        if value is None:
            return "-"
        # _escape_bytes inlined: this runs for every %{...}i of every request.
        if value.translate(identity, safe):
            return slow(value.decode("latin-1"))
        return value.decode("latin-1")

    return get


def _user(u: str | None) -> str:
    return escape_logitem(u) if u else "-"


def _path(target: bytes) -> str:
    return _escape_bytes(target.partition(b"?")[0])


def _query(target: bytes) -> str:
    q = target.partition(b"?")[2]
    return "?" + _escape_bytes(q) if q else ""


def _strftime_getter(fmt: str) -> Callable[[float], str]:
    return _second_cache(lambda sec: time.strftime(fmt, time.localtime(sec)))


# %{...}t keywords Apache accepts besides strftime formats.
_TIME_KEYWORDS = {
    "sec": "int({t})",
    "msec": "int({t} * 1000)",
    "usec": "int({t} * 1000000)",
    "msec_frac": "f'{{int({t} * 1000) % 1000:03d}}'",
    "usec_frac": "f'{{int({t} * 1000000) % 1000000:06d}}'",
}

# Directive letter -> f-string expression over the record ``r``; the ones
# taking a {argument} are handled in _directive_expr.
_SIMPLE = {
    "h": "r.remote_addr",
    "a": "r.remote_addr",
    "l": "'-'",
    "u": "_user(r.remote_user)",
    "t": "_clf(r.start_time)",
    "r": "_esc(r.request_line)",
    "s": "r.status",
    "b": "r.bytes_sent or '-'",
    "B": "r.bytes_sent",
    "O": "r.bytes_out",
    "X": "r.conn_status",
    "D": "round(r.duration * 1000000)",
    "T": "int(r.duration)",
    "m": "_escb(r.method)",
    "U": "_path(r.target)",
    "q": "_query(r.target)",
    "H": "r.protocol",
    "p": "r.local_port",
    "P": "_getpid()",
}

SUPPORTED_DIRECTIVES = "%h %a %{c}a %{c}h %l %u %t %r %s %>s %b %B %O %X %D %T %{ms|us|s}T %{H}i %{H}o " \
    "%m %U %q %H %p %{local|remote|canonical}p %P %{pid|tid|hextid}P %{fmt}t %{SSL_VAR}x %%"


def _directive_expr(letter: str, arg: str | None, ns: dict, fmt: str) -> str:
    def bad(why: str = "") -> ValueError:
        spelled = f"%{{{arg}}}{letter}" if arg is not None else f"%{letter}"
        return ValueError(f"unsupported LogFormat directive {spelled} in {fmt!r}"
                          f"{why}; supported: {SUPPORTED_DIRECTIVES}")

    if arg is None:
        if letter in _SIMPLE:
            return _SIMPLE[letter]
        raise bad()
    if letter in "io":
        if not arg:
            raise bad(" (header name missing)")
        helper = f"_hdr{len(ns)}"
        ns[helper] = _header_getter(arg)
        return f"{helper}(r.{'request' if letter == 'i' else 'response'}_headers)"
    if letter == "t":
        t = "r.start_time"
        if arg.startswith("begin:"):
            arg = arg[6:]
        elif arg.startswith("end:"):
            arg, t = arg[4:], "(r.start_time + r.duration)"
        if arg in _TIME_KEYWORDS:
            return _TIME_KEYWORDS[arg].format(t=t)
        if not arg:
            return f"_clf({t})"
        helper = f"_tf{len(ns)}"
        ns[helper] = _strftime_getter(arg)
        return f"{helper}({t})"
    if letter == "T":
        unit = {"s": "int(r.duration)", "ms": "int(r.duration * 1000)",
                "us": "round(r.duration * 1000000)"}.get(arg)
        if unit:
            return unit
    if letter == "p":
        port = {"canonical": "r.local_port", "local": "r.local_port",
                "remote": "r.remote_port"}.get(arg)
        if port:
            return port
    if letter == "x" and arg:
        # mod_ssl's %{VAR}x: a TLS variable of the connection, - without TLS.
        return f"_esc((r.tls or _NO_TLS).get({arg!r}, '-'))"
    if letter in "ah" and arg == "c":
        return "r.peer_addr"  # Apache: the underlying connection's peer, not RemoteIP's client
    if letter == "P":
        pid = {"pid": "_getpid()", "tid": "_get_ident()",
               "hextid": "format(_get_ident(), 'x')"}.get(arg)
        if pid:
            return pid
    raise bad()


def _literal(text: str) -> str:
    """Text for inside a double-quoted f-string literal."""
    return (text.encode("unicode_escape").decode("ascii")
            .replace('"', '\\"').replace("{", "{{").replace("}", "}}"))


def _parse(fmt: str) -> list[tuple[str, str | None, str | None, str]]:
    """Split a LogFormat into (letter, arg, status-condition, literal) items.

    letter is "" for plain text. The condition is Apache's "400,501" or
    "!200,304" prefix, limiting a directive to (or excluding) those statuses.
    """
    items: list[tuple[str, str | None, str | None, str]] = []
    text: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            text.append(c)
            i += 1
            continue
        start = i
        i += 1
        if i < n and fmt[i] == "%":
            text.append("%")
            i += 1
            continue
        cond_start = i
        while i < n and (fmt[i].isdigit() or fmt[i] in ",!<>"):
            i += 1
        cond = fmt[cond_start:i].replace("<", "").replace(">", "") or None
        arg = None
        if i < n and fmt[i] == "{":
            end = fmt.find("}", i)
            if end < 0:
                raise ValueError(f"unterminated %{{...}} at offset {start} in LogFormat {fmt!r}")
            arg = fmt[i + 1:end]
            i = end + 1
        if i >= n:
            raise ValueError(f"LogFormat {fmt!r} ends with an incomplete directive "
                             f"{fmt[start:]!r}; write %% for a literal %")
        if text:
            items.append(("", None, None, "".join(text)))
            text = []
        items.append((fmt[i], arg, cond, fmt[start:i + 1]))
        i += 1
    if text:
        items.append(("", None, None, "".join(text)))
    return items


def _status_condition(cond: str, ns: dict, spelled: str, fmt: str) -> tuple[str, str]:
    negate = cond.startswith("!")
    codes = cond.lstrip("!").split(",")
    if not all(c.isdigit() for c in codes) or "!" in cond[1:]:
        raise ValueError(f"bad status condition in LogFormat directive {spelled} of {fmt!r}; "
                         "expected e.g. %400,501{User-Agent}i or %!200,304{Referer}i")
    name = f"_st{len(ns)}"
    ns[name] = frozenset(int(c) for c in codes)
    return name, ("not in" if negate else "in")


def _compile(fmt: str, suffix: str = "") -> Callable[[AccessRecord], str]:
    if not isinstance(fmt, str):
        raise TypeError(f"LogFormat must be str, not {type(fmt).__name__}")
    ns: dict = {
        "_clf": _second_cache(_render_clf_time),
        "_esc": _escape_str,
        "_escb": _escape_bytes,
        "_user": _user,
        "_path": _path,
        "_query": _query,
        "_getpid": os.getpid,
        "_get_ident": threading.get_ident,
        "_NO_TLS": {},
    }
    parts = []
    for letter, arg, cond, raw in _parse(fmt):
        if not letter:
            parts.append(_literal(raw))
            continue
        expr = _directive_expr(letter, arg, ns, fmt)
        if cond:
            codes, op = _status_condition(cond, ns, raw, fmt)
            expr = f"{expr} if r.status {op} {codes} else '-'"
        parts.append("{" + expr + "}")
    parts.append(_literal(suffix))
    # Helpers reach the line function as closure cells: as cheap to load as
    # locals, and unlike keyword-only defaults they cost nothing per call.
    src = (f"def make({', '.join(ns)}):\n"
           f"    def access_line(r):\n"
           f'        return f"{"".join(parts)}"\n'
           f"    return access_line\n")
    scope: dict = {}
    exec(compile(src, f"<LogFormat {fmt!r}>", "exec"), {}, scope)
    fn = scope["make"](**ns)
    if fmt.lstrip().startswith("{"):
        fn = _json_safe(fn)
    fn.__doc__ = f"Format one access log line as LogFormat {fmt!r}."
    return fn


# In an escaped item a backslash is always followed by another (an escaped
# backslash), by "x" and two hex digits, or by one letter; pairs of
# backslashes are matched first, so "\\\\x41" stays what it is.
_JSON_UNSAFE = re.compile(r"\\(\\|x([0-9a-f]{2})|v)")


def _json_escape(m: re.Match) -> str:
    if m.group(1) == "\\":
        return "\\\\"
    if m.group(1) == "v":
        return "\\u000b"
    return "\\u00" + m.group(2)


def _json_safe(line: Callable[[AccessRecord], str]) -> Callable[[AccessRecord], str]:
    """A LogFormat that is a JSON object ("{...") stays valid JSON: Apache's
    \\xhh and \\v escapes, which JSON does not have, become \\u00hh."""
    def json_line(r: AccessRecord) -> str:
        text = line(r)
        if "\\x" in text or "\\v" in text:
            text = _JSON_UNSAFE.sub(_json_escape, text)
        return text
    return json_line


def compile_format(fmt: str) -> Callable[[AccessRecord], str]:
    """Compile an Apache LogFormat string into ``f(record) -> line`` (no newline).

    Raises ValueError naming the directive for anything unsupported, so a
    configuration error surfaces at startup rather than per request.
    """
    return _compile(fmt)


class AccessLog:
    """Access log: one line per request in the given LogFormat.

    target "-" is stdout (fd 1); otherwise a file opened for appending.
    log() lets OSError through (disk full, closed pipe) so the caller can
    report it to the error log.
    """

    __slots__ = ("path", "format", "_fd", "_line")

    def __init__(self, target: str, fmt: str) -> None:
        self.format = fmt
        self._line = _compile(fmt, "\n")
        if target == "-":
            self.path: str | None = None
            self._fd = 1
        else:
            self.path = _file_target(target, "access log file")
            self._fd = open_append(self.path, "access log file")

    def log(self, rec: AccessRecord) -> None:
        line = self._line(rec)
        try:
            data = line.encode()
        except UnicodeEncodeError:
            data = line.encode("utf-8", "backslashreplace")
        n = os.write(self._fd, data)
        if n != len(data):
            _write_all(self._fd, data[n:])

    def reopen(self) -> None:
        """Reopen the file in place (see ErrorLog.reopen)."""
        _reopen_in_place(self.path, self._fd, "access log file")

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        _close_file(fd)


class MultiLog:
    """Several CustomLog lines for one request."""

    def __init__(self, logs: list[AccessLog]):
        self.logs = logs

    def log(self, rec: Any) -> None:
        for log in self.logs:
            log.log(rec)

    def close(self) -> None:
        for log in self.logs:
            log.close()


def open_access_log(cfg: Any) -> "AccessLog | MultiLog | None":
    """The CustomLog lines of a configuration, as one log (None when there is none)."""
    logs: list[AccessLog] = []
    try:
        for target, fmt in cfg.custom_logs:
            logs.append(AccessLog(target, fmt))
    except BaseException:
        for log in logs:  # the ones opened before the failure
            log.close()
        raise
    if not logs:
        return None
    return logs[0] if len(logs) == 1 else MultiLog(logs)


def signal_name(signum: int) -> str:
    """SIGTERM, SIGUSR2, ... for log lines; "signal N" for a number without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
