"""Accepting connections while admission says the child can take them.

Admission (admission.py) is asked before every accept, under the hand-off's
idle lock: when it says no, the listening sockets are no longer watched
until a worker goes idle, a connection closes, or RECHECK_SECONDS pass;
except, while kept-alive clients' requests queue in the hand-off (they
bypass admission), once, to see a connection waiting there: if no sibling
takes it within admission.FAIR_WAIT, this child accepts it anyway (its
request then queues in arrival order with theirs, see fair_turn). A
child holding clearly more connections than a sibling steps aside for a
moment (``crowded``); ``sends_away`` tells a worker to answer with
Connection: close so that a client reconnects to a less loaded sibling.
MaxConnectionsPerChild is counted here. An accepted connection is given to
reading.py's ``open``.

Threads: ``crowded`` and ``sends_away`` are called by worker threads (they
read ints and the scoreboard); everything else runs in the loop thread.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from typing import Any

from ...modules import remoteip
from ...scoreboard import RECYCLE_CONNECTIONS
from .. import admission
from ..connection import Connection
from ..handoff import Handoff
from .core import LoopCore, Room, Rooms, Siblings

ACCEPT_BATCH = 16
# How soon a child that stopped accepting asks admission again by itself.
RECHECK_SECONDS = 0.05
# How long a child steps aside for a less loaded sibling.
STEP_ASIDE_SECONDS = 0.002
# After stepping aside this long without the sibling taking the connection,
# serve it: the sibling may be stuck.
STEP_ASIDE_LIMIT = 0.02
# Linux copies TCP_NODELAY from a listening socket to the sockets it accepts.
INHERITS_NODELAY = sys.platform.startswith("linux")
# How long a read of the siblings' connection counts serves admission.
FEWEST_TTL = 0.001
# After accept() fails (EMFILE and friends), wait this long instead of spinning.
ACCEPT_ERROR_PAUSE = 0.5


class Acceptor(Room):
    def __init__(self, core: LoopCore, sockets: list[socket.socket], handoff: Handoff,
                 limits: admission.Limits, siblings: Siblings, tls: dict[Any, Any] | None = None) -> None:
        super().__init__(core)
        self.sockets = sockets
        self.handoff = handoff
        self.limits = limits
        self.siblings = siblings
        # A listening socket's port never changes: no getsockname() per
        # connection. A unix socket has no port: 0.
        self.local_ports = {sock: sock.getsockname()[1] if sock.family != socket.AF_UNIX else 0
                            for sock in sockets}
        # What an accepted socket is made of, read once per listening socket
        # (see _accept_batch).
        self._accepted_kind = {sock: (int(sock.family), int(sock.type), sock.proto, sock.family == socket.AF_UNIX)
                               for sock in sockets}
        self.tls = tls or {}  # listening socket -> SSLContext: its connections go to handshake.py
        self.accepting = False
        self.accepted = 0  # connections accepted (MaxConnectionsPerChild)
        self._recheck: Any = None
        self._announced = False  # owner.accepting called (once: the child's "serving")
        self._aside_since: float | None = None  # since when we step aside for a sibling
        self._fewest_read: tuple[float, int | None] = (0.0, None)  # (when, value) for _fewest
        self._send_away_pace = admission.SendAwayPace()
        # Fair waiting (admission.fair_turn): paused, the listening sockets
        # are watched once for a waiting connection; then a timer gives it
        # its turn.
        self._pending_watched = False
        self._pending_since: float | None = None
        self._fair_timer: Any = None
        self._failing = False  # accept() failed: paused for ACCEPT_ERROR_PAUSE

    def bind(self, rooms: Rooms) -> None:
        super().bind(rooms)
        self._open = rooms.reader.open
        self._handshake = rooms.handshake.open if rooms.handshake is not None else None

    def begin(self) -> None:
        """Loop thread: the listening sockets non-blocking (and TCP_NODELAY,
        once here rather than on every accepted socket, which inherits it);
        then accept if admission says so."""
        for sock in self.sockets:
            sock.setblocking(False)
            if INHERITS_NODELAY and sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.admission()

    # -- balance between siblings (any thread) --------------------------------------

    def crowded(self) -> bool:
        """This child holds clearly more connections than an accepting sibling."""
        limits = self.limits
        return limits.balance and admission.prefers_sibling(limits, self._table.total, self._fewest())

    def sends_away(self) -> bool:
        """Answer this request with Connection: close, so that its client
        reconnects to a sibling holding clearly fewer connections? Paced:
        one client at a time (admission.SendAwayPace). Worker threads ask;
        two asking at the same moment may both be told yes, which moves two
        clients instead of one."""
        now = time.monotonic()
        pace = self._send_away_pace
        if not pace.due(now) or not self.crowded():
            return False
        pace.sent(now)
        return True

    def _fewest(self) -> int | None:
        """The siblings' fewest connections, read from the scoreboard at most
        once per FEWEST_TTL: a burst of accepts reads every sibling's record
        once, not once per connection (2.3 us at ServerLimit 16)."""
        now = time.monotonic()
        read_at, fewest = self._fewest_read
        if now - read_at > FEWEST_TTL:
            fewest = self.siblings.fewest_connections()
            self._fewest_read = (now, fewest)
        return fewest

    # -- admission (loop thread) ----------------------------------------------------------

    def on_worker_idle(self) -> None:
        """A worker went idle while the listener waited for one: the closes
        deferred meanwhile first (admission counts them), then admission."""
        self.handoff.drain_returned()
        self.admission()

    def admission(self) -> None:
        if self.core.stopping:
            return
        if not self._admits():
            self._wait_for_worker()
        elif not self.accepting:
            self._resume()

    def _admits(self) -> bool:
        """Ask admission whether to accept. The decision is made under the
        hand-off's idle lock, so a worker that goes idle at that moment sees
        the listener waiting and wakes it."""
        table = self._table
        limits = self.limits
        stopping = self.handoff.stopping
        busy = table.total - table.parked
        accepted = self.accepted

        def decide(idle: int, waiting: int) -> bool:
            return admission.admits(limits, stopping=stopping, busy_connections=busy, accepted=accepted,
                                    idle_workers=idle, waiting=waiting)

        return self.handoff.admit(decide)

    def _wait_for_worker(self) -> None:
        """Admission said no: pause, look again shortly, and watch for a
        connection that waits meanwhile (fair waiting)."""
        self.pause()
        if self.core.stopping:
            return
        if self._recheck is None:
            # A pause for balance between siblings ends with no event of ours
            # (our clients may all be idle): look again shortly.
            self._recheck = self._call_later(RECHECK_SECONDS, self._on_recheck)

    def kept_alive_queued(self) -> None:
        """Parking dispatched kept-alive clients' requests while this child
        was paused: they bypass admission, so watch for a new connection
        waiting behind them (fair waiting). Only then: a pause with no such
        requests ends when a worker goes idle, and watching would cost two
        epoll_ctl per pause (measured: 1.6 -> 3.9 per request under a
        saturating Connection: close load)."""
        if not self.core.stopping:
            self._watch_pending()

    def _closed_to_new(self) -> bool:
        table = self._table
        return admission.closed_to_new(self.limits, stopping=self.handoff.stopping,
                                       busy_connections=table.total - table.parked, accepted=self.accepted)

    def _watch_pending(self) -> None:
        """Paused: watch the listening sockets once for a connection that
        waits (once: they are level-triggered, and would fire until it is
        accepted). A child closed to new connections does not look."""
        if (self._pending_watched or self._fair_timer is not None or self._failing
                or not self.handoff.waiting() or self._closed_to_new()):
            return
        self._pending_watched = True
        for sock in self.sockets:
            self.core.loop.add_reader(sock.fileno(), self._on_pending, sock)

    def _on_pending(self, lsock: socket.socket) -> None:
        """A connection waits in the listen queue while this child has no idle
        worker: give a sibling FAIR_WAIT to take it, then its turn here."""
        self._unwatch_listening()
        self._pending_watched = False
        self._pending_since = self._time()
        self._fair_timer = self._call_later(admission.FAIR_WAIT, self._on_fair_turn)

    def _on_fair_turn(self) -> None:
        self._fair_timer = None
        since, self._pending_since = self._pending_since, None
        if self.accepting or self.core.stopping or since is None:
            return
        if self._admits():   # a worker went idle meanwhile
            self._resume()
            return
        table = self._table
        if admission.fair_turn(self.limits, stopping=self.handoff.stopping,
                               busy_connections=table.total - table.parked, accepted=self.accepted,
                               waited=self._time() - since, waiting=self.handoff.waiting()):
            self.handoff.hold()
            try:
                for sock in self.sockets:
                    if self._accept_batch(sock, fair=True):
                        break
            finally:
                self.handoff.release()
        if not self.accepting and not self.core.stopping:
            self._watch_pending()

    def _after_accept_error(self) -> None:
        self._failing = False
        self.admission()

    def _stop_pending(self) -> None:
        self._pending_watched = False
        self._pending_since = None
        if self._fair_timer is not None:
            self._fair_timer.cancel()
            self._fair_timer = None

    def _on_recheck(self) -> None:
        self._recheck = None
        if not self.accepting:
            self.admission()

    def _resume(self) -> None:
        self._stop_pending()
        self._watch_listening()
        self.accepting = True
        self.handoff.defer_done(True)
        self.core.record.set_not_accepting(False)
        if not self._announced:
            self._announced = True
            self.core.owner.accepting()

    def pause(self) -> None:
        if self.core.stopping:
            self._stop_pending()
            self._unwatch_listening()
        if self.accepting:
            self.accepting = False
            # A paused or stopping loop waits for closes: no deferring them.
            self.handoff.defer_done(False)
            self._unwatch_listening()
            self.core.record.set_not_accepting(True)

    def _watch_listening(self) -> None:
        for sock in self.sockets:
            self.core.loop.add_reader(sock.fileno(), self._on_acceptable, sock)

    def _unwatch_listening(self) -> None:
        for sock in self.sockets:
            try:
                self.core.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass

    def _steps_aside(self) -> bool:
        """Let a less loaded sibling take the waiting connection: stop watching
        the listening sockets for a moment (they are level-triggered, so
        watching would spin) while still counting as accepting. After
        STEP_ASIDE_LIMIT without the sibling taking it (a long GIL hold, a
        stopped process), serve it ourselves."""
        if not self.crowded():
            self._aside_since = None
            return False
        now = self._time()
        if self._aside_since is None:
            self._aside_since = now
        if now - self._aside_since >= STEP_ASIDE_LIMIT:
            return False
        self._unwatch_listening()
        self._call_later(STEP_ASIDE_SECONDS, self._step_back)
        return True

    def _step_back(self) -> None:
        if self.accepting and not self.core.stopping:
            if not select.select(self.sockets, [], [], 0)[0]:
                # A sibling took what was waiting.
                self._aside_since = None
            self._watch_listening()

    # -- accepting (loop thread) ------------------------------------------------------------

    def _on_acceptable(self, lsock: socket.socket) -> None:
        # Workers are woken once the batch is done, not one by one in the
        # middle of it, where each would wait for the GIL this thread holds.
        self.handoff.hold()
        try:
            self._accept_batch(lsock)
        finally:
            self.handoff.release()

    def _accept_batch(self, lsock: socket.socket, fair: bool = False) -> bool:
        """Accept while admission says so; ``fair``: one connection, which had
        its fair turn. True when one was accepted on a fair turn."""
        # The workers' deferred closes first: admission counts them.
        self.handoff.drain_returned()
        family, type_, proto, unix = self._accepted_kind[lsock]
        port = self.local_ports[lsock]
        tls = self.tls.get(lsock) if self._handshake is not None else None
        for _ in range(ACCEPT_BATCH):
            if fair:
                if self._closed_to_new():
                    return False
            elif not self._admits():
                self._wait_for_worker()
                return False
            elif self._steps_aside():
                return False
            try:
                # socket.accept() is this private call plus the enum
                # conversions of family and type and the default-timeout
                # call: 14.2-15.1 us per accept and close with it, 12.8-13.2
                # without (commit 0001805); again at issue 22, min / median
                # per accept: 5.6 / 8.9 us public, 4.1 / 4.6 us this way
                # (benchmarks/test_micro_connection.py test_accept,
                # test_accept_private). The new socket is blocking, as
                # accept() leaves it (no default timeout).
                fd, addr = lsock._accept()
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                self.core.error_log.error(f"accept: {exc}")
                self.pause()
                self._stop_pending()
                self._failing = True  # no fair turn either until the pause is over
                self._call_later(ACCEPT_ERROR_PAUSE, self._after_accept_error)
                return False
            sock = socket.socket(family, type_, proto, fileno=fd)
            self._count_accepted()
            if unix:
                conn = Connection(sock, remoteip.UNIX_PEER, 0, port)
            else:
                if not INHERITS_NODELAY:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = Connection(sock, addr[0], addr[1], port)
            if tls is None:
                self._open(conn)
            else:
                self._handshake(conn, tls)
            if fair:
                return True
            if not self.accepting:
                return False
        return False

    def _count_accepted(self) -> None:
        self.accepted += 1
        if admission.must_recycle(self.limits, self.accepted):
            # This connection is still served; the child then recycles.
            self.core.error_log.info(
                f"{self.core.name} reached MaxConnectionsPerChild ({self.limits.max_connections}), recycling")
            self.core.record.set_recycle_cause(RECYCLE_CONNECTIONS)
            self.pause()
            self.core.owner.graceful_stop()

