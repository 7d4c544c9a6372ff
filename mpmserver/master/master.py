"""The master process: binds, forks, reaps, runs maintenance, obeys signals.

It never serves a request. Decisions live elsewhere: how many children to
run and what a child's exit means in maintenance.py; when a graceful
restart's old generation goes in retirement.py; which hung child to stop in
request_timeout.py; when to TERM or KILL the stragglers of a stop in
stopping.py; what a signal means in control.py; what the configuration means
in config.py; the listening sockets in deploy/listen.py. This file is the
loop and the life cycle (set up, serve, restart, stop, clean up), carrying
those decisions out through children.py's fork, kill and waitpid.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from .. import SERVER_SOFTWARE, safefiles
from .. import config as configmod
from ..appspec import enter_app_home
from ..child.child import StartReport, child_main, load_app, probe_main
from ..demo import DEMO_APP
from ..deploy.listen import (
    adopt_activation,
    bind_listeners,
    bound_address,
    close_listeners,
    remove_unix_sockets,
    url,
)
from ..deploy.systemd_notify import Notifier, Supervisor
from ..deploy.upgrade_takeover import BinaryUpgrade
from ..logs import ErrorLog, open_access_log
from ..modules.agent_listen import AgentListen
from ..modules.tls import tls_sockets
from ..scoreboard import Scoreboard
from ..titles import set_process_title
from . import maintenance, startup
from .actions import Action, Log, RestartOutcome, Shutdown, SignalChild, Spawn, StopChild
from .children import ChildInfo, Children, run_forked
from .control import Control
from .lost_requests import log_lost_requests
from .reconfigure import reload_config, reopen_logs
from .request_timeout import hung_requests, requests_lost
from .restart_reports import RestartReports
from .signals import SignalPipe
from .stopping import RECLAIM_KILL_AT, StopState

__all__ = ["Master"]

TICK = 1.0  # maintenance runs once a second
# While stopping, the stop schedule is checked this often; exits wake the
# loop at once anyway (SIGCHLD).
STOP_TICK = 0.1
# How long a HUP waits for its check that the app loads (probe_main).
PROBE_TIMEOUT = 60.0


class Master:
    def __init__(
        self,
        cfg: Any,
        warnings: Iterable[str] = (),
        config_path: str | None = None,
        overrides: Iterable[tuple[str, list[str]]] = (),
        app: Callable | None = None,
        error_log: ErrorLog | None = None,
        on_ready: Callable[[Master], None] | None = None,
        on_app_error: Callable[[BaseException], None] | None = None,
        drop_privileges: bool = True,
    ) -> None:
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
        self.on_serving: Callable[[Master], None] | None = None
        self.on_app_error = on_app_error  # run in the child that caught it (the test server's hook)
        # False keeps the children's user (the test server must not change users).
        self.drop_privileges = drop_privileges
        self.listeners: dict[tuple[str, int], socket.socket] = {}
        self.scoreboard: Scoreboard | None = None
        self.children = Children(self.error_log, self._be_child)
        self.generation = 0
        self.state = maintenance.MaintenanceState()
        self.signals = SignalPipe()
        self.exit_code = 0
        self.drop_plan = None
        self.pid_file = safefiles.PidFile(cfg.pid_file)
        self.master_pid = os.getpid()
        # What systemd is told (NOTIFY_SOCKET, set up in setup()).
        self.supervisor = Supervisor(None)
        self.notify_socket_env: str | None = None  # passed on to a new master
        # USR2; cli.py sets upgrade.argv, the command a new master starts with.
        self.upgrade = BinaryUpgrade(self.error_log, self.pid_file)
        self.agent: AgentListen | None = None
        self.control = Control(self)
        self.reports: RestartReports | None = None  # set up with the PidFile, systemd and the scoreboard
        # While a graceful restart is pending: the configuration and app the
        # serving generation runs, restored if the restart is abandoned.
        self._before_restart: tuple[Any, str] | None = None

    @property
    def stop(self) -> StopState | None:
        """Set while every child is being stopped."""
        return self.children.stop

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
            startup.report_setup_failure(self.cfg, self.error_log, self.app_spec, exc)
            self.cleanup()
            return 1
        set_process_title(f"mpmserver: master [{self.app_spec or 'app'}]")
        self.signals.install()
        tls = tls_sockets(self.cfg, self.listeners)
        addrs = ", ".join(url(bound_address(s), s in tls) for s in self.sockets)
        self.error_log.announce(
            f"{SERVER_SOFTWARE} (pid {os.getpid()}) serving {self.app_spec or 'app'} on {addrs}; "
            f"{configmod.pool_summary(self.cfg)}")
        try:
            # Bound and listening: connections queue from here on. Ready is
            # announced before the fork so children inherit what on_ready set
            # up (a daemon's detached stdio).
            if self.on_ready is not None:
                self.on_ready(self)
            startup.share_heap()
            self.start_children()
            self.main_loop()
        finally:
            self.cleanup()
        return self.exit_code

    def main_loop(self) -> None:
        control = self.control
        next_tick = time.monotonic() + TICK
        while True:
            readable = self._wait(next_tick)
            for signum in self.signals.take():
                control.handle(signum)
            if self.agent is not None and self.agent.sock in readable:
                control.answer_agent()
            self.reap()
            if (new_master := self.upgrade.check(readable)) is not None:
                control.taken_over_by(new_master)
            control.end_drain_when_due()
            if self.stop is not None:
                self.supervisor.stopping()
                if self.children.stop_step():
                    return
            if self.children.retiring(self.generation):
                self.children.retire(self.generation, self.cfg.threads_per_child)
            if self.stop is None and (time.monotonic() >= next_tick or self._retry_due()):
                next_tick = time.monotonic() + TICK
                self.maintain()

    def _wait(self, next_tick: float) -> list[Any]:
        """Sleep until the next thing to do; what of the agent socket and
        the upgrade's pipes is readable."""
        busy = self.stop is not None or self.children.retiring(self.generation)
        wait = STOP_TICK if busy else next_tick - time.monotonic()
        if self.control.drain_until is not None:
            wait = min(wait, self.control.drain_until - time.monotonic())
        if (retry_at := self._retry_at()) is not None:
            wait = min(wait, retry_at - time.monotonic())
        watched = [self.agent.sock] if self.agent is not None else []
        return self.signals.wait(watched + self.upgrade.pipes(), max(0.0, self.upgrade.wait_limit(wait)))

    def maintain(self) -> None:
        """The one place that decides how many children run, once a second
        (and when a child that could not start is to be tried again)."""
        snap = self.scoreboard.snapshot()
        self._note_started(snap)
        self.supervisor.status(snap, draining=self.control.drain_until is not None)
        live = {info.pid: info.slot for info in self.children}
        self.apply_all(hung_requests(snap, self.cfg, self.state, live, now=time.time(), clock=time.monotonic()))
        self.apply_all(maintenance.idle_server_maintenance(snap, self.cfg, self.state,
                                                           pending=frozenset(self.children.pending),
                                                           now=time.monotonic()))

    def _note_started(self, snap: Any) -> None:
        """The children that have started since the last look: the start's
        and a restart's cues, and the policy told (maintenance.child_started)."""
        for proc in self.children.newly_started(snap.processes, self.cfg.threads_per_child):
            if self.on_serving is not None:
                on_serving, self.on_serving = self.on_serving, None
                on_serving(self)
            self.upgrade.tell_old_master()
            self.supervisor.child_serves(proc.generation == self.generation)
            self.apply_all(maintenance.child_started(self.state, proc.generation, self.generation))

    def _retry_at(self) -> float | None:
        """When a child that could not start is to be tried again (none while one is starting)."""
        return None if self.children.pending else self.state.backoff.wake_at()

    def _retry_due(self) -> bool:
        retry_at = self._retry_at()
        return retry_at is not None and time.monotonic() >= retry_at

    def close_agent(self) -> None:
        if self.agent is not None:
            self.agent.close()
            self.agent = None

    # -- setup and cleanup ----------------------------------------------------------

    def setup(self) -> None:
        """Everything done as root before the first fork. Raises on failure."""
        self.master_pid = os.getpid()
        # Before any relative path is used and the app imported (the command
        # line has done it already; the Python API has not).
        enter_app_home(self.cfg.chdir, self.cfg.python_path)
        for w in self.warnings:
            self.error_log.warn(w)
        self.notify_socket_env = os.environ.get("NOTIFY_SOCKET")
        notifier = Notifier.from_environ(on_error=self.error_log.warn)
        if self.drop_privileges:
            self.drop_plan = startup.plan_privilege_drop(self.cfg, self.error_log)
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
        startup.warn_about_file_directories(self.cfg, self.error_log, self.access_log, self.drop_plan)
        self.scoreboard = self.children.scoreboard = startup.create_scoreboard(
            self.cfg, self.drop_plan, self.generation)
        self.pid_file.write()
        self.reports = RestartReports(self.pid_file, self.supervisor, self.scoreboard, self.error_log)
        self.reports.record(True, self.generation)  # -k graceful counts from here
        if self.app is None and self.cfg.preload_app:
            if self.drop_plan is not None and self.app_spec != DEMO_APP:
                self.error_log.warn("PreloadApp On with a root master: the app is imported as root")
            self.app = load_app(self.app_spec)

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
        self.signals.close()
        if self.stop is None or self.exit_code == 0:
            self.error_log.announce("mpmserver exiting")

    # -- children ----------------------------------------------------------------

    def start_children(self) -> None:
        for slot in range(min(self.cfg.start_servers, self.cfg.server_limit)):
            self.spawn(slot)

    def spawn(self, slot: int) -> int:
        return self.children.spawn(slot, self.generation, draining=self.control.drain_until is not None)

    def _be_child(self, slot: int, report: StartReport) -> NoReturn:
        """The forked process: what of the master's it must not keep, then the child."""
        def main() -> int:
            self._forget_in_child()
            return child_main(self.cfg, self.app, self.app_spec, self.sockets, self.scoreboard, slot,
                              self.generation, self.error_log, self.access_log, self.drop_plan,
                              self.master_pid, self.on_app_error, report,
                              tls_sockets(self.cfg, self.listeners))

        run_forked(slot, self.error_log, main, report)

    def _forget_in_child(self) -> None:
        self.signals.forget_in_child()
        for fd in self.upgrade.pipes():
            os.close(fd)
        if self.agent is not None:
            self.agent.close()

    def reap(self) -> None:
        for pid, status, info in self.children.reaped():
            if info is not None:
                self._child_gone(info, status)
            else:
                self.upgrade.exited(pid, status)  # the new master of a failed upgrade, or an orphan

    def _child_gone(self, info: ChildInfo, status: int) -> None:
        # Read before the slot is cleared: whether it got as far as starting
        # its workers, and the requests it took with it. Siblings that
        # started meanwhile are noted first: a restart they decided is not
        # undone by this exit.
        tpc = self.cfg.threads_per_child
        report = self.children.take_report(info)
        snap = self.scoreboard.snapshot()
        if self.stop is None:
            self._note_started(snap)
        proc = snap.processes[info.slot]
        serving = info.slot not in self.children.pending or proc.has_started(tpc)
        log_lost_requests(self.access_log, self.error_log, requests_lost(proc, tpc))
        self.children.pending.discard(info.slot)
        self.children.clear_slot(info.slot)
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
            info.stopping, serving=serving, now=time.monotonic(), report=report))

    def stop_child(self, pid: int, sig: int = signal.SIGUSR1) -> None:
        self.children.stop_one(pid, sig, self.cfg.threads_per_child)

    # -- the policy's actions ------------------------------------------------------

    def apply_all(self, actions: Iterable[Action | Shutdown]) -> None:
        for action in actions:
            self.apply(action)

    def apply(self, action: Action | Shutdown) -> None:
        if isinstance(action, Spawn):
            if self.children.slot_free(action.slot):
                self.spawn(action.slot)
        elif isinstance(action, StopChild):
            self.stop_child(action.pid)
        elif isinstance(action, SignalChild):
            self.children.signal(action.pid, action.signal)
        elif isinstance(action, Log):
            self.error_log.log(action.level, action.message)
        elif isinstance(action, RestartOutcome):
            self._restart_decided(action)
        elif isinstance(action, Shutdown):
            self.exit_code = 1
            self.begin_shutdown("now")

    # -- stopping and restarting ---------------------------------------------------

    def begin_shutdown(self, mode: str) -> None:
        """Stop every child: "now" (TERM, then KILL) or "graceful" (finish, then exit)."""
        if mode == "now":
            if self.shutdown_mode != "now":
                self.children.begin_stop(StopState())
            return
        # Stop accepting here too, so the kernel stops queueing connections for
        # us once the children have closed theirs.
        self.close_listeners()
        for info in self.children:
            self.stop_child(info.pid, signal.SIGWINCH)
        self.children.begin_stop(StopState.graceful(self.cfg.graceful_shutdown_timeout))

    def wait_children(self, timeout: float) -> None:
        """Stop every child now and reap them (used by restart)."""
        self.begin_shutdown("now")
        end = time.monotonic() + timeout
        while self.children and time.monotonic() < end:
            self.reap()
            self.children.stop_step()
            time.sleep(0.02)
        self.children.stop = None

    def restart(self, graceful: bool) -> None:
        """USR1 (graceful) or HUP: re-read the configuration, start a new generation.
        Neither stops a server that serves: a configuration that does not load
        skips a graceful restart, an app that does not load skips a HUP (it
        is checked before the children are stopped), and a graceful restart
        whose new children cannot start is abandoned (_restart_decided)."""
        if graceful:
            self.reports.graceful_asked()
            # Whether some child serves decides what a failure means: not
            # left to the next maintenance second.
            self._note_started(self.scoreboard.snapshot())
        new_cfg = reload_config(self.config_path, self.overrides, self.cfg, graceful, self.error_log)
        if new_cfg is None:
            self.error_log.error(f"graceful restart failed, still serving generation {self.generation}: "
                                 "the configuration does not load")
            self.reports.failed("the configuration does not load (see the error log)", self.generation)
            return
        if not graceful:
            if not self._app_loads(new_cfg):
                return
            self.wait_children(RECLAIM_KILL_AT + 2)
        elif self.state.restart_from is None:
            self._before_restart = self.cfg, self.app_spec
        self._switch_config(new_cfg)
        self.generation += 1
        self.scoreboard.generation = self.generation
        self.scoreboard.count_restart(graceful)
        if graceful:
            self._replace_children_gracefully()
        else:
            self._start_afresh()

    def graceful_refused(self, why: str) -> None:
        """USR1 not acted on (the server is stopping): -k graceful is told why."""
        self.reports.refused(why, self.generation)

    def _enter_app_home(self, cfg: Any) -> None:
        """The Chdir and PythonPath the next children import the app from."""
        try:
            enter_app_home(cfg.chdir, cfg.python_path)
        except OSError as exc:
            self.error_log.error(f"restart: Chdir {cfg.chdir}: {exc.strerror or exc}")

    def _switch_config(self, new_cfg: Any) -> None:
        old_cfg = self.cfg
        self.cfg = new_cfg
        self.app_spec = new_cfg.wsgi_app or self.app_spec
        self._enter_app_home(new_cfg)
        self.error_log.set_level(new_cfg.log_level)
        self.access_log = reopen_logs(self.error_log, self.access_log, old_cfg, new_cfg)
        if new_cfg.listen != old_cfg.listen:
            try:
                self.listeners = bind_listeners(new_cfg, self.listeners)
            except OSError as exc:
                self.error_log.error(f"restart: {exc}; keeping the old listeners")
                self.cfg.listen = old_cfg.listen

    def _replace_children_gracefully(self) -> None:
        self.state.note_graceful_restart(self.generation - 1)
        # New children start at once in free slots; maintenance fills the rest.
        free = [s for s in range(self.cfg.server_limit) if self.children.slot_free(s)]
        for slot in free[: self.cfg.start_servers]:
            self.spawn(slot)
        self.children.retire(self.generation, self.cfg.threads_per_child)

    def _start_afresh(self) -> None:
        """After HUP (every child gone): zeroed scoreboard and policy state."""
        self.scoreboard.reset()
        startup.stamp_scoreboard(self.scoreboard, self.generation)
        self.state = self.state.after_hup()
        self.children.pending.clear()
        self.start_children()

    # -- when a restart fails --------------------------------------------------------

    def _restart_decided(self, outcome: RestartOutcome) -> None:
        """A graceful restart's children started (the old generation retires),
        or could not (it is abandoned: the generation that serves stays)."""
        before, self._before_restart = self._before_restart, None
        if outcome.served:
            self.error_log.notice(f"graceful restart done: generation {outcome.generation} serves")
            self.reports.record(True, outcome.generation)
            return
        self.generation = outcome.generation
        self.scoreboard.generation = outcome.generation
        for info in self.children:
            if info.generation > outcome.generation and not info.stopping:
                self.stop_child(info.pid)
        if before is not None:
            self._switch_back(*before)
        self.reports.failed(outcome.reason, self.generation)

    def _switch_back(self, cfg: Any, app_spec: str) -> None:
        """The configuration and app of the generation that serves, for its
        replacements (listeners and logs stay as the restart left them)."""
        cfg.listen = self.cfg.listen
        self.cfg, self.app_spec = cfg, app_spec
        self._enter_app_home(cfg)

    def _app_loads(self, cfg: Any) -> bool:
        """Before a HUP stops every child: does the app load, as the new
        children would load it? Checked in a forked process (probe_main);
        False after logging why and keeping what serves."""
        if self.app is not None:
            return True  # PreloadApp: the children fork the app the master holds
        app_spec = cfg.wsgi_app or self.app_spec

        def probe(report: StartReport) -> int:
            self._forget_in_child()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a stop meanwhile ends the check at once
            return probe_main(cfg, app_spec, self.error_log, self.drop_plan, report)

        ok, report = self.children.probe(probe, PROBE_TIMEOUT, give_up=self.signals.stop_pending)
        if ok:
            return True
        if report:
            self.error_log.error(report)
        reason = maintenance.reason_of(report, "the app does not load")
        self.error_log.error(f"restart (HUP) failed, still serving generation {self.generation}: "
                             f"the WSGI app {app_spec!r} does not load: {reason}")
        self.reports.failed(reason, self.generation, graceful_restart=False)
        return False
