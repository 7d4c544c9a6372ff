"""A real mpmserver for tests: ``serve(app)``.

    with serve(app, threads_per_child=2) as server:
        requests.get(server.url + "/hello")

    with serve(app, tls=True) as server:  # HTTPS, with a throwaway CA (trustme)
        requests.get(server.url + "/hello", verify=server.ca_file)

In-process (the default) runs one `Child` -- a listener thread and a worker
pool -- inside the test process: no fork, so the app object and any test
doubles it holds are the test's own. ``processes=N`` forks a real master with
N children (the app object reaches them by fork; a "module:app" string is
imported in each child).

An exception raised in the app is logged and answered with 500 as in
production, and also recorded before that response is sent; leaving the
``with`` block re-raises it, so a test cannot pass over a server-side crash.
So is an exception a framework turns into a 500 itself and logs (Flask's
app.logger, Django's django.request): a logging record at ERROR or above
with exc_info, emitted on one of the server's worker threads
(raise_logged_errors=False turns that off).
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import pickle
import select
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, NoReturn

from . import config as configmod
from .child.child import Child, load_app
from .child.worker import WORKER_THREAD_PREFIX
from .logs import ErrorLog
from .scoreboard import SERVER_READY, Scoreboard, ScoreboardSnapshot

HOST = "127.0.0.1"
DEFAULT_THREADS = 4
START_TIMEOUT = 10.0
# Longer than the master's own TERM/KILL schedule for its children (9 s).
STOP_TIMEOUT = 15.0
# Scoreboard slots in-process when children recycle (MaxConnectionsPerChild):
# the successor serves while its predecessor finishes.
RECYCLE_SLOTS = 4
# A datagram larger than the socket buffer cannot be sent: cut long tracebacks.
MAX_ERROR_BYTES = 60_000


class RemoteTraceback(Exception):
    """The traceback of an app error raised in a server child process."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n\n" + self.tb


class AppError(Exception):
    """An app error from a child process whose exception could not be pickled."""


class LiveServer:
    """A running test server; made by `serve`. A context manager: leaving it
    stops the server and re-raises the app's errors."""

    host: str
    port: int
    url: str

    def __init__(self, app: Callable | str, processes: int, raise_app_errors: bool, directives: dict,
                 raise_logged_errors: bool = True, tls: bool = False):
        self.processes = processes
        self.raise_app_errors = raise_app_errors
        # Exceptions raised by the app, oldest first. Clear it to acknowledge
        # errors a test expects.
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stopped = False
        self.host = HOST
        self.ca: TestCA | None = TestCA() if tls else None
        try:
            if self.ca is not None:
                directives = self.ca.directives(directives)
            cfg = _config(processes, directives)
            self._log_handler: _LoggedErrors | None = None
            if processes:
                self._impl: Any = _Processes(app, cfg, self._record, raise_logged_errors)
            else:
                self._impl = _InProcess(app, cfg, self._record)
                if raise_logged_errors:
                    self._log_handler = _LoggedErrors(self._impl.is_worker_thread, self._record)
                    logging.getLogger().addHandler(self._log_handler)
        except BaseException:
            if self.ca is not None:
                self.ca.close()
            raise
        self.port = self._impl.port
        self.url = f"{'https' if tls else 'http'}://{HOST}:{self.port}"

    # -- TLS (serve(tls=True)) --------------------------------------------------

    @property
    def ca_file(self) -> str:
        """The PEM file of the throwaway CA that signed the server's
        certificate: ``requests.get(url, verify=server.ca_file)``,
        ``curl --cacert``, ``httpx.Client(verify=server.client_context())``."""
        return self._tls().ca_file

    def client_context(self, client_cert: bool = False) -> ssl.SSLContext:
        """An SSLContext that verifies this server (hostname 127.0.0.1);
        ``client_cert``: it also presents a client certificate from the same CA."""
        return self._tls().client_context(client_cert)

    def client_cert_file(self, name: str = "client") -> str:
        """A PEM file with a client certificate (CN ``name``) and its key,
        issued by the CA (``requests.get(url, cert=...)``, ``curl --cert``)."""
        return self._tls().client_cert_file(name)

    def _tls(self) -> "TestCA":
        if self.ca is None:
            raise RuntimeError("this server speaks plain HTTP: start it with serve(app, tls=True)")
        return self.ca

    # -- errors ---------------------------------------------------------------

    def _record(self, exc: BaseException) -> None:
        with self._lock:
            # An app that logs an exception and raises it again reports it twice.
            if not any(e is exc for e in self._errors):
                self._errors.append(exc)

    @property
    def errors(self) -> list[BaseException]:
        """The app's exceptions so far (the list itself: clear() acknowledges them)."""
        if self.processes and not self._stopped:
            self._impl.drain_errors()
        return self._errors

    def raise_errors(self) -> None:
        """Raise the recorded app errors (one, or an ExceptionGroup of several)
        and forget them; nothing when raise_app_errors=False."""
        __tracebackhide__ = True
        errors = self.errors
        if not errors or not self.raise_app_errors:
            return
        found = list(errors)
        errors.clear()
        if len(found) == 1:
            raise found[0]
        raise ExceptionGroup(f"{len(found)} exceptions raised by the app served at {self.url}", found)

    # -- state and life cycle ------------------------------------------------------

    def scoreboard(self) -> ScoreboardSnapshot:
        """A snapshot of the scoreboard: per-process and per-thread states and counts."""
        return self._impl.scoreboard.snapshot()

    def stop(self) -> None:
        """Close every socket, join every thread, reap every process. Idempotent."""
        if self._stopped:
            return
        try:
            self._impl.stop()
        finally:
            self._stopped = True
            if self.ca is not None:
                self.ca.close()
            if self._log_handler is not None:
                logging.getLogger().removeHandler(self._log_handler)

    def __enter__(self) -> "LiveServer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()
        if exc is None or isinstance(exc, Exception):
            # Raised while the body's exception propagates, the app's error is
            # shown chained to it: often the first is caused by the second.
            self.raise_errors()

    def __repr__(self) -> str:
        mode = f"processes={self.processes}" if self.processes else "in-process"
        return f"<LiveServer {self.url} {mode}{' stopped' if self._stopped else ''}>"


def serve(app: Callable | str, *, processes: int = 0, raise_app_errors: bool = True,
          raise_logged_errors: bool = True, tls: bool = False, static: dict[str, Any] | None = None,
          **directives: Any) -> LiveServer:
    """Start a server for `app` on a free port of 127.0.0.1; returns once it
    accepts requests. Use it as a context manager, or call .stop().

    `directives` are Config field names (threads_per_child=2,
    max_connections_per_child=10, ...). `processes=N` runs a real master and
    N children instead of serving from threads of the test process.
    `tls=True` serves HTTPS with a certificate for 127.0.0.1 and localhost
    from a throwaway CA (trustme: the tls-test extra): verify it with
    ``server.ca_file`` or ``server.client_context()``; with
    ``ssl_verify_client="require"`` (or "optional") clients present
    ``server.client_cert_file()``.
    `static` maps URL-path prefixes to directories, served by the listener
    as Alias lines are: static={"/static/": settings.STATIC_ROOT}.
    """
    if static:
        if "aliases" in directives:
            raise TypeError("give static= or aliases=, not both")
        directives["aliases"] = static
    if processes < 0:
        raise ValueError(f"processes={processes}: use 0 (in-process) or a number of child processes")
    if "listen" in directives:
        raise TypeError("serve() picks a free port on 127.0.0.1 itself; do not pass listen")
    return LiveServer(app, processes, raise_app_errors, directives, raise_logged_errors, tls)


class TestCA:
    """A throwaway CA (trustme) and the server certificate it issued, in a
    temporary directory removed with the server."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        try:
            import trustme
        except ImportError:
            raise RuntimeError("serve(tls=True) needs trustme: pip install 'mpmserver[tls-test]'") from None
        self._ca = trustme.CA()
        self.dir = tempfile.mkdtemp(prefix="mpmserver-tls-")
        self.ca_file = os.path.join(self.dir, "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        self.cert_file, self.key_file = self.issue("127.0.0.1", "localhost", name="server")

    def issue(self, *identities: str, name: str) -> tuple[str, str]:
        """A certificate for ``identities``: (chain file, key file)."""
        cert = self._ca.issue_cert(*identities, common_name=identities[0])
        chain, key = os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")
        with open(chain, "wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())
        cert.private_key_pem.write_to_path(key)
        os.chmod(key, 0o600)
        return chain, key

    def directives(self, directives: dict) -> dict:
        d = dict(directives)
        d.setdefault("ssl_engine", True)
        d.setdefault("ssl_certificate_file", self.cert_file)
        d.setdefault("ssl_certificate_key_file", self.key_file)
        if d.get("ssl_verify_client", "none") != "none":
            d.setdefault("ssl_ca_certificate_file", self.ca_file)
        return d

    def client_cert_file(self, name: str = "client") -> str:
        chain, key = self.issue(name, name=f"client-{name}")
        both = os.path.join(self.dir, f"client-{name}-both.pem")
        with open(both, "wb") as out:
            for path in (chain, key):
                with open(path, "rb") as f:
                    out.write(f.read())
        return both

    def client_context(self, client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if client_cert:
            ctx.load_cert_chain(self.client_cert_file())
        return ctx

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class _LoggedErrors(logging.Handler):
    """Reports the exception of each logging record at ERROR or above with
    exc_info emitted on a worker thread of the server: what Flask and Django
    log when they turn an exception into a 500 themselves."""

    def __init__(self, is_worker_thread: Callable[[], bool], report: Callable[[BaseException], None]):
        super().__init__(logging.ERROR)
        self.is_worker_thread = is_worker_thread
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        exc_info = record.exc_info
        if exc_info and isinstance(exc_info, tuple) and exc_info[1] is not None and self.is_worker_thread():
            self.report(exc_info[1])


def _is_worker_thread() -> bool:
    # In a server child process, every worker thread is the server's.
    return threading.current_thread().name.startswith(WORKER_THREAD_PREFIX)


def _once(report: Callable[[BaseException], None]) -> Callable[[BaseException], None]:
    """report(), skipping an exception just reported (logged, then raised again)."""
    recent: collections.deque = collections.deque(maxlen=16)

    def report_once(exc: BaseException) -> None:
        if any(e is exc for e in recent):
            return
        recent.append(exc)
        report(exc)
    return report_once


def _config(processes: int, directives: dict) -> Any:
    d = dict(directives)
    d["listen"] = [(HOST, 0)]
    d.setdefault("threads_per_child", DEFAULT_THREADS)
    # Exactly that many children, which maintenance neither adds to nor stops,
    # and a scoreboard of that many slots (a test server never restarts).
    servers = d.setdefault("fixed_servers", max(1, processes))
    d.setdefault("server_limit", servers)
    return configmod.from_kwargs(**d)


# -- in-process -----------------------------------------------------------------

class _TestChild(Child):
    # One process: no sibling to leave connections to.
    balances = False

    def __init__(self, *args: Any, supervisor: "_InProcess", **kwargs: Any):
        self.supervisor = supervisor
        super().__init__(*args, **kwargs)

    def stopping_begun(self) -> None:
        super().stopping_begun()
        self.supervisor.recycling(self)

    def drained(self) -> None:
        super().drained()
        self.supervisor.drained(self)


class _InProcess:
    """One Child in the test process, and what the master would do for it:
    a child recycling itself (MaxConnectionsPerChild) gets a successor at once,
    in another scoreboard slot, while it finishes its connections."""

    def __init__(self, app: Callable | str, cfg: Any, on_app_error: Callable[[BaseException], None]):
        if isinstance(app, str):
            app = load_app(app)
        self.app = app
        self.cfg = cfg
        self.on_app_error = on_app_error
        self.lock = threading.Lock()
        self.closing = False
        self.children: list[_TestChild] = []  # serving, or finishing before recycling
        self.retired: list[_TestChild] = []  # drained; their listener threads are ending
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.bind((HOST, 0))
            self.sock.listen(cfg.listen_backlog)
            self.port = self.sock.getsockname()[1]
            slots = RECYCLE_SLOTS if cfg.max_connections_per_child or cfg.max_requests_per_child else 1
            self.scoreboard = Scoreboard.create(slots, cfg.threads_per_child)
            self.error_log = ErrorLog(cfg.error_log, cfg.log_level)
            for w in cfg.warnings:
                self.error_log.warn(w)
            child = self._spawn()
        except BaseException:
            self.sock.close()
            raise
        if not child.serving.wait(START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"the test server did not start accepting within {START_TIMEOUT:g}s")

    def _spawn(self) -> _TestChild | None:
        used = {c.slot for c in self.children}
        free = [s for s in range(self.scoreboard.server_limit) if s not in used]
        if not free:
            return None  # drained() spawns when a slot frees
        slot = free[0]
        self.scoreboard.process(slot).spawned(os.getpid(), 0)
        tls = {self.sock: self.cfg.ssl_context} if self.cfg.ssl_context is not None else None
        child = _TestChild(self.cfg, self.app, [self.sock], self.scoreboard, slot, 0, self.error_log,
                           on_app_error=self.on_app_error, supervisor=self, tls=tls)
        self.children.append(child)
        child.start()
        return child

    def is_worker_thread(self) -> bool:
        """Whether the calling thread is a worker of this server."""
        me = threading.current_thread()
        # Not under self.lock: drained() holds it while joining workers.
        children = list(self.children) + list(self.retired)
        return any(w.thread is me for c in children for w in c.workers)

    # Both run in the loop thread of the child concerned.
    def recycling(self, child: _TestChild) -> None:
        with self.lock:
            if not self.closing and all(c.stopping for c in self.children):
                self._spawn()

    def drained(self, child: _TestChild) -> None:
        with self.lock:
            if self.closing:
                return
            self.children.remove(child)
            # Idle, the workers end at once; joined, they no longer write to the slot.
            child.retire(STOP_TIMEOUT / 3)
            self.scoreboard.process(child.slot).clear()
            # Its listener thread (this one) ends after this callback; stop() joins it.
            self.retired = [c for c in self.retired if c.listener.thread.is_alive()] + [child]
            if all(c.stopping for c in self.children):
                self._spawn()

    def stop(self) -> None:
        with self.lock:
            self.closing = True
            children = self.children + self.retired
        stuck: list[str] = []
        try:
            for child in children:
                # Before the loop stops: wake workers blocked on a client
                # socket (closing it does not wake another thread's recv).
                child.cut_connections()
            for child in children:
                if not child.join(timeout=STOP_TIMEOUT / 3):
                    stuck += [w.thread.name for w in child.workers if w.thread.is_alive()]
        finally:
            self.sock.close()
            self.scoreboard.close()
            self.error_log.close()
        if stuck:
            raise RuntimeError(
                f"test server stopped, but threads {stuck} were still running the app after "
                f"{STOP_TIMEOUT / 3:g}s; make the app's requests finish (a test double left waiting?)")


# -- processes --------------------------------------------------------------------

def _be_master(app: Callable | None, cfg: Any, err_w: socket.socket, ready_w: int, life_r: int,
               raise_logged_errors: bool, parents: tuple[Any, ...]) -> NoReturn:  # pragma: no cover
    """The forked test master: run until stopped, say the port on ready_w,
    report the app's errors on err_w; never return into the test's code.
    ``parents``: the test process's ends of the pipes, closed here."""
    from .master.master import Master

    code = 1
    try:
        for end in parents:
            if isinstance(end, socket.socket):
                end.close()
            else:
                os.close(end)
        _die_with_parent(life_r)

        def on_ready(master: Any) -> None:
            os.write(ready_w, b"%d\n" % master.bound_addresses()[0][1])
            os.close(ready_w)

        report = _once(lambda exc: _send_error(err_w, exc))
        if raise_logged_errors:  # inherited by the children through fork
            logging.getLogger().addHandler(_LoggedErrors(_is_worker_thread, report))
        code = Master(cfg, cfg.warnings, app=app, on_ready=on_ready, on_app_error=report,
                      drop_privileges=False).run()
    except BaseException:  # noqa: BLE001 - never return into the test's code
        traceback.print_exc()
    finally:
        os._exit(code)


class _Processes:
    def __init__(self, app: Callable | str, cfg: Any, on_error: Callable[[BaseException], None],
                 raise_logged_errors: bool = True):
        self.on_error = on_error
        self.n = cfg.start_servers
        self.threads = cfg.threads_per_child
        if isinstance(app, str):
            cfg.wsgi_app, app = app, None
        self.tmpdir = tempfile.mkdtemp(prefix="mpmserver-test-")
        cfg.scoreboard_file = os.path.join(self.tmpdir, "scoreboard")
        self.err_r, err_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        err_w.setblocking(False)  # a full queue drops an error report rather than hang a worker
        ready_r, ready_w = os.pipe()
        life_r, self.life_w = os.pipe()
        try:
            self.pid = os.fork()
        except BaseException:
            for s in (self.err_r, err_w):
                s.close()
            for fd in (ready_r, ready_w, life_r, self.life_w):
                os.close(fd)
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        if self.pid == 0:  # pragma: no cover - the forked master; coverage cannot see it
            _be_master(app, cfg, err_w, ready_w, life_r, raise_logged_errors,
                       parents=(ready_r, self.life_w, self.err_r))
        err_w.close()
        os.close(ready_w)
        os.close(life_r)
        self.scoreboard: Any = None
        try:
            self.port = int(_read_line(ready_r, START_TIMEOUT) or 0)
            if not self.port:
                raise RuntimeError("the test server's master exited before binding; its error log "
                                   "(stderr) says why")
            self.scoreboard = Scoreboard.attach(cfg.scoreboard_file)
            self._wait_children()
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(ready_r)

    def _wait_children(self) -> None:
        # The children report only through the scoreboard; it is shared memory,
        # so looking at it often costs nothing but a little CPU.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            procs = self.scoreboard.snapshot().processes
            if all(p.pid and not p.not_accepting and any(w.status == SERVER_READY for w in p.workers)
                   for p in procs[: self.n]):
                return
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                self.pid = 0
                raise RuntimeError("the test server's master exited while starting; its error log "
                                   "(stderr) says why")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server's {self.n} children were not ready within "
                                   f"{START_TIMEOUT:g}s; its error log (stderr) says why")
            time.sleep(0.001)

    def drain_errors(self) -> None:
        while True:
            try:
                data = self.err_r.recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.on_error(_decode_error(data))

    def stop(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not _wait_pid(self.pid, STOP_TIMEOUT):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = 0
        if self.life_w >= 0:
            os.close(self.life_w)
            self.life_w = -1
        self.drain_errors()
        self.err_r.close()
        if self.scoreboard is not None:
            self.scoreboard.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _wait_pid(pid: int, timeout: float) -> bool:
    """Reap pid; False if it is still running after timeout. Woken by the
    exit itself through a pidfd (Linux), not by polling."""
    end = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = -1
    try:
        while True:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            if fd >= 0:
                select.select([fd], [], [], left)
            else:
                time.sleep(min(left, 0.01))
    except ChildProcessError:
        return True
    finally:
        if fd >= 0:
            os.close(fd)


def _read_line(fd: int, timeout: float) -> bytes:
    """Up to a newline: not to EOF, which a master forked meanwhile by another
    thread of the test process may hold off (it inherited the write end)."""
    out = b""
    end = time.monotonic() + timeout
    while not out.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        out += chunk
    return out.strip()


def _die_with_parent(life_r: int) -> None:
    """In the forked master: stop when the test process is gone, even killed.
    The test process holds the write end of the pipe until stop(); EOF means
    it closed it or died. (PR_SET_PDEATHSIG would fire when the *thread* that
    called serve() ends, which a thread pool does at any time.)"""
    def watch() -> None:
        try:
            while os.read(life_r, 1):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mpmserver-test-parent", daemon=True).start()


def _send_error(sock: socket.socket, exc: BaseException) -> None:
    """In a child: report an app error to the test process. Runs before the 500
    is sent, so a test that has seen the response finds the error recorded."""
    tb = "".join(traceback.format_exception(exc))
    if len(tb) > MAX_ERROR_BYTES:
        tb = tb[:1000] + "\n...\n" + tb[-(MAX_ERROR_BYTES - 2000):]
    tb = f"in child pid {os.getpid()}:\n{tb}"
    try:
        payload = pickle.dumps(exc)
        if len(payload) > MAX_ERROR_BYTES:
            payload = b""
    except Exception:  # noqa: BLE001 - unpicklable exceptions travel as text
        payload = b""
    data = pickle.dumps((payload, f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}", tb))
    try:
        sock.send(data)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.EMSGSIZE):
            raise


def _decode_error(data: bytes) -> BaseException:
    payload, summary, tb = pickle.loads(data)
    exc: BaseException | None = None
    if payload:
        try:
            exc = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - e.g. a class the test process cannot import
            exc = None
    if not isinstance(exc, BaseException):
        exc = AppError(summary)
    exc.__cause__ = RemoteTraceback(tb)
    return exc
