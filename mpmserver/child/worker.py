"""A worker thread: take a connection from the hand-off, run its requests, give it back.

A worker takes a connection whose request head the listener has already read
and checked, runs requests on it while complete ones are buffered
(pipelining), then gives it back to the listener through the hand-off, with
an Outcome: wait for the next request (keep-alive parking), close, or write
an error response. One request is request.RequestCycle. The scoreboard
record of the thread changes at each step; a worker is the only writer of
its record.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import h11

from ..http import protocol
from ..http.errors import HeadError
from ..http.outcome import ABORT, CLOSE, DONE, FINISHED, KEEP, REFUSE, Outcome
from ..http.request import ChildContext, RequestCycle
from ..http.response import Channel
from ..modules import alias
from ..scoreboard import SERVER_CLOSING, SERVER_READY
from ..titles import set_thread_title
from .connection import IN_WORKER, Connection, advance, close_socket, make_nonblocking
from .handoff import Handoff

# Worker threads are named this plus their index (the test server tells them apart by it).
WORKER_THREAD_PREFIX = "mpm-worker-"


class Worker:
    def __init__(self, ctx: ChildContext, handoff: Handoff, record: Any, index: int, generation: int):
        self.ctx = ctx
        self.handoff = handoff
        self.record = record
        self.index = index
        self.generation = generation
        self.cycle = RequestCycle(ctx, record, handoff)
        self.head_rules = self.cycle.head_rules  # one HeadRules per worker, the cycle's
        # Alias prefixes: a pipelined request for one goes back to the listener.
        self.aliases = alias.from_config(ctx.config)
        self.thread = threading.Thread(target=self.run, name=f"{WORKER_THREAD_PREFIX}{index}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        set_thread_title(self.thread.name)
        rec = self.record
        rec.thread_started(os.getpid(), threading.get_native_id(), self.generation)
        take = self.handoff.take
        set_status = rec.set_status
        try:
            while True:
                conn = take()
                if conn is None:
                    return
                try:
                    self.serve(conn)
                except BaseException as exc:  # noqa: BLE001 - a worker must survive anything
                    self.ctx.error_log.exception(f"worker {self.index}: unexpected error on {conn!r}", exc)
                    self.handoff.give_back(conn, ABORT)
                set_status(SERVER_READY)
        finally:
            rec.thread_exited()

    def serve(self, conn: Connection) -> None:
        """Run the connection's requests while complete ones are buffered."""
        advance(conn, IN_WORKER)
        ctx = self.ctx
        sock = conn.sock
        if conn.blocking:  # dispatched right after accept: still blocking
            make_nonblocking(conn)
        channel = Channel(sock, ctx.config.timeout, ctx.spooler)
        self.record.begin_connection(conn.client_addr)
        buf = conn.buf
        conn.buf = b""
        while True:
            h = h11.Connection(h11.SERVER, max_incomplete_event_size=ctx.head_limit)
            h.receive_data(buf)
            outcome = self.cycle.run(conn, h, channel)
            conn.requests += 1
            rest = self.cycle.rest(h)
            if channel.tail is not None:
                self._leave_tail(conn, outcome, channel, rest)
                return
            if outcome == FINISHED and not rest:
                # The client sends nothing more and nothing of it is unread:
                # close here, with no trip through the listener and no
                # lingering drain (a plain close sends FIN, not a reset).
                self.record.set_status(SERVER_CLOSING)
                close_socket(sock)
                self.handoff.give_back(conn, DONE)
                return
            if outcome != KEEP:
                if outcome == REFUSE:
                    # The listener logs the refused request; from the raw
                    # head when the request could not be parsed.
                    conn.buf = buf
                self._give_back(conn, outcome)
                return
            if rest:
                # Pipelined: if the next head is complete, answer it now,
                # without a trip through the listener, checked as the
                # listener checks one (an incomplete one too: it may
                # already be certain to be refused).
                try:
                    rest, end, flags, conn.blank_lines = protocol.take_head(rest, conn.blank_lines, self.head_rules)
                except HeadError as err:
                    conn.buf = rest
                    self._give_back(conn, REFUSE, (err, None))
                    return
                if end >= 0 and (self.aliases is None or not alias.claims(self.aliases, rest)):
                    conn.must_close = bool(flags)
                    conn.blank_lines = 0
                    buf = rest
                    continue
                # A file an Alias serves: the listener answers it (KEEP
                # with the head buffered reads it there, parking.keep).
            # Keep-alive (the event MPM's): the thread is free at once; the
            # listener parks the connection or reads the rest of its next head.
            conn.buf = rest
            self.handoff.give_back(conn, KEEP)
            return

    def _leave_tail(self, conn: Connection, outcome: Outcome, channel: Channel, buffered: bytes) -> None:
        """Write completion: the app is done and the socket cannot take the
        rest of the response yet (a spoolfile.OutQueue: what the app produced
        faster than the client read); the loop writes it, then carries out the
        outcome (pipelined requests wait in conn.buf), and this thread is free."""
        tail = channel.tail
        channel.tail = None
        self.record.set_status(SERVER_CLOSING)
        if outcome == KEEP or outcome == CLOSE or outcome == FINISHED:
            conn.buf = buffered if outcome == KEEP else b""
            self.handoff.give_back(conn, outcome, tail)
            return
        tail.close()  # ABORT: the rest is never written (its files closed, its bytes given back)
        self._give_back(conn, outcome)

    def _give_back(self, conn: Connection, outcome: Outcome, refusal: Any = None) -> None:
        """``refusal``: (error, access record or None) of a REFUSE outcome."""
        if outcome == REFUSE and refusal is None:
            refusal = self.cycle.refusal
        if outcome != KEEP:
            self.record.set_status(SERVER_CLOSING)
        self.handoff.give_back(conn, outcome, refusal)
