"""The listener: one event loop thread per child (uvloop, or asyncio), built
of rooms around a loop core.

    core.py        the loop thread and its life cycle, the connection table,
                   timers and watches, the counts published to the scoreboard
    accept.py      accepting while admission says so; balance between siblings
    reading.py     RemoteIP/PROXY at connect, reading and checking heads and
                   small bodies, stage timers and 408, the dispatch
    spooling.py    request bodies past RequestBodyBuffer, into spool files
    parking.py     keep-alive parking (the workers park in its epoll set)
    siblings.py    sibling transfer: sending ready requests, adopting theirs
    completion.py  after a worker: write completion, the server's own error
                   responses, lingering close, the close
    handshake.py   TLS listeners: the first record judged, the handshake driven
    static.py      files from an Alias, answered in the loop (no worker)

`Listener` assembles them and routes what workers give back through the
hand-off (``_on_returned``), so that idle and slow clients cost a file
descriptor, never a thread.

Threads: ``start``, ``stop``, ``shutdown``, ``cut_connections``, ``crowded``
and ``sends_away`` may be called from any thread, and the parking room's
``park`` runs in worker threads (through the hand-off); everything else runs
in the loop thread.
"""

from __future__ import annotations

import resource
import socket
import threading
from typing import Any

from ...http import protocol
from ...http.outcome import CLOSE, DONE, FINISHED, KEEP, REFUSE, Outcome
from ...http.spool import SpoolLimits
from ...http.spoolfile import Spooler
from .. import admission
from ..connection import Connection, ConnectionTable
from ..handoff import PARKED_BY_WORKER, Handoff
from .accept import Acceptor
from .completion import Completion
from .core import LoopCore, Owner, Siblings
from .handshake import Handshake
from .parking import Parking
from .reading import RequestReader
from .siblings import SiblingTransfer
from .spooling import BodySpooling
from .static import StaticFiles

__all__ = ["Listener", "Siblings", "fd_soft_limit"]


def fd_soft_limit() -> int | None:
    """The descriptor limit admission must stay under; None when unlimited."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ValueError, OSError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


class Listener:
    def __init__(self, config: Any, sockets: list[socket.socket], handoff: Handoff, limits: admission.Limits, *,
                 owner: Owner, siblings: Siblings, record: Any, error_log: Any, access_log: Any = None,
                 name: str, tls: dict[Any, Any] | None = None) -> None:
        self.handoff = handoff
        self.core = core = LoopCore(config, record, error_log, name, owner)
        self.completion = Completion(core, access_log)
        self.reader = RequestReader(core, handoff, limits.max_open)
        self.spooler = Spooler(SpoolLimits.from_config(config))  # the workers' response queues use it too
        self.spooling = BodySpooling(core, self.spooler, protocol.max_head_size(config))
        self.parking = Parking(core, handoff)
        self.transfer = SiblingTransfer(core, handoff, siblings) if siblings.transfers else None
        # TLS listeners (tls: listening socket -> SSLContext) add the handshake room.
        self.handshake = Handshake(core, tls) if tls else None
        self.acceptor = Acceptor(core, sockets, handoff, limits, siblings, tls)
        self.static = StaticFiles(core, access_log) if config.aliases or config.alias_matches else None
        for room in (self.completion, self.reader, self.spooling, self.parking, self.transfer, self.acceptor,
                     self.handshake, self.static):
            if room is not None:
                room.bind(self)
        core.bind(self, begin=self._begin, end=self._end)
        # Bound once per child: _on_returned runs once per request.
        self._parked = self.parking.parked
        self._closed = core.closed
        self._keep = self.parking.keep
        self._linger = self.completion.linger
        self._refuse = self.completion.refuse
        self._complete_write = self.completion.complete_write
        self._close = self.completion.close

    # -- the faces other threads use ---------------------------------------------------

    @property
    def thread(self) -> threading.Thread:
        return self.core.thread

    @property
    def remote_ip(self) -> Any:
        """RemoteIP's settings (None: off), for the request cycle's walk."""
        return self.reader.remote_ip

    @property
    def table(self) -> ConnectionTable:
        """The connection table (the loop's; other threads read only ``total``)."""
        return self.core.table

    def start(self) -> None:
        self.core.start()

    def stop(self) -> None:
        """Stop accepting, gracefully: in-flight requests finish (answered with
        Connection: close; the hand-off's stop flag is already set) and parked
        keep-alive connections are closed after a grace of at most
        parking.STOP_GRACE_SECONDS unless their next request comes first."""
        self.core.threadsafe(self._stop)

    def shutdown(self) -> None:
        """End the loop (the child is exiting)."""
        self.core.shutdown()

    def cut_connections(self) -> None:
        """Shut down every connection's socket, whoever holds it (any thread)."""
        self.core.cut_connections()

    def crowded(self) -> bool:
        return self.acceptor.crowded()

    def sends_away(self) -> bool:
        return self.acceptor.sends_away()

    # -- life cycle (loop thread) --------------------------------------------------------

    def _begin(self) -> None:
        self.handoff.attach_loop(self.core.loop.call_soon_threadsafe, self._on_returned,
                                 self.acceptor.on_worker_idle)
        self.parking.begin()
        if self.transfer is not None:
            self.transfer.begin()
        self.acceptor.begin()

    def _end(self) -> None:
        if self.transfer is not None:
            self.transfer.end()
        if self.static is not None:
            self.static.end()

    def _stop(self) -> None:
        self.core.stopping = True
        self.handoff.drain_returned()  # closes deferred while the listener waited count
        self.acceptor.pause()
        self.parking.stop()
        self.core.check_done()

    # -- what workers give back (loop thread) ------------------------------------------

    def _on_returned(self, conn: Connection, outcome: Outcome, detail: Any) -> None:
        """Route a connection a worker gave back. ``detail``: PARKED_BY_WORKER
        (the worker parked it), the response's unwritten tail (KEEP, CLOSE,
        FINISHED), or (error, access record) for REFUSE. The socket is
        non-blocking: the worker made it so before its first request."""
        if detail is PARKED_BY_WORKER:
            self._parked(conn)
        elif outcome == DONE:
            # The worker closed the socket: its descriptor may already be a
            # new connection's, so only the counts change.
            self._closed(conn)
        elif detail is not None and outcome != REFUSE:
            self._complete_write(conn, outcome, detail)
        elif outcome == KEEP:
            self._keep(conn)
        elif outcome == CLOSE or outcome == FINISHED:
            self._linger(conn)
        elif outcome == REFUSE:
            self._refuse(conn, *detail)
        else:
            self._close(conn)
