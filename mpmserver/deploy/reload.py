"""--reload, for development: a graceful restart (USR1) of the children when
a source file of the app changes, as `gunicorn --reload` does.

The policy (which files, what changed) is pure; the watcher is a daemon thread
in the master that only sends the master its own SIGUSR1, which the master
handles as `-k graceful`: new children import the changed code while the old
ones finish their requests. watchfiles is used when installed (the `reload`
extra), else the files' modification times are polled.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from typing import Callable

from ..appspec import parse_app_spec

POLL_INTERVAL = 1.0
SUFFIXES = (".py",)


def source_roots(app_spec: str, cwd: str) -> list[str]:
    """The directory holding the app's top-level package or module (without
    importing it); the current directory if it cannot be found."""
    top = parse_app_spec(app_spec).module.partition(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return [cwd]
    if spec.submodule_search_locations:
        return [os.path.realpath(p) for p in spec.submodule_search_locations]
    if spec.origin and os.path.isfile(spec.origin):
        return [os.path.dirname(os.path.realpath(spec.origin))]
    return [cwd]


def scan(roots: list[str]) -> dict[str, float]:
    """path -> mtime of every source file under roots."""
    found: dict[str, float] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
            for name in filenames:
                if name.endswith(SUFFIXES):
                    path = os.path.join(dirpath, name)
                    try:
                        found[path] = os.stat(path).st_mtime
                    except OSError:
                        pass
    return found


def changed(before: dict[str, float], after: dict[str, float]) -> list[str]:
    """Files added, removed or modified between two scans."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def start_reloader(app_spec: str, log: Callable[[str], None], interval: float = POLL_INTERVAL,
                   restart: Callable[[], None] | None = None) -> threading.Thread:
    """Watch the app's sources in a daemon thread; on a change, log it and
    ask this process (the master) for a graceful restart."""
    roots = source_roots(app_spec, os.getcwd())
    pid = os.getpid()
    restart = restart or (lambda: os.kill(pid, signal.SIGUSR1))

    def on_change(paths: list[str]) -> None:
        if os.getpid() != pid:
            return  # a forked child inherited nothing to do
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        log(f"--reload: {shown} changed; restarting the children gracefully")
        restart()

    try:
        import watchfiles  # noqa: F401
    except ImportError:
        watcher, how = _poll, f"polling every {interval:g} s (pip install watchfiles to be told at once)"
    else:
        watcher, how = _watchfiles, "watchfiles"
    log(f"--reload: watching {', '.join(roots)} for changes to *.py ({how})")
    thread = threading.Thread(target=watcher, args=(roots, on_change, interval), name="mpm-reload", daemon=True)
    thread.start()
    return thread


def _poll(roots: list[str], on_change: Callable[[list[str]], None], interval: float) -> None:
    before = scan(roots)
    stop = threading.Event()
    while not stop.wait(interval):
        after = scan(roots)
        paths = changed(before, after)
        before = after
        if paths:
            on_change(paths)


def _watchfiles(roots: list[str], on_change: Callable[[list[str]], None], interval: float) -> None:
    import watchfiles

    for changes in watchfiles.watch(*roots, watch_filter=watchfiles.PythonFilter(), debounce=int(interval * 1000),
                                    raise_interrupt=False):
        on_change(sorted({path for _, path in changes}))
