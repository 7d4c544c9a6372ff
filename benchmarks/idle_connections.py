"""Issue 5's listener targets, measured once (not a CI test):

  idle     N idle keep-alive connections open: wrk -c16 keeps >= 90% of its
           throughput, p99 < 50 ms; each child's RSS grows < 50 MB
  slowloris  S connections sending one header byte a second: normal clients
           keep >= 90% of their throughput and no worker is busy for them

    python benchmarks/idle_connections.py [--idle 10000] [--slow 2000] [--seconds 5]

Needs wrk on PATH and a hard RLIMIT_NOFILE above --idle + a few hundred.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mpmserver.bench.runner import BenchError  # noqa: E402
from mpmserver.bench.server import ServerProcess, free_port, mpmserver_command  # noqa: E402
from mpmserver.bench.wrk import run_wrk  # noqa: E402
from mpmserver.scoreboard import Scoreboard  # noqa: E402

APP = "benchmarks.apps:plaintext"
HOST = "127.0.0.1"
GET = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Server:
    """mpmserver serving APP, 2 children x 8 threads, keep-alive kept 300 s,
    started and stopped by mpmserver.bench.server.ServerProcess; its
    scoreboard attached."""

    def __init__(self, *directives: str):
        self.port = free_port(HOST)
        self.sbfile = tempfile.mktemp(prefix="mpm-bench-sb-")
        argv = mpmserver_command(APP, HOST, self.port, [
            "--start-servers", "2", "--server-limit", "2", "--threads-per-child", "8",
            "--min-spare-threads", "1", "--max-spare-threads", "16", "--max-request-workers", "16",
            "--keep-alive-timeout", "300", "--max-keep-alive-requests", "0",
            "--max-open-connections-per-child", "8192", *directives], scoreboard_file=self.sbfile)
        self.server = ServerProcess(argv, HOST, self.port, name="mpmserver",
                                    env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))
        self.server.start(timeout=20)
        deadline = time.monotonic() + 20
        while len(self.children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.sb = Scoreboard.attach(self.sbfile)

    def children(self) -> list[int]:
        pid = self.server.proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def rss_mb(self) -> dict[int, float]:
        out = {}
        for pid in self.children():
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1]) / 1024
        return out

    def stop(self) -> None:
        self.sb.close(remove=True)
        self.server.stop()


def wrk(port: int, connections: int, seconds: int) -> tuple[float, float]:
    """(requests/s, p99 ms) of wrk -t1 (mpmserver.bench.wrk)."""
    figures = run_wrk(f"http://{HOST}:{port}/", connections, seconds)
    return figures["requests_per_s"], figures["latency_ms"]["p99"]


def open_idle(port: int, n: int) -> list[socket.socket]:
    """n keep-alive connections, each after one answered request (parked)."""
    socks = []
    for _ in range(n):
        c = socket.create_connection((HOST, port), timeout=30)
        c.sendall(GET)
        data = b""
        while b"Hello, World!" not in data:
            chunk = c.recv(4096)
            if not chunk:
                raise SystemExit(f"connection {len(socks)} closed by the server")
            data += chunk
        socks.append(c)
    return socks


def drained(sb: Scoreboard, timeout: float = 30) -> None:
    """Wait until the server has seen the closed connections go."""
    deadline = time.monotonic() + timeout
    while sb.snapshot().conns_total > 50 and time.monotonic() < deadline:
        time.sleep(0.1)


def max_busy(sb: Scoreboard, seconds: float) -> int:
    worst = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        worst = max(worst, sb.snapshot().busy_workers)
        time.sleep(0.01)
    return worst


def bench_idle(n: int, seconds: int) -> None:
    s = Server()
    try:
        base_rps, base_p99 = wrk(s.port, 16, seconds)
        rss0 = s.rss_mb()
        t0 = time.monotonic()
        socks = open_idle(s.port, n)
        opened = time.monotonic() - t0
        time.sleep(1)
        snap = s.sb.snapshot()
        rss1 = s.rss_mb()
        rps, p99 = wrk(s.port, 16, seconds)
        alive = sum(1 for c in socks if _still_open(c))
        for c in socks:
            c.close()
        socks = []
        drained(s.sb)
        # The machine is shared: the baseline is the mean of before and after.
        after_rps, after_p99 = wrk(s.port, 16, seconds)
        base_rps, base_p99 = (base_rps + after_rps) / 2, max(base_p99, after_p99)
        print(f"idle: {n} keep-alive connections opened in {opened:.1f}s; scoreboard: "
              f"{snap.conns_total} open, {snap.conns_keep_alive} K, {alive} still open after wrk")
        print(f"idle: wrk -c16 baseline (mean of before/after) {base_rps:.0f} req/s p99 {base_p99:.2f} ms; "
              f"with idle {rps:.0f} req/s p99 {p99:.2f} ms ({100 * rps / base_rps:.0f}%)")
        print("idle: child RSS MB " + ", ".join(
            f"{pid}: {rss0.get(pid, 0):.1f} -> {rss1.get(pid, 0):.1f} (+{rss1.get(pid, 0) - rss0.get(pid, 0):.1f})"
            for pid in sorted(rss1)))
        for c in socks:
            c.close()
    finally:
        s.stop()


def _still_open(c: socket.socket) -> bool:
    c.setblocking(False)
    try:
        return c.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def bench_slowloris(n: int, seconds: int) -> None:
    s = Server()
    stop = threading.Event()
    slow: list[socket.socket] = []

    def drip():
        while not stop.is_set():
            for c in slow:
                try:
                    c.send(b"a")
                except OSError:
                    pass
            stop.wait(1.0)
    try:
        base_rps, base_p99 = wrk(s.port, 16, seconds)
        for _ in range(n):
            c = socket.create_connection((HOST, s.port), timeout=30)
            c.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
            slow.append(c)
        t = threading.Thread(target=drip, daemon=True)
        t.start()
        busy = max_busy(s.sb, 3.0)
        rps, p99 = wrk(s.port, 16, seconds)
        open_during = s.sb.snapshot().conns_total
        stop.set()
        for c in slow:
            c.close()
        slow.clear()
        drained(s.sb)
        after_rps, after_p99 = wrk(s.port, 16, seconds)
        base_rps, base_p99 = (base_rps + after_rps) / 2, max(base_p99, after_p99)
        print(f"slowloris: {n} connections, 1 header byte/s each; busy workers (sampled 3 s, no other "
              f"load): max {busy}; open during wrk: {open_during}")
        print(f"slowloris: wrk -c16 baseline (mean of before/after) {base_rps:.0f} req/s p99 {base_p99:.2f} ms; "
              f"during {rps:.0f} req/s p99 {p99:.2f} ms ({100 * rps / base_rps:.0f}%)")
    finally:
        stop.set()
        for c in slow:
            c.close()
        s.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--slow", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--only", choices=("idle", "slowloris"))
    args = ap.parse_args()
    hard = raise_nofile()
    if hard < args.idle + 256:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is too low for --idle {args.idle}")
    try:
        if args.only in (None, "idle"):
            bench_idle(args.idle, args.seconds)
        if args.only in (None, "slowloris"):
            bench_slowloris(args.slow, args.seconds)
    except (BenchError, FileNotFoundError, RuntimeError) as exc:  # the server or wrk failed
        raise SystemExit(f"idle_connections: {exc}") from None


if __name__ == "__main__":
    main()
