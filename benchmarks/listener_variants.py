"""Worker-side variants of the keep-alive hand-off, for measurement only.

Served as `benchmarks.listener_variants:app`; the child imports it before its
worker threads start, so patching Worker.serve here changes how they treat a
keep-alive connection whose next request is not buffered yet:

  MPM_KEEPALIVE_VARIANT=park  (default) hand it back to the listener (event MPM)
  MPM_KEEPALIVE_VARIANT=keep  the worker waits for it, KeepAliveTimeout (worker MPM: "before")
  MPM_KEEPALIVE_VARIANT=poll  wait up to 1 ms in the worker when no request
                              waits for a worker, then park
  MPM_KEEPALIVE_VARIANT=pollall  wait up to 1 ms in the worker always, then park
  MPM_KEEPALIVE_VARIANT=hold  wait up to HOLD_SECONDS in the worker, in POLL_SLICE
                              slices, parking as soon as a request waits for a worker
"""

from __future__ import annotations

import os
import select
import socket

import h11

from mpmserver import protocol, worker as _worker
from mpmserver.scoreboard import SERVER_BUSY_KEEPALIVE, SERVER_CLOSING

from .apps import plaintext as app  # noqa: F401  (the app served)

VARIANT = os.environ.get("MPM_KEEPALIVE_VARIANT", "park")
POLL_SECONDS = 0.001
HOLD_SECONDS = float(os.environ.get("MPM_HOLD_SECONDS", "0.05"))
POLL_SLICE = 0.005


def _next_bytes(self, conn, sock: socket.socket) -> bytes | None:
    """Bytes of the next request read in the worker, b"" to park, None to close."""
    child = self.child
    if VARIANT == "keep":
        self.record.set_status(SERVER_BUSY_KEEPALIVE)
        sock.settimeout(child.config.keep_alive_timeout)
        try:
            data = sock.recv(65536)
        except OSError:
            return None
        finally:
            sock.settimeout(child.config.timeout)
        return data or None
    if VARIANT == "hold":
        ready = child.ready
        waited = 0.0
        while waited < HOLD_SECONDS and ready.qsize() == 0:
            if select.select([sock], [], [], POLL_SLICE)[0]:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return None
                return data or None
            waited += POLL_SLICE
        return b""
    if VARIANT == "pollall" or (VARIANT == "poll" and child.ready.qsize() == 0):
        if select.select([sock], [], [], POLL_SECONDS)[0]:
            try:
                data = sock.recv(65536)
            except OSError:
                return None
            return data or None
    return b""


def serve(self, conn) -> None:
    child = self.child
    cfg = child.config
    sock = conn.sock
    sock.settimeout(cfg.timeout)
    self.record.begin_connection(conn.client_addr)
    buf = conn.buf
    conn.buf = b""
    while True:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=child.max_head_size)
        h.receive_data(buf)
        outcome = self.cycle(conn, h)
        conn.requests += 1
        if outcome != _worker.KEEP:
            self.record.set_status(SERVER_CLOSING)
            child.listener.close(conn, linger=outcome == _worker.CLOSE)
            return
        buf = h.trailing_data[0]
        if not buf:
            data = _next_bytes(self, conn, sock)
            if data is None:
                child.listener.close(conn, linger=False)
                return
            buf = data
        if buf:
            skip, end = protocol.split_head(buf)
            if end >= 0:
                if skip:
                    buf = buf[skip:]
                    end -= skip
                try:
                    conn.must_close = bool(protocol.check_head(
                        buf[:end], cfg.limit_request_line, cfg.limit_request_fields,
                        cfg.limit_request_field_size))
                except protocol.HeadError as err:
                    child.listener.refuse(conn, err)
                    return
                continue
        conn.buf = buf
        child.listener.park(conn)
        return


if VARIANT in ("keep", "poll", "pollall", "hold"):
    _worker.Worker.serve = serve
