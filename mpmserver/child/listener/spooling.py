"""Spooling request bodies in the loop: a body larger than RequestBodyBuffer
is received into an unlinked temporary file (RequestBodySpool) before a
worker sees the request, so a slow upload of any size costs a descriptor
and some disk, never a thread; the app then reads ``wsgi.input`` from the
file at full speed.

reading.py stays the owner of the connection while it reads (the read
watch, the RequestReadTimeout body stage and its 408): it asks
spool.body_plan what to do with a body and hands the bytes of a spooled
one here. A Content-Length body is written as it comes; a chunked one is
checked (protocol.ChunkedBody, as reading.py checks a buffered one) and
decoded (h11) into the file, so the app reads the data with its
Content-Length. The spool rides on the connection (``conn.spool``) to the
worker, which closes it when the app is done; Completion closes one never
served (a refusal, a client gone).

Everything here runs in the loop thread.
"""

from __future__ import annotations

from typing import Any

import h11

from ...http import protocol
from ...http.errors import BodyTooLarge, MalformedBody, SpoolFull
from ...http.spool import SpoolLimits, spooling_chunked
from ...http.spoolfile import BodySpool, Spooler
from ..connection import Connection
from .core import LoopCore, Room

__all__ = ["BodySpooling"]

WARN_EVERY_SECONDS = 60


class _Receiving:
    """A body on its way into a spool: what is still to come of a
    Content-Length body, or a chunked body's checker and decoder."""

    __slots__ = ("left", "chunks", "h")

    def __init__(self, left: int, chunks: protocol.ChunkedBody | None = None, h: Any = None) -> None:
        self.left = left  # Content-Length bytes still to come; -1: chunked
        self.chunks = chunks
        self.h = h


class BodySpooling(Room):
    def __init__(self, core: LoopCore, spooler: Spooler, head_limit: int) -> None:
        super().__init__(core)
        self.spooler = spooler
        self.limits: SpoolLimits = spooler.limits
        self.head_limit = head_limit
        self._warned_until = 0.0  # loop time before which a full spool is not logged again

    # -- the faces reading.py uses ----------------------------------------------------

    def begin(self, conn: Connection, end: int, length: int) -> bool:
        """Spool the Content-Length body of the request whose head ends at
        ``end`` of conn.buf; True when all of it is here already. Raises a
        BodyError (503: SpoolLimitPerChild or the directory says no)."""
        spool = self._new_spool(conn)
        if not spool.reserve(length):
            raise self._full(f"a body of {length} bytes")
        spool.receiving = receiving = _Receiving(length)
        body = conn.buf[end:]
        conn.buf = conn.buf[:end]
        return self._write_length(spool, receiving, body)

    def chunked(self, conn: Connection, end: int) -> bool:
        """Whether a chunked body that outgrew RequestBodyBuffer is spooled
        (else a worker reads the rest from the socket, as for an excluded path)."""
        return spooling_chunked(self.limits, conn.buf[:end])

    def begin_chunked(self, conn: Connection, end: int) -> bool:
        """Spool a chunked body whose framing conn.chunks has checked as far
        as conn.buf goes; True when it is complete. Raises a BodyError."""
        spool = self._new_spool(conn)
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.head_limit)
        spool.receiving = receiving = _Receiving(-1, conn.chunks, h)
        conn.chunks = None
        h.receive_data(conn.buf)
        conn.buf = conn.buf[:end]
        h.next_event()  # the Request: its head was checked already
        return self._decode(spool, receiving)

    def feed(self, conn: Connection, data: bytes) -> bool:
        """More bytes of a body being spooled; True when it is complete.
        Raises a BodyError (a malformed chunk, a body past the bounds)."""
        spool = conn.spool
        receiving = spool.receiving
        if receiving.left >= 0:
            return self._write_length(spool, receiving, data)
        receiving.chunks.feed(data)  # raises MalformedBody
        receiving.h.receive_data(data)
        return self._decode(spool, receiving)

    # -- the file ---------------------------------------------------------------------

    def _full(self, what: str) -> SpoolFull:
        """The 503 of a body past SpoolLimitPerChild; the operator hears of
        it at warn, at most once a minute (a flood of uploads logs a line)."""
        detail = f"{what} would pass SpoolLimitPerChild ({self.limits.per_child} bytes)"
        now = self._time()
        if now >= self._warned_until:
            self._warned_until = now + WARN_EVERY_SECONDS
            self.core.error_log.warn(f"{detail}: answered 503 (and any more within {WARN_EVERY_SECONDS} s)")
        return SpoolFull(detail)

    def _new_spool(self, conn: Connection) -> BodySpool:
        try:
            spool = self.spooler.body()
        except OSError as exc:
            self.core.error_log.error(f"cannot spool a request body in SpoolDirectory "
                                      f"{self.limits.directory or '(the system temporary directory)'}: {exc}")
            raise SpoolFull(f"cannot create a spool file: {exc}") from None
        conn.spool = spool
        return spool

    def _write(self, spool: BodySpool, data: bytes | memoryview) -> None:
        try:
            spool.write(data)
        except OSError as exc:  # a full disk
            self.core.error_log.error(f"cannot spool a request body: {exc}")
            raise SpoolFull(f"cannot write the spool file: {exc}") from None

    def _write_length(self, spool: BodySpool, receiving: _Receiving, data: bytes) -> bool:
        left = receiving.left
        if len(data) < left:
            self._write(spool, data)
            receiving.left = left - len(data)
            return False
        self._write(spool, memoryview(data)[:left])
        spool.rest = data[left:]  # a pipelined request
        spool.receiving = None
        return True

    def _decode(self, spool: BodySpool, receiving: _Receiving) -> bool:
        """Write the data h11 has decoded; True at the body's end."""
        h = receiving.h
        limit = self.limits.body_spool
        while True:
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise MalformedBody(f"malformed request body: {exc}") from None
            if ev is h11.NEED_DATA:
                return False
            if type(ev) is h11.Data:
                n = len(ev.data)
                if spool.size + n > limit:
                    raise BodyTooLarge(f"a chunked body past RequestBodySpool/LimitRequestBody ({limit})")
                if not spool.reserve(n):
                    raise self._full("a chunked body")
                self._write(spool, ev.data)
                continue
            if type(ev) is h11.EndOfMessage:
                spool.rest = h.trailing_data[0]
                spool.receiving = None
                return True
            raise MalformedBody("malformed request body")
