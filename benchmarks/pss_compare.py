"""Total PSS of a server's processes after N requests: mpmserver against gunicorn gthread.

    python benchmarks/pss_compare.py [--app tests.apps.djangoproject.wsgi:application]
        [--procs 4] [--threads 4] [--requests 2000] [--rounds 3] [--preload both|on|off]
        [--mpmserver-flags "--thread-stack-size 256K"]

Each round starts every server in turn (alternating, the same order each
round), sends it --requests GET requests over 4 keep-alive connections,
waits a moment for the children to settle, reads the PSS of every process
of its tree from /proc/PID/smaps_rollup (mpmserver/bench/pss.py) and
stops it. Reports the median of the rounds per server, with RSS, private
memory and the PSS split (anon, file, shmem). Issue 23's method: a Django
project at 4 processes x 4 threads after 2,000 requests.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mpmserver.bench.pss import Memory, tree_memory  # noqa: E402
from mpmserver.bench.server import ServerProcess, free_port  # noqa: E402

MIB = 1 << 20
# Byte code cached outside the tree, as an installed package has it: compiling
# at import (PYTHONDONTWRITEBYTECODE) leaves the parser's freed memory in a
# master's heap, megabytes of RSS that an installed server does not have.
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
       "PYTHONPYCACHEPREFIX": os.environ.get("PYTHONPYCACHEPREFIX", "/tmp/mpmserver-pss-pycache")}


def warm_bytecode(app: str) -> None:
    """Import everything once so that each server starts from cached byte code."""
    module = app.partition(":")[0]
    subprocess.run([sys.executable, "-c", f"import mpmserver.cli, mpmserver.master.master, "
                    f"mpmserver.child.child, gunicorn.app.wsgiapp, gunicorn.workers.gthread, {module}"],
                   cwd=ROOT, env=ENV, check=True)


def commands(app: str, procs: int, threads: int, port: int, extra: list[str]) -> dict[str, list[str]]:
    mpm = [sys.executable, "-m", "mpmserver", app, "--listen", f"127.0.0.1:{port}", "--access-log", "off",
           "-w", str(procs), "--threads", str(threads), *extra]
    guni = [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", "-k", "gthread",
            "-w", str(procs), "--threads", str(threads), "--log-level", "warning"]
    return {"mpmserver": mpm, "gunicorn": guni}


def load(port: int, path: str, requests: int, conns: int = 4) -> int:
    """``requests`` GETs over ``conns`` keep-alive connections; the 200s."""
    ok = [0] * conns

    def client(i: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(requests // conns):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            ok[i] += r.status == 200
            if r.will_close:
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(ok)


def measure(name: str, argv: list[str], port: int, path: str, requests: int, procs: int) -> Memory:
    with ServerProcess(argv, "127.0.0.1", port, name=name, ready_path=path, cwd=ROOT, env=ENV) as server:
        deadline = time.monotonic() + 30
        while len(tree_memory(server.proc.pid).pids) < procs + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        ok = load(port, path, requests)
        if ok != requests // 4 * 4:
            raise SystemExit(f"{name}: only {ok} of {requests} requests answered 200")
        time.sleep(1.5)  # a child publishes, collects, settles
        return tree_memory(server.proc.pid)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--app", default="tests.apps.djangoproject.wsgi:application")
    p.add_argument("--path", default="/hello")
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--preload", choices=("both", "on", "off"), default="both")
    p.add_argument("--mpmserver-flags", default="", help="extra mpmserver flags (quoted)")
    p.add_argument("--only", choices=("mpmserver", "gunicorn"), help="measure one server only")
    args = p.parse_args()
    runs = []
    for preload in (("off", "on") if args.preload == "both" else (args.preload,)):
        for name in ("mpmserver", "gunicorn"):
            if args.only and name != args.only:
                continue
            extra = shlex.split(args.mpmserver_flags)
            if preload == "on":
                extra.append("--preload-app=on")
            runs.append((f"{name} preload {preload}", name, preload, extra))
    results: dict[str, list[Memory]] = {label: [] for label, *_ in runs}
    warm_bytecode(args.app)
    for rnd in range(args.rounds):
        for label, name, preload, extra in runs:
            port = free_port()
            argv = commands(args.app, args.procs, args.threads, port, extra)[name]
            if name == "gunicorn" and preload == "on":
                argv.append("--preload")
            mem = measure(label, argv, port, args.path, args.requests, args.procs)
            results[label].append(mem)
            print(f"round {rnd + 1} {label}: PSS {mem.pss / MIB:.1f} MiB in {len(mem.pids)} processes "
                  f"(RSS {mem.rss / MIB:.1f}, private {mem.private / MIB:.1f})", flush=True)
    print(f"\n{args.app} at {args.procs} x {args.threads}, {args.requests} requests, median of {args.rounds}:")
    print(f"{'server':<24} {'PSS MiB':>8} {'RSS MiB':>8} {'private':>8} {'anon':>7} {'file':>7} {'shmem':>7}")
    for label, mems in results.items():
        def med(attr: str) -> float:
            return statistics.median(getattr(m, attr) for m in mems) / MIB
        print(f"{label:<24} {med('pss'):>8.1f} {med('rss'):>8.1f} {med('private'):>8.1f} "
              f"{med('pss_anon'):>7.1f} {med('pss_file'):>7.1f} {med('pss_shmem'):>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
