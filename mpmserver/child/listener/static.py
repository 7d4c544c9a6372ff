"""Files from an Alias, answered in the loop: no worker ever sees them.

A complete head the reader would dispatch is offered here first
(``serve``): a GET or HEAD without a body whose decoded path an Alias
covers is answered by the loop itself. The mapping (modules/alias.py)
refuses traversal, encoded slashes, NUL and dotfiles; the open-file table
(child/files.py) refuses what is not a regular file below the directory;
the answer (modules/static_files.py, modules/expires.py) is decided as pure
functions; this room only reads the head, writes the response and counts
it. The head goes out with MSG_MORE and the file with sendfile at once;
what the socket cannot take is left to write completion (completion.py),
bounded by Timeout like any tail, and the connection is then kept alive
(parking.py) or closed as for any response. Every answer is access-logged
and counted in the scoreboard (the slot's static counters).

Everything here runs in the loop thread.
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

from ...http.errors import HeadError
from ...http.framing import SERVER_HEADER, format_http_date, http_date, reason_phrase
from ...http.outcome import CLOSE, KEEP, FileTail
from ...http.protocol import declared_body
from ...logs import AccessRecord
from ...modules import alias, expires, remoteip, static_files
from ...scoreboard import response_cell
from ..connection import READING_HEAD, Connection, make_nonblocking, send_file, send_head
from ..files import OpenFile, OpenFiles
from .core import LoopCore, Room, Rooms

__all__ = ["StaticFiles"]

_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_VARY = (b"Vary", b"Accept-Encoding")
# The body of the 403 and 404 the room answers itself (keep-alive: a missing
# favicon must not cost the browser its connection).
_NOT_FOUND = b"404 Not Found\nThe requested URL was not found on this server.\n"
_FORBIDDEN = b"403 Forbidden\nYou don't have permission to access this resource.\n"


class _Asked(NamedTuple):
    """One request for a file, as the room read it from the head."""

    head: bytes
    fields: dict[bytes, bytes]  # static_files.request_fields
    http11: bool
    head_only: bool  # HEAD
    started: float  # epoch, for the access log and the Expires base


class StaticFiles(Room):
    def __init__(self, core: LoopCore, access_log: Any) -> None:
        super().__init__(core)
        cfg = core.config
        self.aliases = alias.from_config(cfg)
        self.files = OpenFiles(cfg.static_file_cache, cfg.follow_symlinks)
        self.expiry = cfg.expires_default if cfg.expires_active else None
        self.immutable = cfg.static_immutable_hashed
        self.keep_alive = cfg.keep_alive
        self.max_keep_alive_requests = cfg.max_keep_alive_requests
        self.access_log = access_log
        self.remote_ip = remoteip.from_config(cfg)  # the client a trusted proxy names, for the log
        self.error_log = core.error_log
        self._count = core.record.count_static
        self._codes = core.record.response_codes  # the listener's row of responses by status code
        self._call_soon = core.loop.call_soon

    def bind(self, rooms: Rooms) -> None:
        super().bind(rooms)
        self._keep = rooms.parking.keep
        self._start = rooms.reader.start
        self._linger = rooms.completion.linger
        self._refuse = rooms.completion.refuse
        self._complete_write = rooms.completion.complete_write

    def end(self) -> None:
        self.files.close()

    # -- the one way in ------------------------------------------------------------

    def serve(self, conn: Connection, end: int, watched: bool) -> bool:
        """Answer the request whose head is conn.buf[:end] if it is for a
        file an Alias serves; False leaves it to the hand-off."""
        buf = conn.buf
        line_end = buf.find(b"\r\n")
        method, _, rest = buf[:line_end].partition(b" ")
        if method != b"GET" and method != b"HEAD":
            return False
        target, _, version = rest.partition(b" ")
        path = alias.decoded_path(target)
        found = alias.match(self.aliases, path)
        if found is None or version not in _VERSIONS:
            return False
        head = buf[:end]
        fields = static_files.request_fields(head)
        if declared_body(head) or (version == b"HTTP/1.1" and b"host" not in fields):
            return False  # a body, or no Host: the worker answers as h11 judges
        if watched:
            self._unwatch(conn)
        asked = _Asked(head, fields, version == b"HTTP/1.1", method == b"HEAD", time.time())
        try:
            self._serve(conn, asked, found, target, path)
        except Exception as exc:  # noqa: BLE001 - a bug here must not leave the client hanging
            self.error_log.exception(f"client {conn.client_addr}: serving {target!r} from an Alias failed", exc)
            self._close(conn)
        return True

    def _serve(self, conn: Connection, asked: _Asked, found: alias.Alias, target: bytes, path: bytes) -> None:
        file_path = alias.resolve(found, target, path)
        if type(file_path) is alias.Refusal:
            if self.error_log.enabled("info"):
                self.error_log.info(f"client {conn.client_addr}: {file_path.status} {file_path.reason}")
            if file_path.status == 400:
                self._refuse(conn, HeadError(400, file_path.reason))
            else:
                self._error(conn, asked, file_path.status)
            return
        entry = self.files.lookup(file_path, found.directory)
        if type(entry) is int:
            self._error(conn, asked, entry)
        else:
            self._file(conn, asked, file_path, entry)

    # -- the answer ----------------------------------------------------------------

    def _file(self, conn: Connection, asked: _Asked, path: bytes, entry: OpenFile) -> None:
        chosen, common = self._representation(path, entry, asked.fields, asked.started)
        decision = static_files.decide(asked.head_only, asked.fields, chosen.facts, common)
        self._answer(conn, asked, decision.status, decision.headers, chosen.fd, decision.offset, decision.count)

    def _representation(self, path: bytes, entry: OpenFile, fields: dict[bytes, bytes], now: float
                        ) -> tuple[OpenFile, list[tuple[bytes, bytes]]]:
        """The file or a precompressed sibling, and the headers that go with it."""
        common = [(b"Content-Type", entry.content_type)]
        chosen = entry
        if entry.siblings:
            common.append(_VARY)
            codings = tuple(static_files.ENCODINGS[i][1] for i in entry.siblings)
            pick = static_files.choose_encoding(fields.get(b"accept-encoding"), codings)
            if pick >= 0:
                suffix, coding = static_files.ENCODINGS[entry.siblings[pick]]
                sibling = self.files.lookup(path + suffix, path[:path.rfind(b"/")])
                if type(sibling) is not int:  # gone since: the file itself
                    chosen = sibling
                    common.append((b"Content-Encoding", coding))
        common += expires.cache_headers(self.expiry, self.immutable and entry.immutable, entry.facts.mtime,
                                        now, format_http_date)
        return chosen, common

    def _error(self, conn: Connection, asked: _Asked, status: int) -> None:
        """403 or 404, kept alive (a missing favicon must not cost the connection)."""
        body = _NOT_FOUND if status == 404 else _FORBIDDEN
        headers = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", b"%d" % len(body))]
        self._answer(conn, asked, status, headers, -1, 0, 0, b"" if asked.head_only else body)

    def _keeps(self, conn: Connection, asked: _Asked) -> bool:
        """Keep-alive after this response, as a worker decides it
        (request.RequestCycle._must_close) for HTTP/1.1; HTTP/1.0 closes."""
        if (not self.keep_alive or conn.must_close or self.core.stopping
                or (self.max_keep_alive_requests and conn.requests + 1 >= self.max_keep_alive_requests)):
            return False
        connection = asked.fields.get(b"connection")
        if connection is not None and b"close" in connection.lower():
            return False
        return asked.http11

    def _answer(self, conn: Connection, asked: _Asked, status: int, headers: list[tuple[bytes, bytes]], fd: int,
                offset: int, count: int, body: bytes = b"") -> None:
        """Write the response: the head (and ``body``, a short one), then
        ``count`` bytes of the file ``fd`` from ``offset``."""
        keep = self._keeps(conn, asked)
        lines = [b"HTTP/1.1 %d %s\r\nDate: %s\r\nServer: %s\r\n" % (
            status, reason_phrase(status), http_date(), SERVER_HEADER)]
        lines += [b"%s: %s\r\n" % pair for pair in headers]
        lines.append(b"\r\n" if keep else b"Connection: close\r\n\r\n")
        out = b"".join(lines) + body
        conn.buf = conn.buf[len(asked.head):]  # what follows the head: pipelined requests
        conn.requests += 1
        record = self._record(conn, asked, status, len(out) + count, len(body) or count, headers, keep)
        self._count(len(out) + count)
        self._codes[response_cell(status)] += 1
        self._send(conn, out, fd, offset, count, KEEP if keep else CLOSE, record)

    def _send(self, conn: Connection, out: bytes, fd: int, offset: int, count: int, then: Any,
              record: AccessRecord | None) -> None:
        """The head (with MSG_MORE: one segment with the file's start), then
        the file, as far as the socket takes them now; the rest is left to
        write completion."""
        if conn.blocking:
            make_nonblocking(conn)
        sent = 0
        try:
            sent = send_head(conn, out, count > 0)
            while sent == len(out) and count:
                n = send_file(conn, fd, offset, count)
                if not n:
                    break
                offset += n
                count -= n
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            if record is not None:
                record.conn_status = "X"
                self._log(record, len(out) - sent + count)
            self._close(conn)
            return
        if sent < len(out) or count:
            rest = out[sent:]
            if count:
                tail: Any = FileTail(os.dup(fd), offset, count, rest)
            else:
                tail = rest
            self._complete_write(conn, then, tail, record)
            return
        if record is not None:
            self._log(record, 0)
        if then != KEEP:
            self._linger(conn)
        elif conn.buf:  # pipelined: read on, from the next turn (no recursion)
            self._call_soon(self._next, conn)
        else:
            self._keep(conn)

    def _next(self, conn: Connection) -> None:
        """The pipelined request after a file, from a fresh loop turn. The
        reader may have armed its watch meanwhile (start() does once the
        first request returns in READING_HEAD): undone first, as start()
        wants a connection it does not watch."""
        if conn.state == READING_HEAD:
            self._unwatch(conn)
            self._start(conn, conn.buf)

    # -- logging -------------------------------------------------------------------

    def _record(self, conn: Connection, asked: _Asked, status: int, total: int, body: int,
                headers: list[tuple[bytes, bytes]], keep: bool) -> AccessRecord | None:
        """The access record (None without an access log): ``total`` bytes
        to write, ``body`` of them the body; logged once written."""
        if self.access_log is None:
            return None
        lines = asked.head[:-4].split(b"\r\n")
        method, _, rest = lines[0].partition(b" ")
        target, _, version = rest.partition(b" ")
        request_headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            request_headers.append((name.lower(), value.strip(b" \t")))
        client = conn.client_addr
        if conn.trusted:  # as the request cycle does: the proxy's header names the client
            resolved = remoteip.resolve(self.remote_ip, client, request_headers)
            if resolved is not None:
                client = resolved.addr
        return AccessRecord(client, conn.client_port, conn.server_port, method, target,
                            version.decode("latin-1"), lines[0].decode("latin-1"), status, body,
                            request_headers, [(k.lower(), v) for k, v in headers], asked.started, 0.0, None,
                            conn.peer_addr, total, "+" if keep else "-")

    def _log(self, record: AccessRecord, left: int) -> None:
        record.bytes_out -= left
        record.bytes_sent = max(0, record.bytes_sent - left)
        record.duration = time.time() - record.start_time
        try:
            self.access_log.log(record)
        except OSError as exc:
            self.error_log.error(f"cannot write the access log: {exc}")
