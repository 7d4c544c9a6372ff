"""Slow downloads of a static file against probes of the app (issue 27).

    python benchmarks/static_slow_clients.py                  # 1000 clients, 20 s
    python benchmarks/static_slow_clients.py --clients 200 --seconds 10

mpmserver (2 children x 4 threads) serves a 10 MB file from an Alias. N
clients ask for it and read it at about 10 KB/s each (1 KB every 0.1 s);
meanwhile a probe asks the app for a page on a new connection every 0.2 s.
Were the file sent by worker threads, the first 8 downloads would hold
every worker and the probes would wait; sent by the event loops, the
probes are answered at once. Printed: the probes' latencies (median, p99,
max), how many were answered, and the connections the scoreboard shows in
write completion (ConnsAsyncWriting) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mpmserver.bench.server import ServerProcess, free_port  # noqa: E402
from mpmserver.scoreboard import Scoreboard  # noqa: E402

HOST = "127.0.0.1"
SIZE = 10 * 1000 * 1000


async def slow_client(port: int, stop: asyncio.Event, got: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port, limit=4096)
    writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    n = 0
    try:
        while not stop.is_set():
            data = await reader.read(1024)
            if not data:
                break
            n += len(data)
            await asyncio.sleep(0.1)
    finally:
        got.append(n)
        writer.close()


async def probe(port: int) -> float:
    t = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"GET /probe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"probe answered {data[:60]!r}")
    return time.perf_counter() - t


async def run(port: int, clients: int, seconds: float, board: Scoreboard) -> tuple[list[float], list[int], int]:
    stop = asyncio.Event()
    got: list[int] = []
    tasks = []
    for i in range(clients):
        tasks.append(asyncio.create_task(slow_client(port, stop, got)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # do not flood the listen backlog
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        latencies.append(await probe(port))
        await asyncio.sleep(0.2)
    writing = board.snapshot().conns_writing
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return latencies, got, writing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mpmserver-slow-bench-"))
    root.chmod(0o755)
    try:
        (root / "static").mkdir()
        (root / "static" / "big.bin").write_bytes(os.urandom(1 << 20) * (SIZE // (1 << 20)) + bytes(SIZE % (1 << 20)))
        port = free_port()
        sb = root / "scoreboard"
        cmd = [sys.executable, "-m", "mpmserver", "benchmarks.static_apps:app", "--listen", f"{HOST}:{port}",
               "--fixed-servers", "2", "--threads-per-child", "4", "--access-log", "off",
               "--static", f"/static/={root / 'static'}", "--scoreboard-file", str(sb), "--timeout", "120"]
        server = ServerProcess(cmd, HOST, port, "mpmserver", env={**os.environ, "PYTHONPATH": str(ROOT)},
                               cwd=str(ROOT)).start()
        try:
            latencies, got, writing = asyncio.run(run(port, args.clients, args.seconds, Scoreboard.attach(str(sb))))
        finally:
            server.stop()
        worst = max(range(len(latencies)), key=latencies.__getitem__)
        ms = sorted(x * 1000 for x in latencies)
        print(f"{args.clients} clients reading a 10 MB file at ~10 KB/s for {args.seconds:g} s; "
              f"2 children x 4 threads")
        print(f"probes answered: {len(ms)}; latency ms: median {statistics.median(ms):.1f}, "
              f"p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.1f}, max {ms[-1]:.1f} (probe {worst + 1}, "
              f"{worst * 0.2:.0f} s or more into the run; over 1 s: {sum(1 for x in ms if x > 1000)})")
        print(f"slow clients that got bytes: {sum(1 for n in got if n)} of {args.clients}; "
              f"median read {statistics.median(got) / 1000:.0f} KB; ConnsAsyncWriting near the end: {writing}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
