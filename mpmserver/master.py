"""The master process: binds, forks, reaps, runs maintenance, obeys signals.

It never serves a request. Decisions live elsewhere: how many children to run
in maintenance.py (`idle_server_maintenance`, `child_exited`), what the
configuration means in config.py. This file is the mechanism that carries
those decisions out with fork, kill and waitpid.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from . import SERVER_SOFTWARE, config as configmod, maintenance
from .child import EXIT_CHILDFATAL, child_main, load_app
from .logs import AccessLog, ErrorLog
from .scoreboard import (
    SERVER_BUSY_READ, SERVER_BUSY_WRITE, SERVER_DEAD, SERVER_GRACEFUL, SERVER_STARTING, Scoreboard,
)

# Apache's reclaim_child_processes schedule: TERM again at these seconds, KILL after.
RECLAIM_TERM_AT = (3.0, 5.0, 7.0)
RECLAIM_KILL_AT = 9.0
# Worker states that mean "a request is running" (turned into G when its child stops).
GRACEFUL_FROM = frozenset((SERVER_BUSY_READ, SERVER_BUSY_WRITE))
HUNG_STATES = GRACEFUL_FROM | {SERVER_GRACEFUL}
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                   signal.SIGWINCH, signal.SIGCHLD)


@dataclass
class ChildInfo:
    pid: int
    slot: int
    generation: int
    stopping: bool = False
    started: float = 0.0
    killed_at: float = 0.0  # RequestTimeout: when it was told to stop for a hung request


class MultiLog:
    """Several CustomLog lines for one request."""

    def __init__(self, logs: list[AccessLog]):
        self.logs = logs

    def log(self, rec: Any) -> None:
        for log in self.logs:
            log.log(rec)

    def close(self) -> None:
        for log in self.logs:
            log.close()


def open_access_log(cfg: Any) -> Any:
    logs = [AccessLog(target, fmt) for target, fmt in cfg.custom_logs]
    if not logs:
        return None
    return logs[0] if len(logs) == 1 else MultiLog(logs)


def bind_listeners(cfg: Any, existing: dict[tuple[str, int], socket.socket] | None = None
                   ) -> dict[tuple[str, int], socket.socket]:
    """Bind every Listen address (reusing sockets already bound to it)."""
    existing = dict(existing or {})
    out: dict[tuple[str, int], socket.socket] = {}
    for host, port in cfg.listen:
        key = (host, port)
        if key in existing and port != 0:
            out[key] = existing.pop(key)
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(cfg.listen_backlog)
        except OSError as exc:
            sock.close()
            for s in out.values():
                s.close()
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            raise OSError(exc.errno, f"could not bind to address {where}: {exc.strerror}") from None
        sock.set_inheritable(False)
        out[key] = sock
    for sock in existing.values():
        sock.close()
    return out


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
        self.shutdown_mode: str | None = None  # None, "graceful", "now"
        self.shutdown_deadline = 0.0
        self.exit_code = 0
        self.drop_plan = None
        self.pid_file_written = False
        self._wakeup_r = self._wakeup_w = -1
        self.master_pid = os.getpid()

    # -- start ------------------------------------------------------------------

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self.listeners.values())

    def bound_addresses(self) -> list[tuple[str, int]]:
        return [s.getsockname()[:2] for s in self.sockets]

    def setup(self) -> None:
        """Everything done as root before the first fork. Raises on failure."""
        cfg = self.cfg
        self.master_pid = os.getpid()
        for w in self.warnings:
            self.error_log.warn(w)
        from . import unixd

        self.drop_plan = unixd.plan_drop(cfg.user, cfg.group, os.geteuid()) if self.drop_privileges else None
        if self.drop_plan is not None and self.drop_plan.warning:
            self.error_log.warn(self.drop_plan.warning)
        self.listeners = bind_listeners(cfg)
        self.access_log = open_access_log(cfg)
        self.scoreboard = Scoreboard.create(cfg.server_limit, cfg.thread_limit, cfg.scoreboard_file)
        self.scoreboard.master_pid = os.getpid()
        self.scoreboard.generation = self.generation
        self.scoreboard.restart_time = time.time()
        if self.drop_plan is not None and cfg.scoreboard_file:
            # `mpmserver status` run by the User must be able to read it.
            os.chmod(cfg.scoreboard_file, 0o644)
        if cfg.pid_file:
            with open(cfg.pid_file, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.pid_file_written = True
        if self.app is None and cfg.preload_app:
            if self.drop_plan is not None and not self.app_spec.startswith("mpmserver.demo:"):
                self.error_log.warn("PreloadApp On with a root master: the app is imported as root")
            self.app = load_app(self.app_spec)

    def run(self) -> int:
        """Set up, serve until told to stop, clean up; the process exit code."""
        try:
            self.setup()
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, (ImportError, SyntaxError)) or self.cfg.preload_app and not isinstance(exc, OSError):
                self.error_log.exception(f"failed to load the WSGI app {self.app_spec!r}", exc)
            else:
                self.error_log.log("emerg", str(exc))
            self.cleanup()
            return 1
        try:
            import setproctitle

            setproctitle.setproctitle(f"mpmserver: master [{self.app_spec or 'app'}]")
        except Exception:  # noqa: BLE001
            pass
        self.install_signals()
        addrs = ", ".join(_fmt_addr(a) for a in self.bound_addresses())
        self.error_log.notice(
            f"{SERVER_SOFTWARE} (pid {os.getpid()}) serving {self.app_spec or 'app'} on {addrs}; "
            f"StartServers {self.cfg.start_servers}, ThreadsPerChild {self.cfg.threads_per_child}")
        try:
            # Bound and listening: connections queue from here on. Ready is
            # announced before the fork so children inherit what on_ready set
            # up (a daemon's detached stdio).
            if self.on_ready is not None:
                self.on_ready(self)
            for slot in range(min(self.cfg.start_servers, self.cfg.server_limit)):
                self.spawn(slot)
            self.main_loop()
        finally:
            self.cleanup()
        return self.exit_code

    def install_signals(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._wakeup_r, self._wakeup_w = r, w
        signal.set_wakeup_fd(w)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    # -- children ----------------------------------------------------------------

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
            # An exception escaping child_main means the child could not run:
            # fatal, so the master stops instead of forking it again and again.
            code = EXIT_CHILDFATAL
            try:
                signal.set_wakeup_fd(-1)
                for fd in (self._wakeup_r, self._wakeup_w):
                    if fd >= 0:
                        os.close(fd)
                code = child_main(
                    self.cfg, self.app, self.app_spec, self.sockets, self.scoreboard, slot,
                    self.generation, self.error_log, self.access_log, self.drop_plan, self.master_pid,
                    self.on_app_error,
                )
            except BaseException as exc:  # noqa: BLE001 - never return into the master's code
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
        self.scoreboard.process(slot).spawned(pid, self.generation)
        self.children[pid] = ChildInfo(pid, slot, self.generation, started=time.monotonic())
        self.pending.add(slot)
        return pid

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            info = self.children.pop(pid, None)
            if info is None:
                continue
            self.pending.discard(info.slot)
            self.clear_slot(info.slot)
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            if sig is not None and not info.stopping and self.shutdown_mode is None:
                self.error_log.notice(f"child pid {pid} exit signal {signal.Signals(sig).name} ({sig})")
            if self.shutdown_mode is not None:
                continue
            for action in maintenance.child_exited(
                self.state, info.slot, pid, info.generation, self.generation, code, sig, info.stopping
            ):
                self.apply(action)

    def clear_slot(self, slot: int) -> None:
        sb = self.scoreboard
        sb.process(slot).clear()
        # The child's threads cannot mark themselves dead any more.
        for t in range(sb.thread_limit):
            sb.worker(slot, t).thread_exited()

    def apply(self, action: Any) -> None:
        if isinstance(action, maintenance.Spawn):
            if self.slot_free(action.slot):
                self.spawn(action.slot)
        elif isinstance(action, maintenance.StopChild):
            self.stop_child(action.pid)
        elif isinstance(action, maintenance.Log):
            self.error_log.log(action.level, action.message)
        elif isinstance(action, maintenance.Shutdown):
            self.exit_code = 1
            self.begin_shutdown("now")

    def slot_free(self, slot: int) -> bool:
        return all(info.slot != slot for info in self.children.values())

    def stop_child(self, pid: int, sig: int = signal.SIGUSR1) -> None:
        info = self.children.get(pid)
        if info is None:
            return
        info.stopping = True
        self.scoreboard.process(info.slot).set_quiescing(True)
        self.mark_graceful(info.slot)
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

    def maintain(self) -> None:
        """The one place that decides how many children run."""
        snap = self.scoreboard.snapshot()
        for proc in snap.processes:
            if proc.slot in self.pending and proc.workers and any(
                    w.status not in (SERVER_DEAD, SERVER_STARTING) for w in proc.workers[:self.cfg.threads_per_child]):
                self.pending.discard(proc.slot)
                self.state.note_child_ready()
        self.check_hung_requests(snap)
        for action in maintenance.idle_server_maintenance(snap, self.cfg, self.state,
                                                          pending=frozenset(self.pending)):
            self.apply(action)

    def check_hung_requests(self, snap: Any) -> None:
        timeout = getattr(self.cfg, "request_timeout", 0)
        if not timeout:
            return
        now = time.time()
        grace = max(self.cfg.graceful_shutdown_timeout, timeout)
        for info in list(self.children.values()):
            if info.killed_at:
                if time.monotonic() - info.killed_at > grace:
                    self.error_log.error(f"child pid {info.pid} did not finish its hung request, killing it")
                    try:
                        os.kill(info.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                continue
            proc = snap.processes[info.slot]
            if proc.pid != info.pid:
                continue
            for t, w in enumerate(proc.workers[:self.cfg.threads_per_child]):
                if w.status in HUNG_STATES and w.start_time and w.stop_time < w.start_time \
                        and now - w.start_time > timeout:
                    self.error_log.error(
                        f"RequestTimeout: request {w.request!r} from {w.client} on child pid {info.pid} "
                        f"thread {t} has run {now - w.start_time:.1f}s (RequestTimeout {timeout:g}s); "
                        f"stopping the child gracefully")
                    self.stop_child(info.pid)
                    info.killed_at = time.monotonic()
                    break

    # -- the loop ----------------------------------------------------------------

    def main_loop(self) -> None:
        next_tick = time.monotonic() + 1.0
        while True:
            now = time.monotonic()
            timeout = max(0.0, next_tick - now)
            try:
                select.select([self._wakeup_r], [], [], timeout)
            except InterruptedError:
                pass
            try:
                while os.read(self._wakeup_r, 512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
            signals, self.signals = self.signals, []
            for signum in signals:
                self.handle_signal(signum)
            self.reap()
            if self.shutdown_mode is not None:
                if self.shutdown_step():
                    return
                continue
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + 1.0
                self.maintain()

    def handle_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.error_log.notice(f"caught {signal.Signals(signum).name}, shutting down")
            self.begin_shutdown("now")
        elif signum == signal.SIGWINCH:
            if self.shutdown_mode is None:
                self.error_log.notice("caught SIGWINCH, shutting down gracefully")
                self.begin_shutdown("graceful")
        elif self.shutdown_mode is not None:
            return
        elif signum == signal.SIGHUP:
            self.error_log.notice("SIGHUP received.  Attempting to restart")
            self.restart(graceful=False)
        elif signum == signal.SIGUSR1:
            self.error_log.notice("Graceful restart requested, doing restart")
            self.restart(graceful=True)

    def begin_shutdown(self, mode: str) -> None:
        now = time.monotonic()
        if mode == "now":
            if self.shutdown_mode == "now":
                return
            self.shutdown_mode = "now"
            self.shutdown_started = now
            self.term_sent = 0
            for info in self.children.values():
                info.stopping = True
                try:
                    os.kill(info.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            return
        self.shutdown_mode = "graceful"
        self.shutdown_started = now
        # Stop accepting here too, so the kernel stops queueing connections for
        # us once the children have closed theirs.
        self.close_listeners()
        for info in list(self.children.values()):
            self.stop_child(info.pid, signal.SIGWINCH)
        timeout = self.cfg.graceful_shutdown_timeout
        self.shutdown_deadline = now + timeout if timeout else float("inf")

    def shutdown_step(self) -> bool:
        """Advance a shutdown; True when every child is gone."""
        if not self.children:
            return True
        now = time.monotonic()
        if self.shutdown_mode == "graceful":
            if now >= self.shutdown_deadline:
                self.error_log.notice("GracefulShutdownTimeout expired, stopping the remaining children")
                self.begin_shutdown("now")
            return False
        elapsed = now - self.shutdown_started
        if elapsed >= RECLAIM_KILL_AT:
            for info in self.children.values():
                self.error_log.error(f"child process {info.pid} still did not exit, sending a SIGKILL")
                try:
                    os.kill(info.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.shutdown_started = now - RECLAIM_KILL_AT + 1.0  # KILL again in a second if need be
        elif self.term_sent < len(RECLAIM_TERM_AT) and elapsed >= RECLAIM_TERM_AT[self.term_sent]:
            self.term_sent += 1
            for info in self.children.values():
                self.error_log.warn(f"child process {info.pid} still did not exit, sending a SIGTERM")
                try:
                    os.kill(info.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return False

    def wait_children(self, timeout: float) -> None:
        """Reap until every child is gone (used by restart), TERM/KILL on the way."""
        self.begin_shutdown("now")
        end = time.monotonic() + timeout
        while self.children and time.monotonic() < end:
            self.reap()
            self.shutdown_step()
            time.sleep(0.02)
        self.shutdown_mode = None

    def restart(self, graceful: bool) -> None:
        try:
            new_cfg, warnings = configmod.load(self.config_path, self.overrides)
        except Exception as exc:  # noqa: BLE001 - a bad config must not take the server down
            self.error_log.error(f"configuration error on restart, keeping the running configuration: {exc}")
            if not graceful:
                # HUP has already been promised a restart: children are restarted with the old config.
                new_cfg, warnings = self.cfg, []
            else:
                return
        if new_cfg is not self.cfg:
            warnings = list(warnings) + configmod.reconcile_restart(self.cfg, new_cfg)
            for w in warnings:
                self.error_log.warn(w)
        old_cfg = self.cfg
        if not graceful:
            self.wait_children(RECLAIM_KILL_AT + 2)
        self.cfg = new_cfg
        self.app_spec = new_cfg.wsgi_app or self.app_spec
        self.error_log.set_level(new_cfg.log_level)
        self.error_log.reopen()
        if self.access_log is not None:
            self.access_log.close()
        self.access_log = open_access_log(new_cfg)
        if new_cfg.listen != old_cfg.listen:
            try:
                self.listeners = bind_listeners(new_cfg, self.listeners)
            except OSError as exc:
                self.error_log.error(f"restart: {exc}; keeping the old listeners")
                self.cfg.listen = old_cfg.listen
        self.generation += 1
        self.scoreboard.generation = self.generation
        if graceful:
            self.state.note_graceful_restart()
            for info in list(self.children.values()):
                if info.generation < self.generation:
                    self.stop_child(info.pid, signal.SIGUSR1)
            # New children start at once in free slots; maintenance fills the rest.
            free = [s for s in range(self.cfg.server_limit) if self.slot_free(s)]
            for slot in free[: self.cfg.start_servers]:
                self.spawn(slot)
        else:
            self.scoreboard.reset()
            self.scoreboard.master_pid = os.getpid()
            self.scoreboard.generation = self.generation
            self.scoreboard.restart_time = time.time()
            self.state = maintenance.MaintenanceState()
            self.pending.clear()
            for slot in range(min(self.cfg.start_servers, self.cfg.server_limit)):
                self.spawn(slot)

    def close_listeners(self) -> None:
        for sock in self.listeners.values():
            try:
                sock.close()
            except OSError:
                pass

    def cleanup(self) -> None:
        if self.pid_file_written and self.cfg.pid_file:
            try:
                os.unlink(self.cfg.pid_file)
            except OSError:
                pass
            self.pid_file_written = False
        self.close_listeners()
        if self.scoreboard is not None:
            self.scoreboard.close()
        if self._wakeup_w >= 0:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
            self._wakeup_r = self._wakeup_w = -1
        if self.shutdown_mode is None or self.exit_code == 0:
            self.error_log.notice("mpmserver exiting")


def _fmt_addr(addr: tuple) -> str:
    host, port = addr[0], addr[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
