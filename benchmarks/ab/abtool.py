#!/usr/bin/env python3
"""Helpers for benchmarks/ab/ab.sh (standard library only; imports nothing from either tree).

  abtool.py verify TREE                 which files `python -m mpmserver` and benchmarks.apps load
                                        when run as ab.sh runs them (cwd=TREE, PYTHONPATH=TREE)
  abtool.py pgrun CMD...                exec CMD in a new process group (not a new session)
  abtool.py freeport                    a free TCP port on 127.0.0.1
  abtool.py wait URL SECONDS            wait until URL answers 200
  abtool.py wrk-parse FILE              "rps p99_ms errors" from wrk --latency output
  abtool.py micro-table DIR             table of min/median per benchmark, per tree, ratio B/A
  abtool.py load-table FILE.tsv         table of req/s and p99 per round, median ratio B/A
"""

import glob
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def verify(tree):
    tree = os.path.realpath(tree)
    env = dict(os.environ, PYTHONPATH=tree)
    ok = True
    # 1. exactly the server's command line, with -v: every mpmserver file it loads
    r = subprocess.run([sys.executable, "-v", "-m", "mpmserver", "--version"], cwd=tree, env=env,
                       capture_output=True, text=True)
    files = re.findall(r"^# code object from (\S+)", r.stderr, re.M)
    mine = [f for f in files if "/mpmserver/" in f]
    bad = [f for f in mine if not os.path.realpath(f).startswith(tree + os.sep)]
    # 2. the app and the whole package as the server imports them
    code = ("import sys, importlib, pkgutil, mpmserver, benchmarks.apps\n"
            "print(mpmserver.__file__); print(benchmarks.apps.__file__)\n")
    r2 = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True)
    paths = r2.stdout.split()
    bad += [p for p in paths if not os.path.realpath(p).startswith(tree + os.sep)]
    if r.returncode != 0 or r2.returncode != 0 or not mine or len(paths) != 2:
        ok = False
        print(f"verify {tree}: FAILED to run:\n{r.stderr[-1500:]}\n{r2.stderr[-1500:]}", file=sys.stderr)
    if bad:
        ok = False
        print(f"verify {tree}: files from ANOTHER tree: {bad}", file=sys.stderr)
    if ok:
        print(f"verify {tree}: python -m mpmserver loads {len(mine)} mpmserver files, all from the tree "
              f"({mine[0]} ...); app {paths[1]}")
    return 0 if ok else 1


def pgrun(argv):
    os.setpgid(0, 0)
    os.execvp(argv[0], argv)


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def wait(url, seconds):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return 0
        except OSError:
            pass
        time.sleep(0.1)
    return 1


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_parse(path):
    text = open(path).read()
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    p = re.search(r"^\s*99(?:\.000)?%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    n = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rps = float(m.group(1)) if m else 0.0
    p99 = float(p.group(1)) * _UNITS[p.group(2)] if p else float("nan")
    errs = (sum(map(int, e.groups())) if e else 0) + (int(n.group(1)) if n else 0)
    print(f"{rps:.1f} {p99:.3f} {errs}")


def _fmt_ns(x):
    return "-" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.1f}")


def _ratio(b, a):
    return "-" if not a or b is None else f"{b / a:.3f}"


def micro_table(d):
    # micro-{A|B}-{round}.json written by pytest-benchmark; key = file::test
    data = {"A": {}, "B": {}}
    for f in sorted(glob.glob(os.path.join(d, "micro-*-*.json"))):
        side = os.path.basename(f).split("-")[1]
        for b in json.load(open(f))["benchmarks"]:
            key = b["fullname"].split("/")[-1]
            rec = data[side].setdefault(key, {"min": [], "median": []})
            rec["min"].append(b["stats"]["min"] * 1e9)
            rec["median"].append(b["stats"]["median"] * 1e9)
    keys = list(dict.fromkeys(list(data["A"]) + list(data["B"])))
    rows = []
    for k in keys:
        a, b = data["A"].get(k), data["B"].get(k)
        amin = min(a["min"]) if a else None
        bmin = min(b["min"]) if b else None
        amed = statistics.median(a["median"]) if a else None
        bmed = statistics.median(b["median"]) if b else None
        rows.append([k.replace("test_micro_", "").replace(".py::test_", "::"), _fmt_ns(amin), _fmt_ns(bmin),
                     _ratio(bmin, amin), _fmt_ns(amed), _fmt_ns(bmed), _ratio(bmed, amed)])
    head = ["benchmark (ns)", "A min", "B min", "B/A min", "A median", "B median", "B/A med"]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(*r))
    print()
    for col, what in ((3, "mins"), (6, "medians")):
        ratios = [float(r[col]) for r in rows if r[col] != "-"]
        if ratios:
            print(f"B/A of {what} over {len(ratios)} benchmarks: geometric mean "
                  f"{statistics.geometric_mean(ratios):.3f}, median {statistics.median(ratios):.3f}, "
                  f"range {min(ratios):.3f}-{max(ratios):.3f}")
    n = {s: max((len(v['min']) for v in data[s].values()), default=0) for s in data}
    print(f"(min = lowest of {n['A']}/{n['B']} runs' mins; median = median of the runs' medians)")


def load_table(path):
    # lines: workload round side rps p99 errors
    runs = {}
    for line in open(path):
        w, rnd, side, rps, p99, err = line.split()
        runs.setdefault(w, {}).setdefault(int(rnd), {})[side] = (float(rps), float(p99), int(err))
    head = ["workload", "round", "A req/s", "B req/s", "B/A", "A p99 ms", "B p99 ms", "B/A p99", "errors A/B"]
    rows, summary = [], []
    for w, rounds in runs.items():
        rr, pr = [], []
        for rnd in sorted(rounds):
            a, b = rounds[rnd].get("A"), rounds[rnd].get("B")
            if not (a and b):
                continue
            r = b[0] / a[0] if a[0] else float("nan")
            p = b[1] / a[1] if a[1] else float("nan")
            rr.append(r)
            pr.append(p)
            rows.append([w, str(rnd), f"{a[0]:.0f}", f"{b[0]:.0f}", f"{r:.3f}", f"{a[1]:.2f}", f"{b[1]:.2f}",
                         f"{p:.3f}", f"{a[2]}/{b[2]}"])
        if rr:
            summary.append([w, f"{statistics.median(rr):.3f}", f"{min(rr):.3f}-{max(rr):.3f}",
                            f"{statistics.median(pr):.3f}"])
    for tbl in ((head, rows), (["workload", "median B/A req/s", "range", "median B/A p99"], summary)):
        h, body = tbl
        widths = [max(len(x) for x in col) for col in zip(h, *body)]
        fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
        print(fmt.format(*h))
        for r in body:
            print(fmt.format(*r))
        print()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "verify":
        sys.exit(verify(args[0]))
    elif cmd == "pgrun":
        pgrun(args)
    elif cmd == "freeport":
        freeport()
    elif cmd == "wait":
        sys.exit(wait(*args))
    elif cmd == "wrk-parse":
        wrk_parse(args[0])
    elif cmd == "micro-table":
        micro_table(args[0])
    elif cmd == "load-table":
        load_table(args[0])
    else:
        sys.exit(__doc__)
