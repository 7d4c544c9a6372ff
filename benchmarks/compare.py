#!/usr/bin/env python3
"""mpmserver against its peers on the same app, processes x threads and load.

    python benchmarks/compare.py                      # 2 processes x 4 threads, 3 rounds
    python benchmarks/compare.py --markdown --plot compare.png

Servers: mpmserver, gunicorn (gthread), waitress (one process, procs x threads
threads) and uWSGI when installed; peers that are not installed are skipped
with a note. Load: wrk when installed, else `mpmserver bench` (--load picks).
All servers stay up, idle, while one is measured; runs alternate between
servers round by round so drift on a shared machine hits all of them alike.
Read the ratios to mpmserver, not the absolute numbers: those move with
whatever else the machine is doing, the ratios from one run much less.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mpmserver.bench.load import LoadConfig, build_request  # noqa: E402
from mpmserver.bench.runner import BenchError, run_load  # noqa: E402
from mpmserver.bench.server import ServerProcess, free_port  # noqa: E402
from mpmserver.bench.workloads import server_directives  # noqa: E402
from mpmserver.bench.wrk import run_wrk, wrk_path  # noqa: E402

HOST = "127.0.0.1"


@dataclass
class Peer:
    name: str
    available: bool
    note: str = ""
    command: list[str] = field(default_factory=list)


def peers(app: str, procs: int, threads: int, port_for) -> list[Peer]:
    """Commands for every server; the same app, processes and threads, no access logs."""
    py = sys.executable
    out = []
    port = port_for("mpmserver")
    mpm = [py, "-m", "mpmserver", app, "--listen", f"{HOST}:{port}", "--access-log", "off",
           *server_directives(procs, threads)]
    out.append(Peer("mpmserver", True, f"{procs} children x {threads} threads", mpm))
    if importlib.util.find_spec("gunicorn"):
        out.append(Peer("gunicorn", True, f"gthread, {procs} workers x {threads} threads",
                        [py, "-m", "gunicorn", "-k", "gthread", "-w", str(procs), "--threads",
                         str(threads), "-b", f"{HOST}:{port_for('gunicorn')}", "--log-level",
                         "warning", app]))
    else:
        out.append(Peer("gunicorn", False, "not installed (pip install gunicorn)"))
    if importlib.util.find_spec("waitress"):
        out.append(Peer("waitress", True, f"1 process x {procs * threads} threads (no multi-process)",
                        [py, "-m", "waitress", "--host", HOST, "--port", str(port_for("waitress")),
                         "--threads", str(procs * threads), app]))
    else:
        out.append(Peer("waitress", False, "not installed (pip install waitress)"))
    uwsgi = shutil.which("uwsgi")
    if uwsgi:
        out.append(Peer("uwsgi", True, f"{procs} processes x {threads} threads, --http-socket",
                        [uwsgi, "--http-socket", f"{HOST}:{port_for('uwsgi')}", "--master",
                         "--processes", str(procs), "--threads", str(threads),
                         "--module", app, "--disable-logging",
                         "--die-on-term", "--need-app"]))
    else:
        out.append(Peer("uwsgi", False, "not installed (pip install uwsgi)"))
    return out


def measure(load: str, url: str, connections: int, seconds: float, warmup: float) -> dict:
    """One run: requests/s, p50 and p99 in ms, errors."""
    if load == "wrk":
        r = run_wrk(url, connections, seconds)
        return {"rps": r["requests_per_s"], "p50": r["latency_ms"].get("p50", float("nan")),
                "p99": r["latency_ms"].get("p99", float("nan")),
                "errors": sum(r["errors"].values()) + r["non_2xx"]}
    from urllib.parse import urlsplit
    u = urlsplit(url)
    cfg = LoadConfig(host=u.hostname, port=u.port,
                     request=build_request("GET", u.path or "/", u.netloc, [], b"", True),
                     connections=connections, duration=seconds, requests=None, warmup=warmup)
    rep = run_load(cfg, 1, False, {"url": url})
    return {"rps": rep["requests_per_s"], "p50": rep["latency_ms"]["p50"],
            "p99": rep["latency_ms"]["p99"],
            "errors": rep["errors_total"] + sum(v for k, v in rep["status"].items() if k != "200")}


def summarize(runs: dict[str, list[dict]], baseline: str = "mpmserver") -> list[dict]:
    """Median of each server's runs and its requests/s ratio to the baseline."""
    rows = []
    for name, rs in runs.items():
        if not rs:
            continue
        rows.append({"server": name, "rps": statistics.median(r["rps"] for r in rs),
                     "p50": statistics.median(r["p50"] for r in rs),
                     "p99": statistics.median(r["p99"] for r in rs),
                     "rps_min": min(r["rps"] for r in rs), "rps_max": max(r["rps"] for r in rs),
                     "errors": sum(r["errors"] for r in rs), "runs": len(rs)})
    base = next((r["rps"] for r in rows if r["server"] == baseline), None)
    for r in rows:
        r["ratio"] = r["rps"] / base if base else float("nan")
    return rows


def format_table(rows: list[dict], markdown: bool = False) -> str:
    head = ["server", "req/s", "min-max", "p50 ms", "p99 ms", "vs mpmserver", "errors"]
    body = [[r["server"], f"{r['rps']:.0f}", f"{r['rps_min']:.0f}-{r['rps_max']:.0f}",
             f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['ratio']:.2f}x", str(r["errors"])]
            for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [head, *body])


def plot(rows: list[dict], path: str, title: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'mpmserver[plot]'") from None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [r["server"] for r in rows]
    rps = [r["rps"] for r in rows]
    err = [[r["rps"] - r["rps_min"] for r in rows], [r["rps_max"] - r["rps"] for r in rows]]
    ax.bar(names, rps, yerr=err, capsize=4, color=["#c0392b" if n == "mpmserver" else "#7f8c8d" for n in names])
    for i, r in enumerate(rows):
        ax.text(i, r["rps"], f"{r['ratio']:.2f}x", ha="center", va="bottom")
    ax.set_ylabel("requests/s (median, min-max)")
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--app", default="benchmarks.apps:plaintext")
    p.add_argument("--path", default="/", help="request path (default /)")
    p.add_argument("--procs", type=int, default=2, help="server processes (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per process (default 4)")
    p.add_argument("-c", "--connections", type=int, default=32)
    p.add_argument("-d", "--duration", type=float, default=5.0, help="seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="runs per server, alternating")
    p.add_argument("--load", choices=["auto", "wrk", "bench"], default="auto")
    p.add_argument("--servers", default="mpmserver,gunicorn,waitress,uwsgi",
                   help="comma-separated subset")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--plot", metavar="FILE.png")
    args = p.parse_args(argv)

    load = args.load
    if load == "auto":
        load = "wrk" if wrk_path() else "bench"
    elif load == "wrk" and not wrk_path():
        print("compare: wrk is not installed; use --load bench", file=sys.stderr)
        return 1
    ports: dict[str, int] = {}
    wanted = {s.strip() for s in args.servers.split(",") if s.strip()}
    all_peers = [pe for pe in peers(args.app, args.procs, args.threads,
                                    lambda n: ports.setdefault(n, free_port(HOST)))
                 if pe.name in wanted]
    notes = [f"{pe.name}: skipped, {pe.note}" for pe in all_peers if not pe.available]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    running: dict[str, ServerProcess] = {}
    runs: dict[str, list[dict]] = {}
    try:
        for pe in all_peers:
            if not pe.available:
                continue
            srv = ServerProcess(pe.command, HOST, ports[pe.name], name=pe.name,
                                ready_path=args.path, env=env, cwd=str(ROOT))
            try:
                srv.start(30)
            except BenchError as exc:
                notes.append(f"{pe.name}: skipped, did not start: {str(exc).splitlines()[0]}")
                continue
            running[pe.name] = srv
            runs[pe.name] = []
            measure(load, f"http://{HOST}:{ports[pe.name]}{args.path}", args.connections, 1.0, 0.0)
        order = list(running)
        for rnd in range(args.rounds):
            # Rotate who goes first so no server always runs on a warmer machine.
            for name in order[rnd % len(order):] + order[:rnd % len(order)]:
                r = measure(load, f"http://{HOST}:{ports[name]}{args.path}", args.connections,
                            args.duration, 0.5)
                runs[name].append(r)
                print(f"round {rnd + 1}/{args.rounds} {name}: {r['rps']:.0f} req/s", file=sys.stderr)
    finally:
        for srv in running.values():
            srv.stop()
    rows = summarize(runs)
    title = (f"{args.app}, {args.procs} processes x {args.threads} threads, {args.connections} "
             f"connections, load: {load}, {args.rounds} x {args.duration:g} s")
    print(("**" + title + "**\n\n" if args.markdown else title + "\n") + format_table(rows, args.markdown))
    for n in notes + [f"{pe.name}: {pe.note}" for pe in all_peers if pe.available]:
        print(("- " if args.markdown else "  ") + n)
    if args.plot and rows:
        plot(rows, args.plot, title)
        print(f"plot written to {args.plot}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
