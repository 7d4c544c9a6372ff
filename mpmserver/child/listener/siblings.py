"""Sibling transfer: a ready request that would wait here goes to a sibling
child with an idle worker, and a sibling's comes here.

admission.py decides when and to whom (would_wait, transfer_to,
rebalance_to, siblings_busy_until); ../transfer.py moves the descriptor and
the bytes read; this room is the listener's side of both: the transfer of a
request about to be queued (``transferred``), the rebalance of requests
already queued while a sibling idles, and the adoption of what siblings
send (read on as if read here: reading.py's ``start``).

Everything here runs in the loop thread.
"""

from __future__ import annotations

import time
from typing import Any

from .. import admission, transfer
from ..connection import Connection
from ..handoff import Handoff
from .core import LoopCore, Room, Rooms, Siblings


class SiblingTransfer(Room):
    def __init__(self, core: LoopCore, handoff: Handoff, siblings: Siblings) -> None:
        super().__init__(core)
        self.handoff = handoff
        self.siblings = siblings
        self._endpoint: transfer.Transfer | None = None  # bound when the loop starts
        # Until then (epoch) no sibling can have a worker idle long enough to
        # take a request (admission.siblings_busy_until): no scoreboard read.
        self._siblings_busy_until = 0.0
        self._rebalance_timer: Any = None  # looks again for a sibling while requests wait here

    def bind(self, rooms: Rooms) -> None:
        super().bind(rooms)
        self._reader = rooms.reader
        self._release = rooms.completion.release

    def begin(self) -> None:
        """Loop thread: bind this child's receiving socket and watch it.
        Without it (the name is taken, say by a child of this slot still
        exiting) the child serves as before: it neither sends nor receives."""
        try:
            self._endpoint = transfer.Transfer(self.siblings.scoreboard.master_pid, self.siblings.slot)
        except OSError as exc:
            self.core.error_log.warn(f"{self.core.name}: no transfer of connections to siblings: {exc}")
            return
        self.core.loop.add_reader(self._endpoint.fileno(), self._on_received)

    def end(self) -> None:
        if self._endpoint is not None:
            self._endpoint.close()

    # -- sending -----------------------------------------------------------------------

    def transferred(self, conn: Connection) -> bool:
        """Give a ready request that would wait here to a sibling with an
        idle worker; True when the sibling has it. Only a request that would
        wait pays for the scoreboard read, and while every sibling is busy
        too, only the first one in SETTLED_IDLE; the requests left waiting
        are looked at again then (_rebalance)."""
        if self._endpoint is None:
            return False
        handoff = self.handoff
        idle, waiting = handoff.idle_workers(), handoff.waiting()
        if not admission.would_wait(idle, waiting):
            return False
        slot = self._idle_sibling(idle, waiting)
        return slot is not None and self._send(conn, slot)

    def _idle_sibling(self, idle: int, waiting: int) -> int | None:
        """The sibling to transfer a request that would wait to (admission's
        choice), or None; then the rebalance timer is set for the moment a
        sibling could have been idle long enough."""
        now = time.time()
        # Epoch times, as the scoreboard's: a clock stepped back must not
        # stop the reads for longer than SETTLED_IDLE.
        if not 0 < self._siblings_busy_until - now <= admission.SETTLED_IDLE:
            siblings, unsettled = self.siblings.idle(now - admission.SETTLED_IDLE)
            slot = admission.transfer_to(idle, waiting, siblings)
            if slot is not None:
                return slot
            self._siblings_busy_until = admission.siblings_busy_until(now, unsettled)
        self._rebalance_later(now)
        return None

    def _rebalance_later(self, now: float) -> None:
        if self._rebalance_timer is None:
            self._rebalance_timer = self._call_later(
                max(0.0, self._siblings_busy_until - now), self._rebalance)

    def _rebalance(self) -> None:
        """Requests still waiting here for a worker go to siblings that have
        been idle since (the oldest first, one per idle worker), so that no
        request waits behind slow ones for much longer than SETTLED_IDLE
        while a sibling idles; look again while some still wait."""
        self._rebalance_timer = None
        handoff = self.handoff
        beyond = handoff.waiting() - handoff.idle_workers()
        if beyond <= 0:  # none waits: the next that would sets the timer again
            return
        now = time.time()
        siblings, unsettled = self.siblings.idle(now - admission.SETTLED_IDLE)
        for slot in admission.rebalance_to(beyond, siblings):
            conn = handoff.take_waiting()
            if conn is None:
                return
            if not self._send(conn, slot):
                handoff.push(conn)  # the sibling cannot take it now: back in the queue
                break
        self._siblings_busy_until = admission.siblings_busy_until(now, unsettled)
        if handoff.waiting() > handoff.idle_workers():
            self._rebalance_later(now)

    def _send(self, conn: Connection, slot: int) -> bool:
        if conn.tls is not None:
            return False  # SCM_RIGHTS moves the descriptor, not this process's TLS state: kept here
        fields = {"client_addr": conn.client_addr, "client_port": conn.client_port,
                  "server_port": conn.server_port, "peer_addr": conn.peer_addr,
                  "trusted": conn.trusted, "requests": conn.requests}
        if not self._endpoint.send(slot, conn.sock, conn.buf, fields):
            return False  # queued here, as without a sibling
        self.core.forget_parking(conn)
        # The descriptor in flight keeps the connection open: close only
        # ours (no shutdown, which would end it for the sibling too).
        self._release(conn)
        return True

    # -- receiving ---------------------------------------------------------------------

    def _on_received(self) -> None:
        arrived, refused = self._endpoint.receive()
        for note in refused:
            self.core.error_log.warn(f"{self.core.name}: {note}")
        for t in arrived:
            self._adopt(t)

    def _adopt(self, t: transfer.Transferred) -> None:
        """A sibling's connection with a ready request: ours now, in
        READING_HEAD with the bytes it read, dispatched as if read here (and
        never transferred on again, which could send it round in circles).
        Its socket counts as blocking (connection.make_nonblocking): the
        sender's may be either."""
        conn = Connection(t.sock, t.client_addr, t.client_port, t.server_port)
        conn.peer_addr = t.peer_addr
        conn.trusted = t.trusted
        conn.requests = t.requests
        self._reader.add(conn)
        self._reader.start(conn, t.buf, may_transfer=False)
