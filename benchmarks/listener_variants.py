"""Worker-side variants of the keep-alive hand-off, for measurement only.

Served as `benchmarks.listener_variants:app`; the child imports it before its
worker threads start, so setting Worker.keep_alive_strategy here changes how
they treat a keep-alive connection whose next request is not buffered yet:

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

from mpmserver.child.worker import Worker
from mpmserver.scoreboard import SERVER_BUSY_KEEPALIVE

from .apps import plaintext as app  # noqa: F401  (the app served)

VARIANT = os.environ.get("MPM_KEEPALIVE_VARIANT", "park")
POLL_SECONDS = 0.001
HOLD_SECONDS = float(os.environ.get("MPM_HOLD_SECONDS", "0.05"))
POLL_SLICE = 0.005


def _read(channel) -> bytes | None:
    try:
        data = channel.recv(65536)
    except OSError:
        return None
    return data or None


def wait_in_worker(worker, conn, channel) -> bytes | None:
    """Bytes of the next request read in the worker, b"" to park, None to close."""
    sock = conn.sock
    if VARIANT == "keep":
        worker.record.set_status(SERVER_BUSY_KEEPALIVE)
        sock.settimeout(worker.ctx.config.keep_alive_timeout)
        try:
            return _read(channel)
        finally:
            sock.setblocking(False)  # as the worker's Channel keeps it
    if VARIANT == "hold":
        waited = 0.0
        while waited < HOLD_SECONDS and worker.handoff.waiting() == 0:
            if select.select([sock], [], [], POLL_SLICE)[0]:
                return _read(channel)
            waited += POLL_SLICE
        return b""
    if VARIANT == "pollall" or (VARIANT == "poll" and worker.handoff.waiting() == 0):
        if select.select([sock], [], [], POLL_SECONDS)[0]:
            return _read(channel)
    return b""


if VARIANT in ("keep", "poll", "pollall", "hold"):
    Worker.keep_alive_strategy = staticmethod(wait_in_worker)
