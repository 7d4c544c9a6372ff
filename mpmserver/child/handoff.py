"""The hand-off between a child's listener and its workers (Apache's mpm_fdqueue).

It owns what the two sides share, and nothing else reaches it:

- the ready queue: connections with a complete, checked request head,
  waiting for a worker (while the listener holds pushes back, in its hand:
  ``hold()``, ``release()``);
- the idle-worker count and its lock, and whether the listener is waiting
  for a worker to go idle (it paused accepting; the next worker to go idle
  wakes it, once);
- the stop flag both sides read (set once, by whoever stops the child);
- the way back: ``give_back(conn, outcome)`` from a worker returns a
  connection to the listener's loop, coalesced, so that under load one loop
  wake-up serves every connection handed back since the last one. With
  KEEP, CLOSE or FINISHED the detail may be the tail of the response the
  socket could not take yet (a spoolfile.OutQueue): the loop writes it
  first (write completion). A DONE (the worker closed the socket itself)
  changes only counts, so it wakes nobody: an accepting loop drains it on
  its next accept (``defer_done``), and a loop waiting for a worker is
  woken by the next worker to go idle, which drains it first (until then
  every worker finds a request waiting, so the loop could not accept
  anyway; only the published counts wait). A KEEP with nothing
  buffered and no tail is parked by the worker itself (``attach_parking``:
  the listener's epoll, as Apache's and gunicorn's workers do) and, like a
  DONE, wakes nobody: the loop counts it when it next drains.

The listener side runs in the loop thread, the worker side in worker
threads. The loop is attached with ``attach_loop()``; until then nothing can
be given back (no worker has a connection before the loop dispatched one).
"""

from __future__ import annotations

import collections
import queue
import threading
from typing import Any, Callable

from ..http.outcome import DONE, KEEP, Outcome

# The detail of a KEEP the worker parked itself: the socket is already in the
# listener's parking epoll, the loop only has to count it parked.
PARKED_BY_WORKER = object()


class Handoff:
    def __init__(self) -> None:
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._listener_waiting = False
        self.stopping = False
        self._returned: collections.deque[tuple[Any, Outcome, Any]] = collections.deque()
        self._return_pending = False
        self._held: list[Any] = []  # pushed while held (loop thread only)
        self._holding = False
        self._defer_done = False  # DONE alone does not wake the loop (set by the loop thread)
        self._call_soon: Callable[..., Any] | None = None
        self._on_returned: Callable[[Any, Outcome, Any], None] | None = None
        self._on_worker_idle: Callable[[], None] | None = None
        # The listener's: park a kept-alive connection from a worker thread
        # (register it where the loop sees its next bytes without a wake-up).
        self._park: Callable[[Any], None] | None = None

    def attach_loop(self, call_soon_threadsafe: Callable[..., Any],
                    on_returned: Callable[[Any, Outcome, Any], None],
                    on_worker_idle: Callable[[], None]) -> None:
        """The listener's loop: ``on_returned(conn, outcome, detail)`` and
        ``on_worker_idle()`` run in it, scheduled with ``call_soon_threadsafe``;
        on_worker_idle must drain what was given back (deferred DONEs) first."""
        self._call_soon = call_soon_threadsafe
        self._on_returned = on_returned
        self._on_worker_idle = on_worker_idle

    def attach_parking(self, park: Callable[[Any], None]) -> None:
        """``park(conn)``, called in a worker thread, watches an idle
        keep-alive connection for its next request without the loop's help."""
        self._park = park

    # -- the listener's side (loop thread) --------------------------------------

    def admit(self, decide: Callable[[int, int], bool]) -> bool:
        """Ask ``decide(idle_workers, waiting_requests)`` under the idle lock.

        When it says no, the listener counts as waiting for a worker: the
        next worker to go idle wakes it. Deciding and setting the flag under
        one lock means a worker going idle at that moment cannot be missed.
        """
        with self._lock:
            ok = decide(self._idle, self._ready.qsize() + len(self._held))
            self._listener_waiting = not ok and not self.stopping
            return ok

    def push(self, conn: Any) -> None:
        """A connection with a complete head, for the next free worker."""
        if self._holding:
            self._held.append(conn)
        else:
            self._ready.put(conn)

    def hold(self) -> None:
        """Keep pushes back until release(): a worker woken in the middle of
        an accept batch only waits for the GIL the listener still holds."""
        self._holding = True

    def release(self) -> None:
        """Hand the held connections to the workers, in order."""
        self._holding = False
        held = self._held
        for conn in held:
            self._ready.put(conn)
        held.clear()

    def take_waiting(self) -> Any:
        """Take back the oldest connection still waiting for a worker (to
        hand it to a sibling); None when the workers have taken them all."""
        try:
            conn = self._ready.get_nowait()
        except queue.Empty:
            return None
        if conn is None:  # a worker's end (release_workers): not ours to take
            self._ready.put(None)
        return conn

    def waiting(self) -> int:
        """Requests waiting for a worker (held ones too)."""
        return self._ready.qsize() + len(self._held)

    def idle_workers(self) -> int:
        return self._idle

    def begin_stop(self) -> bool:
        """Set the stop flag; True the first time."""
        with self._lock:
            first = not self.stopping
            self.stopping = True
            self._listener_waiting = False
            return first

    def release_workers(self, n: int) -> None:
        """Let ``n`` workers end: each takes a None and returns."""
        for _ in range(n):
            self._ready.put(None)

    def defer_done(self, defer: bool) -> None:
        """Whether a DONE alone may wait for the loop's next turn instead of
        waking it: yes while the listener accepts (its next accept, or the
        listener's drain timer, drains it); no when a close is what the loop
        waits for (admission paused, a stop). Turning it off schedules the
        drain of what was deferred: a worker appends before it reads the
        flag, and the loop sets the flag before it looks."""
        self._defer_done = defer
        if not defer and self._returned and not self._return_pending:
            self._return_pending = True
            self._schedule(self.drain_returned)

    def drain_returned(self) -> None:
        """Run on_returned for every connection given back (loop thread)."""
        # The flag is cleared before the queue is drained, so a connection
        # appended after the drain read the flag as False and schedules the
        # next drain itself.
        self._return_pending = False
        returned = self._returned
        on_returned = self._on_returned
        while returned:
            on_returned(*returned.popleft())

    # -- the workers' side ---------------------------------------------------------

    def take(self) -> Any:
        """The next connection; None means: end. A worker that finds one
        waiting takes it without going idle (no lock, no wake-up: under
        load that is most takes); one that has to wait counts as idle while
        it waits, and wakes a listener waiting for an idle worker."""
        try:
            return self._ready.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            self._idle += 1
            wake = self._listener_waiting
            self._listener_waiting = False
        if wake:
            self._schedule(self._on_worker_idle)
        conn = self._ready.get()
        with self._lock:
            self._idle -= 1
        return conn

    def give_back(self, conn: Any, outcome: Outcome, detail: Any = None) -> None:
        """Return a connection to the loop: ``detail`` is the error for REFUSE,
        the response's unwritten tail (or None) for KEEP, CLOSE and FINISHED.

        An idle KEEP is parked here, by the worker (Apache's and gunicorn's
        keep-alive): its record is queued before the socket is watched, so
        the loop, which polls, then drains, then reads, has counted a polled
        connection PARKED by the time it reads it. It and a DONE change only
        counts: they wake the loop only when nothing else drains it soon (an
        accepting loop drains at its next accept; a loop waiting for a worker
        is woken by the next worker to go idle, and that wake-up drains first).
        """
        if outcome == KEEP and self._park is not None and detail is None and not conn.buf:
            self._returned.append((conn, KEEP, PARKED_BY_WORKER))
            self._park(conn)
            counts_only = True
        else:
            self._returned.append((conn, outcome, detail))
            counts_only = outcome == DONE
        if self._return_pending or counts_only and (self._defer_done or self._listener_waiting):
            return
        self._return_pending = True
        self._schedule(self.drain_returned)

    def _schedule(self, fn: Callable[[], None] | None) -> None:
        if fn is None or self._call_soon is None:
            return
        try:
            self._call_soon(fn)
        except RuntimeError:  # the loop is closed: the child is going away
            pass
