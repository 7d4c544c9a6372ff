"""The master process: binds, forks, reaps, runs maintenance, obeys signals.

It never serves a request. Decisions live elsewhere: how many children to
run, what a child's exit means, which hung child to stop and when to TERM or
KILL the stragglers of a stop in maintenance.py; what the configuration
means in config.py; the listening sockets in listen.py. This file is the
mechanism that carries those decisions out with fork, kill and waitpid.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Callable, NoReturn

from .. import SERVER_SOFTWARE, safefiles
from .. import config as configmod
from ..child.child import child_main, load_app
from ..deploy.listen import (
    adopt_activation,
    bind_listeners,
    bound_address,
    close_listeners,
    forget_unix_files,
    remove_unix_sockets,
    url,
)
from ..deploy.systemd_notify import Notifier, Supervisor
from ..deploy.upgrade_takeover import BinaryUpgrade
from ..logs import AccessRecord, ErrorLog, open_access_log, signal_name
from ..modules.agent_listen import AgentListen
from ..scoreboard import (
    EXIT_CHILDFATAL,
    SERVER_BUSY_READ,
    SERVER_BUSY_WRITE,
    SERVER_DEAD,
    SERVER_GRACEFUL,
    SERVER_STARTING,
    Scoreboard,
)
from ..titles import set_process_title
from . import maintenance
from .maintenance import RECLAIM_KILL_AT

# Worker states that mean "a request is running" (turned into G when its child stops).
GRACEFUL_FROM = frozenset((SERVER_BUSY_READ, SERVER_BUSY_WRITE))
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGWINCH, signal.SIGCHLD)
# Signals whose default action would kill the master (leaving its PidFile and
# children behind) but that it does not act on: logged and ignored. Not the
# faults (SEGV, BUS, FPE, ILL, ABRT, TRAP, SYS), nor KILL and STOP.
IGNORED_SIGNALS = tuple(s for s in (
    signal.SIGQUIT, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGXFSZ,
    getattr(signal, "SIGPWR", None), getattr(signal, "SIGIO", None), getattr(signal, "SIGSTKFLT", None),
    *range(signal.SIGRTMIN, signal.SIGRTMAX + 1)) if s is not None)
SIGNALS_ACTED_ON = ("TERM and INT stop, WINCH stops gracefully, HUP restarts, USR1 restarts gracefully, "
                    "USR2 upgrades the binary")
TICK = 1.0  # maintenance runs once a second
# While stopping, the stop schedule is checked this often; exits wake the
# loop at once anyway (SIGCHLD).
STOP_TICK = 0.1


@dataclass
class ChildInfo:
    pid: int
    slot: int
    generation: int
    stopping: bool = False  # the master told it to stop: its exit is expected


class Master:
    def __init__(
        self,
        cfg: Any,
        warnings: list[str] = (),
        config_path: str | None = None,
        overrides: list[tuple[str, list[str]]] = (),
        app: Callable | None = None,
        error_log: ErrorLog | None = None,
        on_ready: Callable[["Master"], None] | None = None,
        on_app_error: Callable[[BaseException], None] | None = None,
        drop_privileges: bool = True,
    ):
        self.cfg = cfg
        self.warnings = list(warnings)
        self.config_path = config_path
        self.overrides = list(overrides)
        self.app = app  # given as an object (test server, PreloadApp): children inherit it by fork
        self.app_spec = cfg.wsgi_app or ""
        self.error_log = error_log or ErrorLog(cfg.error_log, cfg.log_level)
        self.access_log = None
        self.on_ready = on_ready
        # Called once, when the first child serves (its app imported): -k start's cue.
        self.on_serving: Callable[["Master"], None] | None = None
        self.on_app_error = on_app_error  # run in the child that caught it (the test server's hook)
        # False keeps the children's user (the test server must not change users).
        self.drop_privileges = drop_privileges
        self.listeners: dict[tuple[str, int], socket.socket] = {}
        self.scoreboard: Scoreboard | None = None
        self.children: dict[int, ChildInfo] = {}
        self.pending: set[int] = set()  # slots forked into, until the child shows in the scoreboard
        self.generation = 0
        self.state = maintenance.MaintenanceState()
        self.signals: list[int] = []
        self.stop: maintenance.StopState | None = None  # set while every child is being stopped
        self.stop_started = 0.0
        self.exit_code = 0
        self.drop_plan = None
        self.pid_file = safefiles.PidFile(cfg.pid_file)
        self._wakeup_r = self._wakeup_w = -1
        self.master_pid = os.getpid()
        # What systemd is told (NOTIFY_SOCKET, set up in setup()).
        self.supervisor = Supervisor(None)
        self.notify_socket_env: str | None = None  # passed on to a new master
        # GracefulStopDrain: the monotonic time the drain ends, while one runs.
        self.drain_until: float | None = None
        # USR2; cli.py sets upgrade.argv, the command a new master starts with.
        self.upgrade = BinaryUpgrade(self.error_log, self.pid_file)
        self.agent: AgentListen | None = None

    @property
    def shutdown_mode(self) -> str | None:
        """None while serving, else "graceful" or "now"."""
        if self.stop is None:
            return None
        return "graceful" if self.stop.is_graceful else "now"

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self.listeners.values())

    def bound_addresses(self) -> list[tuple[str, int]]:
        return [bound_address(s) for s in self.sockets]

    # -- the life of the master ---------------------------------------------------

    def run(self) -> int:
        """Set up, serve until told to stop, clean up; the process exit code."""
        try:
            self.setup()
        except Exception as exc:  # noqa: BLE001
            self._report_setup_failure(exc)
            self.cleanup()
            return 1
        set_process_title(f"mpmserver: master [{self.app_spec or 'app'}]")
        self.install_signals()
        addrs = ", ".join(url(a) for a in self.bound_addresses())
        self.error_log.announce(
            f"{SERVER_SOFTWARE} (pid {os.getpid()}) serving {self.app_spec or 'app'} on {addrs}; "
            f"{configmod.pool_summary(self.cfg)}")
        try:
            # Bound and listening: connections queue from here on. Ready is
            # announced before the fork so children inherit what on_ready set
            # up (a daemon's detached stdio).
            if self.on_ready is not None:
                self.on_ready(self)
            self.start_children()
            self.main_loop()
        finally:
            self.cleanup()
        return self.exit_code

    def main_loop(self) -> None:
        next_tick = time.monotonic() + TICK
        while True:
            wait = STOP_TICK if self.stop is not None or self.retiring else next_tick - time.monotonic()
            if self.drain_until is not None:
                wait = min(wait, self.drain_until - time.monotonic())
            readable = self._wait_for_wakeup(max(0.0, self.upgrade.wait_limit(wait)))
            signals, self.signals = self.signals, []
            for signum in signals:
                self.handle_signal(signum)
            if self.agent is not None and self.agent.sock in readable:
                self.answer_agent()
            self.reap()
            if (new_master := self.upgrade.check(readable)) is not None:
                self._taken_over_by(new_master)
            self.end_drain_when_due()
            if self.stop is not None:
                self.supervisor.stopping()
                if self.shutdown_step():
                    return
            if self.retiring:
                self.retire_old_generation()
            if self.stop is None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK
                self.maintain()

    def maintain(self) -> None:
        """The one place that decides how many children run, once a second."""
        snap = self.scoreboard.snapshot()
        for proc in snap.processes:
            if proc.slot in self.pending and self._started(proc):
                self.pending.discard(proc.slot)
                self.state.note_child_ready()
                if self.on_serving is not None:
                    on_serving, self.on_serving = self.on_serving, None
                    on_serving(self)
                self.upgrade.tell_old_master()
                self.supervisor.child_serves(proc.generation == self.generation)
        self.supervisor.status(snap, draining=self.drain_until is not None)
        children = {pid: info.slot for pid, info in self.children.items()}
        self.apply_all(maintenance.hung_requests(snap, self.cfg, self.state, children,
                                                 now=time.time(), clock=time.monotonic()))
        self.apply_all(maintenance.idle_server_maintenance(snap, self.cfg, self.state,
                                                           pending=frozenset(self.pending)))

    def handle_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return  # the loop reaps after every wake-up
        if signum in IGNORED_SIGNALS:
            self.error_log.warn(f"caught {signal_name(signum)}: not a signal the master acts on, ignored "
                                f"({SIGNALS_ACTED_ON})")
            return
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.error_log.announce(f"caught {signal.Signals(signum).name}, shutting down")
            self.begin_shutdown("now")
        elif signum == signal.SIGWINCH:
            if self.stop is None and self.drain_until is None:
                if self.cfg.graceful_stop_drain > 0:
                    self.begin_drain()
                else:
                    self.error_log.announce("caught SIGWINCH, shutting down gracefully")
                    self.begin_shutdown("graceful")
        elif self.stop is not None or self.drain_until is not None:
            # A restart or an upgrade now would undo the stop (or the drain before it).
            self.error_log.warn(f"caught {signal_name(signum)} while "
                                f"{'draining' if self.stop is None else 'stopping'}: ignored")
        elif signum == signal.SIGHUP:
            self.error_log.notice("SIGHUP received.  Attempting to restart")
            self._restart_told(graceful=False)
        elif signum == signal.SIGUSR1:
            self.error_log.notice("Graceful restart requested, doing restart")
            self._restart_told(graceful=True)
        elif signum == signal.SIGUSR2:
            self.upgrade.begin(self.sockets, self.agent.fileno() if self.agent is not None else -1,
                               self.notify_socket_env)

    # -- systemd and draining --------------------------------------------------------

    def _restart_told(self, graceful: bool) -> None:
        """A restart between RELOADING=1 and READY=1 (Type=notify-reload).
        READY=1 follows once a child of the new generation serves, or at
        once when the restart was skipped (a bad configuration on USR1)."""
        self.supervisor.reloading()
        generation = self.generation
        self.restart(graceful=graceful)
        if self.generation == generation:
            self.supervisor.restart_skipped()

    def begin_drain(self) -> None:
        """GracefulStopDrain: keep serving while HealthPath answers 503; the
        graceful stop begins when the drain is over (end_drain_when_due)."""
        secs = self.cfg.graceful_stop_drain
        self.error_log.announce(f"caught SIGWINCH, draining for {secs:g} s (GracefulStopDrain), "
                                "then shutting down gracefully")
        self.drain_until = time.monotonic() + secs
        for info in self.children.values():
            self.scoreboard.process(info.slot).set_draining(True)
        self.supervisor.stopping()

    def end_drain_when_due(self) -> None:
        if self.drain_until is None:
            return
        if self.stop is not None:  # stopped now (TERM) during the drain
            self.drain_until = None
        elif time.monotonic() >= self.drain_until:
            self.drain_until = None
            self.error_log.announce("drain over (GracefulStopDrain), shutting down gracefully")
            self.begin_shutdown("graceful")

    # -- binary upgrade (USR2) and the agent-check ---------------------------------

    def _taken_over_by(self, pid: int) -> None:
        """The new master serves: stop gracefully, leaving it the sockets."""
        self.error_log.announce(f"binary upgrade: the new master (pid {pid}) serves; "
                                "this one stops gracefully")
        self.supervisor.taken_over(pid)
        self.close_agent()  # the new master answers the probes on its copy
        forget_unix_files(self.sockets)  # the new master's now
        self.drain_until = None
        self.begin_shutdown("graceful")

    def answer_agent(self) -> None:
        """HAProxy's agent-check: one line per connection, then close."""
        going_away = ("stopping" if self.stop is not None
                      else "draining" if self.drain_until is not None else None)
        self.agent.answer(self.scoreboard.snapshot(), self.cfg.threads_per_child,
                          configmod.daemons_limit(self.cfg), going_away)

    def close_agent(self) -> None:
        if self.agent is not None:
            self.agent.close()
            self.agent = None

    # -- setup and cleanup ----------------------------------------------------------

    def setup(self) -> None:
        """Everything done as root before the first fork. Raises on failure."""
        self.master_pid = os.getpid()
        for w in self.warnings:
            self.error_log.warn(w)
        self.notify_socket_env = os.environ.get("NOTIFY_SOCKET")
        notifier = Notifier.from_environ(on_error=self.error_log.warn)
        self._plan_privilege_drop()
        inherited = self.upgrade.take_inherited()
        # Started by a binary upgrade: the old master, our parent, speaks to
        # systemd for us until we have taken over and it has gone.
        self.supervisor = Supervisor(notifier, old_master=os.getppid() if inherited is not None else None)
        for line in adopt_activation(owned=inherited.owned if inherited is not None else frozenset()):
            self.error_log.info(line)
        self.listeners = bind_listeners(self.cfg)
        self.agent = AgentListen.open(self.cfg.agent_listen, inherited.agent_fd if inherited is not None else -1,
                                      self.error_log.warn)
        self.access_log = open_access_log(self.cfg)
        self._warn_about_file_directories()
        self._create_scoreboard()
        self.pid_file.write()
        if self.app is None and self.cfg.preload_app:
            if self.drop_plan is not None and not self.app_spec.startswith("mpmserver.demo:"):
                self.error_log.warn("PreloadApp On with a root master: the app is imported as root")
            self.app = load_app(self.app_spec)

    def _plan_privilege_drop(self) -> None:
        from ..deploy import unixd

        if self.drop_privileges:
            self.drop_plan = unixd.plan_drop(self.cfg.user, self.cfg.group, os.geteuid())
        if self.drop_plan is not None and self.drop_plan.warning:
            self.error_log.warn(self.drop_plan.warning)

    def _create_scoreboard(self) -> None:
        cfg = self.cfg
        # With a User, the file is 0640 and group Group: `mpmserver status`
        # run by the User, or by a member of Group, can read it; nobody else.
        group = self.drop_plan.gid if self.drop_plan is not None else None
        self.scoreboard = Scoreboard.create(cfg.server_limit, cfg.thread_limit, cfg.scoreboard_file,
                                            group=group)
        self._stamp_scoreboard()

    def _stamp_scoreboard(self) -> None:
        self.scoreboard.master_pid = os.getpid()
        self.scoreboard.generation = self.generation
        self.scoreboard.restart_time = time.time()

    def _warn_about_file_directories(self) -> None:
        """As root: warn about each PidFile or log file whose directory the User can write."""
        plan = self.drop_plan
        if plan is None:
            return
        from ..deploy import unixd

        logs = [] if self.access_log is None else getattr(self.access_log, "logs", [self.access_log])
        files = [("PidFile", self.cfg.pid_file), ("ErrorLog", self.error_log.path)]
        files += [("CustomLog", log.path) for log in logs]
        for w in safefiles.check_directories([(what, path) for what, path in files if path],
                                             plan.user_name, plan.uid, unixd.groups_of(plan)):
            self.error_log.warn(w)

    def _report_setup_failure(self, exc: Exception) -> None:
        if isinstance(exc, (ImportError, SyntaxError)) or self.cfg.preload_app and not isinstance(exc, OSError):
            self.error_log.exception(f"failed to load the WSGI app {self.app_spec!r}", exc)
        else:
            self.error_log.log("emerg", str(exc))

    def install_signals(self) -> None:
        # Handlers only queue the signal; the loop, woken through this pipe,
        # acts on it outside the handler.
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._wakeup_r, self._wakeup_w = r, w
        signal.set_wakeup_fd(w)
        for signum in HANDLED_SIGNALS + IGNORED_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def _wait_for_wakeup(self, timeout: float) -> list[Any]:
        """Sleep until a signal arrives, the agent socket or the upgrade pipe
        is readable, or ``timeout`` passes; what is readable."""
        watched: list[Any] = [self._wakeup_r]
        if self.agent is not None:
            watched.append(self.agent.sock)
        watched += self.upgrade.pipes()
        readable: list[Any] = []
        try:
            readable, _, _ = select.select(watched, [], [], timeout)
        except InterruptedError:
            pass
        try:
            while os.read(self._wakeup_r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        return readable

    def close_listeners(self) -> None:
        close_listeners(self.listeners.values())
        remove_unix_sockets(self.listeners.values())  # only the master ever calls this

    def cleanup(self) -> None:
        self.pid_file.remove()
        self.close_listeners()
        self.close_agent()
        self.upgrade.close()
        if self.scoreboard is not None:
            # After a takeover, a ScoreBoardFile at the same path is the new master's.
            self.scoreboard.close(remove=not self.upgrade.taken_over)
        self._close_wakeup()
        if self.stop is None or self.exit_code == 0:
            self.error_log.announce("mpmserver exiting")

    def _close_wakeup(self) -> None:
        if self._wakeup_w < 0:
            return
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:
            pass
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)
        self._wakeup_r = self._wakeup_w = -1

    # -- children ----------------------------------------------------------------

    def start_children(self) -> None:
        for slot in range(min(self.cfg.start_servers, self.cfg.server_limit)):
            self.spawn(slot)

    def spawn(self, slot: int) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            # Apache sleeps 10 s; we let the next maintenance cycle retry.
            self.error_log.error(f"fork: unable to fork new process: {exc}")
            return 0
        if pid == 0:
            self._be_child(slot)
        self.scoreboard.count_spawn()
        self.scoreboard.process(slot).spawned(pid, self.generation, draining=self.drain_until is not None)
        self.children[pid] = ChildInfo(pid, slot, self.generation)
        self.pending.add(slot)
        return pid

    def _be_child(self, slot: int) -> NoReturn:
        """The forked process: run the child and exit, never return into the master's code."""
        # An exception escaping child_main means the child could not run:
        # fatal, so the master stops instead of forking it again and again.
        code = EXIT_CHILDFATAL
        try:
            signal.set_wakeup_fd(-1)
            for signum in IGNORED_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            for fd in (self._wakeup_r, self._wakeup_w, *self.upgrade.pipes()):
                if fd >= 0:
                    os.close(fd)
            if self.agent is not None:
                self.agent.close()
            code = child_main(
                self.cfg, self.app, self.app_spec, self.sockets, self.scoreboard, slot,
                self.generation, self.error_log, self.access_log, self.drop_plan, self.master_pid,
                self.on_app_error,
            )
        except BaseException as exc:  # noqa: BLE001
            try:
                self.error_log.exception(f"child {slot}: crashed", exc)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
            except BaseException:  # noqa: BLE001
                pass
            os._exit(code)

    def reap(self) -> None:
        # waitpid(-1) reaps every exited process, not only our children: as
        # PID 1 (a container) the orphans re-parented to us are reaped here
        # and ignored, so they never linger as zombies.
        for pid, status in _reaped():
            info = self.children.pop(pid, None)
            if info is not None:
                self._child_gone(info, status)
            else:
                self.upgrade.exited(pid, status)

    def _child_gone(self, info: ChildInfo, status: int) -> None:
        # Read before the slot is cleared: whether it got as far as starting
        # its workers, and the requests it took with it.
        proc = self.scoreboard.snapshot().processes[info.slot]
        serving = info.slot not in self.pending or self._started(proc)
        self._log_lost_requests(maintenance.requests_lost(proc, self.cfg.threads_per_child))
        self.pending.discard(info.slot)
        self.clear_slot(info.slot)
        if self.stop is not None:
            return  # every child is being stopped: nothing to report or replace
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        cause = maintenance.exit_cause(code, sig, proc.recycle_cause,
                                       request_timeout=info.pid in self.state.hung_stopped)
        if cause is not None:
            self.scoreboard.count_exit(cause)
        self.apply_all(maintenance.exit_notice(info.pid, code, sig, stopping=info.stopping,
                                               serving=serving))
        self.apply_all(maintenance.child_exited(
            self.state, info.slot, info.pid, info.generation, self.generation, code, sig,
            info.stopping, serving=serving))

    def _log_lost_requests(self, lost: list[Any]) -> None:
        """Requests that died with their child still get an access log line:
        status 500 and %X "X" (the bytes already sent are not known here)."""
        if self.access_log is None:
            return
        now = time.time()
        for w in lost:
            record = AccessRecord(remote_addr=w.client or "-", request_line=w.request, status=500,
                                  start_time=w.start_time, duration=now - w.start_time, conn_status="X")
            try:
                self.access_log.log(record)
            except OSError as exc:
                self.error_log.error(f"cannot write the access log: {exc}")

    def _started(self, proc: Any) -> bool:
        """Some worker of this child's got past STARTING."""
        return any(w.status not in (SERVER_DEAD, SERVER_STARTING)
                   for w in proc.workers[:self.cfg.threads_per_child])

    def clear_slot(self, slot: int) -> None:
        sb = self.scoreboard
        sb.process(slot).clear()
        # The child's threads cannot mark themselves dead any more.
        for t in range(sb.thread_limit):
            sb.worker(slot, t).thread_exited()

    def slot_free(self, slot: int) -> bool:
        return all(info.slot != slot for info in self.children.values())

    def stop_child(self, pid: int, sig: int = signal.SIGUSR1) -> None:
        info = self.children.get(pid)
        if info is None:
            return
        info.stopping = True
        self.scoreboard.process(info.slot).set_quiescing(True)
        self.mark_graceful(info.slot)
        self.signal_child(pid, sig)

    def signal_pid(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def signal_child(self, pid: int, sig: int) -> None:
        # Only a child not yet reaped: a reaped pid may be someone else's now.
        if pid in self.children:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def mark_graceful(self, slot: int) -> None:
        """Requests in flight in a child told to stop show G ("Gracefully
        finishing") on the status page, as in Apache. The worker writes its
        next state over it when the request ends; a one-byte write cannot tear."""
        sb = self.scoreboard
        proc = sb.snapshot().processes[slot]
        for t, w in enumerate(proc.workers[:self.cfg.threads_per_child]):
            if w.status in GRACEFUL_FROM:
                sb.worker(slot, t).set_status(SERVER_GRACEFUL)

    # -- the policy's actions ------------------------------------------------------

    def apply_all(self, actions: Iterable[Any]) -> None:
        for action in actions:
            self.apply(action)

    def apply(self, action: Any) -> None:
        if isinstance(action, maintenance.Spawn):
            if self.slot_free(action.slot):
                self.spawn(action.slot)
        elif isinstance(action, maintenance.StopChild):
            self.stop_child(action.pid)
        elif isinstance(action, maintenance.SignalChild):
            self.signal_child(action.pid, action.signal)
        elif isinstance(action, maintenance.Log):
            self.error_log.log(action.level, action.message)
        elif isinstance(action, maintenance.Shutdown):
            self.exit_code = 1
            self.begin_shutdown("now")

    # -- stopping and restarting ---------------------------------------------------

    def begin_shutdown(self, mode: str) -> None:
        """Stop every child: "now" (TERM, then KILL) or "graceful" (finish, then exit)."""
        if mode == "now":
            if self.shutdown_mode != "now":
                self._begin_stop(maintenance.StopState())
            return
        # Stop accepting here too, so the kernel stops queueing connections for
        # us once the children have closed theirs.
        self.close_listeners()
        for info in list(self.children.values()):
            self.stop_child(info.pid, signal.SIGWINCH)
        self._begin_stop(maintenance.StopState.graceful(self.cfg.graceful_shutdown_timeout))

    def _begin_stop(self, stop: maintenance.StopState) -> None:
        self.stop = stop
        self.stop_started = time.monotonic()
        for info in self.children.values():
            info.stopping = True
        self.shutdown_step()  # stopping now: the first TERMs go at once

    def shutdown_step(self) -> bool:
        """Advance a stop; True when every child is gone."""
        if not self.children:
            return True
        elapsed = time.monotonic() - self.stop_started
        self.apply_all(maintenance.stop_step(self.stop, elapsed, list(self.children)))
        return False

    def wait_children(self, timeout: float) -> None:
        """Stop every child now and reap them (used by restart)."""
        self.begin_shutdown("now")
        end = time.monotonic() + timeout
        while self.children and time.monotonic() < end:
            self.reap()
            self.shutdown_step()
            time.sleep(0.02)
        self.stop = None

    def restart(self, graceful: bool) -> None:
        """USR1 (graceful) or HUP: re-read the configuration, start a new generation."""
        new_cfg = self._reload_config(graceful)
        if new_cfg is None:
            return
        if not graceful:
            self.wait_children(RECLAIM_KILL_AT + 2)
        self._switch_config(new_cfg)
        self.generation += 1
        self.scoreboard.generation = self.generation
        self.scoreboard.count_restart(graceful)
        if graceful:
            self._replace_children_gracefully()
        else:
            self._start_afresh()

    def _reload_config(self, graceful: bool) -> Any:
        """The new configuration, with its warnings logged; None to skip the restart."""
        try:
            new_cfg, warnings = configmod.load(self.config_path, self.overrides)
        except Exception as exc:  # noqa: BLE001 - a bad config must not take the server down
            self.error_log.error(f"configuration error on restart, keeping the running configuration: {exc}")
            # HUP has already been promised a restart: children are restarted with the old config.
            return None if graceful else self.cfg
        for w in list(warnings) + configmod.reconcile_restart(self.cfg, new_cfg):
            self.error_log.warn(w)
        return new_cfg

    def _switch_config(self, new_cfg: Any) -> None:
        old_cfg = self.cfg
        self.cfg = new_cfg
        self.app_spec = new_cfg.wsgi_app or self.app_spec
        self.error_log.set_level(new_cfg.log_level)
        self._reopen_logs(old_cfg, new_cfg)
        if new_cfg.listen != old_cfg.listen:
            try:
                self.listeners = bind_listeners(new_cfg, self.listeners)
            except OSError as exc:
                self.error_log.error(f"restart: {exc}; keeping the old listeners")
                self.cfg.listen = old_cfg.listen

    def _reopen_logs(self, old_cfg: Any, new_cfg: Any) -> None:
        """Reopen the error log, open the new configuration's CustomLog files.
        A file that cannot be opened, or that safefiles refuses (a link not
        root's), is logged and the open one kept, as for listeners."""
        try:
            self.error_log.reopen()
        except OSError as exc:
            self.error_log.error(f"restart: {exc}; keeping the open error log")
        try:
            access_log = open_access_log(new_cfg)
        except (OSError, ValueError) as exc:
            self.error_log.error(f"restart: {exc}; keeping the open access logs")
            new_cfg.custom_logs = old_cfg.custom_logs
            return
        if self.access_log is not None:
            self.access_log.close()
        self.access_log = access_log

    def _replace_children_gracefully(self) -> None:
        self.state.note_graceful_restart()
        # New children start at once in free slots; maintenance fills the rest.
        free = [s for s in range(self.cfg.server_limit) if self.slot_free(s)]
        for slot in free[: self.cfg.start_servers]:
            self.spawn(slot)
        self.retire_old_generation()

    @property
    def retiring(self) -> bool:
        """Children of an older generation not yet told to stop."""
        return any(info.generation < self.generation and not info.stopping
                   for info in self.children.values())

    def retire_old_generation(self) -> None:
        """Stop the old generation's children when the policy says (once the
        new generation serves, or to make room for it)."""
        live = [(i.pid, i.slot, i.generation) for i in self.children.values() if not i.stopping]
        stopping = len(self.children) - len(live)
        for action in maintenance.retire_generation(self.scoreboard.snapshot(), self.cfg.threads_per_child,
                                           self.generation, live, stopping=stopping):
            self.stop_child(action.pid, signal.SIGUSR1)

    def _start_afresh(self) -> None:
        """After HUP (every child gone): zeroed scoreboard and policy state."""
        self.scoreboard.reset()
        self._stamp_scoreboard()
        self.state = maintenance.MaintenanceState()
        self.pending.clear()
        self.start_children()


def _reaped() -> Iterator[tuple[int, int]]:
    """(pid, status) of every child that has exited, without waiting."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return
        yield pid, status
