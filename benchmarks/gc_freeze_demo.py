"""What gc.freeze() in the master saves: a preloaded app, four forked children,
each making the full collection a long-running child eventually makes.

    python benchmarks/gc_freeze_demo.py [--app tests.apps.djangoproject.wsgi:application] [--rounds 2]

Prints the PSS of the whole process tree (mpmserver/bench/pss.py) without
and with gc.freeze() before the forks (master/startup.py's share_heap).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mpmserver.bench.pss import tree_memory  # noqa: E402


def one(app: str, freeze: bool, children: int) -> None:
    """In a fresh process: import, maybe freeze, fork, collect in each child, measure."""
    importlib.import_module(app.partition(":")[0])
    gc.collect()
    if freeze:
        gc.freeze()
    kids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            gc.collect()
            time.sleep(3)
            os._exit(0)
        kids.append(pid)
    time.sleep(1.5)
    m = tree_memory(os.getpid())
    print(f"{'gc.freeze' if freeze else 'no freeze':10s} PSS {m.pss / 2**20:6.1f} MiB in {len(m.pids)} processes, "
          f"private {m.private / 2**20:.1f} MiB", flush=True)
    for pid in kids:
        os.waitpid(pid, 0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--app", default="tests.apps.djangoproject.wsgi:application")
    p.add_argument("--children", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--one", choices=("freeze", "plain"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        one(args.app, args.one == "freeze", args.children)
        return 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("PYTHONPYCACHEPREFIX", "/tmp/mpmserver-pss-pycache")
    for _ in range(args.rounds):
        for mode in ("plain", "freeze"):
            subprocess.run([sys.executable, __file__, "--app", args.app, "--children", str(args.children),
                            "--one", mode], cwd=ROOT, env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
