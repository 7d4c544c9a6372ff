"""The master's policy, as pure functions: idle server maintenance, the
child-exit policy, RequestTimeout and the schedule of a stop.

This is Apache httpd 2.4's perform_idle_server_maintenance() (worker/event,
including the event MPM's 2.4.25 fix that counts stopping children apart)
and the fork-storm guard of its server_main_loop(), with the I/O taken out:
a scoreboard snapshot, the configuration and a small mutable state go in, a
list of actions comes out.  The master calls idle_server_maintenance() and
hung_requests() once a second, retire_generation() while a graceful restart
retires the old generation, child_exited() and exit_notice() for every
child it reaps, stop_step() while it stops every child, and carries out what
they return (fork into a slot, ask a child to stop gracefully, signal it,
log, exit).

Invariants the master can rely on, whatever the snapshots say:
- Spawn only names a slot whose pid is 0 and that is not in ``pending`` (or,
  from child_exited, the slot of the child that just exited), so live
  processes never exceed ServerLimit.
- Spawns never bring the active children (live, not stopping, current
  generation) above MaxRequestWorkers / ThreadsPerChild.
- At most one StopChild per maintenance cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from signal import SIGKILL, SIGTERM, strsignal
from typing import TYPE_CHECKING, Any

from ..config import daemons_limit
from ..scoreboard import (
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
)

if TYPE_CHECKING:
    from ..scoreboard import ProcessSnapshot, ScoreboardSnapshot, WorkerSnapshot

__all__ = [
    "Action",
    "GRACEFUL_HOLD_OFF",
    "Log",
    "MAX_SPAWN_RATE",
    "MaintenanceState",
    "RECLAIM_KILL_AT",
    "RECLAIM_TERM_AT",
    "Shutdown",
    "SignalChild",
    "Spawn",
    "StopChild",
    "StopState",
    "SUCCESSIVE_KILLS_RESPAWNED",
    "child_exited",
    "exit_cause",
    "exit_notice",
    "hung_requests",
    "idle_server_maintenance",
    "retire_generation",
    "stop_step",
]

MAX_SPAWN_RATE = 32
# A child killed by a signal is replaced at once this many times in a row;
# after that, replacements wait for maintenance (one per cycle) so a child
# that crashes on start cannot turn the master into a fork bomb.
SUCCESSIVE_KILLS_RESPAWNED = 3
# After a graceful restart the master sets hold_off_on_exponential_spawning
# to this (Apache: event_run()).
GRACEFUL_HOLD_OFF = 10
# Apache's reclaim_child_processes(): when stopping now, every child gets a
# TERM at these seconds, then a KILL at RECLAIM_KILL_AT and every second after.
RECLAIM_TERM_AT = (0.0, 3.0, 5.0, 7.0)
RECLAIM_KILL_AT = 9.0
# Worker states in which a request is running (G: in a child told to stop).
REQUEST_RUNNING = frozenset((SERVER_BUSY_READ, SERVER_BUSY_WRITE, SERVER_GRACEFUL))

# Wording kept identical to Apache's (APLOGNO 00484, 10159, 03490, 00486,
# 10392, 02324) so that operators' searches and existing advice apply.
MSG_REACHED_MAX = ("server reached MaxRequestWorkers setting, "
                   "consider raising the MaxRequestWorkers setting")
MSG_NEAR_MAX = ("server is within MinSpareThreads of MaxRequestWorkers, "
                "consider raising the MaxRequestWorkers setting")
MSG_SCOREBOARD_FULL = ("scoreboard is full, not at MaxRequestWorkers. "
                       "Increase ServerLimit.")
MSG_KILLED_SUCCESSIVELY = "children are killed successively!"
MSG_GRACEFUL_EXPIRED = "GracefulShutdownTimeout expired, stopping the remaining children"


@dataclass(frozen=True, slots=True)
class Spawn:
    """Fork a new child into this scoreboard slot."""
    slot: int


@dataclass(frozen=True, slots=True)
class StopChild:
    """Ask this child to stop gracefully (finish in-flight work, then exit 0)."""
    slot: int
    pid: int


@dataclass(frozen=True, slots=True)
class SignalChild:
    """Send this signal to this child (TERM or KILL; the master drops it if
    the pid is no longer its child)."""
    pid: int
    signal: int


@dataclass(frozen=True, slots=True)
class Log:
    """Write a line to the error log; level is error/warn/notice/info/debug."""
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The master must stop its children and exit non-zero."""
    reason: str


Action = Spawn | StopChild | SignalChild | Log


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

    def note_child_ready(self) -> None:
        """The master saw a child with all its threads started."""
        self.child_ever_ready = True

    def note_graceful_restart(self) -> None:
        """Generation bumped: hold off exponential spawning for a while."""
        self.hold_off_on_exponential_spawning = GRACEFUL_HOLD_OFF
        self.stop_requested.clear()


def idle_server_maintenance(snap: ScoreboardSnapshot, cfg: Any, state: MaintenanceState,
                            *, pending: frozenset[int] = frozenset()) -> list[Action]:
    """One cycle of Apache's perform_idle_server_maintenance().

    ``pending``: slots the master forked into whose pid may not be in the
    snapshot yet; they count as live, current-generation, all threads idle.
    """
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
                 stopping: bool, *, serving: bool = False) -> list[Action | Shutdown]:
    """What to do about one reaped child (Apache's server_main_loop()).

    ``slot`` is -1 for a pid the master has no slot for.  ``stopping`` is true
    when the master asked this child to stop (graceful stop, restart, or a
    StopChild from maintenance).  ``serving`` is true once the child had
    started its workers.  A returned Spawn reuses the exited child's own
    slot, so it never adds a process.
    """
    state.exits_since_cycle += 1
    state.stop_requested.pop(slot, None)

    if signal is not None:
        if stopping or slot < 0 or generation != current_generation:
            return []
        state.killed_in_a_row += 1
        n = state.killed_in_a_row
        if n <= SUCCESSIVE_KILLS_RESPAWNED:
            return [Spawn(slot)]
        # Logged on the 4th, 14th, 24th... kill: enough to be seen, not a flood.
        if (n - SUCCESSIVE_KILLS_RESPAWNED) % 10 == 1:
            return [Log("warn", f"{MSG_KILLED_SUCCESSIVELY} (child pid {pid} killed "
                                f"by signal {signal}, {n} in a row; replacing at most "
                                f"one child per second)")]
        return []

    state.killed_in_a_row = 0
    # CHILDFATAL means "could not start": from a child that was already
    # serving it is the app's own os._exit(15), an ordinary crash that
    # exit_notice() reports and maintenance replaces.
    if exitcode == EXIT_CHILDFATAL and not serving:
        if slot < 0 or generation == current_generation:
            msg = (f"Child {pid} returned a Fatal error (exit code {EXIT_CHILDFATAL:#x}: it could "
                   "not start, see its error above)... mpmserver is exiting!")
            return [Log("error", msg), Shutdown(msg)]
        # A child forked just before a graceful restart can fail on the
        # previous generation's resources; that is not fatal (Apache PR 39311).
        actions: list[Action | Shutdown] = [
            Log("warn", f"Ignoring fatal error in child of previous generation (pid {pid}).")]
        return actions + _sick(state)
    if exitcode == EXIT_CHILDSICK:
        return _sick(state)
    return []


def retire_generation(snap: ScoreboardSnapshot, tpc: int, generation: int,
             children: Iterable[tuple[int, int, int]], *, stopping: int) -> list[Action]:
    """After a graceful restart: which children of older generations to stop now.

    ``children``: (pid, slot, generation) of the live children not yet told
    to stop; ``stopping``: how many told to stop are still alive.  The old
    generation serves until every child of the current one has started:
    then each old child is stopped, one that is still starting included
    (it never touches the listening sockets).  So an app that takes a while
    to import, or restarts faster than that, or old children recycling
    meanwhile, never leave the listening sockets without a child to accept.
    With no child of the current generation (no free slot for one), room is
    made one step at a time: the old children still starting, else one that
    serves, and only when no stopping child is about to free a slot.
    """
    children = list(children)
    current = [(pid, slot) for pid, slot, gen in children if gen == generation]
    old = [(pid, slot) for pid, slot, gen in children if gen < generation]
    if current:
        if all(_has_started(snap, slot, pid, tpc) for pid, slot in current):
            return [StopChild(slot, pid) for pid, slot in old]
        return []
    if stopping or not old:
        return []
    starting = [StopChild(slot, pid) for pid, slot in old if not _has_started(snap, slot, pid, tpc)]
    return starting or [StopChild(old[-1][1], old[-1][0])]


def _has_started(snap: ScoreboardSnapshot, slot: int, pid: int, tpc: int) -> bool:
    """This child's record is its own and a worker of its got past starting:
    the app is imported and the listener is starting."""
    proc = snap.processes[slot]
    return proc.pid == pid and any(w.status not in (SERVER_DEAD, SERVER_STARTING)
                                   for w in proc.workers[:tpc])


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


# --------------------------------------------------------------------------
# RequestTimeout


def hung_requests(snap: ScoreboardSnapshot, cfg: Any, state: MaintenanceState,
                  children: Mapping[int, int], *, now: float, clock: float) -> list[Action]:
    """Stop each child running a request longer than RequestTimeout; kill it
    if it is still there max(GracefulShutdownTimeout, RequestTimeout) later.

    ``children``: the master's live children, pid -> slot.  ``now`` is wall
    time, the scoreboard's clock; ``clock`` is monotonic, for the grace.  A
    thread stuck in the app cannot be interrupted, so the whole child goes:
    gracefully first, so that its other requests can finish.
    """
    stopped = state.hung_stopped
    for pid in [p for p in stopped if p not in children]:
        del stopped[pid]  # reaped since: its pid means nothing any more
    timeout = cfg.request_timeout
    if not timeout:
        return []
    grace = max(cfg.graceful_shutdown_timeout, timeout)
    actions: list[Action] = []
    for pid, slot in children.items():
        if pid in stopped:
            if clock - stopped[pid] > grace:  # again each cycle until it is reaped
                actions += [Log("error", f"child pid {pid} did not finish its hung request, "
                                         "killing it"), SignalChild(pid, SIGKILL)]
            continue
        proc = snap.processes[slot]
        if proc.pid != pid:
            continue  # the record is another process's: not this child's requests
        hung = _hung_worker(proc, cfg.threads_per_child, now, timeout)
        if hung is not None:
            t, w = hung
            actions += [Log("error", f"RequestTimeout: request {w.request!r} from {w.client} on "
                                     f"child pid {pid} thread {t} has run "
                                     f"{now - w.start_time:.1f}s (RequestTimeout {timeout:g}s); "
                                     "stopping the child gracefully"), StopChild(slot, pid)]
            stopped[pid] = clock
    return actions


def _running(w: WorkerSnapshot) -> bool:
    # stop_time < start_time: the request has begun and not yet ended.
    return w.status in REQUEST_RUNNING and bool(w.start_time) and w.stop_time < w.start_time


def _hung_worker(proc: ProcessSnapshot, threads: int, now: float,
                 timeout: float) -> tuple[int, WorkerSnapshot] | None:
    for t, w in enumerate(proc.workers[:threads]):
        if _running(w) and now - w.start_time > timeout:
            return t, w
    return None


def requests_lost(proc: ProcessSnapshot, threads: int) -> list[WorkerSnapshot]:
    """The requests a child that is gone was still running (killed after
    RequestTimeout, crashed, exited from the app): nobody else will log them."""
    return [w for w in proc.workers[:threads] if _running(w)]


# --------------------------------------------------------------------------
# Stopping every child (shutdown, and the first half of a HUP restart)


@dataclass
class StopState:
    """How far a stop of every child has gone; owned by the master, advanced
    by stop_step() with the seconds since the stop began."""

    # A graceful stop waits this long (math.inf: GracefulShutdownTimeout 0)
    # before it turns into an immediate one; None: stopping now.
    graceful_for: float | None = None
    now_since: float = 0.0              # seconds into the stop when stopping now began
    terms_sent: int = 0                 # how many of RECLAIM_TERM_AT were sent
    next_kill: float = RECLAIM_KILL_AT  # seconds after now_since

    @classmethod
    def graceful(cls, timeout: float) -> StopState:
        return cls(graceful_for=timeout or math.inf)

    @property
    def is_graceful(self) -> bool:
        return self.graceful_for is not None


def stop_step(stop: StopState, elapsed: float, pids: Iterable[int]) -> list[Action]:
    """What to send now, ``elapsed`` seconds into a stop, to the children
    still alive (Apache's reclaim_child_processes()).  A graceful stop sends
    nothing until GracefulShutdownTimeout, then stops now."""
    if stop.graceful_for is not None:
        if elapsed < stop.graceful_for:
            return []
        stop.graceful_for = None
        stop.now_since = elapsed
        return [Log("notice", MSG_GRACEFUL_EXPIRED), *stop_step(stop, elapsed, pids)]
    since = elapsed - stop.now_since
    if since >= stop.next_kill:
        stop.next_kill = since + 1.0
        stop.terms_sent = len(RECLAIM_TERM_AT)  # a TERM after a KILL would be pointless
        return [a for pid in pids for a in (
            Log("error", f"child process {pid} still did not exit, sending a SIGKILL"),
            SignalChild(pid, SIGKILL))]
    due = sum(1 for at in RECLAIM_TERM_AT if since >= at)
    if due <= stop.terms_sent:
        return []
    first = stop.terms_sent == 0  # the stop itself: nothing to complain about yet
    stop.terms_sent = due  # one TERM for several times passed at once is enough
    return [a for pid in pids for a in (
        *([] if first else [Log("warn", f"child process {pid} still did not exit, "
                                        "sending a SIGTERM")]),
        SignalChild(pid, SIGTERM))]
