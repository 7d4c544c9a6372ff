"""Latency while children recycle fast (issue 25: a recycled child waited for
the master's once-a-second maintenance before it was replaced).

Each tree's server (2 children x 4 threads, MaxRequestsPerChild 10, access
log off) gets 4 keep-alive clients for SECONDS; the trees run in
alternating order for ROUNDS rounds. Prints p50/p99 and the requests
answered per run.

    python benchmarks/recycle_latency.py TREE_A TREE_B [--rounds 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.load import Hammer  # noqa: E402
from tests.support.server import free_port, wait_for  # noqa: E402


def run(tree: str, seconds: float) -> tuple[float, float, int, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpmserver", "tests.apps.basic:app", "--listen", f"127.0.0.1:{port}", "-w", "2",
         "--threads", "4", "--max-requests-per-child", "10", "--access-log", "off"],
        cwd=tree, env={**os.environ, "PYTHONPATH": tree}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(up, 15, what="the server")
        time.sleep(1)
        hammers = [Hammer(port, "/hello", keep_alive=True).start() for _ in range(4)]
        time.sleep(seconds)
        for h in hammers:
            h.stop()
    finally:
        proc.terminate()
        proc.wait(20)
    lat = sorted(x for h in hammers for x in h.latencies)
    return lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000, len(lat), sum(len(h.failures) for h in hammers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trees", nargs=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args()
    for r in range(a.rounds):
        for tree in (a.trees if r % 2 == 0 else a.trees[::-1]):
            p50, p99, n, failed = run(tree, a.seconds)
            print(f"round {r} {tree}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {n} requests, {failed} failed", flush=True)


if __name__ == "__main__":
    main()
