"""The hand-off between the listener and the workers, driven from one thread."""

import threading
import time

from mpmserver.child.handoff import Handoff
from mpmserver.http.outcome import ABORT, CLOSE, DONE, KEEP, REFUSE


class Loop:
    """Stands in for call_soon_threadsafe: callbacks run when the test says."""

    def __init__(self):
        self.pending = []

    def call_soon_threadsafe(self, fn, *args):
        self.pending.append((fn, args))

    def run(self):
        ran = len(self.pending)
        while self.pending:
            fn, args = self.pending.pop(0)
            fn(*args)
        return ran


def attached():
    h = Handoff()
    loop = Loop()
    returned, woken = [], []
    h.attach_loop(loop.call_soon_threadsafe, lambda *a: returned.append(a), lambda: woken.append(1))
    return h, loop, returned, woken


def _take_in_thread(h):
    got = []
    t = threading.Thread(target=lambda: got.append(h.take()), daemon=True)
    t.start()
    return t, got


def test_a_worker_going_idle_wakes_a_listener_waiting_for_one_once():
    h, loop, _, woken = attached()
    assert not h.admit(lambda idle, waiting: idle > waiting)  # no idle worker: the listener waits
    t, got = _take_in_thread(h)  # nothing waiting: the worker goes idle and wakes the listener
    deadline = time.monotonic() + 5
    while not loop.pending and time.monotonic() < deadline:
        time.sleep(0.001)
    assert loop.run() == 1 and woken == [1]
    h.push("c1")
    t.join(5)
    assert got == ["c1"]
    assert h.idle_workers() == 0
    t, got = _take_in_thread(h)
    deadline = time.monotonic() + 5
    while h.idle_workers() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    h.push("c2")
    t.join(5)
    assert got == ["c2"] and loop.run() == 0  # once: the listener was not waiting any more


def test_a_worker_that_finds_a_request_waiting_takes_it_without_going_idle():
    h, loop, _, woken = attached()
    h.push("c1")
    assert not h.admit(lambda idle, waiting: idle > waiting)  # the listener waits
    assert h.take() == "c1"
    assert loop.run() == 0 and woken == []  # not idle for a moment: nobody woken
    assert h.idle_workers() == 0


def test_admission_sees_idle_workers_and_waiting_requests():
    h, _, _, _ = attached()
    seen = []
    h.admit(lambda idle, waiting: seen.append((idle, waiting)) or True)
    h.push("c")
    h.admit(lambda idle, waiting: seen.append((idle, waiting)) or True)
    assert seen == [(0, 0), (0, 1)]
    assert h.waiting() == 1 and h.idle_workers() == 0


def test_connections_given_back_are_coalesced_into_one_loop_wake_up():
    h, loop, returned, _ = attached()
    h.give_back("a", KEEP)
    h.give_back("b", CLOSE)
    h.give_back("c", REFUSE, "413")
    assert len(loop.pending) == 1
    loop.run()
    assert returned == [("a", KEEP, None), ("b", CLOSE, None), ("c", REFUSE, "413")]
    h.give_back("d", ABORT)  # after a drain, the next one schedules its own
    assert loop.run() == 1 and returned[-1] == ("d", ABORT, None)


def test_stopping_is_set_once_and_releases_the_waiting_listener():
    h, loop, _, woken = attached()
    assert not h.admit(lambda idle, waiting: False)
    assert h.begin_stop() is True
    assert h.begin_stop() is False
    assert h.stopping
    h.push("c")
    h.take()
    assert loop.run() == 0 and woken == []  # a stopping listener is not woken
    h.release_workers(2)
    assert h.take() is None and h.take() is None


def test_a_close_done_by_the_worker_waits_for_an_accepting_loop_and_is_drained_when_it_stops():
    h, loop, returned, _ = attached()
    h.defer_done(True)  # the listener accepts: its next accept drains
    h.give_back("a", DONE)
    h.give_back("b", DONE)
    assert loop.run() == 0 and returned == []
    h.defer_done(False)  # it paused: what was deferred is drained at once
    assert loop.run() == 1 and [r[0] for r in returned] == ["a", "b"]
    h.give_back("c", DONE)  # not deferring: a wake-up of its own
    assert loop.run() == 1 and returned[-1] == ("c", DONE, None)


def test_a_close_done_while_the_listener_waits_for_a_worker_rides_on_that_workers_wake_up():
    h, loop, returned, woken = attached()
    assert not h.admit(lambda idle, waiting: False)  # the listener waits for a worker
    h.give_back("a", DONE)
    assert loop.pending == []
    t, got = _take_in_thread(h)  # the same worker goes idle: one wake-up, on_worker_idle
    deadline = time.monotonic() + 5
    while not loop.pending and time.monotonic() < deadline:
        time.sleep(0.001)
    assert loop.run() == 1 and woken == [1]
    h.release_workers(1)
    t.join(5)
    assert got == [None]


def test_other_outcomes_are_never_deferred():
    h, loop, returned, _ = attached()
    h.defer_done(True)
    h.give_back("a", KEEP)
    assert loop.run() == 1 and returned == [("a", KEEP, None)]


def test_pushes_held_during_an_accept_batch_count_as_waiting_and_reach_workers_in_order():
    h, _, _, _ = attached()
    h.hold()
    h.push("a")
    h.push("b")
    seen = []
    h.admit(lambda idle, waiting: seen.append(waiting) or True)
    assert seen == [2] and h.waiting() == 2
    assert h._ready.empty()  # no worker woken yet
    h.release()
    assert h.take() == "a" and h.take() == "b"
    h.push("c")  # not held any more: straight to the queue
    assert h.take() == "c"
