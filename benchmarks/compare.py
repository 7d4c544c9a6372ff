#!/usr/bin/env python3
"""mpmserver against its peers on the same app, processes x threads and load.

    python benchmarks/compare.py                      # every workload, 2 processes x 4 threads, 3 rounds
    python benchmarks/compare.py --workloads plaintext,close --markdown
    python benchmarks/compare.py --app benchmarks.apps:plaintext --path / --plot compare.png

Servers: mpmserver, Apache httpd (event MPM) + mod_wsgi in embedded mode,
gunicorn (gthread), waitress (one process, procs x threads threads) and uWSGI;
peers that are not installed are skipped with a note. Apache runs from a
config this script writes into a temporary ServerRoot (same StartServers,
ThreadsPerChild and MaxRequestWorkers, 127.0.0.1 only, children as www-data
when run as root), with a copy of the app's module file: Debian's mod_wsgi runs
the system python3, so the app module must be one file that it can import
(benchmarks/apps.py uses only the standard library). The ServerRoot is removed
when the run ends.

Workloads (--workloads, default all), each with the same processes x threads:
  plaintext   keep-alive plaintext, 32 connections
  close       a new connection per request (Connection: close), 32 connections
  post10k     an echo of a 10 KB POST body, keep-alive, 32 connections
  idle1000    plaintext, 32 connections, beside 1,000 idle keep-alive
              connections opened (and answered once, where the server answers)
              just before each run; the table says how many were answered
  sleep10ms   an app that sleeps 10 ms, 64 connections
Every server keeps connections alive 60 s (mpmserver, Apache, gunicorn
--keep-alive 60), so the idle connections stay open through a run; waitress
keeps its defaults (connection_limit 100).

--tls: every server speaks HTTPS (a certificate from a throwaway trustme CA;
wrk does the TLS): mpmserver with Listen ... https, Apache with mod_ssl,
gunicorn with --certfile/--keyfile; waitress and uWSGI's --http-socket have
no TLS and are skipped. "close" then measures full handshakes per second,
"plaintext" keep-alive throughput over TLS.

Load: wrk when installed, else `mpmserver bench` (--load picks). All servers
stay up, idle, while one is measured; runs alternate between servers round by
round so drift on a shared machine hits all of them alike. Read the ratios to
mpmserver, not the absolute numbers: those move with whatever else the machine
is doing, the ratios from one run much less.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mpmserver.bench.load import LoadConfig, build_request  # noqa: E402
from mpmserver.bench.runner import BenchError, run_load  # noqa: E402
from mpmserver.bench.server import ServerProcess, free_port  # noqa: E402
from mpmserver.bench.workloads import (
    IdleConnections,  # noqa: E402
    server_directives,  # noqa: E402
)
from mpmserver.bench.wrk import parse_wrk, wrk_path  # noqa: E402

HOST = "127.0.0.1"
KEEPALIVE_TIMEOUT = 60   # seconds, for every server that lets us choose


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    path: str
    connections: int = 32
    method: str = "GET"
    body: bytes = b""
    keepalive: bool = True
    idle: int = 0            # idle keep-alive connections opened beside the load


WORKLOADS = {w.name: w for w in (
    Workload("plaintext", "keep-alive plaintext", "/plaintext"),
    Workload("close", "a new connection per request (Connection: close)", "/plaintext", keepalive=False),
    Workload("post10k", "10 KB POST echo, keep-alive", "/echo", method="POST", body=b"x" * 10_240),
    Workload("idle1000", "plaintext beside 1,000 idle keep-alive connections", "/plaintext", idle=1000),
    Workload("sleep10ms", "an app that sleeps 10 ms, 64 connections", "/sleep", connections=64),
)}


@dataclass
class Peer:
    name: str
    available: bool
    note: str = ""
    command: list[str] = field(default_factory=list)
    prepare: Callable[[], None] | None = None    # before starting (Apache: writes its ServerRoot)
    cleanup: Callable[[], None] | None = None    # after stopping, always


# -- Apache httpd + mod_wsgi -------------------------------------------------

APACHE_BINARIES = ("apache2", "httpd")
APACHE_MODULE_DIRS = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules",
                      "/usr/libexec/apache2", "/usr/local/apache2/modules")
APACHE_MODULES = {"mpm_event_module": "mod_mpm_event.so", "authz_core_module": "mod_authz_core.so",
                  "wsgi_module": "mod_wsgi.so"}
APACHE_TLS_MODULES = {"ssl_module": "mod_ssl.so", "socache_shmcb_module": "mod_socache_shmcb.so"}


@dataclass(frozen=True)
class TLSFiles:
    """--tls: the server certificate (with its chain), key and CA files."""
    cert: str
    key: str
    ca: str

    def client_context(self):
        import ssl
        return ssl.create_default_context(cafile=self.ca)


def make_tls_files(directory: str) -> TLSFiles:
    try:
        import trustme
    except ImportError:
        raise BenchError("--tls needs trustme (pip install trustme)") from None
    ca = trustme.CA()
    leaf = ca.issue_cert(HOST, "localhost")
    files = TLSFiles(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"),
                     os.path.join(directory, "ca.pem"))
    with open(files.cert, "wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    leaf.private_key_pem.write_to_path(files.key)
    os.chmod(files.key, 0o600)
    ca.cert_pem.write_to_path(files.ca)
    return files


def apache_config(root: str, port: int, procs: int, threads: int, module_dir: str,
                  script: str, user: str | None = None, group: str | None = None,
                  host: str = HOST, tls: TLSFiles | None = None) -> str:
    """httpd.conf for the event MPM with mod_wsgi embedded in its children:
    `procs` children x `threads` threads, exactly (ServerLimit and ThreadLimit
    hold it there), keep-alive like mpmserver's bench directives, no access log."""
    lines = [
        "# written by benchmarks/compare.py; removed with its ServerRoot",
        f'ServerRoot "{root}"',
        f'DefaultRuntimeDir "{root}"',
        f'PidFile "{root}/httpd.pid"',
        f'ErrorLog "{root}/error.log"',
        "LogLevel warn",
        f"ServerName {host}",
        f"Listen {host}:{port}" + (" https" if tls else ""),
    ]
    if user:
        lines += [f"User {user}", f"Group {group or user}"]
    lines += [f"LoadModule {name} {module_dir}/{so}" for name, so in APACHE_MODULES.items()]
    if tls:
        lines += [f"LoadModule {name} {module_dir}/{so}" for name, so in APACHE_TLS_MODULES.items()]
        lines += ["SSLEngine on", f'SSLCertificateFile "{tls.cert}"', f'SSLCertificateKeyFile "{tls.key}"',
                  "SSLProtocol -all +TLSv1.2 +TLSv1.3", f'SSLSessionCache "shmcb:{root}/ssl_scache(512000)"']
    lines += [
        f"StartServers {procs}",
        f"ServerLimit {procs}",
        f"ThreadLimit {threads}",
        f"ThreadsPerChild {threads}",
        f"MaxRequestWorkers {procs * threads}",
        "MinSpareThreads 1",
        f"MaxSpareThreads {procs * threads * 2}",
        "MaxConnectionsPerChild 0",
        "KeepAlive On",
        f"KeepAliveTimeout {KEEPALIVE_TIMEOUT}",
        "MaxKeepAliveRequests 0",
        # Embedded mode, the main interpreter: the app runs in Apache's own
        # worker threads, under each child's GIL, as it does in mpmserver.
        "WSGIApplicationGroup %{GLOBAL}",
        f'WSGIScriptAlias / "{script}"',
        f'<Directory "{os.path.dirname(script)}">',
        "    Require all granted",
        "</Directory>",
        "",
    ]
    return "\n".join(lines)


def wsgi_script(module_file: str, module: str, attr: str) -> str:
    """The .wsgi file mod_wsgi loads: the app's module from its copied file."""
    return (
        "import importlib.util, sys\n"
        f"_spec = importlib.util.spec_from_file_location({module!r}, {module_file!r})\n"
        "_mod = importlib.util.module_from_spec(_spec)\n"
        "sys.modules[_spec.name] = _mod\n"
        "_spec.loader.exec_module(_mod)\n"
        f"application = _mod.{attr}\n")


def find_apache() -> tuple[str | None, str | None, str]:
    """(binary, module directory, why not) for Apache with the event MPM and mod_wsgi."""
    binary = next((b for b in map(shutil.which, APACHE_BINARIES) if b), None)
    if binary is None:
        for cand in ("/usr/sbin/apache2", "/usr/sbin/httpd"):
            if os.access(cand, os.X_OK):
                binary = cand
                break
    if binary is None:
        return None, None, "not installed (apt-get install apache2 libapache2-mod-wsgi-py3)"
    for d in APACHE_MODULE_DIRS:
        missing = [so for so in APACHE_MODULES.values() if not os.path.isfile(os.path.join(d, so))]
        if not missing:
            return binary, d, ""
    return binary, None, ("mod_wsgi or mod_mpm_event not found in " + ", ".join(APACHE_MODULE_DIRS)
                          + " (apt-get install libapache2-mod-wsgi-py3)")


class ApacheRoot:
    """A temporary ServerRoot: config, the .wsgi script and a copy of the app's
    module, readable by the children's user; removed by cleanup()."""

    def __init__(self, app: str, port: int, procs: int, threads: int, module_dir: str,
                 tls: TLSFiles | None = None) -> None:
        self.app, self.port, self.procs, self.threads, self.module_dir = app, port, procs, threads, module_dir
        self.tls = tls
        self.root: str | None = None
        self.conf: str | None = None

    def user(self) -> str | None:
        if os.geteuid() != 0:
            return None     # not root: Apache cannot switch users and runs as us
        try:
            pwd.getpwnam("www-data")
            return "www-data"
        except KeyError:
            return "daemon"

    def prepare(self) -> None:
        module, _, attr = self.app.partition(":")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise BenchError(f"apache: {module} is not a single .py file mod_wsgi could load")
        self.root = tempfile.mkdtemp(prefix="mpmserver-compare-apache-")
        os.chmod(self.root, 0o755)
        module_file = os.path.join(self.root, "app_module.py")
        shutil.copyfile(spec.origin, module_file)
        script = os.path.join(self.root, "app.wsgi")
        Path(script).write_text(wsgi_script(module_file, module, attr or "application"))
        self.conf = os.path.join(self.root, "httpd.conf")
        Path(self.conf).write_text(apache_config(self.root, self.port, self.procs, self.threads,
                                                 self.module_dir, script, self.user(), tls=self.tls))
        for f in (module_file, script, self.conf):
            os.chmod(f, 0o644)

    def pid(self) -> int | None:
        try:
            return int(Path(self.root, "httpd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, TypeError):
            return None

    def cleanup(self) -> None:
        """Stops whatever the pid file still names (the harness has already
        sent SIGTERM to the foreground parent), then removes the ServerRoot."""
        if self.root is None:
            return
        pid = self.pid()
        if pid:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(1.0)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def command(self, binary: str) -> list[str]:
        # -DFOREGROUND: the parent stays our child process, so the harness
        # stops it (SIGTERM, then SIGKILL to its process group) like the rest.
        return [binary, "-d", self.root, "-f", self.conf, "-DFOREGROUND"]


def apache_peer(app: str, procs: int, threads: int, port: int, tls: TLSFiles | None = None) -> Peer:
    binary, module_dir, why = find_apache()
    if module_dir is None:
        return Peer("apache", False, why)
    if tls and not all(os.path.isfile(os.path.join(module_dir, so)) for so in APACHE_TLS_MODULES.values()):
        return Peer("apache", False, f"mod_ssl not found in {module_dir}")
    root = ApacheRoot(app, port, procs, threads, module_dir, tls)
    peer = Peer("apache", True, f"httpd event MPM + mod_wsgi (embedded){' + mod_ssl' if tls else ''}, "
                                f"{procs} children x {threads} "
                                f"threads, KeepAliveTimeout {KEEPALIVE_TIMEOUT}, system python3")

    def prepare() -> None:
        root.prepare()
        peer.command = root.command(binary)
    peer.prepare, peer.cleanup = prepare, root.cleanup
    peer.apache_root = root   # for tests and error messages
    return peer


def peers(app: str, procs: int, threads: int, port_for, tls: TLSFiles | None = None) -> list[Peer]:
    """Commands for every server; the same app, processes and threads, no access logs."""
    py = sys.executable
    out = []
    port = port_for("mpmserver")
    listen = [f"{HOST}:{port} https", "--certfile", tls.cert, "--keyfile", tls.key] if tls else [f"{HOST}:{port}"]
    mpm = [py, "-m", "mpmserver", app, "--listen", *listen, "--access-log", "off",
           *server_directives(procs, threads)]
    out.append(Peer("mpmserver", True, f"{procs} children x {threads} threads", mpm))
    out.append(apache_peer(app, procs, threads, port_for("apache"), tls))
    if importlib.util.find_spec("gunicorn"):
        out.append(Peer("gunicorn", True, f"gthread, {procs} workers x {threads} threads, "
                                          f"--keep-alive {KEEPALIVE_TIMEOUT}",
                        [py, "-m", "gunicorn", "-k", "gthread", "-w", str(procs), "--threads",
                         str(threads), "--keep-alive", str(KEEPALIVE_TIMEOUT),
                         "-b", f"{HOST}:{port_for('gunicorn')}", "--log-level",
                         "warning", *(["--certfile", tls.cert, "--keyfile", tls.key] if tls else []), app]))
    else:
        out.append(Peer("gunicorn", False, "not installed (pip install gunicorn)"))
    if tls:
        out.append(Peer("waitress", False, "no TLS"))
        out.append(Peer("uwsgi", False, "not compared over TLS (--http-socket has none)"))
        return out
    if importlib.util.find_spec("waitress"):
        out.append(Peer("waitress", True, f"1 process x {procs * threads} threads (no multi-process), "
                                          "default connection_limit 100",
                        [py, "-m", "waitress", "--host", HOST, "--port", str(port_for("waitress")),
                         "--threads", str(procs * threads), app]))
    else:
        out.append(Peer("waitress", False, "not installed (pip install waitress)"))
    uwsgi = shutil.which("uwsgi")
    if uwsgi:
        out.append(Peer("uwsgi", True, f"{procs} processes x {threads} threads, --http-socket "
                                       "(no keep-alive: it closes after every response)",
                        [uwsgi, "--http-socket", f"{HOST}:{port_for('uwsgi')}", "--master",
                         "--processes", str(procs), "--threads", str(threads),
                         "--module", app, "--disable-logging",
                         "--die-on-term", "--need-app"]))
    else:
        out.append(Peer("uwsgi", False, "not installed (pip install uwsgi)"))
    return out


def wrk_command(url: str, w: Workload, connections: int, seconds: float, script_dir: str,
                timeout: float = 5.0) -> list[str]:
    """wrk -t1 for one workload: a Connection: close header, or a Lua script
    for the POST body."""
    cmd = [wrk_path() or "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           f"--timeout={max(1, round(timeout))}s", "--latency"]
    if not w.keepalive:
        cmd += ["-H", "Connection: close"]
    if w.method != "GET" or w.body:
        script = os.path.join(script_dir, f"{w.name}.lua")
        if not os.path.exists(script):
            Path(script).write_text(
                f'wrk.method = "{w.method}"\n'
                f'wrk.body = string.rep("x", {len(w.body)})\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        cmd += ["-s", script]
    return cmd + [url]


def measure(load: str, url: str, w: Workload, connections: int, seconds: float, warmup: float,
            script_dir: str | None = None) -> dict:
    """One run: requests/s, p50 and p99 in ms, errors."""
    if load == "wrk":
        cmd = wrk_command(url, w, connections, seconds, script_dir or tempfile.gettempdir())
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            # wrk waits for ever on connections that never complete (a server
            # that stopped accepting, its listen backlog full): nothing served.
            return {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "errors": connections,
                    "stalled": True}
        if res.returncode != 0:
            raise RuntimeError(f"wrk failed ({res.returncode}): {res.stderr.strip() or res.stdout[-500:]}")
        r = parse_wrk(res.stdout)
        return {"rps": r["requests_per_s"], "p50": r["latency_ms"].get("p50", float("nan")),
                "p99": r["latency_ms"].get("p99", float("nan")),
                "errors": sum(r["errors"].values()) + r["non_2xx"]}
    from urllib.parse import urlsplit
    u = urlsplit(url)
    cfg = LoadConfig(host=u.hostname, port=u.port,
                     request=build_request(w.method, u.path or "/", u.netloc, [], w.body, w.keepalive),
                     connections=connections, duration=seconds, requests=None, warmup=warmup,
                     keepalive=w.keepalive)
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


PEER_NAMES = ("mpmserver", "apache", "gunicorn", "waitress", "uwsgi")


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot(rows: list[dict], path: str, title: str):
    """Requests/s (median, min-max, ratio to mpmserver) beside p99 latency;
    returns the figure, saved to path."""
    import textwrap

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = ["#c0392b" if r["server"] == "mpmserver" else "#7f8c8d" for r in rows]
    # "gunicorn 27 gthread" on two lines: long names side by side would overlap.
    names = ["\n".join(textwrap.wrap(r["server"], 12)) for r in rows]
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(9, 4))
    err = [[r["rps"] - r["rps_min"] for r in rows], [r["rps_max"] - r["rps"] for r in rows]]
    bars = ax_rps.bar(names, [r["rps"] for r in rows], yerr=err, capsize=4, color=colors)
    # Labels inside the bars, so they can collide with neither error bars nor the title.
    ax_rps.bar_label(bars, [f"{r['rps']:.0f}\n{r['ratio']:.2f}x" for r in rows], label_type="center",
                     color="white", fontsize=8)
    ax_rps.set_ylabel("requests/s (median, min-max)")
    ax_rps.set_title("throughput", fontsize=10)
    bars = ax_p99.bar(names, [r["p99"] for r in rows], color=colors)
    ax_p99.bar_label(bars, [f"{r['p99']:.1f}" for r in rows], label_type="center", color="white", fontsize=8)
    ax_p99.set_ylabel("p99 latency, ms (median)")
    ax_p99.set_title("p99 latency (lower is better)", fontsize=10)
    for ax in (ax_rps, ax_p99):
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fig


def format_summary(tables: dict[str, list[dict]], names: list[str], markdown: bool = False) -> str:
    """One line per workload: mpmserver's requests/s divided by each peer's
    (the issue's targets are written that way round)."""
    peers_ = [n for n in names if n != "mpmserver"]
    head = ["workload", "mpmserver req/s"] + [f"vs {n}" for n in peers_]
    body = []
    for wname, rows in tables.items():
        by = {r["server"]: r for r in rows}
        base = by.get("mpmserver")
        line = [wname, f"{base['rps']:.0f}" if base else "-"]
        for n in peers_:
            r = by.get(n)
            if not (base and r):
                line.append("-")
            elif r["rps"] > 0:
                line.append(f"{base['rps'] / r['rps']:.2f}x")
            else:
                line.append(f"{n} served 0")
        body.append(line)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [head, *body])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--app", default="benchmarks.apps:app",
                   help="module:callable (default benchmarks.apps:app, which routes every workload's path)")
    p.add_argument("--path", help="one keep-alive GET workload on this path instead of --workloads")
    p.add_argument("--workloads", default="all",
                   help=f"comma-separated, or all (default): {', '.join(WORKLOADS)}")
    p.add_argument("--procs", type=int, default=2, help="server processes (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per process (default 4)")
    p.add_argument("-c", "--connections", type=int,
                   help="load connections for every workload (default: each workload's own, 32 or 64)")
    p.add_argument("-d", "--duration", type=float, default=5.0, help="seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="runs per server, alternating")
    p.add_argument("--load", choices=["auto", "wrk", "bench"], default="auto")
    p.add_argument("--servers", default=",".join(PEER_NAMES), help="comma-separated subset")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--plot", metavar="FILE.png", help="a plot per workload (FILE-workload.png)")
    p.add_argument("--tls", action="store_true", help="every server speaks HTTPS (needs wrk and trustme)")
    args = p.parse_args(argv)
    # A TERM (a CI timeout, kill) stops the servers it started, as Ctrl-C does:
    # the exit runs the finally below instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in PEER_NAMES]
    if unknown:
        p.error(f"unknown server {', '.join(map(repr, unknown))} in --servers; choose from {', '.join(PEER_NAMES)}")
    if args.path:
        workloads = [Workload("custom", f"GET {args.path}, keep-alive", args.path)]
    else:
        names = list(WORKLOADS) if args.workloads == "all" else [
            w.strip() for w in args.workloads.split(",") if w.strip()]
        bad = [w for w in names if w not in WORKLOADS]
        if bad:
            p.error(f"unknown workload {', '.join(map(repr, bad))}; choose from {', '.join(WORKLOADS)} or all")
        workloads = [WORKLOADS[w] for w in names]
    if args.plot and not have_matplotlib():
        p.error("--plot needs matplotlib: pip install 'mpmserver[plot]' (checked before measuring anything)")

    load = args.load
    if load == "auto":
        load = "wrk" if wrk_path() else "bench"
    elif load == "wrk" and not wrk_path():
        print("compare: wrk is not installed; use --load bench", file=sys.stderr)
        return 1
    if args.tls and load != "wrk":
        print("compare: --tls needs wrk (mpmserver bench speaks plain HTTP)", file=sys.stderr)
        return 1
    script_dir = tempfile.mkdtemp(prefix="mpmserver-compare-")
    try:
        tls = make_tls_files(script_dir) if args.tls else None
    except BenchError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        shutil.rmtree(script_dir, ignore_errors=True)
        return 1
    scheme = "https" if tls else "http"
    if tls and any(w.idle for w in workloads):
        # The idle crowd speaks plain HTTP.
        print("compare: --tls leaves out " + ", ".join(w.name for w in workloads if w.idle), file=sys.stderr)
        workloads = [w for w in workloads if not w.idle]
    ports: dict[str, int] = {}
    all_peers = [pe for pe in peers(args.app, args.procs, args.threads,
                                    lambda n: ports.setdefault(n, free_port(HOST)), tls)
                 if pe.name in wanted]
    notes = [f"{pe.name}: skipped, {pe.note}" for pe in all_peers if not pe.available]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    running: dict[str, ServerProcess] = {}
    started: list[Peer] = []
    tables: dict[str, list[dict]] = {}
    idle_notes: list[str] = []
    ready = workloads[0].path
    try:
        for pe in all_peers:
            if not pe.available:
                continue
            try:
                if pe.prepare:
                    started.append(pe)
                    pe.prepare()
                srv = ServerProcess(pe.command, HOST, ports[pe.name], name=pe.name,
                                    ready_path=ready, env=env, cwd=str(ROOT),
                                    tls=tls.client_context() if tls else None)
                srv.start(30)
            except BenchError as exc:
                notes.append(f"{pe.name}: skipped, did not start: {str(exc).splitlines()[0]}")
                continue
            running[pe.name] = srv
            if pe not in started:
                started.append(pe)
        order = list(running)
        for w in workloads:
            conns = args.connections or w.connections
            runs: dict[str, list[dict]] = {name: [] for name in order}
            for name in order:   # warm-up, unmeasured
                measure(load, f"{scheme}://{HOST}:{ports[name]}{w.path}", w, conns, 1.0, 0.0, script_dir)
            for rnd in range(args.rounds):
                # Rotate who goes first so no server always runs on a warmer machine.
                for name in order[rnd % len(order):] + order[:rnd % len(order)]:
                    crowd = None
                    if w.idle:
                        crowd = IdleConnections(HOST, ports[name], w.idle, w.path, timeout=10.0).open()
                    try:
                        r = measure(load, f"{scheme}://{HOST}:{ports[name]}{w.path}", w, conns,
                                    args.duration, 0.5, script_dir)
                    finally:
                        if crowd is not None:
                            r_idle = (crowd.served, crowd.connected)
                            crowd.close()
                            time.sleep(0.5)   # let the server see the closes before the next one
                    if crowd is not None:
                        r["idle_served"], r["idle_connected"] = r_idle
                    runs[name].append(r)
                    if r.get("stalled"):
                        notes.append(f"{w.name}, {name}: round {rnd + 1}: wrk did not finish within "
                                     f"{args.duration + 20:g} s (its connections never completed: the "
                                     "server was not accepting); counted as 0 req/s")
                    extra = (f", idle {r['idle_served']}/{w.idle} answered, {r['idle_connected']} connected"
                             if w.idle else "")
                    print(f"{w.name} round {rnd + 1}/{args.rounds} {name}: {r['rps']:.0f} req/s{extra}",
                          file=sys.stderr)
            tables[w.name] = summarize(runs)
            if w.idle:
                for name, rs in runs.items():
                    idle_notes.append(
                        f"{w.name}, {name}: of {w.idle} idle connections, "
                        f"{min(r['idle_served'] for r in rs)}-{max(r['idle_served'] for r in rs)} answered, "
                        f"{min(r['idle_connected'] for r in rs)}-{max(r['idle_connected'] for r in rs)} "
                        "connected (per round)")
    finally:
        for srv in running.values():
            srv.stop()
        for pe in started:
            if pe.cleanup:
                pe.cleanup()
        shutil.rmtree(script_dir, ignore_errors=True)
    out = []
    for w in workloads:
        rows = tables.get(w.name, [])
        conns = args.connections or w.connections
        title = (f"{w.title}{' over TLS' if tls else ''}: {args.app} {w.method} {w.path}, "
                 f"{args.procs} processes x {args.threads} "
                 f"threads, {conns} connections, load: {load}, {args.rounds} x {args.duration:g} s")
        out.append(("**" + title + "**\n\n" if args.markdown else title + "\n") + format_table(rows, args.markdown))
        if args.plot and rows:
            base, ext = os.path.splitext(args.plot)
            path = args.plot if len(workloads) == 1 else f"{base}-{w.name}{ext or '.png'}"
            plot(rows, path, title)
            out.append(f"plot written to {path}")
    if len(workloads) > 1:
        head = "mpmserver's requests/s divided by each peer's (median of rounds):"
        out.append(("**" + head + "**\n\n" if args.markdown else head + "\n")
                   + format_summary(tables, order, args.markdown))
    print("\n\n".join(out))
    for n in notes + idle_notes + [f"{pe.name}: {pe.note}" for pe in all_peers if pe.available]:
        print(("- " if args.markdown else "  ") + n)
    return 0 if any(tables.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
