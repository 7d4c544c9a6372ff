"""The command line: serve, test a configuration, signal a running server, status, bench."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import SERVER_SOFTWARE
from . import config as configmod
from .appspec import enter_app_home
from .demo import DEMO_APP
from .deploy import graceful, upgrade

if TYPE_CHECKING:
    from .master.master import Master


# apachectl -k verbs and the signal each sends to the master.
K_SIGNALS = {
    "stop": signal.SIGTERM,
    "graceful-stop": signal.SIGWINCH,
    "restart": signal.SIGHUP,
    "graceful": signal.SIGUSR1,  # then waits for the outcome: graceful_master()
    "upgrade": signal.SIGUSR2,  # then waits for the outcome: upgrade_master()
}


# Flags read before the command line's (gunicorn's GUNICORN_CMD_ARGS).
ENV_ARGS = "MPMSERVER_CMD_ARGS"

# The directory mpmserver was started in, before any Chdir: a binary
# upgrade starts the new master there, so its command line means the same.
LAUNCH_DIR = os.getcwd()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mpmserver",
        description="A pure-Python HTTP/1.1 WSGI server built like Apache httpd's worker MPM.",
        epilog=f"Flags can also come from the environment: {ENV_ARGS}='-w 4 --timeout 30' (shell-quoted, "
               "as gunicorn's GUNICORN_CMD_ARGS) is read before the command line, whose flags win. "
               "Other commands: 'mpmserver status --help', 'mpmserver bench --help'.",
    )
    p.add_argument("app", nargs="?", help=f"the WSGI app as module:callable (default: WSGIApp, else {DEMO_APP})")
    p.add_argument("-f", dest="config_file", metavar="FILE", help="configuration file (Apache syntax)")
    p.add_argument("-t", dest="test_config", action="store_true", help="test the configuration and exit")
    p.add_argument("-k", dest="k", choices=["start", *K_SIGNALS], help="signal the running server, as apachectl -k")
    p.add_argument("-v", "--version", action="version", version=SERVER_SOFTWARE)
    p.add_argument("--reload", action="store_true",
                   help="development: restart the children gracefully when a source file of the app "
                        "changes (watchfiles if installed, else polling); not with PreloadApp On")
    configmod.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] == "status":
        from .modules.status import status_main

        return status_main(argv[1:])
    ns = parse_command_line(argv, os.environ.get(ENV_ARGS, ""))
    if ns is None:
        return 2
    loaded = _configure(ns)
    if isinstance(loaded, int):
        return loaded
    cfg, warnings, overrides = loaded
    if ns.test_config:
        for w in warnings:
            print(f"mpmserver: {w}", file=sys.stderr)
        print("Syntax OK")
        return check_app(cfg.wsgi_app)
    if ns.k == "upgrade":
        return upgrade_master(cfg)
    if ns.k == "graceful":
        return graceful_master(cfg)
    if ns.k and ns.k != "start":
        return signal_master(cfg, ns.k)
    return _serve(ns, cfg, warnings, overrides)


def parse_command_line(argv: list[str], env_args: str) -> argparse.Namespace | None:
    """The command line over MPMSERVER_CMD_ARGS: each flag the command line
    gives replaces the environment's (a --listen there replaces every
    --listen of the environment, not adds to them); None after saying why
    the environment's flags do not parse."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not env_args.strip():
        return ns
    try:
        words = shlex.split(env_args)
    except ValueError as exc:
        print(f"mpmserver: {ENV_ARGS}: {exc}", file=sys.stderr)
        return None
    env_parser = build_parser()
    env_parser.prog = f"mpmserver ({ENV_ARGS})"  # argparse's errors then say where the flag came from
    merged = env_parser.parse_args(words)
    defaults = parser.parse_args([])
    for name, value in vars(ns).items():
        if value != getattr(defaults, name):
            setattr(merged, name, value)
    return merged


def _configure(ns: argparse.Namespace) -> tuple[Any, list[str], list[tuple[str, list[str]]]] | int:
    """The configuration the command line asks for, with its warnings and
    the overrides a restart re-applies; an exit code if there is none."""
    overrides = configmod.overrides_from_args(ns)
    if ns.app:
        overrides.append(("WSGIApp", [ns.app]))
    if ns.config_file is None and not any(name.lower() in ("customlog", "accesslog") for name, _ in overrides):
        # A person running `mpmserver app:app` wants to see the requests.
        overrides.append(("CustomLog", ["-", "combined"]))
    try:
        cfg, warnings = configmod.load(ns.config_file, overrides, check_paths=ns.test_config)
    except (configmod.ConfigError, OSError) as exc:
        print(f"mpmserver: {exc}", file=sys.stderr)
        return 1
    if ns.reload and cfg.preload_app:
        print("mpmserver: --reload cannot be used with PreloadApp On: the app is imported once in the "
              "master, so new children would fork the old code; turn PreloadApp off "
              "(or restart the server with -k restart after a change)", file=sys.stderr)
        return 1
    try:
        # As gunicorn's --chdir: before anything else reads a relative path
        # (PidFile, logs, the app), so every command agrees on them. The
        # file is made absolute first, for a restart's re-read.
        if ns.config_file is not None:
            ns.config_file = os.path.abspath(ns.config_file)
        enter_app_home(cfg.chdir, cfg.python_path)
    except OSError as exc:
        print(f"mpmserver: Chdir {cfg.chdir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if cfg.wsgi_app is None:
        cfg.wsgi_app = DEMO_APP
        # The demo imports nothing after startup: load it in the master, so
        # that `mpmserver` works as root even when the children's user cannot
        # read a Python installed under a private home (pyenv in /root).
        cfg.preload_app = True
    return cfg, warnings, overrides


def _serve(ns: argparse.Namespace, cfg: Any, warnings: list[str],
           overrides: list[tuple[str, list[str]]]) -> int:
    """Run a master (in the background for -k start) until it exits."""
    if ns.k == "start" and cfg.error_log is None:
        # Detached, the server has no standard error to log to.
        cfg.error_log = default_error_log(cfg)
        overrides.append(("ErrorLog", [cfg.error_log]))  # kept on a restart's re-read
        print(f"mpmserver: no ErrorLog configured; logging to {cfg.error_log}")
    from .master.master import Master

    try:
        master = Master(cfg, warnings, ns.config_file, overrides)
    except (OSError, ValueError) as exc:  # the error log cannot be opened
        print(f"mpmserver: {exc}", file=sys.stderr)
        return 1
    master.upgrade.argv = upgrade.command_line(sys.executable, sys.orig_argv)
    master.upgrade.cwd = LAUNCH_DIR  # the argv's relative paths are relative to it, not to Chdir
    if ns.reload:
        from .deploy.reload import start_reloader

        master.on_ready = lambda m: start_reloader(m.app_spec, m.error_log.announce)
    if ns.k == "start" and upgrade.ENV not in os.environ:
        return start_in_background(master)
    # (A new master of a binary upgrade started with -k start runs in the
    # foreground: the old master it was started by has already detached.)
    return master.run()


def check_app(spec: str) -> int:
    """-t: import the app as the children would (gunicorn --check-config);
    0, or 1 after printing why it does not load, with its traceback."""
    import traceback

    from .child.child import load_app

    try:
        load_app(spec)
    except BaseException as exc:  # noqa: BLE001 - whatever the import raises is the answer
        if isinstance(exc, KeyboardInterrupt):
            raise
        traceback.print_exception(exc)
        print(f"mpmserver: the WSGI app {spec!r} does not load (the traceback above says why)", file=sys.stderr)
        return 1
    return 0


def default_error_log(cfg: Any) -> str:
    """Where a server started with -k start and no ErrorLog logs: beside its
    PidFile (a directory the server writes to), else the current directory."""
    where = os.path.dirname(os.path.abspath(cfg.pid_file)) if cfg.pid_file else os.getcwd()
    return os.path.join(where, configmod.DEFAULT_ERROR_LOG)


def _read_pid_file(cfg: Any, verb: str) -> tuple[int, int] | None:
    """(pid, inode) of the PidFile, or None after saying why not."""
    if not cfg.pid_file:
        print(f"mpmserver: -k {verb} needs a PidFile in the configuration", file=sys.stderr)
        return None
    try:
        with open(cfg.pid_file) as f:
            return int(f.read().strip()), os.fstat(f.fileno()).st_ino
    except (OSError, ValueError) as exc:
        print(f"mpmserver: cannot read PidFile {cfg.pid_file}: {exc} (is the server running?)", file=sys.stderr)
        return None


def signal_master(cfg: Any, verb: str) -> int:
    read = _read_pid_file(cfg, verb)
    if read is None:
        return 1
    pid = read[0]
    try:
        os.kill(pid, K_SIGNALS[verb])
    except ProcessLookupError:
        print(f"mpmserver: no process {pid} (from PidFile {cfg.pid_file}); is the server running?", file=sys.stderr)
        return 1
    return 0


def upgrade_master(cfg: Any) -> int:
    """-k upgrade: USR2 to the master, then wait until the new master serves
    and the old one has stopped (0), or the old one rolled back (1, with what
    the error log says about it)."""
    read = _read_pid_file(cfg, "upgrade")
    if read is None:
        return 1
    old_pid, old_inode = read
    log_path = cfg.error_log
    offset = _file_size(log_path)
    try:
        os.kill(old_pid, signal.SIGUSR2)
    except ProcessLookupError:
        print(f"mpmserver: no process {old_pid} (from PidFile {cfg.pid_file}); is the server running?",
              file=sys.stderr)
        return 1
    # The old master waits UPGRADE_TIMEOUT for the new one, then stops gracefully.
    extra = cfg.graceful_shutdown_timeout or 30.0
    patience = upgrade.UPGRADE_TIMEOUT + extra + 10

    def judge() -> tuple[str, str]:
        now = _pid_file_now(cfg.pid_file)
        pids = {old_pid} | ({now[0]} if now else set())
        return upgrade.outcome(old_pid, old_inode, now, {p: _running(p) for p in pids})

    state, message = _await_outcome(judge, patience)
    if state == "done":
        print(f"mpmserver: {message}")
        return 0
    if state == "waiting":
        print(f"mpmserver: upgrade not finished after {patience:.0f} s: {message}", file=sys.stderr)
        return 1
    print(f"mpmserver: upgrade {state}: {message}", file=sys.stderr)
    _report_log(log_path, offset, "the error log {} says:")
    return 1


def graceful_master(cfg: Any) -> int:
    """-k graceful: USR1 to the master, then wait until a child of the new
    generation serves (0), or the restart is abandoned or skipped and the
    old generation serves on (1, with the reason and what the error log
    says about it). The master numbers its outcomes in the record beside
    its PidFile (deploy/graceful.py)."""
    read = _read_pid_file(cfg, "graceful")
    if read is None:
        return 1
    pid = read[0]
    path = graceful.record_path(cfg.pid_file)
    before = graceful.parse_record(_read_text(path))
    offset = _file_size(cfg.error_log)
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        print(f"mpmserver: no process {pid} (from PidFile {cfg.pid_file}); is the server running?", file=sys.stderr)
        return 1
    if before is None:
        print(f"mpmserver: graceful restart requested; not waiting for its outcome: the server writes no "
              f"{path} (started by an older mpmserver, or its directory is not writable)")
        return 0
    state, message = _await_outcome(
        lambda: graceful.outcome(before.number, graceful.parse_record(_read_text(path)), _running(pid)),
        graceful.RESTART_PATIENCE)
    if state == "served":
        print(f"mpmserver: {message}")
        return 0
    if state == "waiting":
        print(f"mpmserver: graceful restart not decided after {graceful.RESTART_PATIENCE:.0f} s: {message}; "
              "the old generation serves until it is", file=sys.stderr)
        return 1
    print(f"mpmserver: {message}", file=sys.stderr)
    _report_log(cfg.error_log, offset, "the error log {} says:")
    return 1


def _await_outcome(judge: Callable[[], tuple[str, str]], patience: float) -> tuple[str, str]:
    """Ask ``judge`` for (state, message) until the state is not "waiting"
    or ``patience`` seconds have passed: how -k upgrade and -k graceful wait."""
    deadline = time.monotonic() + patience
    while True:
        state, message = judge()
        if state != "waiting" or time.monotonic() > deadline:
            return state, message
        time.sleep(0.1)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _pid_file_now(path: str) -> tuple[int, int] | None:
    try:
        with open(path) as f:
            return int(f.read().strip()), os.fstat(f.fileno()).st_ino
    except (OSError, ValueError):
        return None


def _running(pid: int) -> bool:
    """Runs and is not a zombie (a master whose parent has not reaped it yet has stopped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def start_in_background(master: Master) -> int:
    """apachectl -k start: detach, and exit 0 once a child serves; on a
    failure to start (address in use, an app that does not import), print
    what the error log says about it and exit 1."""
    log_path = master.error_log.path
    offset = _file_size(log_path)
    r, w = os.pipe()
    if os.fork():
        os.close(w)
        ready = os.read(r, 64)  # "ok<pid>", or EOF: the server exited
        os.close(r)
        if ready.startswith(b"ok"):
            print(f"mpmserver: started in the background (pid {ready[2:].decode()})")
            return 0
        _report_start_failure(log_path, offset)
        return 1
    os.close(r)
    os.setsid()
    if os.fork():
        os._exit(0)

    def on_ready(m: Master) -> None:
        # Bound: detach from the terminal or pipe that started us. The error
        # log is a file (main() saw to that); as in Apache, standard error
        # goes to it too, so stray tracebacks and warnings are not lost.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.dup2(m.error_log.fileno(), 2)

    def on_serving(m: Master) -> None:
        # A child has imported the app and serves: the start succeeded.
        os.write(w, b"ok%d" % os.getpid())
        os.close(w)

    also_on_ready = master.on_ready  # --reload's watcher, started once detached

    def ready(m: Master) -> None:
        on_ready(m)
        if also_on_ready is not None:
            also_on_ready(m)

    master.on_ready = ready
    master.on_serving = on_serving
    code = master.run()
    os._exit(code)


def _file_size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _report_start_failure(log_path: str | None, offset: int) -> None:
    _report_log(log_path, offset, "the server failed to start; its error log {} says:")


def _report_log(log_path: str | None, offset: int, header: str) -> None:
    """Print what the error log got since ``offset``, after ``header`` (naming the log)."""
    if not log_path:
        print("mpmserver: the reason is in the server's error output (it has no ErrorLog)", file=sys.stderr)
        return
    text = ""
    if log_path:
        try:
            with open(log_path, "rb") as f:
                f.seek(offset)
                text = f.read(64 * 1024).decode("utf-8", "replace").rstrip("\n")
        except OSError:
            pass
    print(f"mpmserver: {header.format(log_path)}", file=sys.stderr)
    if text:
        print(text, file=sys.stderr)
