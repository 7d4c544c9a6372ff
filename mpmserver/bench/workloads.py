"""The end-to-end workloads, shared by benchmarks/test_workloads.py (timed,
pytest-benchmark) and tests/bench/test_bench_smoke.py (one second each, in CI).

Each workload drives the real server, started from the command line with
`benchmarks.apps:app`, with the load generator.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .load import LoadConfig, build_request
from .runner import BenchError, run_load
from .server import ServerProcess, free_port, mpmserver_command

HOST = "127.0.0.1"
APP = "benchmarks.apps:app"


@dataclass(frozen=True)
class Workload:
    name: str
    path: str
    connections: int = 32
    pipeline: int = 1
    method: str = "GET"
    body: bytes = b""
    idle_connections: int = 0        # opened beside the load and kept idle


WORKLOADS = (
    Workload("plaintext", "/plaintext"),
    Workload("plaintext_pipeline16", "/plaintext", pipeline=16),
    Workload("json", "/json"),
    Workload("echo_post_10k", "/echo", method="POST", body=b"x" * 10_240),
    Workload("file_1mb", "/file", connections=8),
    Workload("sleep_10ms_c64", "/sleep", connections=64),
    Workload("plaintext_1000_idle", "/plaintext", idle_connections=1000),
)

# 2 children x 16 threads, and spare-thread limits that keep exactly those two
# alive (Apache's MinSpareThreads default of 75 would fork more children than
# the machine has cores). KeepAliveTimeout 60 s keeps the idle connections of
# plaintext_1000_idle open for the whole run; MaxKeepAliveRequests 0 measures
# the request path rather than reconnections, as TechEmpower setups do.
def server_directives(procs: int = 2, threads: int = 16) -> list[str]:
    d = ["--start-servers", str(procs), "--threads-per-child", str(threads),
         "--max-request-workers", str(procs * threads),
         "--min-spare-threads", "1", "--max-spare-threads", str(procs * threads * 2),
         "--keep-alive-timeout", "60", "--max-keep-alive-requests", "0"]
    if os.geteuid() == 0:
        # A root master runs children as nobody, who may not be able to read
        # the Python installation (e.g. under /root): import the app first.
        d += ["--preload-app", "on"]
    return d


def repo_root() -> Path | None:
    """The checkout holding benchmarks/apps.py, or None in an installed copy."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "benchmarks" / "apps.py").is_file() else None


def start_server(procs: int = 2, threads: int = 16, timeout: float = 30.0) -> ServerProcess:
    root = repo_root()
    if root is None:
        raise BenchError("benchmarks/apps.py not found: run the workloads from a checkout")
    port = free_port(HOST)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    server = ServerProcess(mpmserver_command(APP, HOST, port, server_directives(procs, threads)),
                           HOST, port, name="mpmserver", ready_path="/plaintext", env=env, cwd=str(root))
    return server.start(timeout)


class IdleConnections:
    """n keep-alive connections that each send one request and then stay
    silent: what a crowd of browsers between clicks looks like.

    Opened without blocking: a server that stops accepting leaves the rest in
    its listen backlog (or unconnected), and they are counted, not waited
    for past the timeout. `connected` completed the TCP handshake; `served`
    got their response.
    """

    def __init__(self, host: str, port: int, n: int, path: str = "/plaintext",
                 timeout: float = 15.0) -> None:
        self.host, self.port, self.n, self.path, self.timeout = host, port, n, path, timeout
        self.socks: list[socket.socket] = []
        self.connected = self.served = 0

    def open(self) -> "IdleConnections":
        req = f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        sel = selectors.DefaultSelector()
        try:
            for _ in range(self.n):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex((self.host, self.port))
                self.socks.append(s)
                sel.register(s, selectors.EVENT_WRITE)
            deadline = time.monotonic() + self.timeout
            pending = self.n
            while pending and time.monotonic() < deadline:
                for key, ev in sel.select(0.2):
                    pending -= self._step(sel, key.fileobj, ev, req)
        except BaseException:
            self.close()
            raise
        finally:
            sel.close()
        return self

    def _step(self, sel: selectors.BaseSelector, s: socket.socket, ev: int, req: bytes) -> int:
        """One event of one connection; 1 when that connection is settled."""
        if ev & selectors.EVENT_WRITE:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                sel.unregister(s)
                return 1
            self.connected += 1
            try:
                s.send(req)
            except OSError:
                sel.unregister(s)
                return 1
            sel.modify(s, selectors.EVENT_READ)
            return 0
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 200"):
            self.served += 1
        sel.unregister(s)
        return 1

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks.clear()

    def __enter__(self) -> "IdleConnections":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def run_workload(w: Workload, host: str, port: int, seconds: float, warmup: float = 0.5,
                 timeout: float = 5.0) -> dict:
    """Drive one workload for `seconds` and return the generator's report
    (with `idle_served` for workloads with idle connections)."""
    cfg = LoadConfig(
        host=host, port=port,
        request=build_request(w.method, w.path, f"{host}:{port}", [], w.body, True),
        connections=w.connections, duration=seconds, requests=None, warmup=warmup,
        pipeline=w.pipeline, timeout=timeout)
    meta = {"url": f"http://{host}:{port}{w.path}", "workload": w.name, "method": w.method,
            "connections": w.connections, "pipeline": w.pipeline, "keepalive": True,
            "rate": None, "warmup_s": warmup}
    if not w.idle_connections:
        return run_load(cfg, 1, False, meta)
    with IdleConnections(host, port, w.idle_connections, w.path) as idle:
        rep = run_load(cfg, 1, False, meta)
        rep["idle_connections"] = w.idle_connections
        rep["idle_served"] = idle.served
    return rep
