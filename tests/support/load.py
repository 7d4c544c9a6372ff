"""Steady clients and samplers that run beside a test: Hammer (requests in a
loop, every answer recorded), Sampler (the most children seen), and
BusyWorkers read from a scoreboard file."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

from mpmserver.scoreboard import Scoreboard
from tests.support.server import alive, children_of


class Hammer:
    """A steady client: requests in a loop until stop(); every answer recorded."""

    def __init__(self, port: int, path: str = "/pid", keep_alive: bool = False, body: bytes | None = None,
                 pause: float = 0.0):
        """``body``: POST it (to an echoing path) instead of a GET; the answer must echo it.
        ``pause``: seconds between requests (0: back to back)."""
        self.port, self.path, self.keep_alive, self.body, self.pause = port, path, keep_alive, body, pause
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: list[bytes] = []
        self.latencies: list[float] = []  # seconds, per answered request
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Hammer":
        self.thread.start()
        return self

    def _run(self) -> None:
        conn = None
        on_conn = 0  # requests sent on the current connection, for the failure report
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                    on_conn = 0
                on_conn += 1
                t0 = time.monotonic()
                conn.request("GET" if self.body is None else "POST", self.path, body=self.body,
                             headers={} if self.keep_alive else {"Connection": "close"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    self.failures.append(f"status {resp.status}: {body[:200]!r}")
                elif self.body is not None and body != self.body:
                    self.failures.append(f"echo of {len(self.body)} bytes came back as {len(body)}")
                else:
                    self.ok += 1
                    self.latencies.append(time.monotonic() - t0)
                    self.bodies.append(body if self.body is None else b"")
                if not self.keep_alive or resp.will_close:
                    conn.close()
                    conn = None
                if self.pause:
                    self._stop.wait(self.pause)
            except Exception as exc:  # noqa: BLE001 - any error is a lost request
                self.failures.append(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} "
                                     f"request {on_conn} on its connection: {exc!r}")
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(20)

    def pids(self) -> set[int]:
        return {json.loads(b)["pid"] for b in self.bodies}


def count_descendants(pid: int) -> int:
    return len([p for p in children_of(pid) if alive(p)])


class Sampler:
    """Samples the number of live children in the background: the maximum seen."""

    def __init__(self, pid: int):
        self.pid = pid
        self.max = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max = max(self.max, count_descendants(self.pid))
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop.set()
        self.thread.join(5)
        return self.max


def busy_workers(path) -> int:
    """BusyWorkers read from the ScoreBoardFile: works when every worker is busy
    (a status request would queue)."""
    sb = Scoreboard.attach(str(path))
    try:
        return sb.snapshot().busy_workers
    finally:
        sb.close(remove=False)


def occupy(port: int, n: int, seconds: float) -> list[threading.Thread]:
    """``n`` requests that keep a worker thread busy for ``seconds``."""
    def one():
        with socket.create_connection(("127.0.0.1", port), timeout=seconds + 10) as s:
            s.sendall(f"GET /slow?t={seconds} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            while s.recv(4096):
                pass
    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads
