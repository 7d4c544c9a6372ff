"""Starting a server under test, waiting until it serves, stopping it, and
watching mpmserver's scoreboard meanwhile."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..scoreboard import (
    SERVER_BUSY_READ,
    SERVER_DEAD,
    SERVER_IDLE_KILL,
    SERVER_READY,
    Scoreboard,
    ScoreboardError,
)
from .runner import BenchError

# Busy is what mod_status counts as BusyWorkers: every status but DEAD,
# STARTING, READY and IDLE_KILL (BUSY_READ up to GRACEFUL). That includes
# BUSY_KEEPALIVE: a worker showing K holds its thread for the connection, so
# it is a thread the application needs.
BUSY_STATUSES = frozenset(range(SERVER_BUSY_READ, SERVER_IDLE_KILL))


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def mpmserver_command(app: str, host: str, port: int, directives: list[str] = (),
                      scoreboard_file: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "mpmserver", app, "--listen", f"{host}:{port}",
           "--access-log", "off"]
    if scoreboard_file:
        cmd += ["--scoreboard-file", scoreboard_file]
    return cmd + list(directives)


def probe(host: str, port: int, path: str = "/", timeout: float = 1.0, tls: Any = None) -> bool:
    """True when the server answers an HTTP request (any status); ``tls``:
    an ssl.SSLContext to speak HTTPS with."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            s = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return s.recv(5) == b"HTTP/"
    except OSError:
        return False


class ServerProcess:
    """A server command run as a child process; a context manager."""

    def __init__(self, argv: list[str], host: str, port: int, name: str = "server",
                 ready_path: str = "/", env: dict | None = None, cwd: str | None = None,
                 tls: Any = None, new_session: bool = False) -> None:
        self.argv, self.host, self.port, self.name = argv, host, port, name
        self.tls = tls  # an ssl.SSLContext: the server speaks HTTPS
        self.ready_path, self.env, self.cwd = ready_path, env, cwd
        self.new_session = new_session
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                     **self._grouping())
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with code {self.proc.returncode} before "
                                 f"serving; command: {' '.join(self.argv)}\n{self.output()}")
            if probe(self.host, self.port, self.ready_path, timeout=1.0, tls=self.tls):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"{self.name} did not answer on {self.host}:{self.port} within "
                                 f"{timeout:g} s; command: {' '.join(self.argv)}\n{self.output()}")
            time.sleep(0.05)

    def _grouping(self) -> dict:
        """A process group of its own, for killpg. With the kernel's scheduler
        autogroups (on by default) a session shares CPU as one entity: in the
        caller's session the server's threads compete one by one with the
        load generator's, in a new session the server gets a session's share,
        as a daemon (`apachectl start`) or a systemd service does.
        benchmarks/compare.py starts every peer in a new session: sharing
        wrk's halved Apache + mod_wsgi there (its listener, starved, closes
        kept-alive connections) and flattered mpmserver."""
        return {"start_new_session": True} if self.new_session else {"process_group": 0}

    def output(self, limit: int = 4000) -> str:
        """The tail of what the server wrote to stdout and stderr."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (the server stops its children), then SIGKILL the whole
        process group if it is still there after `timeout`."""
        p = self.proc
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return p.wait(5)

    def __enter__(self) -> "ServerProcess":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()


@dataclass(frozen=True)
class Sample:
    t: float
    busy: int
    idle: int
    slots: int          # worker records in use (not DEAD) in live children
    pids: frozenset


def sample_from_snapshot(t: float, snap: Any) -> Sample:
    busy = idle = slots = 0
    pids = set()
    for proc in snap.processes:
        if proc.pid <= 0:
            continue
        pids.add(proc.pid)
        for w in proc.workers:
            st = w.status
            if st in BUSY_STATUSES:
                busy += 1
            elif st == SERVER_READY:
                idle += 1
            if st != SERVER_DEAD:
                slots += 1
    return Sample(t, busy, idle, slots, frozenset(pids))


def summarize_samples(samples: list[Sample]) -> dict:
    """What the scoreboard saw over a run: peak busy workers, children started
    (distinct pids) and recycled (pids that went away while the server ran),
    and idle workers over time (one figure per second: that second's minimum)."""
    if not samples:
        return {"unavailable": "no scoreboard samples were taken"}
    seen: set = set()
    gone: set = set()
    prev: frozenset = frozenset()
    for s in samples:
        gone |= prev - s.pids
        seen |= s.pids
        prev = s.pids
    idle = [s.idle for s in samples]
    t0 = samples[0].t
    per_second: dict[int, int] = {}
    for s in samples:
        sec = int(s.t - t0)
        per_second[sec] = min(per_second.get(sec, s.idle), s.idle)
    return {
        "samples": len(samples),
        "peak_busy": max(s.busy for s in samples),
        "worker_slots": max(s.slots for s in samples),
        "children_started": len(seen),
        "children_recycled": len(gone),
        "peak_children": max(len(s.pids) for s in samples),
        "idle_min": min(idle),
        "idle_max": max(idle),
        "idle_mean": sum(idle) / len(idle),
        "idle_per_second": [per_second[k] for k in sorted(per_second)],
    }


class ScoreboardSampler:
    """Samples a scoreboard file about ten times a second in a thread."""

    def __init__(self, path: str, interval: float = 0.1) -> None:
        self.path, self.interval = path, interval
        self.samples: list[Sample] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scoreboard-sampler", daemon=True)

    def start(self) -> "ScoreboardSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        board = None
        while not self._stop.is_set():
            try:
                if board is None:
                    board = Scoreboard.attach(self.path)
                self.samples.append(sample_from_snapshot(time.monotonic(), board.snapshot()))
            except (OSError, ValueError, ScoreboardError) as exc:
                self.error = f"cannot read scoreboard {self.path}: {exc}"
            self._stop.wait(self.interval)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(5)
        if not self.samples:
            return {"unavailable": self.error or "no samples"}
        return summarize_samples(self.samples)
