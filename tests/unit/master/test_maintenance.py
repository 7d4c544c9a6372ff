"""Idle server maintenance and the child-exit policy, driven by a simulator.

The simulator stands in for the master, the children and the clients: it keeps
a fake scoreboard, applies the policy's actions and steps one second at a
time, so whole minutes of server life are checked in milliseconds.
"""

from __future__ import annotations

import functools
import math
import signal
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmserver.config import daemons_limit
from mpmserver.master.actions import Log, Shutdown, SignalChild, Spawn, StopChild
from mpmserver.master.maintenance import (
    MAX_SPAWN_RATE,
    MaintenanceState,
    child_exited,
    exit_cause,
    exit_notice,
    idle_server_maintenance,
)
from mpmserver.master.request_timeout import hung_requests
from mpmserver.master.retirement import retire_generation
from mpmserver.master.stopping import StopState, stop_step
from mpmserver.scoreboard import (
    EXIT_CAUSES,
    EXIT_CHILDFATAL,
    EXIT_CHILDSICK,
    RECYCLE_CONNECTIONS,
    RECYCLE_MEMORY,
    RECYCLE_REQUESTS,
    SERVER_BUSY_READ,
    SERVER_BUSY_WRITE,
    SERVER_DEAD,
    SERVER_GRACEFUL,
    SERVER_READY,
    SERVER_STARTING,
    ProcessSnapshot,
    ScoreboardSnapshot,
    WorkerSnapshot,
)

SIGSEGV = 11
SIGKILL, SIGTERM = signal.SIGKILL, signal.SIGTERM


def make_cfg(*, server_limit=16, threads_per_child=25, max_request_workers=400,
             min_spare_threads=75, max_spare_threads=250, start_servers=3, fixed_servers=0):
    # ThreadLimit > ThreadsPerChild: the DEAD records past ThreadsPerChild
    # must not be counted as idle threads.
    return SimpleNamespace(server_limit=server_limit, thread_limit=threads_per_child + 2,
                           threads_per_child=threads_per_child,
                           max_request_workers=max_request_workers,
                           min_spare_threads=min_spare_threads,
                           max_spare_threads=max_spare_threads, start_servers=start_servers,
                           fixed_servers=fixed_servers)


@functools.lru_cache(maxsize=None)  # immutable; sharing keeps long simulations fast
def worker(status: int, pid: int = 0, generation: int = 0) -> WorkerSnapshot:
    return WorkerSnapshot(status=status, pid=pid, tid=0, generation=generation, access_count=0,
                          bytes_served=0, my_access_count=0, my_bytes_served=0, conn_count=0,
                          conn_bytes=0, start_time=0.0, stop_time=0.0, last_used=0.0,
                          duration=0.0, request="", client="")


def process(slot: int, pid: int, statuses: list[int], *, generation: int = 0,
            quiescing: bool = False, not_accepting: bool = False,
            thread_limit: int | None = None) -> ProcessSnapshot:
    limit = thread_limit or len(statuses)
    workers = tuple(worker(s, pid, generation) for s in statuses)
    workers += tuple(worker(SERVER_DEAD) for _ in range(limit - len(statuses)))
    return ProcessSnapshot(slot=slot, pid=pid, generation=generation, quiescing=quiescing,
                           not_accepting=not_accepting, connections=0, keep_alive=0,
                           workers=workers)


@functools.lru_cache(maxsize=None)
def free(slot: int, thread_limit: int) -> ProcessSnapshot:
    return process(slot, 0, [SERVER_DEAD] * thread_limit)


def board(cfg, procs: dict[int, ProcessSnapshot], generation: int = 0) -> ScoreboardSnapshot:
    slots = tuple(procs.get(i) or free(i, cfg.thread_limit) for i in range(cfg.server_limit))
    return ScoreboardSnapshot(server_limit=cfg.server_limit, thread_limit=cfg.thread_limit,
                              generation=generation, restart_time=0.0, master_pid=1,
                              processes=slots)


# --------------------------------------------------------------------------
# The simulator


@dataclass
class Child:
    pid: int
    generation: int
    age: int = 0                    # seconds since fork; threads start after one second
    quiescing: bool = False
    stops_in: int | None = None     # seconds left before a stopping child exits


@dataclass
class Step:
    second: int
    actions: list
    live: int
    active: int
    stopping: int
    spawn_rate_after: int
    pending: int = 0                # forked children not yet in the scoreboard

    @property
    def spawns(self) -> list[Spawn]:
        return [a for a in self.actions if isinstance(a, Spawn)]

    @property
    def stops(self) -> list[StopChild]:
        return [a for a in self.actions if isinstance(a, StopChild)]

    @property
    def logs(self) -> list[Log]:
        return [a for a in self.actions if isinstance(a, Log)]


@dataclass
class Sim:
    cfg: SimpleNamespace
    stop_delay: int = 2             # seconds a stopped child needs to finish
    generation: int = 0
    state: MaintenanceState = field(default_factory=MaintenanceState)
    children: dict[int, Child] = field(default_factory=dict)
    history: list[Step] = field(default_factory=list)
    # A fork shows in the scoreboard only two seconds later (as with a busy
    # master): maintenance sees the slot free but in `pending` meanwhile.
    late_pids: bool = False
    _late: dict[int, Child] = field(default_factory=dict)
    _next_pid: int = 1000

    @property
    def limit(self) -> int:
        return daemons_limit(self.cfg)

    def start(self, n: int) -> None:
        """StartServers children, already running."""
        for slot in range(n):
            self._next_pid += 1
            self.children[slot] = Child(self._next_pid, self.generation, age=1)

    def _fork(self, slot: int) -> None:
        assert slot not in self.children and slot not in self._late, f"slot {slot} taken"
        assert 0 <= slot < self.cfg.server_limit
        self._next_pid += 1
        child = Child(self._next_pid, self.generation)
        if self.late_pids:
            child.age = -1
            self._late[slot] = child
        else:
            self.children[slot] = child

    def is_active(self, child: Child) -> bool:
        return not child.quiescing and child.generation == self.generation

    def graceful_restart(self, *, mark_quiescing: bool = True) -> None:
        """Generation + 1; old children finish their work and exit."""
        self.generation += 1
        self.state.note_graceful_restart()
        for child in self.children.values():
            child.quiescing = mark_quiescing
            child.stops_in = self.stop_delay

    def snapshot(self, load: int) -> ScoreboardSnapshot:
        tpc = self.cfg.threads_per_child
        procs = {}
        left = load
        for slot in sorted(self.children):
            child = self.children[slot]
            if child.quiescing:
                statuses = [SERVER_GRACEFUL] * tpc
            elif child.generation != self.generation:
                # Told to stop by the restart but not marked quiescing yet:
                # its idle threads must not count (they are leaving).
                statuses = [SERVER_READY] * tpc
            elif child.age == 0:
                statuses = [SERVER_STARTING] * tpc
            else:
                # The worker MPM listener accepts only with an idle worker, so
                # load fills children in turn.
                busy = min(left, tpc)
                left -= busy
                statuses = [SERVER_BUSY_WRITE] * busy + [SERVER_READY] * (tpc - busy)
            procs[slot] = process(slot, child.pid, statuses, generation=child.generation,
                                  quiescing=child.quiescing, thread_limit=self.cfg.thread_limit)
        return board(self.cfg, procs, self.generation)

    def step(self, load: int) -> Step:
        # Time passes: stopping children run down and are reaped.
        for slot, child in list(self.children.items()):
            child.age += 1
            if child.stops_in is not None:
                child.stops_in -= 1
                if child.stops_in <= 0:
                    del self.children[slot]
                    out = child_exited(self.state, slot, child.pid, child.generation,
                                       self.generation, 0, None, True)
                    assert out == []
        for slot, child in list(self._late.items()):
            child.age += 1
            if child.age > 0:
                self.children[slot] = self._late.pop(slot)

        pending = len(self._late)
        actions = idle_server_maintenance(self.snapshot(load), self.cfg, self.state,
                                          pending=frozenset(self._late))
        for action in actions:
            if isinstance(action, Spawn):
                self._fork(action.slot)
            elif isinstance(action, StopChild):
                child = self.children[action.slot]
                assert child.pid == action.pid
                assert self.is_active(child), "asked a child that is already stopping"
                child.quiescing = True
                child.stops_in = self.stop_delay

        live = len(self.children) + len(self._late)
        active = sum(1 for c in self.children.values() if self.is_active(c)) + len(self._late)
        step = Step(len(self.history), actions, live, active, live - active,
                    self.state.spawn_rate, pending)
        self.history.append(step)
        # The invariants, every second.
        assert live <= self.cfg.server_limit, step
        assert active <= self.limit, step
        assert len(step.stops) <= 1, step
        return step

    def run(self, loads) -> list[Step]:
        return [self.step(load) for load in loads]

    def messages(self, level: str | None = None) -> list[str]:
        return [log.message for s in self.history for log in s.logs
                if level is None or log.level == level]


def count(messages: list[str], fragment: str) -> int:
    return sum(1 for m in messages if fragment in m)


# A small server whose spawn rate can reach MAX_SPAWN_RATE: 4 threads per
# child, 80 active children at most, room for 20 stopping ones.
def big_cfg(**kw):
    base = dict(server_limit=100, threads_per_child=4, max_request_workers=320,
                min_spare_threads=8, max_spare_threads=13, start_servers=3)
    base.update(kw)
    return make_cfg(**base)


# --------------------------------------------------------------------------
# Scenarios


def test_burst_spawn_rate_doubles_to_max_then_stops_at_max_request_workers():
    sim = Sim(big_cfg())
    sim.start(3)
    steps = sim.run([320] * 12)

    assert [len(s.spawns) for s in steps[:8]] == [1, 2, 4, 8, 16, 32, 14, 0]
    assert [s.active for s in steps[:8]] == [4, 6, 10, 18, 34, 66, 80, 80]
    # New children go into the lowest free slots.
    assert [a.slot for a in steps[0].spawns] == [3]
    assert [a.slot for a in steps[1].spawns] == [4, 5]
    # "server seems busy" at rate >= 8 only, with the real numbers.
    busy = [(s.second, m) for s in steps for m in [l.message for l in s.logs]
            if "server seems busy" in m]
    assert [sec for sec, _ in busy] == [3, 4, 5, 6]
    assert "spawning 8 children, there are around 0 idle threads, 10 active children, " \
           "and 0 children that are shutting down" in busy[0][1]
    assert "spawning 14 children" in busy[3][1]
    # At the limit: logged once, not every second; the rate falls back to 1.
    assert count(sim.messages("error"), "server reached MaxRequestWorkers setting") == 1
    assert steps[7].logs[0].message.startswith("server reached MaxRequestWorkers")
    assert steps[-1].spawn_rate_after == 1
    assert count(sim.messages(), "scoreboard is full") == 0


def test_spawn_rate_stops_doubling_at_max_spawn_rate():
    cfg = make_cfg(server_limit=200, threads_per_child=1, max_request_workers=200,
                   min_spare_threads=100, max_spare_threads=102)
    state = MaintenanceState(spawn_rate=MAX_SPAWN_RATE)
    actions = idle_server_maintenance(board(cfg, {}), cfg, state)
    assert [a.slot for a in actions if isinstance(a, Spawn)] == list(range(32))
    assert state.spawn_rate == MAX_SPAWN_RATE == 32


def test_near_max_request_workers_variant_when_some_threads_idle():
    sim = Sim(big_cfg())
    sim.start(3)
    sim.run([316] * 10)  # 4 idle threads (< MinSpareThreads) at the limit
    errors = sim.messages("error")
    assert errors == ["server is within MinSpareThreads of MaxRequestWorkers, "
                      "consider raising the MaxRequestWorkers setting"]


def test_maxed_out_log_is_repeated_only_after_going_back_below_the_limit():
    sim = Sim(big_cfg(), stop_delay=1)
    sim.start(3)
    sim.run([320] * 10)
    assert count(sim.messages(), "reached MaxRequestWorkers") == 1
    sim.run([0] * 5)                      # some children stopped: below the limit
    assert sim.history[-1].active < sim.limit
    sim.run([320] * 15)
    assert sim.history[-1].active == sim.limit
    assert count(sim.messages(), "reached MaxRequestWorkers") == 2


@pytest.mark.parametrize("per_second", [10, 25, 50])
def test_ramp_keeps_spare_threads_without_overshoot(per_second):
    # Apache's defaults: 25 threads per child, spares between 75 and 250.
    cfg = make_cfg()
    sim = Sim(cfg)
    sim.start(3)
    loads = list(range(0, 401, per_second))
    steps = sim.run(loads)
    limit_reached = False
    for s, load in zip(steps, loads):
        spare = s.active * cfg.threads_per_child - load   # counting this second's forks
        limit_reached = limit_reached or s.active == sim.limit
        if not limit_reached:
            # At most one second of load behind MinSpareThreads ...
            assert spare >= cfg.min_spare_threads - per_second, (s, load)
        # ... and never so far ahead that a child gets stopped again.
        assert spare <= cfg.max_spare_threads, (s, load)
    assert not any(s.stops for s in steps)
    assert steps[-1].active == sim.limit
    assert count(sim.messages("error"), "within MinSpareThreads of MaxRequestWorkers") == 1
    if per_second < cfg.threads_per_child * 2:
        assert count(sim.messages(), "server seems busy") == 0


def test_drop_to_zero_stops_one_child_at_a_time_down_to_the_spare_band():
    cfg = big_cfg()
    sim = Sim(cfg, stop_delay=3)
    sim.start(3)
    sim.run([320] * 10)
    assert sim.history[-1].active == 80
    steps = sim.run([0] * 400)
    before = sim.history[-len(steps) - 1]
    for s in steps:
        if s.stops:
            assert s.spawn_rate_after == 1
            # While the free slots (ServerLimit - live) could not absorb a
            # full set of active children, one child stops at a time.
            if cfg.server_limit - before.live <= sim.limit:
                assert s.stopping == 1, s
        assert not s.spawns
        before = s
    # Apache picks the last active child.
    first = next(s for s in steps if s.stops)
    assert first.stops[0].slot == 79
    final = steps[-1]
    idle = final.active * cfg.threads_per_child
    assert cfg.min_spare_threads <= idle <= cfg.max_spare_threads
    assert final.stopping == 0


def test_drop_to_zero_with_room_in_the_scoreboard_stops_one_child_every_second():
    cfg = big_cfg(server_limit=200)  # 120 free slots after 80 active > 80
    sim = Sim(cfg, stop_delay=5)
    sim.start(3)
    sim.run([320] * 10)
    steps = sim.run([0] * 10)
    assert [len(s.stops) for s in steps] == [1] * 10
    assert [s.stops[0].slot for s in steps] == list(range(79, 69, -1))
    assert steps[-1].stopping == 5


@pytest.mark.parametrize("server_limit, second_stop", [(80, None), (100, StopChild(8, 108))])
def test_stop_is_not_repeated_while_the_child_has_not_marked_itself_quiescing(
        server_limit, second_stop):
    cfg = big_cfg(server_limit=server_limit)
    procs = {i: process(i, 100 + i, [SERVER_READY] * 4) for i in range(10)}
    state = MaintenanceState()
    first = idle_server_maintenance(board(cfg, procs), cfg, state)
    assert first == [StopChild(9, 109)]
    # Same scoreboard a second later: the child is still finishing a request.
    # It counts as stopping: never asked twice; another child is asked only
    # when the free slots could absorb a full set of active children.
    second = [a for a in idle_server_maintenance(board(cfg, procs), cfg, state)
              if isinstance(a, StopChild)]
    assert second == ([second_stop] if second_stop else [])
    # Once it has exited and the slot is reused, the slot is a normal child again.
    procs = {i: process(i, 100 + i, [SERVER_READY] * 4) for i in range(9)}
    procs[9] = process(9, 555, [SERVER_READY] * 4)
    state = MaintenanceState(stop_requested={9: 109})
    assert idle_server_maintenance(board(cfg, procs), cfg, state) == [StopChild(9, 555)]


def test_pending_forks_are_not_doubled():
    cfg = big_cfg()
    sim = Sim(cfg, late_pids=True)
    sim.start(3)
    steps = sim.run([320] * 100)
    # A pending slot is never spawned into again (Sim._fork asserts), and
    # pending children count as active (Sim.step asserts the limit) ...
    assert steps[-1].live == steps[-1].active == 80
    assert sum(len(s.spawns) for s in steps) == 77
    # ... and as idle: when their threads cover MinSpareThreads, no spawn.
    covered = [s for s in steps if s.pending * cfg.threads_per_child >= cfg.min_spare_threads]
    assert covered
    assert all(not s.spawns for s in covered)
    # Slow forks slow the growth (starting children count as idle, as in
    # Apache), but it still grows at least one child a second.
    assert next(s.second for s in steps if s.active == 80) <= 77


def test_pending_slot_counts_as_idle_starting_child():
    cfg = big_cfg()
    procs = {0: process(0, 100, [SERVER_BUSY_WRITE] * 4)}
    state = MaintenanceState()
    # One pending child brings 4 "idle" threads: still below 8, so one more spawn,
    # never into the pending slot.
    assert idle_server_maintenance(board(cfg, procs), cfg, state,
                                   pending=frozenset({1})) == [Spawn(2)]
    state = MaintenanceState()
    assert idle_server_maintenance(board(cfg, procs), cfg, state,
                                   pending=frozenset({1, 2})) == []


def test_graceful_restart_old_generation_not_idle_hold_off_then_doubling():
    cfg = big_cfg()
    sim = Sim(cfg, stop_delay=60)  # old children linger a minute (long requests)
    sim.start(3)
    sim.run([0] * 3)
    assert sim.history[-1].active == 3
    old_slots = set(sim.children)

    sim.graceful_restart(mark_quiescing=False)  # old gen, not (yet) marked quiescing
    steps = sim.run([320] * 16)
    # The old children have idle threads but count for nothing.
    assert steps[0].active == 1 and steps[0].stopping == 3
    # New children take free slots, never the old ones'.
    spawned = [a.slot for s in steps for a in s.spawns]
    assert not old_slots & set(spawned)
    assert spawned[:3] == [3, 4, 5]
    # Hold-off: one a second for ten cycles, then doubling resumes.
    assert [len(s.spawns) for s in steps] == [1] * 10 + [1, 2, 4, 8, 16, 32]
    assert sim.state.hold_off_on_exponential_spawning == 0


def test_slot_shortage_after_graceful_restart_still_reaches_active_limit():
    # 10 active children allowed, 20 slots: the stopping generation may hold 10.
    cfg = make_cfg(server_limit=20, threads_per_child=4, max_request_workers=40,
                   min_spare_threads=8, max_spare_threads=13)
    sim = Sim(cfg, stop_delay=30)
    sim.start(3)
    sim.run([40] * 6)
    assert sim.history[-1].active == 10
    sim.graceful_restart()
    steps = sim.run([40] * 25)
    assert any(s.active == 10 and s.stopping == 10 for s in steps)
    assert max(s.live for s in steps) == 20
    assert count(sim.messages(), "scoreboard is full") == 0
    assert count(sim.messages(), "reached MaxRequestWorkers") >= 1


def test_scoreboard_full_logged_only_when_every_slot_is_taken_and_once():
    cfg = make_cfg(server_limit=12, threads_per_child=4, max_request_workers=40,
                   min_spare_threads=8, max_spare_threads=13)
    sim = Sim(cfg, stop_delay=15)
    sim.start(3)
    sim.run([40] * 6)
    sim.graceful_restart()
    steps = sim.run([40] * 8)
    full_at = [s.second for s in steps if any("scoreboard is full" in l.message for l in s.logs)]
    assert len(full_at) == 1
    at = sim.history[full_at[0]]
    assert at.live == 12 and at.active == 2 and not at.spawns
    # Before it, the log never came while a slot was free.
    for s in steps:
        if s.second < full_at[0]:
            assert s.live < 12 or s.spawns
    # Old children go away: new ones fill their slots up to the active limit,
    # still never more than ServerLimit (checked every step).
    steps = sim.run([40] * 30)
    assert steps[-1].active == 10 and steps[-1].stopping == 0
    assert count(sim.messages(), "scoreboard is full") == 1


def test_scoreboard_full_is_logged_again_only_after_a_slot_was_free():
    cfg = make_cfg(server_limit=4, threads_per_child=4, max_request_workers=40,
                   min_spare_threads=8, max_spare_threads=13)
    busy = [SERVER_BUSY_WRITE] * 4
    full = {0: process(0, 100, busy)} | {
        i: process(i, 100 + i, [SERVER_GRACEFUL] * 4, quiescing=True) for i in (1, 2, 3)}
    state = MaintenanceState()
    logs = [idle_server_maintenance(board(cfg, full), cfg, state) for _ in range(3)]
    assert logs == [[Log("error", "scoreboard is full, not at MaxRequestWorkers. "
                                  "Increase ServerLimit.")], [], []]
    freed = {k: v for k, v in full.items() if k != 3}
    assert idle_server_maintenance(board(cfg, freed), cfg, state) == [Spawn(3)]
    assert len(idle_server_maintenance(board(cfg, full), cfg, state)) == 1


def test_no_stop_while_stopping_children_fill_the_spare_slots():
    cfg = make_cfg(server_limit=12, threads_per_child=4, max_request_workers=40,
                   min_spare_threads=8, max_spare_threads=13)
    # 6 active all idle (24 > 13), 1 already stopping, 12 - 7 = 5 free <= 10.
    procs = {i: process(i, 100 + i, [SERVER_READY] * 4) for i in range(6)}
    procs[6] = process(6, 106, [SERVER_GRACEFUL] * 4, quiescing=True)
    state = MaintenanceState(spawn_rate=4)
    actions = idle_server_maintenance(board(cfg, procs), cfg, state)
    assert not any(isinstance(a, StopChild) for a in actions)
    assert state.spawn_rate == 1
    # No child stopping: one is asked.
    del procs[6]
    actions = idle_server_maintenance(board(cfg, procs), cfg, MaintenanceState())
    assert actions == [StopChild(5, 105)]


def test_idle_counting_rules():
    cfg = make_cfg(server_limit=8, threads_per_child=4, max_request_workers=32,
                   min_spare_threads=8, max_spare_threads=20)
    cfg.thread_limit = 6
    B, R, S, D = SERVER_BUSY_WRITE, SERVER_READY, SERVER_STARTING, SERVER_DEAD
    procs = {
        # DEAD/STARTING/READY are idle (3); records past ThreadsPerChild ignored.
        0: process(0, 100, [D, S, R, B, R, R], generation=1),
        1: process(1, 101, [R] * 6, generation=0),                  # old generation
        2: process(2, 102, [R] * 6, generation=1, quiescing=True),   # stopping
        3: process(3, 103, [R] * 6, generation=1, not_accepting=True),
        4: process(4, 104, [B, B, B, R, R, R], generation=1),       # 1 idle
    }
    state = MaintenanceState()
    # idle = 3 + 1 = 4 < 8 (the child not accepting offers none): spawn;
    # active = 3 (slots 0, 3, 4).
    actions = idle_server_maintenance(board(cfg, procs, generation=1), cfg, state)
    assert actions == [Spawn(5)]
    state = MaintenanceState(spawn_rate=32)
    actions = idle_server_maintenance(board(cfg, procs, generation=1), cfg, state)
    # 8 active allowed, 3 active: 3 free slots (5, 6, 7) bound the spawn.
    assert [a for a in actions if isinstance(a, Spawn)] == [Spawn(5), Spawn(6), Spawn(7)]


def test_spare_band_resets_spawn_rate():
    cfg = big_cfg()
    procs = {i: process(i, 100 + i, [SERVER_READY] * 4) for i in range(3)}
    state = MaintenanceState(spawn_rate=16)
    assert idle_server_maintenance(board(cfg, procs), cfg, state) == []
    assert state.spawn_rate == 1


# --------------------------------------------------------------------------
# Child-exit policy


def test_fatal_child_of_a_server_that_never_served_shuts_the_master_down():
    state = MaintenanceState()
    out = child_exited(state, 2, 4242, 5, 5, EXIT_CHILDFATAL, None, False, report="Traceback...\nSyntaxError: x")
    assert isinstance(out[-1], Shutdown)
    assert out[0] == Log("error", "Traceback...\nSyntaxError: x")  # the child's report, logged by the master
    assert out[1] == Log("error", out[1].message)
    assert "Child 4242 returned a Fatal error" in out[1].message
    assert "mpmserver is exiting!" in out[1].message
    assert not any(isinstance(a, Spawn) for a in out)


def test_fatal_child_of_previous_generation_is_ignored():
    state = MaintenanceState(spawn_rate=8)
    state.note_child_ready()
    out = child_exited(state, 2, 4242, 4, 5, EXIT_CHILDFATAL, None, True)
    assert not any(isinstance(a, Shutdown) for a in out)
    assert [a.level for a in out] == ["warn"]
    assert "previous generation (pid 4242)" in out[0].message
    assert state.spawn_rate == 1


def test_sick_child_slows_spawning_or_shuts_down_if_none_ever_started():
    state = MaintenanceState(spawn_rate=16)
    out = child_exited(state, 0, 10, 0, 0, EXIT_CHILDSICK, None, False)
    assert isinstance(out[-1], Shutdown) and "before any child process initialized" \
        in out[-1].reason
    assert state.spawn_rate == 1

    state = MaintenanceState(spawn_rate=16)
    state.note_child_ready()
    assert child_exited(state, 0, 10, 0, 0, EXIT_CHILDSICK, None, False) == []
    assert state.spawn_rate == 1


def test_maintenance_notices_a_child_that_became_ready():
    cfg = big_cfg()
    state = MaintenanceState()
    procs = {0: process(0, 100, [SERVER_STARTING] * 4)}
    idle_server_maintenance(board(cfg, procs), cfg, state)
    assert not state.child_ever_ready
    procs = {0: process(0, 100, [SERVER_READY, SERVER_BUSY_WRITE, SERVER_READY, SERVER_READY])}
    idle_server_maintenance(board(cfg, procs), cfg, state)
    assert state.child_ever_ready
    assert child_exited(state, 0, 100, 0, 0, EXIT_CHILDSICK, None, False) == []


def test_killed_three_in_a_row_are_replaced_at_once_the_fourth_is_not():
    state = MaintenanceState()
    outs = [child_exited(state, 4, 100 + i, 0, 0, None, SIGSEGV, False, serving=True) for i in range(5)]
    assert outs[:3] == [[Spawn(4)]] * 3
    assert not any(isinstance(a, Spawn) for a in outs[3] + outs[4])
    assert outs[3][0].level == "warn"
    assert "children are killed successively!" in outs[3][0].message
    assert outs[4] == []  # not logged every time
    logged = [child_exited(state, 4, 1, 0, 0, None, SIGSEGV, False, serving=True) for _ in range(10)]
    assert sum(1 for o in logged if o) == 1  # the 14th kill is logged again


def test_a_clean_exit_resets_the_kill_run_an_exit_with_a_code_is_a_crash():
    state = MaintenanceState()
    for _ in range(3):
        child_exited(state, 4, 100, 0, 0, None, SIGSEGV, False, serving=True)
    assert child_exited(state, 4, 101, 0, 0, 0, None, False, serving=True) == [Spawn(4)]
    assert child_exited(state, 4, 102, 0, 0, None, SIGSEGV, False, serving=True) == [Spawn(4)]
    for _ in range(2):
        assert child_exited(state, 4, 103, 0, 0, 1, None, False, serving=True) == [Spawn(4)]
    out = child_exited(state, 4, 104, 0, 0, 1, None, False, serving=True)  # the 4th crash in a row
    assert not any(isinstance(a, Spawn) for a in out)
    assert "child pid 104 exited with status 1, 4 in a row" in out[0].message


def test_a_quiet_second_resets_the_kill_run():
    cfg = big_cfg()
    state = MaintenanceState()
    for _ in range(4):
        child_exited(state, 0, 100, 0, 0, None, SIGSEGV, False, serving=True)
    procs = {1: process(1, 101, [SERVER_READY] * 4), 2: process(2, 102, [SERVER_READY] * 4)}
    idle_server_maintenance(board(cfg, procs), cfg, state)  # exits were reaped this second
    assert state.killed_in_a_row == 4
    idle_server_maintenance(board(cfg, procs), cfg, state)  # a second with no exit
    assert state.killed_in_a_row == 0
    assert child_exited(state, 0, 103, 0, 0, None, SIGSEGV, False, serving=True) == [Spawn(0)]


def test_children_killed_on_our_orders_or_old_generation_are_not_replaced():
    state = MaintenanceState()
    assert child_exited(state, 1, 100, 0, 0, None, 9, True) == []
    assert child_exited(state, 1, 100, 0, 1, None, 9, False) == []
    assert state.killed_in_a_row == 0


def test_a_child_that_exits_on_its_own_is_replaced_at_once():
    # Recycled (exit 0) or crashed with a code: its slot is forked into
    # as soon as it is reaped, not at the next maintenance second.
    state = MaintenanceState()
    assert child_exited(state, 3, 100, 0, 0, 0, None, False, serving=True) == [Spawn(3)]
    assert child_exited(state, 3, 101, 0, 0, 2, None, False, serving=True) == [Spawn(3)]  # a crash
    # Not one the master stopped, nor one of an older generation.
    assert child_exited(state, 3, 102, 0, 0, 0, None, True, serving=True) == []
    assert child_exited(state, 3, 103, 0, 1, 0, None, False, serving=True) == []


def test_fork_storm_is_throttled_to_one_spawn_a_second():
    """Children that segfault on start: after 3 instant replacements, one a second."""
    cfg = big_cfg()
    state = MaintenanceState()
    spawned_per_second = []
    pid = 1000
    for second in range(12):
        forks = 0
        queue = [a.slot for a in idle_server_maintenance(board(cfg, {}), cfg, state)
                 if isinstance(a, Spawn)]
        # Every child forked dies of SIGSEGV within the second; the policy may
        # replace it at once.
        while queue:
            slot = queue.pop()
            forks += 1
            pid += 1
            assert forks < 100, "fork storm"
            queue += [a.slot for a in child_exited(state, slot, pid, 0, 0, None, SIGSEGV, False)
                      if isinstance(a, Spawn)]
        spawned_per_second.append(forks)
    # 1, then 2 + 1 replacement... bounded; once the run of kills is long, 1 a second.
    assert spawned_per_second[-6:] == [1] * 6
    assert max(spawned_per_second) <= 1 + 3
    assert state.spawn_rate <= 2


def test_fatal_exit_of_a_child_that_was_serving_is_an_ordinary_crash():
    # The app's own os._exit(15) mid-request: not "could not start".
    state = MaintenanceState()
    for _ in range(3):
        child_exited(state, 2, 4242, 5, 5, None, SIGSEGV, False, serving=True)
    out = child_exited(state, 2, 4243, 5, 5, EXIT_CHILDFATAL, None, False, serving=True)
    assert "exited with status 15, 4 in a row" in out[0].message  # a crash, under the storm guard
    assert state.killed_in_a_row == 4
    # The same exit before the child served is still fatal while no child ever served.
    out = child_exited(state, 2, 4244, 5, 5, EXIT_CHILDFATAL, None, False, serving=False)
    assert isinstance(out[-1], Shutdown)


@pytest.mark.parametrize("code, sig, stopping, serving, expected", [
    (None, SIGSEGV, False, True, "child pid 7 exit signal Segmentation fault (11)"),
    (None, SIGKILL, False, False, "child pid 7 exit signal Killed (9)"),
    (3, None, False, True, "child pid 7 exit status 3"),
    (3, None, False, False, "child pid 7 exit status 3"),
    (EXIT_CHILDFATAL, None, False, True, "child pid 7 exit status 15"),
    (EXIT_CHILDSICK, None, False, True, "child pid 7 exit status 7"),
    (EXIT_CHILDFATAL, None, False, False, None),  # child_exited() says "Fatal error"
    (0, None, False, True, None),                 # recycled: MaxConnectionsPerChild...
    (None, SIGSEGV, True, True, None),            # told to stop: its exit is expected
    (None, SIGKILL, True, True, None),            # killed on our orders
    (3, None, True, True, None),
])
def test_exit_notice_reports_exits_the_master_did_not_ask_for(code, sig, stopping, serving,
                                                               expected):
    out = exit_notice(7, code, sig, stopping=stopping, serving=serving)
    assert out == ([Log("warn", expected)] if expected else [])


@pytest.mark.parametrize("exitcode, sig, recorded, request_timeout, expected", [
    (0, None, 0, False, None),  # stopped by the master: idle maintenance, a restart
    (0, None, RECYCLE_CONNECTIONS, False, "connections"),
    (0, None, RECYCLE_REQUESTS, False, "requests"),
    (0, None, RECYCLE_MEMORY, False, "memory"),
    (0, None, 0, True, "request_timeout"),  # finished its hung request, then exited
    (None, SIGKILL, 0, True, "request_timeout"),  # killed after the grace
    (0, None, RECYCLE_MEMORY, True, "request_timeout"),  # the master's word explains it
    (None, SIGSEGV, 0, False, "crash"),
    (None, SIGKILL, RECYCLE_REQUESTS, False, "crash"),  # died while recycling
    (3, None, 0, False, "crash"),  # the app's os._exit(3)
    (3, None, RECYCLE_CONNECTIONS, False, "crash"),
    (EXIT_CHILDFATAL, None, 0, False, "crash"),  # could not start
])
def test_exit_cause(exitcode, sig, recorded, request_timeout, expected):
    """The cause a child's exit is counted under (the metrics' recycles and
    crashes; tests/server/test_metrics_lifecycle.py checks each end to end)."""
    assert exit_cause(exitcode, sig, recorded, request_timeout=request_timeout) == expected
    assert expected is None or expected in EXIT_CAUSES


# --------------------------------------------------------------------------
# RequestTimeout, driven by a clock


T0 = 1_700_000_000.0  # wall clock when the slow request began


def running(start: float, request: str = "GET /slow HTTP/1.1", client: str = "10.0.0.1",
            status: int = SERVER_BUSY_WRITE) -> WorkerSnapshot:
    """A worker in the middle of a request that began at ``start``."""
    return replace(worker(status), start_time=start, stop_time=start - 1.0, request=request,
                   client=client)


def finished(start: float) -> WorkerSnapshot:
    return replace(worker(SERVER_READY), start_time=start, stop_time=start + 0.5,
                   request="GET /done HTTP/1.1")


def with_workers(slot: int, pid: int, workers: list[WorkerSnapshot]) -> ProcessSnapshot:
    return replace(process(slot, pid, [SERVER_READY] * len(workers)), workers=tuple(workers))


def timeout_cfg(request_timeout=10.0, graceful_shutdown_timeout=0.0):
    cfg = make_cfg(server_limit=4, threads_per_child=3, max_request_workers=12,
                   min_spare_threads=1, max_spare_threads=12)
    cfg.request_timeout = request_timeout
    cfg.graceful_shutdown_timeout = graceful_shutdown_timeout
    return cfg


def run_hung_clock(cfg, seconds, procs_at, children_at):
    """Call hung_requests() once a second; {second: actions} for the seconds with any."""
    state = MaintenanceState()
    out = {}
    for sec in seconds:
        actions = hung_requests(board(cfg, procs_at(sec)), cfg, state, children_at(sec),
                                now=T0 + sec, clock=1000.0 + sec)
        if actions:
            out[sec] = actions
    return out, state


def test_hung_request_stops_its_child_then_kills_it_after_the_grace():
    cfg = timeout_cfg(request_timeout=10, graceful_shutdown_timeout=0)

    def procs(sec):
        # Once told to stop, the master marks the running request G; the
        # other child's requests are short.
        slow = running(T0, status=SERVER_GRACEFUL if sec > 11 else SERVER_BUSY_WRITE)
        return {0: with_workers(0, 100, [finished(T0), slow, worker(SERVER_READY)]),
                1: with_workers(1, 101, [running(T0 + sec - 2), finished(T0)] + [worker(SERVER_READY)])}

    out, _ = run_hung_clock(cfg, range(30), procs, lambda sec: {100: 0, 101: 1})
    # Stopped gracefully once its request has run more than RequestTimeout ...
    assert out[11] == [
        Log("error", "RequestTimeout: request 'GET /slow HTTP/1.1' from 10.0.0.1 on child pid 100 "
                     "thread 1 has run 11.0s (RequestTimeout 10s); stopping the child gracefully"),
        StopChild(0, 100)]
    # ... killed when the grace (max(GracefulShutdownTimeout, RequestTimeout)) has
    # passed, and again every second until the master reaps it.
    kill = [Log("error", "child pid 100 did not finish its hung request, killing it"),
            SignalChild(100, SIGKILL)]
    assert {sec: a for sec, a in out.items() if sec != 11} == {sec: kill for sec in range(22, 30)}


def test_the_grace_is_graceful_shutdown_timeout_when_longer():
    cfg = timeout_cfg(request_timeout=2, graceful_shutdown_timeout=30)
    out, _ = run_hung_clock(cfg, range(40), lambda sec: {0: with_workers(0, 100, [running(T0)])},
                            lambda sec: {100: 0})
    assert [sec for sec, actions in out.items() if StopChild(0, 100) in actions] == [3]
    assert min(sec for sec, actions in out.items() if SignalChild(100, SIGKILL) in actions) == 34


def test_a_hung_child_reaped_before_the_grace_is_not_killed_and_forgotten():
    cfg = timeout_cfg(request_timeout=10)
    out, state = run_hung_clock(
        cfg, range(40),
        lambda sec: {0: with_workers(0, 100, [running(T0)])} if sec < 15 else {},
        lambda sec: {100: 0} if sec < 15 else {})
    assert list(out) == [11]  # the stop; no kill for a pid that is gone
    assert state.hung_stopped == {}


def test_a_reused_slot_is_judged_by_its_new_child():
    cfg = timeout_cfg(request_timeout=10)
    young = with_workers(0, 200, [running(T0 + 20)])  # slot 0 again, a new child, new request

    def procs(sec):
        return {0: with_workers(0, 100, [running(T0)])} if sec < 15 else {0: young}

    out, state = run_hung_clock(cfg, range(40), procs,
                                lambda sec: {100: 0} if sec < 15 else {200: 0})
    # Child 100 was stopped at 11 and reaped; its slot's new child 200 is
    # neither killed for it nor stopped before its own request runs too long.
    assert [(sec, [a for a in actions if not isinstance(a, Log)]) for sec, actions in out.items()] \
        == [(11, [StopChild(0, 100)]), (31, [StopChild(0, 200)])]
    assert state.hung_stopped == {200: 1031.0}


def test_a_record_of_another_pid_is_not_held_against_the_child():
    # The master's child 100 is in slot 0, but the record shows another pid
    # (written by a process that is not this child): nothing is stopped.
    cfg = timeout_cfg(request_timeout=10)
    out, _ = run_hung_clock(cfg, range(30), lambda sec: {0: with_workers(0, 300, [running(T0)])},
                            lambda sec: {100: 0})
    assert out == {}


def test_what_is_not_a_hung_request():
    cfg = timeout_cfg(request_timeout=10)
    cfg.thread_limit = 5
    old = T0 - 3600
    workers = [
        finished(old),                                  # ended long ago
        replace(running(old), status=SERVER_READY),     # idle, stale times
        replace(running(old), start_time=0.0),          # no request yet
        running(T0 + 25),                               # running, but only 5 s
        running(old),                                   # past ThreadsPerChild: not a thread
    ]
    state = MaintenanceState()
    snap = board(cfg, {0: with_workers(0, 100, workers)})
    assert hung_requests(snap, cfg, state, {100: 0}, now=T0 + 30, clock=0.0) == []
    # RequestTimeout 0 (the default) checks nothing.
    cfg.request_timeout = 0
    snap = board(cfg, {0: with_workers(0, 100, [running(old)])})
    assert hung_requests(snap, cfg, state, {100: 0}, now=T0, clock=0.0) == []


@pytest.mark.parametrize("status", [SERVER_BUSY_READ, SERVER_BUSY_WRITE, SERVER_GRACEFUL])
def test_a_request_running_in_any_busy_state_can_hang(status):
    cfg = timeout_cfg(request_timeout=10)
    snap = board(cfg, {0: with_workers(0, 100, [running(T0, status=status)])})
    out = hung_requests(snap, cfg, MaintenanceState(), {100: 0}, now=T0 + 11, clock=0.0)
    assert out[-1] == StopChild(0, 100)


# --------------------------------------------------------------------------
# Stopping every child, driven by a clock


def ticks(until: float, step: float) -> list[float]:
    return [i * step for i in range(int(until / step) + 1)]


def run_stop(stop: StopState, times: list[float], alive=lambda t, pid: True,
             pids=(1, 2)) -> list[tuple[float, str, int | str]]:
    """stop_step() at each of ``times``; what it sent, as (time, TERM/KILL/level, pid/message)."""
    sent = []
    for t in times:
        for a in stop_step(stop, t, [p for p in pids if alive(t, p)]):
            if isinstance(a, SignalChild):
                sent.append((t, signal.Signals(a.signal).name[3:], a.pid))
            else:
                sent.append((t, a.level, a.message))
    return sent


def signals(sent, name):
    return [(t, pid) for t, kind, pid in sent if kind == name]


def test_stop_now_terms_at_0_3_5_7_then_kills_every_second_from_9():
    sent = run_stop(StopState(), ticks(12, 0.25))
    assert signals(sent, "TERM") == [(t, pid) for t in (0, 3, 5, 7) for pid in (1, 2)]
    assert signals(sent, "KILL") == [(t, pid) for t in (9, 10, 11, 12) for pid in (1, 2)]
    # The first TERM is the stop itself; each later one is a complaint, as in Apache.
    assert [m for t, kind, m in sent if kind == "warn"] == [
        f"child process {pid} still did not exit, sending a SIGTERM"
        for _ in (3, 5, 7) for pid in (1, 2)]
    assert [m for t, kind, m in sent if kind == "error"] == [
        f"child process {pid} still did not exit, sending a SIGKILL"
        for _ in (9, 10, 11, 12) for pid in (1, 2)]
    # Each line comes just before its signal.
    assert [kind for t, kind, _ in sent if t == 3] == ["warn", "TERM", "warn", "TERM"]


def test_stop_now_signals_only_the_children_still_alive():
    sent = run_stop(StopState(), ticks(12, 0.1), alive=lambda t, pid: pid == 2 or t < 4)
    assert signals(sent, "TERM") == [(0, 1), (0, 2), (3, 1), (3, 2), (5, 2), (7, 2)]
    assert signals(sent, "KILL") == [(9, 2), (10, 2), (11, 2), (12, 2)]


def test_stop_now_with_a_slow_clock_sends_one_term_for_several_times_passed():
    sent = run_stop(StopState(), [0, 6, 6.5, 12])  # a master too busy to look more often
    assert signals(sent, "TERM") == [(0, 1), (0, 2), (6, 1), (6, 2)]
    assert signals(sent, "KILL") == [(12, 1), (12, 2)]


def test_graceful_stop_waits_graceful_shutdown_timeout_then_stops_now():
    sent = run_stop(StopState.graceful(5), ticks(15, 0.5))
    assert sent[0] == (5, "notice", "GracefulShutdownTimeout expired, stopping the remaining children")
    # From then on the schedule of a stop now, counted from the expiry.
    assert signals(sent, "TERM") == [(t, pid) for t in (5, 8, 10, 12) for pid in (1, 2)]
    assert signals(sent, "KILL") == [(t, pid) for t in (14, 15) for pid in (1, 2)]
    assert [kind for t, kind, _ in sent if t == 5] == ["notice", "TERM", "TERM"]


def test_graceful_stop_without_timeout_waits_for_ever():
    stop = StopState.graceful(0)
    assert stop.graceful_for == math.inf and stop.is_graceful
    assert run_stop(stop, ticks(3600, 10)) == []
    assert not StopState().is_graceful


# --------------------------------------------------------------------------
# Invariants on arbitrary scoreboards


@st.composite
def scoreboards(draw):
    tpc = draw(st.integers(1, 6))
    server_limit = draw(st.integers(1, 12))
    limit = draw(st.integers(1, server_limit))
    min_spare = draw(st.integers(1, 3 * tpc))
    cfg = make_cfg(server_limit=server_limit, threads_per_child=tpc,
                   max_request_workers=limit * tpc, min_spare_threads=min_spare,
                   max_spare_threads=min_spare + tpc + 1 + draw(st.integers(0, 5)))
    cfg.thread_limit = tpc + draw(st.integers(0, 2))
    generation = draw(st.integers(0, 2))
    procs = {}
    pending = set()
    for slot in range(server_limit):
        kind = draw(st.sampled_from(["free", "free", "pending", "live"]))
        if kind == "pending":
            pending.add(slot)
        elif kind == "live":
            statuses = draw(st.lists(st.integers(0, 10), min_size=cfg.thread_limit,
                                     max_size=cfg.thread_limit))
            procs[slot] = process(slot, 100 + slot, statuses,
                                  generation=draw(st.integers(max(0, generation - 1), generation)),
                                  quiescing=draw(st.booleans()),
                                  not_accepting=draw(st.booleans()))
    state = MaintenanceState(spawn_rate=draw(st.sampled_from([1, 2, 4, 8, 16, 32])),
                             hold_off_on_exponential_spawning=draw(st.integers(0, 10)),
                             killed_in_a_row=draw(st.integers(0, 6)),
                             exits_since_cycle=draw(st.integers(0, 2)))
    return cfg, board(cfg, procs, generation), state, frozenset(pending)


@settings(max_examples=300, deadline=None)
@given(scoreboards())
def test_any_scoreboard_keeps_the_limits(case):
    cfg, snap, state, pending = case
    actions = idle_server_maintenance(snap, cfg, state, pending=pending)
    spawns = [a.slot for a in actions if isinstance(a, Spawn)]
    stops = [a for a in actions if isinstance(a, StopChild)]
    by_slot = {p.slot: p for p in snap.processes}
    assert len(set(spawns)) == len(spawns)
    assert all(by_slot[s].pid == 0 and s not in pending for s in spawns)
    live = sum(1 for p in snap.processes if p.pid) + len(pending)
    assert live + len(spawns) <= cfg.server_limit
    active = sum(1 for p in snap.processes if p.pid and not p.quiescing
                 and p.generation == snap.generation) + len(pending)
    assert active + len(spawns) <= max(active, daemons_limit(cfg))
    assert len(stops) <= 1
    assert not (spawns and stops)
    for stop in stops:
        p = by_slot[stop.slot]
        assert p.pid == stop.pid and not p.quiescing and p.generation == snap.generation
    assert 1 <= state.spawn_rate <= MAX_SPAWN_RATE


# --------------------------------------------------------------------------
# FixedServers (gunicorn's -w): a fixed pool


def fixed_cfg(n: int = 2, threads: int = 4):
    from mpmserver.config import load

    cfg, warnings = load(None, [("FixedServers", [str(n)]), ("ThreadsPerChild", [str(threads)])])
    assert warnings == []
    return cfg


def test_dynamic_pool_of_2x4_grows_with_apaches_spare_thread_defaults():
    # What issue 14 saw: --start-servers 2 --threads-per-child 4 and
    # MinSpareThreads 75 grow to the most children MaxRequestWorkers allows.
    sim = Sim(make_cfg(threads_per_child=4, max_request_workers=64, start_servers=2))
    sim.start(2)
    assert sim.run([0] * 10)[-1].live > 2


@pytest.mark.parametrize("load", [0, 4, 8, 20])
def test_fixed_pool_is_never_grown_or_shrunk(load):
    sim = Sim(fixed_cfg(2, 4))
    sim.start(2)
    for step in sim.run([load] * 15):
        assert step.live == 2 and not step.spawns and not step.stops, step


def test_fixed_pool_replaces_a_recycling_child_at_once():
    sim = Sim(fixed_cfg(3, 4))
    sim.start(3)
    sim.children[1].quiescing = True     # MaxConnectionsPerChild reached
    sim.children[1].stops_in = 5
    step = sim.step(0)
    assert len(step.spawns) == 1 and step.active == 3
    assert all(s.active == 3 and not s.stops for s in sim.run([0] * 8))


def test_fixed_pool_graceful_restart_starts_the_new_generation_whole():
    sim = Sim(fixed_cfg(2, 4))
    sim.start(2)
    sim.graceful_restart()
    step = sim.step(0)
    assert len(step.spawns) == 2 and step.active == 2
    assert sim.run([0] * 5)[-1].live == 2


# --------------------------------------------------------------------------
# Retiring the old generation after a graceful restart (issue 16: restarts that lose nothing)

def _retirement_board(cfg, kids):
    """kids: (slot, pid, generation, started)."""
    tpc = cfg.threads_per_child
    return board(cfg, {slot: process(slot, pid, [SERVER_READY if started else SERVER_STARTING] * tpc,
                                      generation=gen, thread_limit=cfg.thread_limit)
                       for slot, pid, gen, started in kids}, generation=1)


def _retire(kids, stopping=0):
    cfg = make_cfg(server_limit=6, threads_per_child=2)
    return retire_generation(_retirement_board(cfg, kids), cfg.threads_per_child, 1,
                    [(pid, slot, gen) for slot, pid, gen, _ in kids], stopping=stopping)


def test_retirement_keeps_the_old_generation_until_the_new_one_has_started():
    # The new children are still importing the app: the old ones keep accepting.
    assert _retire([(0, 100, 0, True), (1, 101, 0, True), (2, 102, 1, False), (3, 103, 1, True)]) == []
    # Every new child started: every old one stops, one still starting included.
    assert _retire([(0, 100, 0, True), (1, 101, 0, False), (2, 102, 1, True), (3, 103, 1, True)]) == \
        [StopChild(0, 100), StopChild(1, 101)]


def test_retirement_makes_room_one_step_at_a_time_when_no_new_child_has_a_slot():
    # No slot for the new generation: the old children still starting go first...
    assert _retire([(0, 100, 0, True), (1, 101, 0, False)]) == [StopChild(1, 101)]
    # ... else one that serves, and nothing while a stopping child will free a slot.
    assert _retire([(0, 100, 0, True), (1, 101, 0, True)]) == [StopChild(1, 101)]
    assert _retire([(0, 100, 0, True)], stopping=1) == []
    # A record that is another process's (the slot was reused) is not "started".
    cfg = make_cfg(server_limit=6, threads_per_child=2)
    snap = _retirement_board(cfg, [(0, 999, 1, True)])
    assert retire_generation(snap, 2, 1, [(100, 0, 0)], stopping=0) == [StopChild(0, 100)]
