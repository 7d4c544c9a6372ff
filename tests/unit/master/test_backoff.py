"""The back-off of children that cannot start (master/backoff.py), and the
policy around it (maintenance.child_exited / child_started /
idle_server_maintenance): a broken app never stops a server that serves."""

from __future__ import annotations

from mpmserver.master.actions import Log, RestartOutcome, Shutdown, Spawn
from mpmserver.master.backoff import MAX_DELAY, Backoff
from mpmserver.master.maintenance import (
    MaintenanceState,
    child_exited,
    child_started,
    idle_server_maintenance,
)
from mpmserver.scoreboard import EXIT_CHILDFATAL, SERVER_READY

from .test_maintenance import board, make_cfg, process

TRACEBACK = "child 1: failed to load the WSGI app 'app:app'\nTraceback ...\nSyntaxError: '(' was never closed"


def test_delays_double_from_one_second_to_sixty_and_each_step_is_new_once():
    b = Backoff()
    steps = [b.failed(now=100.0) for _ in range(9)]
    assert [d for d, _ in steps] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert [new for _, new in steps] == [True] * 7 + [False, False]
    assert b.retry_at == 100.0 + MAX_DELAY


def test_no_fork_before_the_delay_then_one_child_at_a_time():
    b = Backoff()
    assert b.spawn_budget(0.0, starting=False) is None and b.wake_at() is None  # not backing off
    b.failed(now=10.0)
    assert b.wake_at() == 11.0
    assert b.spawn_budget(10.5, starting=False) == 0
    assert b.spawn_budget(11.0, starting=False) == 1
    assert b.spawn_budget(11.0, starting=True) == 0  # the child tried is still starting
    assert b.started() == 1 and not b.active
    assert b.spawn_budget(11.0, starting=False) is None


def served_state() -> MaintenanceState:
    state = MaintenanceState()
    state.note_child_ready()
    return state


def test_a_replacement_that_cannot_start_is_retried_not_fatal():
    state = served_state()
    out = child_exited(state, 1, 501, 0, 0, EXIT_CHILDFATAL, None, False, now=50.0, report=TRACEBACK)
    assert not any(isinstance(a, (Shutdown, Spawn)) for a in out)
    assert out[0] == Log("error", TRACEBACK)  # the traceback, once
    assert "a new child is tried in 1 s" in out[1].message and "other children serve on" in out[1].message
    out = child_exited(state, 1, 502, 0, 0, EXIT_CHILDFATAL, None, False, now=51.0, report=TRACEBACK)
    assert [a.message for a in out if isinstance(a, Log)] == [out[0].message]  # no second traceback
    assert "tried in 2 s" in out[0].message
    # A crash before serving (a signal) is a failed start too.
    out = child_exited(state, 1, 503, 0, 0, None, 11, False, now=53.0)
    assert "was killed by signal" in out[0].message and "tried in 4 s" in out[0].message
    assert state.backoff.failures == 3


def test_maintenance_holds_forks_during_the_back_off_then_tries_one():
    cfg = make_cfg(server_limit=4, threads_per_child=4, max_request_workers=16, min_spare_threads=4,
                   max_spare_threads=16, fixed_servers=3)
    state = served_state()
    procs = {0: process(0, 100, [SERVER_READY] * 4)}
    assert [a for a in idle_server_maintenance(board(cfg, procs), cfg, state, now=0.0)
            if isinstance(a, Spawn)] == [Spawn(1), Spawn(2)]
    child_exited(state, 1, 501, 0, 0, EXIT_CHILDFATAL, None, False, now=10.0)
    assert idle_server_maintenance(board(cfg, procs), cfg, state, now=10.5) == []
    assert idle_server_maintenance(board(cfg, procs), cfg, state, now=11.0) == [Spawn(1)]
    assert idle_server_maintenance(board(cfg, procs), cfg, state, pending=frozenset({1}), now=11.5) == []
    # While backing off, an exit is not replaced at once either.
    assert child_exited(state, 0, 100, 0, 0, 0, None, False, serving=True, now=12.0) == []
    # The child tried starts: forks as usual again.
    out = child_started(state, 0, 0)
    assert "started after 1 failed start" in out[0].message
    assert len([a for a in idle_server_maintenance(board(cfg, procs), cfg, state, now=12.0)
                if isinstance(a, Spawn)]) == 2


def test_a_graceful_restart_whose_children_cannot_start_is_abandoned():
    state = served_state()
    state.note_graceful_restart(serving_generation=4)
    out = child_exited(state, 2, 600, 5, 5, EXIT_CHILDFATAL, None, False, now=1.0, report=TRACEBACK)
    assert out[0] == Log("error", TRACEBACK)
    assert out[1].level == "error" and out[1].message.startswith(
        "graceful restart failed, still serving generation 4: a child of generation 5 (pid 600)")
    assert out[2] == RestartOutcome(False, 4, "SyntaxError: '(' was never closed")
    assert state.restart_from is None and not state.backoff.active
    # Its sibling, of the abandoned generation (now newer than the current 4), says nothing more.
    assert child_exited(state, 3, 601, 5, 4, EXIT_CHILDFATAL, None, True, report=TRACEBACK) == []


def test_a_graceful_restart_succeeds_with_its_first_child_and_a_second_restart_keeps_the_first_serving():
    state = served_state()
    state.note_graceful_restart(serving_generation=4)
    state.note_graceful_restart(serving_generation=5)  # USR1 again before generation 5 served
    assert state.restart_from == 4
    assert child_started(state, 5, 6) == []            # the superseded generation decides nothing
    assert child_started(state, 6, 6) == [RestartOutcome(True, 6)]
    assert state.restart_from is None
    assert child_started(state, 6, 6) == []            # decided once


def test_a_server_that_never_served_still_exits_with_the_traceback():
    state = MaintenanceState()
    state.note_graceful_restart(serving_generation=0)  # USR1 before any child served
    out = child_exited(state, 0, 700, 1, 1, EXIT_CHILDFATAL, None, False, report=TRACEBACK)
    assert out[0] == Log("error", TRACEBACK) and isinstance(out[-1], Shutdown)


def test_a_hup_keeps_whether_the_server_ever_served():
    state = served_state()
    state.backoff.failed(now=1.0)
    after = state.after_hup()
    assert after.child_ever_ready and after.backoff.active and after.restart_from is None
