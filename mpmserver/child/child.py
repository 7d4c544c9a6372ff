"""A child: ThreadsPerChild worker threads and one listener, fixed for its life.

`Child` is wiring and nothing else: it builds the hand-off, the listener,
the workers and the context their requests share, and connects them; every
decision is made elsewhere (admission.py, the connection state machine,
request.py). It has no process-level behaviour, so the test server
(testing.py) runs one inside the test process. `child_main` is what a forked
child process runs around it: process title, signals, privilege drop, app
loading, recycling, and the exit code the master reads.
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import socket
import sys
import sysconfig
import threading
import time
import traceback
from typing import Any, Callable

from ..appspec import DEFAULT_NAMES, enter_app_home, parse_app_spec
from ..http import protocol
from ..http.request import ChildContext
from ..http.wsgi import base_environ
from ..logs import ErrorStream
from ..scoreboard import EXIT_CHILDFATAL, RECYCLE_MEMORY, RECYCLE_REQUESTS, Scoreboard
from ..titles import set_process_title
from . import admission
from .handoff import Handoff
from .listener.listener import Listener, Siblings, fd_soft_limit
from .memory import MemoryReader, MemoryWatch
from .worker import Worker

# Read as root, before the fork: after the drop the child may not be able to.
_PYTHON_PATHS = sysconfig.get_paths()
# The most a child writes on its report pipe (a pipe holds 64 KiB: never block).
REPORT_LIMIT = 60000


class Child:
    # A child balances its connections with siblings; the in-process test
    # server has none.
    balances = True

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
        tls: dict[socket.socket, Any] | None = None,
    ):
        self.config = config
        self.scoreboard = scoreboard
        self.slot = slot
        self.error_log = error_log
        self.done = threading.Event()  # the last connection is closed after a stop
        self.serving = threading.Event()  # the listener has accepted connections once
        self.handoff = Handoff()
        limits, warning = admission.limits_from_config(
            config, siblings=self.balances and scoreboard.server_limit > 1, fd_soft_limit=fd_soft_limit())
        if warning:
            error_log.warn(warning)
        siblings = Siblings(scoreboard, slot, transfers=bool(limits.balance and scoreboard.master_pid))
        self.listener = Listener(config, sockets, self.handoff, limits, owner=self, siblings=siblings,
                                 record=scoreboard.process(slot), error_log=error_log, access_log=access_log,
                                 name=f"child {slot}", tls=tls)
        if config.status_path:
            # Only a server that asks for a status page pays for the check.
            from ..modules.status import status_app

            app = status_app(app, self)
        if config.metrics_path:
            from ..modules.metrics import metrics_app

            app = metrics_app(app, self)
        if config.health_path:
            from ..modules.health import health_app

            record = scoreboard.process(slot)
            app = health_app(app, config.health_path,
                             lambda: record.going_away() or ("stopping" if self.stopping else None))
        host, port = _server_name(sockets)
        ctx = ChildContext(config, app, base_environ(host, port, ErrorStream(error_log)), error_log,
                           access_log, head_limit=protocol.max_head_size(config),
                           on_app_error=on_app_error, sends_away=self.listener.sends_away,
                           remote_ip=self.listener.remote_ip,
                           spooler=self.listener.spooler if config.response_spool else None,
                           count_request=self._request_counter(limits) if limits.max_requests else None)
        self.context = ctx
        self.workers = [Worker(ctx, self.handoff, scoreboard.worker(slot, i), i, generation)
                        for i in range(config.threads_per_child)]

    def _request_counter(self, limits: admission.Limits) -> Callable[[], bool]:
        """MaxRequestsPerChild: every worker calls this once per request."""
        counter = itertools.count(1)  # next() on it is atomic: no lock on the request path

        def count() -> bool:
            served = next(counter)
            if not admission.must_recycle_on_requests(limits, served):
                return False
            if served == limits.max_requests:
                self.error_log.info(f"child {self.slot} reached MaxRequestsPerChild ({limits.max_requests}), "
                                    "recycling")
                self.scoreboard.process(self.slot).set_recycle_cause(RECYCLE_REQUESTS)
                # Sets the hand-off's stop flag now, so this request is
                # answered with Connection: close.
                self.graceful_stop()
            return True
        return count

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        for worker in self.workers:
            worker.start()
        self.listener.start()

    @property
    def stopping(self) -> bool:
        return self.handoff.stopping

    def graceful_stop(self) -> None:
        """Stop accepting, close idle connections, let in-flight requests finish;
        `done` is set when the last connection is closed. Any thread."""
        if self.handoff.begin_stop():
            self.listener.stop()
            self.stopping_begun()

    def join(self, timeout: float = 5.0) -> bool:
        """End the listener and the workers; True when every thread ended."""
        self.handoff.begin_stop()
        self.listener.shutdown()
        self.handoff.release_workers(len(self.workers))
        deadline = time.monotonic() + timeout
        ok = True
        for thread in [self.listener.thread] + [w.thread for w in self.workers]:
            thread.join(max(0.0, deadline - time.monotonic()))
            ok = ok and not thread.is_alive()
        return ok

    def retire(self, timeout: float) -> None:
        """After `done`: release the workers and end the loop; join the
        workers only (this may run in the loop thread)."""
        self.handoff.release_workers(len(self.workers))
        self.listener.shutdown()
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))

    def cut_connections(self) -> None:
        """Shut every connection down (any thread), waking workers blocked on one."""
        self.listener.cut_connections()

    # -- what the listener reports (hooks: the test server adds to them) ---------

    def accepting(self) -> None:
        self.serving.set()

    def stopping_begun(self) -> None:
        pass

    def drained(self) -> None:
        self.done.set()


def _server_name(sockets: list[socket.socket]) -> tuple[str, int]:
    """SERVER_NAME and SERVER_PORT when the request has no Host header: the
    first TCP listener's; with unix sockets only, localhost:80 (PEP 3333's URL
    reconstruction prefers HTTP_HOST, which a proxy sends)."""
    sockets = [s for s in sockets if s.family != socket.AF_UNIX]
    if not sockets:
        return "localhost", 80
    name = sockets[0].getsockname()
    host = name[0]
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return host, name[1]


def load_app(spec: str) -> Callable:
    """Import the app of an app spec (appspec.py: module:callable, dotted
    attributes, module:factory(literal args), or module alone for
    module:application, else module:app). The current directory is
    importable, as with gunicorn."""
    parsed = parse_app_spec(spec)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    import importlib

    module: Any = importlib.import_module(parsed.module)
    obj = _find_attr(spec, module, parsed)
    if parsed.call is not None:
        args, kwargs = parsed.call
        if not callable(obj):
            raise TypeError(f"WSGI app {spec!r}: {'.'.join(parsed.attrs)} is not callable, so not a factory")
        obj = obj(*args, **kwargs)
    if not callable(obj):
        raise TypeError(f"WSGI app {spec!r} is not callable (got {type(obj).__name__})")
    return obj


def _find_attr(spec: str, module: Any, parsed: Any) -> Any:
    if not parsed.attrs:
        for name in DEFAULT_NAMES:
            if hasattr(module, name):
                return getattr(module, name)
        raise LookupError(f"WSGI app {spec!r}: module {parsed.module!r} has no attribute "
                          f"{' or '.join(map(repr, DEFAULT_NAMES))}; name it as {parsed.module}:callable")
    obj = module
    for part in parsed.attrs:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LookupError(f"WSGI app {spec!r}: module {parsed.module!r} has no attribute "
                              f"{'.'.join(parsed.attrs)!r}") from None
    return obj


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
    report: StartReport | None = None,
    tls: dict[socket.socket, Any] | None = None,
) -> int:
    """The body of a forked child process; returns its exit code.
    ``report``: where to tell the master why the app did not load (it
    logs the traceback once, however many children fail the same way);
    None: log it here."""
    set_process_title(f"mpmserver: child {slot} gen {generation}")
    signals = _ChildSignals()
    try:
        # Inherited from the master by fork; entered again so that a child
        # never imports from anywhere else (idempotent: no-op when it has).
        enter_app_home(config.chdir, config.python_path)
    except OSError as exc:
        error_log.log("emerg", f"child {slot}: cannot enter Chdir {config.chdir}: {exc.strerror or exc}")
        return EXIT_CHILDFATAL
    app, code = _prepare(app, app_spec, slot, error_log, drop_plan, report)
    if app is None:
        return code
    if report is not None:
        report.close()  # loaded: nothing to report, and no helper the app forks keeps it
    _raise_nofile_limit()
    # tls: the listening sockets that speak TLS, with the SSLContext the root
    # master built (the key read before the privilege drop), inherited by fork.
    child = Child(config, app, sockets, scoreboard, slot, generation, error_log, access_log, on_app_error, tls)
    if not signals.attach(child):
        # Told to stop while starting (a graceful restart right after the
        # fork): never touch the listening sockets, so that no connection
        # is accepted by a child about to exit.
        return 0
    memory = _watch_memory(child, signals, config)
    child.start()
    _serve(child, signals, memory, master_pid)
    if not signals.stop_now.is_set():
        child.join(timeout=2.0)
    return 0


class _ChildSignals:
    """TERM/HUP stop now, USR1/WINCH stop gracefully; before the Child exists
    they are only remembered."""

    def __init__(self) -> None:
        self.stop_now = threading.Event()
        self.graceful = threading.Event()
        self.child: Child | None = None
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGHUP, self._on_term)
        signal.signal(signal.SIGUSR1, self._on_graceful)
        signal.signal(signal.SIGWINCH, self._on_graceful)
        # Ctrl-C reaches the whole process group; the master decides what happens.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def attach(self, child: Child) -> bool:
        """From now on a signal reaches ``child``; False if one came before."""
        self.child = child
        # A signal after this line stops the child through the hand-off's stop
        # flag, which admission reads before every accept.
        return not (self.graceful.is_set() or self.stop_now.is_set())

    def _on_graceful(self, signum: int, frame: Any) -> None:
        self.graceful.set()
        if self.child is not None:
            self.child.graceful_stop()

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stop_now.set()
        if self.child is not None:
            # Wake the wait in _serve now, not at its next tick.
            self.child.done.set()


def _prepare(app: Callable | None, app_spec: str, slot: int, error_log: Any,
             drop_plan: Any, report: StartReport | None = None) -> tuple[Callable | None, int]:
    """Drop privileges, then import the app: (app, 0) or (None, exit code)."""
    if drop_plan is not None:
        from ..deploy.unixd import drop_privileges

        try:
            drop_privileges(drop_plan)
        except Exception as exc:  # noqa: BLE001
            error_log.log("emerg", f"child {slot}: cannot drop privileges to uid {drop_plan.uid}: {exc}")
            return None, EXIT_CHILDFATAL
        problem = _python_unreadable()
        if problem and app is None:
            error_log.log("emerg", f"child {slot}: after dropping privileges to {drop_plan.user_name} "
                                   f"(uid {drop_plan.uid}), {problem}")
            return None, EXIT_CHILDFATAL
        if problem and slot == 0:
            # The app was imported in the master (PreloadApp): it can run, but
            # any module it imports later will fail.
            error_log.warn(f"after dropping privileges to {drop_plan.user_name}, {problem}; "
                           "modules the app imports lazily will fail to load")
    if app is None:
        try:
            app = load_app(app_spec)
        except BaseException as exc:  # noqa: BLE001 - any import failure is fatal, with its traceback
            what = f"child {slot}: failed to load the WSGI app {app_spec!r}" if slot >= 0 else \
                f"the WSGI app {app_spec!r} does not load"
            if report is None or not report.send(what, exc):
                error_log.exception(what, exc)
            return None, EXIT_CHILDFATAL
    return app, 0


class StartReport:
    """The pipe on which a starting child tells its master why it could not
    start: the master logs it once, however many children fail the same
    way. Closed once the app has loaded (a later crash is logged by the
    child itself)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: str, exc: BaseException) -> bool:
        """``message`` and the traceback of ``exc``, at most what the pipe
        holds (the child is about to exit: it must not block); False when
        closed or broken (the caller logs it itself)."""
        if self.fd < 0:
            return False
        tb = "".join(traceback.format_exception(exc)).rstrip("\n")
        data = f"{message}\n{tb}".encode("utf-8", "backslashreplace")
        try:
            os.set_blocking(self.fd, False)
            os.write(self.fd, data[:REPORT_LIMIT])
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def probe_main(config: Any, app_spec: str, error_log: Any, drop_plan: Any, report: StartReport) -> int:
    """A HUP's check, in a forked process: does the app load, where and as
    whom the new children would load it? 0, or EXIT_CHILDFATAL after
    reporting why."""
    try:
        enter_app_home(config.chdir, config.python_path)
    except OSError as exc:
        if not report.send(f"cannot enter Chdir {config.chdir}", exc):
            error_log.exception(f"cannot enter Chdir {config.chdir}", exc)
        return EXIT_CHILDFATAL
    app, code = _prepare(None, app_spec, -1, error_log, drop_plan, report)
    return 0 if app is not None else code


def _watch_memory(child: Child, signals: _ChildSignals, config: Any) -> MemoryWatch:
    """The child's memory: published each second; with MaxMemoryPerChild or
    MaxMemoryPerChildHard, also checked after each request."""
    record = child.scoreboard.process(child.slot)

    def recycle() -> None:
        record.set_recycle_cause(RECYCLE_MEMORY)
        child.graceful_stop()

    def stop() -> None:
        record.set_recycle_cause(RECYCLE_MEMORY)
        signals.stop_now.set()
        child.done.set()  # wakes _serve: the process exits, cutting what it serves

    watch = MemoryWatch(MemoryReader(), record, config.max_memory_per_child, config.max_memory_per_child_hard,
                        recycle=recycle, stop=stop, error_log=child.error_log, slot=child.slot)
    if watch.limited:
        child.context.check_memory = watch.after_request
    watch.publish()  # the status page shows the child's memory from its start
    return watch


def _serve(child: Child, signals: _ChildSignals, memory: MemoryWatch, master_pid: int) -> None:
    """Wait until the child has drained after a stop, or is told to stop now;
    meanwhile publish its memory (and hold its limits), and stop it if orphaned."""
    error_log = child.error_log
    while not child.done.is_set() and not signals.stop_now.is_set():
        child.done.wait(memory.period)
        memory.tick()  # stopping too: a draining child may still grow past the hard bound
        if child.stopping:
            continue
        if not child.context.draining and child.scoreboard.process(child.slot).going_away() == "draining":
            child.context.draining = True
        if os.getppid() != master_pid:
            # Orphaned: the master died without telling us. Finish and go.
            error_log.warn(f"child {child.slot}: master {master_pid} is gone, stopping")
            child.graceful_stop()


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
