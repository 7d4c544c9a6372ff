"""Static files: mpmserver's Alias (answered by the event loop) against
WhiteNoise under gunicorn (gthread), Granian's static mount and Apache's
core handler (issue 27).

    python benchmarks/static_files.py                   # 3 rounds, 5 s each
    python benchmarks/static_files.py --rounds 5 --seconds 10 --connections 32

Each server runs 2 processes x 4 threads on 127.0.0.1 and serves the same
directory at /static/: a 4 KB CSS file and a 1 MB file. wrk -t1 fetches one
file over keep-alive connections; rounds alternate the servers (the order
rotates each round), and each figure is the median of the rounds. A server
that is not installed is left out with the reason. Ratios are to mpmserver.

    whitenoise: gunicorn -k gthread -w 2 --threads 4, the app wrapped in
                WhiteNoise(app, root=DIR, prefix="static/") (benchmarks/static_apps.py)
    granian:    granian --interface wsgi --workers 2 --blocking-threads 4
                --static-path-route /static --static-path-mount DIR
    apache:     httpd event MPM, 2 children x 4 threads, Alias /static/ DIR
                served by the core handler (sendfile, mod_mime), the same
                keep-alive as the others (KeepAliveTimeout 60, no request cap)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.compare import find_apache  # noqa: E402
from mpmserver.bench.server import ServerProcess, free_port  # noqa: E402
from mpmserver.bench.wrk import parse_wrk, wrk_path  # noqa: E402

HOST = "127.0.0.1"
PROCS, THREADS = 2, 4
FILES = {"css-4k": ("site.css", 4096), "file-1m": ("big.bin", 1 << 20)}


def make_files(root: Path) -> None:
    (root / "static").mkdir()
    for name, size in FILES.values():
        line = b"body { margin: 0; padding: 0; color: #333; }\n"
        (root / "static" / name).write_bytes((line * (size // len(line) + 1))[:size])


def apache_static_config(root: Path, port: int, module_dir: str) -> str:
    """httpd.conf: the event MPM at PROCS x THREADS exactly, /static/ by an
    Alias and the core handler, the same keep-alive as the other servers."""
    modules = {"mpm_event_module": "mod_mpm_event.so", "authz_core_module": "mod_authz_core.so",
               "alias_module": "mod_alias.so", "mime_module": "mod_mime.so"}
    return "\n".join([
        f'ServerRoot "{root}"', f'DefaultRuntimeDir "{root}"', f'PidFile "{root}/httpd.pid"',
        f'ErrorLog "{root}/error.log"', "LogLevel warn", f"ServerName {HOST}", f"Listen {HOST}:{port}",
        *(f"LoadModule {name} {module_dir}/{so}" for name, so in modules.items()),
        "TypesConfig /etc/mime.types" if os.path.exists("/etc/mime.types") else "",
        f"StartServers {PROCS}", f"ServerLimit {PROCS}", f"ThreadLimit {THREADS}", f"ThreadsPerChild {THREADS}",
        f"MaxRequestWorkers {PROCS * THREADS}", "MinSpareThreads 1", f"MaxSpareThreads {PROCS * THREADS * 2}",
        "KeepAlive On", "KeepAliveTimeout 60", "MaxKeepAliveRequests 0", "EnableSendfile On",
        f'Alias /static/ "{root}/static/"', f'<Directory "{root}/static">', "    Require all granted", "</Directory>",
        ""])


def commands(root: Path, ports: dict[str, int]) -> dict[str, tuple[list[str] | None, str]]:
    py = sys.executable
    static = str(root / "static")
    out: dict[str, tuple[list[str] | None, str]] = {
        "mpmserver": ([py, "-m", "mpmserver", "benchmarks.static_apps:app", "--listen", f"{HOST}:{ports['mpmserver']}",
                       "--fixed-servers", str(PROCS), "--threads-per-child", str(THREADS), "--access-log", "off",
                       "--static", f"/static/={static}", "--keep-alive-timeout", "60",
                       "--max-keep-alive-requests", "0"], "Alias, the event loop"),
    }
    if importlib.util.find_spec("gunicorn") and importlib.util.find_spec("whitenoise"):
        out["whitenoise"] = ([py, "-m", "gunicorn", "-k", "gthread", "-w", str(PROCS), "--threads", str(THREADS),
                              "--keep-alive", "60", "-b", f"{HOST}:{ports['whitenoise']}", "--log-level", "warning",
                              "benchmarks.static_apps:whitenoise_app"], "WhiteNoise under gunicorn gthread")
    else:
        out["whitenoise"] = (None, "not installed (pip install gunicorn whitenoise)")
    granian = shutil.which("granian")
    if granian:
        out["granian"] = ([granian, "--interface", "wsgi", "--host", HOST, "--port", str(ports["granian"]),
                           "--workers", str(PROCS), "--blocking-threads", str(THREADS), "--log-level", "warning",
                           "--static-path-route", "/static", "--static-path-mount", static,
                           "benchmarks.static_apps:app"], "Granian's static mount")
    else:
        out["granian"] = (None, "not installed (pip install granian)")
    binary, module_dir, why = find_apache()
    if binary and module_dir and os.path.exists(os.path.join(module_dir, "mod_alias.so")):
        conf = root / "httpd.conf"
        conf.write_text(apache_static_config(root, ports["apache"], module_dir))
        out["apache"] = ([binary, "-d", str(root), "-f", str(conf), "-DFOREGROUND"], "Apache's core handler")
    else:
        out["apache"] = (None, why or "mod_alias not found")
    return out


def run_wrk(url: str, connections: int, seconds: int) -> float:
    res = subprocess.run([wrk_path() or "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=5s", url],
                         capture_output=True, text=True, timeout=seconds + 30)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed: {res.stderr or res.stdout[-500:]}")
    r = parse_wrk(res.stdout)
    # Read errors are keep-alive connections the server closed under the
    # client (Apache's event MPM does, all threads busy): wrk reconnects and
    # they count apart, as compare.py's "closed"; anything else is a failure.
    if r["non_2xx"] or sum(v for k, v in r["errors"].items() if k != "read"):
        raise RuntimeError(f"{url}: errors in wrk's run:\n{res.stdout}")
    if r["errors"].get("read"):
        print(f"  {url}: {r['errors']['read']} keep-alive connections closed by the server", file=sys.stderr)
    return r["requests_per_s"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    args = p.parse_args(argv)
    if wrk_path() is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="mpmserver-static-bench-"))
    root.chmod(0o755)  # children running as nobody (as root) read it
    try:
        make_files(root)
        ports = {name: free_port() for name in ("mpmserver", "whitenoise", "granian", "apache")}
        cmds = commands(root, ports)
        names = [n for n, (cmd, _) in cmds.items() if cmd]
        for n, (cmd, note) in cmds.items():
            print(f"{n}: {note}")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "STATIC_BENCH_ROOT": str(root / "static")}
        servers = {n: ServerProcess(cmds[n][0], HOST, ports[n], n, ready_path="/static/site.css", env=env,
                                    cwd=str(ROOT), new_session=True).start() for n in names}
        rps: dict[tuple[str, str], list[float]] = {}
        try:
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for workload, (fname, _) in FILES.items():
                    for n in order:
                        url = f"http://{HOST}:{ports[n]}/static/{fname}"
                        rps.setdefault((n, workload), []).append(run_wrk(url, args.connections, args.seconds))
        finally:
            for s in servers.values():
                s.stop()
        print(f"\n{PROCS} processes x {THREADS} threads, wrk -t1 -c{args.connections}, keep-alive, "
              f"{args.rounds} alternating rounds of {args.seconds} s (median req/s; ratio = mpmserver / server)")
        print(f"{'workload':10} " + " ".join(f"{n:>12}" for n in names) + "   ratios")
        for workload in FILES:
            med = {n: statistics.median(rps[(n, workload)]) for n in names}
            ratios = ", ".join(f"x{med['mpmserver'] / med[n]:.2f} vs {n}" for n in names if n != "mpmserver")
            print(f"{workload:10} " + " ".join(f"{med[n]:12.0f}" for n in names) + f"   {ratios}")
            for n in names:
                print(f"{'':10}   {n}: rounds " + ", ".join(f"{v:.0f}" for v in rps[(n, workload)]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
