"""The master's policy, as pure functions: idle server maintenance and the
child-exit policy (its neighbours: retirement.py for a graceful restart's old
generation, request_timeout.py, stopping.py for the schedule of a stop).

This is Apache httpd 2.4's perform_idle_server_maintenance() (worker/event,
including the event MPM's 2.4.25 fix that counts stopping children apart)
and the fork-storm guard of its server_main_loop(), with the I/O taken out:
a scoreboard snapshot, the configuration and a small mutable state go in, a
list of actions (actions.py) comes out.  The master calls
idle_server_maintenance() once a second, child_exited() and exit_notice()
for every child it reaps, child_started() for every child it sees start,
and carries out what they return (fork into a slot, ask a child to stop
gracefully, signal it, log, decide a graceful restart, exit).

Broken code never stops a server that serves: a child that cannot start
once some child has served is never a reason to exit. During a graceful
restart it abandons the restart (RestartOutcome); otherwise it starts a
back-off (backoff.py). Only a server none of whose children ever served
exits, as Apache's does.

Invariants the master can rely on, whatever the snapshots say:
- Spawn only names a slot whose pid is 0 and that is not in ``pending`` (or,
  from child_exited, the slot of the child that just exited), so live
  processes never exceed ServerLimit.
- Spawns never bring the active children (live, not stopping, current
  generation) above MaxRequestWorkers / ThreadsPerChild.
- At most one StopChild per maintenance cycle.
- While children cannot start (a back-off), at most one Spawn, and none
  while the child tried is still starting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from signal import strsignal
from typing import TYPE_CHECKING, Any

from ..config import daemons_limit
from ..scoreboard import (
    EXIT_CHILDFATAL,
    EXIT_CHILDSICK,
    RECYCLE_CONNECTIONS,
    RECYCLE_MEMORY,
    RECYCLE_REQUESTS,
    SERVER_GRACEFUL,
    SERVER_READY,
)
from .actions import Action, Log, RestartOutcome, Shutdown, Spawn, StopChild
from .backoff import Backoff

if TYPE_CHECKING:
    from ..scoreboard import ScoreboardSnapshot

__all__ = [
    "GRACEFUL_HOLD_OFF",
    "MAX_SPAWN_RATE",
    "SUCCESSIVE_KILLS_RESPAWNED",
    "MaintenanceState",
    "child_exited",
    "child_started",
    "exit_cause",
    "exit_notice",
    "idle_server_maintenance",
    "reason_of",
]

MAX_SPAWN_RATE = 32
# A child killed by a signal is replaced at once this many times in a row;
# after that, replacements wait for maintenance (one per cycle) so a child
# that crashes on start cannot turn the master into a fork bomb.
SUCCESSIVE_KILLS_RESPAWNED = 3
# After a graceful restart the master sets hold_off_on_exponential_spawning
# to this (Apache: event_run()).
GRACEFUL_HOLD_OFF = 10

# Wording kept identical to Apache's (APLOGNO 00484, 10159, 03490, 00486,
# 10392, 02324) so that operators' searches and existing advice apply.
MSG_REACHED_MAX = ("server reached MaxRequestWorkers setting, "
                   "consider raising the MaxRequestWorkers setting")
MSG_NEAR_MAX = ("server is within MinSpareThreads of MaxRequestWorkers, "
                "consider raising the MaxRequestWorkers setting")
MSG_SCOREBOARD_FULL = ("scoreboard is full, not at MaxRequestWorkers. "
                       "Increase ServerLimit.")
MSG_KILLED_SUCCESSIVELY = "children are killed successively!"


@dataclass
class MaintenanceState:
    """What Apache keeps in ``retained`` between cycles; owned by the master."""

    spawn_rate: int = 1
    hold_off_on_exponential_spawning: int = 0
    maxed_out_logged: bool = False
    near_maxed_out_logged: bool = False
    scoreboard_full_logged: bool = False
    killed_in_a_row: int = 0
    # Apache's had_healthy_child: some child once had every thread started.
    child_ever_ready: bool = False
    # Children told to stop whose snapshot may not show quiescing yet:
    # slot -> pid.  Without this a slow child would be asked twice and a
    # second, needless child stopped.
    stop_requested: dict[int, int] = field(default_factory=dict)
    # Exits reaped since the last maintenance cycle; a cycle with none ends a
    # run of kills (Apache resets successive_kills on a quiet timeout).
    exits_since_cycle: int = 0
    # RequestTimeout: children told to stop for a hung request, pid -> the
    # (monotonic) time they were told; they are killed after the grace.
    hung_stopped: dict[int, float] = field(default_factory=dict)
    # Children that could not start while others serve: when to try again.
    backoff: Backoff = field(default_factory=Backoff)
    # While a graceful restart waits for a child of the new generation to
    # start: the generation that serves meanwhile (None: no restart pending).
    restart_from: int | None = None

    def note_child_ready(self) -> None:
        """The master saw a child with all its threads started."""
        self.child_ever_ready = True

    def note_graceful_restart(self, serving_generation: int | None = None) -> None:
        """Generation bumped: hold off exponential spawning for a while.
        ``serving_generation``: the generation before the bump; it serves
        until a child of the new one starts (a second restart meanwhile
        keeps the first one's, which is the one still serving)."""
        self.hold_off_on_exponential_spawning = GRACEFUL_HOLD_OFF
        self.stop_requested.clear()
        if self.restart_from is None:
            self.restart_from = serving_generation

    def after_hup(self) -> MaintenanceState:
        """The state a HUP restart starts afresh with: what says whether the
        server ever served, and a back-off under way, are kept."""
        return MaintenanceState(child_ever_ready=self.child_ever_ready, backoff=self.backoff)


def idle_server_maintenance(snap: ScoreboardSnapshot, cfg: Any, state: MaintenanceState,
                            *, pending: frozenset[int] = frozenset(), now: float = 0.0) -> list[Action]:
    """One cycle of Apache's perform_idle_server_maintenance().

    ``pending``: slots the master forked into whose pid may not be in the
    snapshot yet; they count as live, current-generation, all threads idle.
    ``now``: the monotonic clock, for the back-off of children that cannot
    start (backoff.py): while it runs, at most one child is tried at a time.
    """
    actions = _maintenance_cycle(snap, cfg, state, pending)
    budget = state.backoff.spawn_budget(now, starting=bool(pending))
    if budget is None:
        return actions
    spawns = [a for a in actions if isinstance(a, Spawn)][:budget]
    return [a for a in actions if not isinstance(a, Spawn)] + spawns


def _maintenance_cycle(snap: ScoreboardSnapshot, cfg: Any, state: MaintenanceState,
                       pending: frozenset[int]) -> list[Action]:
    limit = daemons_limit(cfg)
    c = _count(snap, cfg.threads_per_child, state, pending)

    if state.exits_since_cycle == 0:
        state.killed_in_a_row = 0
    state.exits_since_cycle = 0
    if c.active < limit:
        state.maxed_out_logged = False
        state.near_maxed_out_logged = False
    if c.free_slots:
        state.scoreboard_full_logged = False

    if cfg.fixed_servers:
        return _keep_fixed_pool(state, cfg.fixed_servers, c)
    if c.idle > cfg.max_spare_threads:
        state.spawn_rate = 1
        return _stop_one(state, c.last_active, c.active, c.total, limit, snap.server_limit)
    if c.idle < cfg.min_spare_threads:
        return _spawn_some(state, cfg, c.free_slots, c.idle, c.active, c.total, limit)
    state.spawn_rate = 1
    return []


@dataclass
class _Counts:
    idle: int = 0    # idle threads of the active children
    active: int = 0  # live, not stopping, current generation
    total: int = 0   # live, stopping or not
    free_slots: list[int] = field(default_factory=list)
    last_active: tuple[int, int] | None = None  # (slot, pid) of the stop candidate


def _count(snap: ScoreboardSnapshot, tpc: int, state: MaintenanceState,
           pending: frozenset[int]) -> _Counts:
    """The census of one cycle; also notes stop requests that are void and a
    child that has every thread started."""
    c = _Counts()
    stop_requested = state.stop_requested
    for proc in snap.processes:
        slot = proc.slot
        pid = proc.pid
        if pid == 0:
            if slot in pending:
                # Forked but not yet recorded: starting threads count as idle
                # on purpose, so a slow start is not answered by more forks.
                c.total += 1
                c.active += 1
                c.idle += tpc
            else:
                c.free_slots.append(slot)
            continue
        c.total += 1
        asked = stop_requested.get(slot)
        if asked is not None and asked != pid:
            del stop_requested[slot]  # that child is gone; the slot was reused
            asked = None
        if proc.quiescing or asked is not None or proc.generation != snap.generation:
            continue  # stopping: holds a slot, counted apart from the active ones
        c.active += 1
        workers = proc.workers[:tpc]
        if not state.child_ever_ready and len(workers) == tpc and all(
                SERVER_READY <= w.status < SERVER_GRACEFUL for w in workers):
            state.child_ever_ready = True
        if not proc.not_accepting:
            c.idle += sum(1 for w in workers if w.status <= SERVER_READY)
        c.last_active = (slot, pid)
    return c


def _stop_one(state: MaintenanceState, candidate: tuple[int, int] | None, active: int,
              total: int, limit: int, server_limit: int) -> list[Action]:
    # A stopping child keeps its slot until its last connection ends; under
    # changing load such children pile up and fill the scoreboard.  So only
    # stop another one when none is stopping, or when the free slots could
    # still absorb a full set of active children (event MPM, 2.4.25+).
    if candidate is None:
        return []
    if active != total and server_limit - total <= limit:
        return [Log("debug", f"Not shutting down child: active {active}/{limit}, "
                             f"total {total}/{server_limit}; waiting for stopping "
                             f"children to exit")]
    slot, pid = candidate
    state.stop_requested[slot] = pid
    return [StopChild(slot, pid)]


def _keep_fixed_pool(state: MaintenanceState, n: int, c: _Counts) -> list[Action]:
    """FixedServers: exactly n active children, whatever the idle threads.
    A child that stopped (recycled, crashed, or the old generation of a
    graceful restart) is replaced; none is ever stopped for being spare."""
    state.spawn_rate = 1
    missing = n - c.active
    if missing <= 0:
        return []
    if not c.free_slots:
        # Stopping children hold every slot; each is replaced as it exits.
        return [Log("debug", f"fixed pool: {c.active} of {n} children active, no free slot "
                             "until a stopping child exits")]
    if state.killed_in_a_row > SUCCESSIVE_KILLS_RESPAWNED:
        missing = 1  # children keep dying: one a second, not a fork storm
    return [Spawn(slot) for slot in c.free_slots[:min(missing, MAX_SPAWN_RATE)]]


def _spawn_some(state: MaintenanceState, cfg: Any, free_slots: list[int], idle: int,
                active: int, total: int, limit: int) -> list[Action]:
    if active >= limit:
        state.spawn_rate = 1
        if idle == 0:
            if not state.maxed_out_logged:
                state.maxed_out_logged = True
                return [Log("error", MSG_REACHED_MAX)]
        elif not state.near_maxed_out_logged:
            state.near_maxed_out_logged = True
            return [Log("error", MSG_NEAR_MAX)]
        return []
    if not free_slots:
        state.spawn_rate = 1
        if not state.scoreboard_full_logged:
            state.scoreboard_full_logged = True
            return [Log("error", MSG_SCOREBOARD_FULL)]
        return []

    storm = state.killed_in_a_row > SUCCESSIVE_KILLS_RESPAWNED
    rate = 1 if storm else state.spawn_rate
    n = min(len(free_slots), rate, limit - active)
    actions: list[Action] = []
    if rate >= MAX_SPAWN_RATE // 4:
        actions.append(Log("info",
                           "server seems busy, (you may need to increase StartServers, "
                           "ThreadsPerChild or Min/MaxSpareThreads), spawning "
                           f"{n} children, there are around {idle} idle threads, "
                           f"{active} active children, and {total - active} children "
                           "that are shutting down"))
    actions.extend(Spawn(slot) for slot in free_slots[:n])
    # Next second, if this was not enough, spawn twice as many; but not just
    # after a graceful restart, when the old generation is still being retired.
    if state.hold_off_on_exponential_spawning:
        state.hold_off_on_exponential_spawning -= 1
    elif not storm and state.spawn_rate < MAX_SPAWN_RATE:
        state.spawn_rate *= 2
    return actions


def child_exited(state: MaintenanceState, slot: int, pid: int, generation: int,
                 current_generation: int, exitcode: int | None, signal: int | None,
                 stopping: bool, *, serving: bool = False, now: float = 0.0,
                 report: str = "") -> list[Action | Shutdown]:
    """What to do about one reaped child (Apache's server_main_loop()).

    ``slot`` is -1 for a pid the master has no slot for.  ``stopping`` is true
    when the master asked this child to stop (graceful stop, restart, or a
    StopChild from maintenance).  ``serving`` is true once the child had
    started its workers.  ``report``: what the child said of why it could
    not start (the app's traceback), "" if nothing.  A returned Spawn
    reuses the exited child's own slot, so it never adds a process: a
    child of the current generation that exits on its own (recycled,
    crashed) is replaced as soon as it is reaped, not at the next cycle.
    """
    state.exits_since_cycle += 1
    state.stop_requested.pop(slot, None)
    if generation > current_generation:
        return []  # a child of an abandoned restart: its failure is already told
    current = slot < 0 or generation == current_generation
    failed_start = (not serving and not stopping and exitcode != EXIT_CHILDSICK
                    and (signal is not None or bool(exitcode)))
    if failed_start and current and state.child_ever_ready:
        return _failed_start(state, pid, generation, _how(exitcode, signal), report, now)

    if signal is not None:
        if stopping or slot < 0 or not current:
            return []
        return _crashed(state, slot, f"child pid {pid} killed by signal {signal}")
    if exitcode and exitcode != EXIT_CHILDSICK and serving and not stopping and current and slot >= 0:
        # The app's own exit (os._exit(N), an exit 15 included): a crash,
        # under the same fork-storm guard as a kill.
        return _crashed(state, slot, f"child pid {pid} exited with status {exitcode}")

    state.killed_in_a_row = 0
    # CHILDFATAL means "could not start" (from a child that was already
    # serving it is a crash, above).
    if exitcode == EXIT_CHILDFATAL and not serving:
        if current:
            # No child has ever served: the server cannot start.
            msg = (f"Child {pid} returned a Fatal error (exit code {EXIT_CHILDFATAL:#x}: it could "
                   "not start, see its error above)... mpmserver is exiting!")
            return [*_reported(report), Log("error", msg), Shutdown(msg)]
        # A child forked just before a graceful restart can fail on the
        # previous generation's resources; that is not fatal (Apache PR 39311).
        actions: list[Action | Shutdown] = [
            Log("warn", f"Ignoring fatal error in child of previous generation (pid {pid}).")]
        return actions + _sick(state)
    if exitcode == EXIT_CHILDSICK:
        return _sick(state)
    if stopping or not current or slot < 0 or exitcode:
        return []  # (a start that failed before any child served: maintenance, at its pace)
    return _replace(state, slot)


def _crashed(state: MaintenanceState, slot: int, what: str) -> list[Action]:
    """A serving child died unasked: replaced at once three times in a row,
    then by maintenance, one a second (Apache's fork-storm guard)."""
    state.killed_in_a_row += 1
    n = state.killed_in_a_row
    if n <= SUCCESSIVE_KILLS_RESPAWNED:
        return _replace(state, slot)
    # Logged on the 4th, 14th, 24th... crash: enough to be seen, not a flood.
    if (n - SUCCESSIVE_KILLS_RESPAWNED) % 10 == 1:
        return [Log("warn", f"{MSG_KILLED_SUCCESSIVELY} ({what}, {n} in a row; replacing at most "
                            "one child per second)")]
    return []


def child_started(state: MaintenanceState, generation: int, current_generation: int) -> list[Action]:
    """A child of ``generation`` has started all its threads (the master
    notices it within a second, and before it judges any exit): the end of
    a back-off, and the success of a graceful restart waiting for it."""
    state.note_child_ready()
    actions: list[Action] = []
    if generation != current_generation:
        return actions
    if failures := state.backoff.started():
        actions.append(Log("warn", f"a child of generation {generation} started after {failures} "
                                   f"failed start{'s' if failures > 1 else ''}; children are forked "
                                   "as usual again"))
    if state.restart_from is not None:
        state.restart_from = None
        actions.append(RestartOutcome(True, generation))
    return actions


def _replace(state: MaintenanceState, slot: int) -> list[Action]:
    """The exited child's slot, forked into again at once (not while children cannot start)."""
    return [] if state.backoff.active else [Spawn(slot)]


def _how(exitcode: int | None, signal: int | None) -> str:
    if signal is not None:
        return f"was killed by signal {_signal_description(signal)} ({signal})"
    if exitcode == EXIT_CHILDFATAL:
        return f"exited with {EXIT_CHILDFATAL:#x} (it could not start)"
    return f"exited with status {exitcode}"


def reason_of(report: str, fallback: str) -> str:
    """The line that says why, of a child's report: a traceback's last line
    (``SyntaxError: '(' was never closed``); ``fallback`` if it said nothing."""
    lines = report.strip().splitlines()
    return lines[-1] if lines else fallback


def _reported(report: str) -> list[Action]:
    return [Log("error", report)] if report else []


def _failed_start(state: MaintenanceState, pid: int, generation: int, how: str, report: str,
                  now: float) -> list[Action | Shutdown]:
    """A child of the current generation could not start, and some child
    served before: never a reason to exit. During a graceful restart the
    restart is abandoned (the generation that serves stays); otherwise the
    child is tried again after a back-off."""
    reason = reason_of(report, f"child pid {pid} {how} before serving")
    if state.restart_from is not None:
        serving, state.restart_from = state.restart_from, None
        state.backoff.started()  # the generation that serves is judged on its own
        msg = (f"graceful restart failed, still serving generation {serving}: a child of generation "
               f"{generation} (pid {pid}) {how} before serving: {reason}")
        return [*_reported(report), Log("error", msg), RestartOutcome(False, serving, reason)]
    first = not state.backoff.active
    delay, new_step = state.backoff.failed(now)
    actions: list[Action | Shutdown] = _reported(report) if first else []
    if new_step:
        actions.append(Log("error", f"child pid {pid} of generation {generation} {how} before serving "
                                    f"({state.backoff.failures} in a row); other children serve on, "
                                    f"a new child is tried in {delay:g} s"))
    return actions


def exit_notice(pid: int, exitcode: int | None, signal: int | None, *, stopping: bool,
                serving: bool) -> list[Log]:
    """The error-log line for a child exit the master did not ask for.

    Apache's wording (ap_process_child_status()), at warn so that the default
    LogLevel shows it as Apache's always-shown notice would be.  A clean exit
    (recycling) says nothing, nor does a fatal start, which child_exited()
    reports in its own words.
    """
    if stopping:
        return []
    if signal is not None:
        return [Log("warn", f"child pid {pid} exit signal {_signal_description(signal)} ({signal})")]
    if not exitcode or (exitcode == EXIT_CHILDFATAL and not serving):
        return []
    return [Log("warn", f"child pid {pid} exit status {exitcode}")]


_RECYCLED = {RECYCLE_CONNECTIONS: "connections", RECYCLE_REQUESTS: "requests", RECYCLE_MEMORY: "memory"}


def exit_cause(exitcode: int | None, signal: int | None, recycle_cause: int, *,
               request_timeout: bool) -> str | None:
    """What a reaped child's exit counts as (one of scoreboard.EXIT_CAUSES),
    or None for an exit the master asked for (idle maintenance, a restart).

    ``recycle_cause``: the RECYCLE_* the child recorded, 0 if none;
    ``request_timeout``: the master stopped it for a request past
    RequestTimeout, which explains its exit even if it had to be killed.
    Otherwise a signal or a non-zero exit is a crash, even while recycling:
    a child that recycles exits 0.
    """
    if request_timeout:
        return "request_timeout"
    if signal is not None or exitcode:
        return "crash"
    return _RECYCLED.get(recycle_cause)


def _signal_description(signum: int) -> str:
    try:
        return strsignal(signum) or "Unknown signal"
    except ValueError:
        return "Unknown signal"


def _sick(state: MaintenanceState) -> list[Action | Shutdown]:
    state.spawn_rate = 1  # resource shortage: fork as slowly as possible
    if state.child_ever_ready:
        return []
    msg = ("A resource shortage or other unrecoverable failure was encountered "
           "before any child process initialized successfully... mpmserver is exiting!")
    return [Log("error", msg), Shutdown(msg)]
