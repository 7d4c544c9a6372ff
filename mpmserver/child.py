"""A child: ThreadsPerChild worker threads and one listener, fixed for its life.

`Child` is the serving unit and has no process-level behaviour, so the test
server (testing.py) runs one inside the test process. `child_main` is what a
forked child process runs around it: process title, signals, privilege drop,
app loading, recycling, and the exit code the master reads.
"""

from __future__ import annotations

import os
import queue
import random
import resource
import signal
import socket
import sys
import sysconfig
import threading
import time
from typing import Any, Callable

from . import protocol
from .listener import Listener
from .scoreboard import Scoreboard
from .worker import Worker
from .wsgi import base_environ

# Read as root, before the fork: after the drop the child may not be able to.
_PYTHON_PATHS = sysconfig.get_paths()

# Exit codes the master acts on (Apache's APEXIT_*).
EXIT_CHILDFATAL = 0xF  # cannot start: the app failed to load, privileges could not be dropped
EXIT_CHILDSICK = 0x7  # a resource shortage; try again later


class Child:
    def __init__(
        self,
        config: Any,
        app: Callable,
        sockets: list[socket.socket],
        scoreboard: Scoreboard,
        slot: int,
        generation: int,
        error_log: Any,
        access_log: Any = None,
        on_app_error: Callable[[BaseException], None] | None = None,
    ):
        self.config = config
        self.app = app
        self.sockets = sockets
        self.scoreboard = scoreboard
        self.slot = slot
        self.generation = generation
        self.error_log = error_log
        self.access_log = access_log
        self._on_app_error = on_app_error
        self.process_record = scoreboard.process(slot)
        self.ready: queue.SimpleQueue = queue.SimpleQueue()
        self.idle_lock = threading.Lock()
        self.idle = 0
        self.stopping = False
        self.done = threading.Event()
        # The most a request head may take; h11's own buffer limit is set to it.
        # LimitRequestFields 0 means no limit on the count (Apache); memory is
        # still bounded, as if by a thousand fields.
        fields = config.limit_request_fields or 1000
        self.max_head_size = (
            config.limit_request_line + 2 + fields * (config.limit_request_field_size + 2) + 2
        )
        host, port = _server_name(sockets)
        from .logs import ErrorStream

        self.base_environ = base_environ(host, port, ErrorStream(error_log))
        self.connections = 0
        limit = config.max_connections_per_child
        if limit and config.max_connections_per_child_jitter:
            limit += random.randint(0, config.max_connections_per_child_jitter)
        self.max_connections = limit
        self.factor = min(1.0, config.async_request_worker_factor)
        self.balance = scoreboard.server_limit > 1
        self.balance_slack = max(2, config.threads_per_child // 2)
        self.max_open = config.max_open_connections_per_child
        if config.status_path:
            # Only a server that asks for a status page pays for the check.
            from .status import status_app

            self.app = status_app(app, self)
        self.workers = [Worker(self, i) for i in range(config.threads_per_child)]
        self.listener = Listener(self, sockets)

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        for worker in self.workers:
            worker.start()
        self.listener.start()
        for i, worker in enumerate(self.workers):
            _name_thread(worker.thread, f"mpm-worker-{i}")
        _name_thread(self.listener.thread, "mpm-listener")

    def graceful_stop(self) -> None:
        """Stop accepting, close idle connections, let in-flight requests finish;
        `done` is set when the last connection is closed."""
        if self.stopping:
            return
        self.stopping = True
        self.listener.stop(graceful=True)

    def listener_drained(self) -> None:
        self.done.set()

    def join(self, timeout: float = 5.0) -> bool:
        """End the listener and the workers; True when every thread ended."""
        self.stopping = True
        self.listener.shutdown()
        for _ in self.workers:
            self.ready.put(None)
        deadline = time.monotonic() + timeout
        ok = True
        for thread in [self.listener.thread] + [w.thread for w in self.workers]:
            thread.join(max(0.0, deadline - time.monotonic()))
            ok = ok and not thread.is_alive()
        return ok

    # -- called by the workers ------------------------------------------------------

    def worker_idle(self) -> None:
        with self.idle_lock:
            self.idle += 1
            wake = not self.listener.accepting and not self.stopping
        if wake:
            self.listener.wake()

    def worker_busy(self) -> None:
        with self.idle_lock:
            self.idle -= 1

    def app_error(self, exc: BaseException) -> None:
        if self._on_app_error is not None:
            self._on_app_error(exc)

    # -- called by the listener ------------------------------------------------------

    def admits(self, open_connections: int) -> bool:
        """Admission: accept only while a worker is free for the request.

        A request never waits inside a busy child while a sibling could serve
        it (worker MPM); it waits in the kernel's queue, where any child that
        frees a worker takes it. Connections parked in keep-alive and heads
        still arriving cost a descriptor, not a thread, so they do not count
        (Apache's event MPM counts every connection). AsyncRequestWorkerFactor
        below 1 keeps a share of the idle workers for parked clients' next
        requests; above 1 it changes nothing. Call with idle_lock held when the
        answer decides to pause, so a worker going idle cannot be missed.
        """
        if self.stopping or open_connections >= self.max_open:
            return False
        if self.max_connections and self.connections >= self.max_connections:
            return False
        return self.ready.qsize() < self.idle * self.factor

    def prefers_sibling(self, open_connections: int) -> bool:
        """Leave a new connection to an accepting sibling that has clearly
        fewer connections. A child's threads share one GIL: without this, one
        child can end up with every keep-alive client while another sits idle."""
        if not self.balance:
            return False
        fewest = self.scoreboard.fewest_connections(self.slot)
        return fewest is not None and open_connections > fewest + self.balance_slack

    def accept_connection(self) -> bool:
        """Count a connection for MaxConnectionsPerChild; False once the limit is
        reached, after which the child recycles itself."""
        self.connections += 1
        if self.max_connections and self.connections >= self.max_connections:
            self.error_log.info(
                f"child {self.slot} reached MaxConnectionsPerChild ({self.max_connections}), recycling")
            self.graceful_stop()
            return False
        return True

    def open_connections(self) -> int:
        return len(self.listener.conns)

    def dispatch(self, conn) -> None:
        self.ready.put(conn)

    def set_not_accepting(self, value: bool) -> None:
        self.process_record.set_not_accepting(value)

    def publish_connections(self, connections: int, keep_alive: int) -> None:
        self.process_record.set_connections(connections, keep_alive)

    def note_refused(self, conn, err: protocol.HeadError) -> None:
        self.error_log.info(f"client {conn.client_addr}: {err.status} {err.reason}")


def _name_thread(thread: threading.Thread, name: str) -> None:
    """Name the OS thread, so that top -H, ps -L and py-spy show what it is
    (Python 3.11 names only its own Thread objects)."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/comm", "w") as f:
            f.write(name[:15])
    except (OSError, TypeError):
        pass


def _server_name(sockets: list[socket.socket]) -> tuple[str, int]:
    if not sockets:
        return "localhost", 0
    name = sockets[0].getsockname()
    host = name[0]
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return host, name[1]


def load_app(spec: str) -> Callable:
    """Import "module:callable" (dotted attributes allowed; "module" alone means
    module:app). The current directory is importable, as with gunicorn."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    import importlib

    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LookupError(f"WSGI app {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise TypeError(f"WSGI app {spec!r} is not callable")
    return obj


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_main(
    config: Any,
    app: Callable | None,
    app_spec: str,
    sockets: list[socket.socket],
    scoreboard: Scoreboard,
    slot: int,
    generation: int,
    error_log: Any,
    access_log: Any,
    drop_plan: Any,
    master_pid: int,
    on_app_error: Callable[[BaseException], None] | None = None,
) -> int:
    """The body of a forked child process; returns its exit code."""
    try:
        import setproctitle

        setproctitle.setproctitle(f"mpmserver: child {slot} gen {generation}")
    except Exception:  # noqa: BLE001 - a title is nice to have, never fatal
        pass
    stop_now = threading.Event()
    child: Child | None = None

    def on_graceful(signum, frame):
        if child is not None:
            child.graceful_stop()
        else:
            stop_now.set()

    def on_term(signum, frame):
        stop_now.set()
        if child is not None:
            # Wake the wait below now, not at its next one-second tick.
            child.done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGUSR1, on_graceful)
    signal.signal(signal.SIGWINCH, on_graceful)
    # Ctrl-C reaches the whole process group; the master decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    if drop_plan is not None:
        from .unixd import drop_privileges

        try:
            drop_privileges(drop_plan)
        except Exception as exc:  # noqa: BLE001
            error_log.log("emerg", f"child {slot}: cannot drop privileges to uid {drop_plan.uid}: {exc}")
            return EXIT_CHILDFATAL
        problem = _python_unreadable()
        if problem and app is None:
            error_log.log("emerg", f"child {slot}: after dropping privileges to {drop_plan.user_name} "
                                   f"(uid {drop_plan.uid}), {problem}")
            return EXIT_CHILDFATAL
        if problem and slot == 0:
            # The app was imported in the master (PreloadApp): it can run, but
            # any module it imports later will fail.
            error_log.warn(f"after dropping privileges to {drop_plan.user_name}, {problem}; "
                           "modules the app imports lazily will fail to load")
    if app is None:
        try:
            app = load_app(app_spec)
        except BaseException as exc:  # noqa: BLE001 - any import failure is fatal, with its traceback
            error_log.exception(f"child {slot}: failed to load the WSGI app {app_spec!r}", exc)
            return EXIT_CHILDFATAL

    _raise_nofile_limit()
    child = Child(config, app, sockets, scoreboard, slot, generation, error_log, access_log, on_app_error)
    child.start()
    mem_limit = config.max_memory_per_child
    while not child.done.is_set():
        if stop_now.is_set():
            break
        child.done.wait(1.0)
        if os.getppid() != master_pid and not child.stopping:
            # Orphaned: the master died without telling us. Finish and go.
            error_log.warn(f"child {slot}: master {master_pid} is gone, stopping")
            child.graceful_stop()
        if mem_limit and not child.stopping and rss_bytes() > mem_limit:
            error_log.notice(
                f"child {slot}: resident memory {rss_bytes() >> 20} MB passed MaxMemoryPerChild "
                f"{mem_limit >> 20} MB, recycling")
            child.graceful_stop()
    if stop_now.is_set():
        return 0
    child.join(timeout=2.0)
    return 0


def _raise_nofile_limit() -> None:
    """Parked connections cost file descriptors: raise the soft limit to the hard one."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def _python_unreadable() -> str | None:
    """After the drop, the app will import modules lazily: the User must be able
    to read the Python installation, or imports fail at random later."""
    for key in ("stdlib", "purelib"):
        path = _PYTHON_PATHS.get(key)
        if path and not os.access(path, os.R_OK | os.X_OK):
            blocked = path
            parent = path
            while parent != os.path.dirname(parent):
                parent = os.path.dirname(parent)
                if not os.access(parent, os.X_OK):
                    blocked = parent
            return (f"the Python installation at {path} is not readable (blocked at {blocked}); "
                    f"install Python where the User can read it, or give that directory o+x")
    return None
