#!/usr/bin/env python3
"""Graceful restarts under mixed load: failed requests, mpmserver beside gunicorn (issue 16).

    python benchmarks/restart_load.py                         # USR1/HUP every 1 s for 60 s, 2 x 4
    python benchmarks/restart_load.py --duration 20 --every 0.5 --app tests.apps.slow_import:app \\
        --path /hello                                         # an app that takes a second to import
    python benchmarks/restart_load.py --recycle 500           # and recycling (MaxRequestsPerChild / --max-requests)

Each server runs with the same processes x threads (mpmserver -w P --threads T,
gunicorn -k gthread -w P --threads T) and gets the same load, one server after
the other: keep-alive clients (--keep-alive, default 16), clients that open a
new connection per request (--new, 16) and clients posting a 100 KB body on a
keep-alive connection (--posts, 4), each client kind in its own process. After
a warm-up, the server's graceful restart signal is sent every --every seconds
for --duration seconds (mpmserver: USR1, `-k graceful`; gunicorn: HUP, its
graceful reload); the load goes on --settle seconds more. A failed request is
any request without a complete 200 answer: a reset, a connection closed
before the response, a timeout (--timeout), a refused connection, another
status, or a POST echo that does not match. The table gives, per client kind,
requests answered, failures, p50 and p99 latency; failures are listed by kind,
with how long after the preceding signal they happened.

A benchmark, not a test: run it by hand, on an otherwise idle machine; the
absolute figures depend on the machine, the failure counts should not.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpmserver.bench.server import ServerProcess, free_port  # noqa: E402

HOST = "127.0.0.1"
BODY = bytes(range(256)) * 400  # 100 KB


# -- the clients (one process per kind, one thread per client) ---------------------

def _classify(exc: BaseException, reused: bool) -> str:
    where = "reused connection" if reused else "new connection"
    if isinstance(exc, ConnectionResetError):
        return f"reset ({where})"
    if isinstance(exc, (http.client.RemoteDisconnected, http.client.IncompleteRead, BrokenPipeError)):
        return f"closed before a complete response ({where})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timeout ({where})"
    return f"{type(exc).__name__} ({where})"


def _client(port: int, path: str, keep_alive: bool, body: bytes | None, timeout: float,
            stop: threading.Event, out: dict) -> None:
    conn = None
    reused = False
    headers = {} if keep_alive else {"Connection": "close"}
    method = "GET" if body is None else "POST"
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
                reused = False
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                out["failures"].append((time.time(), f"status {resp.status}"))
            elif body is not None and data != body:
                out["failures"].append((time.time(), "echo mismatch"))
            else:
                out["latencies"].append(time.monotonic() - t0)
            if not keep_alive or resp.will_close:
                conn.close()
                conn = None
            else:
                reused = True
        except Exception as exc:  # noqa: BLE001 - every error is a failed request
            out["failures"].append((time.time(), _classify(exc, reused)))
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()


def _client_process(port: int, n: int, path: str, keep_alive: bool, body: bytes | None,
                    timeout: float, stop_event, results) -> None:
    stop = threading.Event()
    outs = [{"latencies": [], "failures": []} for _ in range(n)]
    threads = [threading.Thread(target=_client, args=(port, path, keep_alive, body, timeout, stop, o),
                                daemon=True) for o in outs]
    for t in threads:
        t.start()
    stop_event.wait()
    stop.set()
    for t in threads:
        t.join(timeout + 5)
    results.put({"latencies": [x for o in outs for x in o["latencies"]],
                 "failures": [f for o in outs for f in o["failures"]]})


# -- the servers ----------------------------------------------------------------------

@dataclass
class ServerSpec:
    name: str
    command: list[str]
    restart_signal: int


def server_specs(args: argparse.Namespace) -> list[ServerSpec]:
    py = sys.executable
    specs = []
    if "mpmserver" in args.servers:
        cmd = [py, "-m", "mpmserver", args.app, "--listen", f"{HOST}:{{port}}", "-w", str(args.procs),
               "--threads", str(args.threads), "--access-log", "off", "--log-level", "warn"]
        if args.recycle:
            cmd += ["--max-requests-per-child", str(args.recycle),
                    "--max-connections-per-child-jitter", str(args.recycle // 10)]
        specs.append(ServerSpec("mpmserver", cmd, signal.SIGUSR1))
    if "gunicorn" in args.servers:
        if importlib.util.find_spec("gunicorn") is None:
            print("gunicorn: not installed (pip install gunicorn), skipped", file=sys.stderr)
        else:
            cmd = [py, "-m", "gunicorn", "-k", "gthread", "-w", str(args.procs), "--threads",
                   str(args.threads), "-b", f"{HOST}:{{port}}", "--keep-alive", "5",
                   "--log-level", "warning", args.app]
            if args.recycle:
                cmd += ["--max-requests", str(args.recycle), "--max-requests-jitter", str(args.recycle // 10)]
            specs.append(ServerSpec("gunicorn", cmd, signal.SIGHUP))
    return specs


@dataclass
class Result:
    server: str
    signals: int
    kinds: dict[str, dict] = field(default_factory=dict)
    signal_times: list[float] = field(default_factory=list)
    stderr_tail: str = ""


def run_one(spec: ServerSpec, args: argparse.Namespace) -> Result:
    """Start the server (mpmserver.bench.server.ServerProcess: its own
    process group, not a new session, so that it shares the CPU with the
    clients as the load generator's peers do), load it, stop it."""
    port = free_port(HOST)
    cmd = [c.replace("{port}", str(port)) for c in spec.command]
    server = ServerProcess(cmd, HOST, port, name=spec.name, ready_path=args.path, cwd=str(ROOT))
    with server:
        try:
            return _load_and_restart(spec, server.proc, port, args)
        finally:
            code = server.stop(15)
            _kill_leftovers(server.proc)
            tail = server.output(2000)
            if code not in (0, -signal.SIGTERM) and tail:
                print(f"{spec.name} exited {code}; its output ends:\n{tail}", file=sys.stderr)


def _load_and_restart(spec: ServerSpec, proc: subprocess.Popen, port: int,
                      args: argparse.Namespace) -> Result:
    ctx = mp.get_context("fork")
    stop_event = ctx.Event()
    kinds = {"keep-alive": (args.keep_alive, args.path, True, None),
             "new-connection": (args.new, args.path, False, None),
             "post-100KB": (args.posts, args.post_path, True, BODY)}
    queues, procs = {}, []
    for kind, (n, path, ka, body) in kinds.items():
        if not n:
            continue
        q = queues[kind] = ctx.Queue()
        p = ctx.Process(target=_client_process, args=(port, n, path, ka, body, args.timeout, stop_event, q),
                        daemon=True)
        p.start()
        procs.append(p)
    result = Result(spec.name, 0)
    time.sleep(args.warmup)
    t_end = time.monotonic() + args.duration
    next_at = time.monotonic()
    while time.monotonic() < t_end and proc.poll() is None:
        if not args.every:  # --every 0: the same load without restarts, for reference
            time.sleep(max(0.0, t_end - time.monotonic()))
            break
        os.kill(proc.pid, spec.restart_signal)
        result.signal_times.append(time.time())
        result.signals += 1
        next_at += args.every
        time.sleep(max(0.0, next_at - time.monotonic()))
    time.sleep(args.settle)
    stop_event.set()
    for kind, q in queues.items():
        result.kinds[kind] = q.get(timeout=args.timeout + 30)
    for p in procs:
        p.join(10)
    return result


def _kill_leftovers(proc: subprocess.Popen) -> None:
    """What the stopped server left in its process group (a generation a
    restart was still retiring when it stopped)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- the report ---------------------------------------------------------------------------

def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _after_signal(t: float, signal_times: list[float]) -> str:
    before = [s for s in signal_times if s <= t]
    return f"{(t - before[-1]) * 1000:.0f} ms" if before else "before the first signal"


def report(results: list[Result], args: argparse.Namespace) -> str:
    lines = [f"{args.procs} processes x {args.threads} threads; app {args.app}; graceful restart every "
             f"{args.every:g} s for {args.duration:g} s; clients: {args.keep_alive} keep-alive, "
             f"{args.new} new-connection, {args.posts} posting 100 KB"
             + (f"; recycling every {args.recycle} requests" if args.recycle else ""), ""]
    lines.append("| server | signals | kind | answered | failed | p50 ms | p99 ms |")
    lines.append("|---|---:|---|---:|---:|---:|---:|")
    for r in results:
        for kind, k in r.kinds.items():
            lines.append(f"| {r.server} | {r.signals} | {kind} | {len(k['latencies']):,} | "
                         f"{len(k['failures']):,} | {_pct(k['latencies'], 0.5):.1f} | "
                         f"{_pct(k['latencies'], 0.99):.1f} |")
    lines.append("")
    for r in results:
        answered = sum(len(k["latencies"]) for k in r.kinds.values())
        failures = [(kind, t, what) for kind, k in r.kinds.items() for t, what in k["failures"]]
        lines.append(f"{r.server}: {len(failures)} failed of {answered + len(failures):,} requests")
        for (kind, what), n in sorted(Counter((kind, what) for kind, _, what in failures).items()):
            lines.append(f"  {n:5d}  {kind}: {what}")
        for kind, t, what in failures[:10]:
            lines.append(f"         {kind}: {what}, {_after_signal(t, r.signal_times)} after a signal")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="mpmserver,gunicorn", help="comma-separated: mpmserver,gunicorn")
    ap.add_argument("--app", default="benchmarks.apps:app")
    ap.add_argument("--path", default="/", help="what the GET clients ask for")
    ap.add_argument("--post-path", default="/echo", help="an app path that echoes the body")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--keep-alive", type=int, default=16)
    ap.add_argument("--new", type=int, default=16)
    ap.add_argument("--posts", type=int, default=4)
    ap.add_argument("--every", type=float, default=1.0, help="seconds between graceful restarts (0: none, for reference)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of restarts")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds of load after the last restart")
    ap.add_argument("--timeout", type=float, default=15.0, help="a request slower than this failed")
    ap.add_argument("--recycle", type=int, default=0,
                    help="also recycle children every N requests (MaxRequestsPerChild; gunicorn --max-requests)")
    args = ap.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    results = []
    for spec in server_specs(args):
        print(f"{spec.name}: {args.duration:g} s of graceful restarts under load...", file=sys.stderr, flush=True)
        results.append(run_one(spec, args))
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
