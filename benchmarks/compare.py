#!/usr/bin/env python3
"""mpmserver against its peers on the same app, processes x threads and load.

    python benchmarks/compare.py                      # every workload and peer, 2 processes x 4 threads, 3 rounds
    python benchmarks/compare.py --workloads plaintext,close --markdown
    python benchmarks/compare.py --app benchmarks.apps:plaintext --path / --plot compare.png

Servers (--servers), each at exactly --procs processes x --threads threads with
the settings its own documentation recommends, no access log:
  mpmserver     -w PROCS --threads THREADS (FixedServers), its defaults
                (Apache's: KeepAliveTimeout 5, MaxKeepAliveRequests 100)
  mpmserver-ka  the same with the bench's keep-alive: KeepAliveTimeout 60,
                MaxKeepAliveRequests 0 (unlimited)
  apache        httpd event MPM + mod_wsgi embedded, WSGIApplicationGroup
                %{GLOBAL} (mod_wsgi's advice: the main interpreter), Apache's
                keep-alive defaults; config written by apache_config() and
                shown in docs/benchmarking.md
  apache-ka     the same with the bench's keep-alive
  gunicorn      gthread -w PROCS --threads THREADS, its defaults
  waitress      one process x PROCS*THREADS threads (it has no processes)
  cheroot       CherryPy's thread pool: one process x PROCS*THREADS threads
  granian       Rust, --interface wsgi --workers PROCS --blocking-threads THREADS
  uwsgi         --http-socket, --processes PROCS --threads THREADS
Peers that are not installed are skipped with a note. Apache runs from a
temporary ServerRoot holding a copy of the app's module file (Debian's
mod_wsgi runs the system python3, so the app module must be one file it can
import; benchmarks/apps.py uses only the standard library), children as
www-data when run as root; the ServerRoot is removed when the run ends.

Every server is started once, the same way, in a session of its own (as a
daemon or a systemd service runs: with the kernel's scheduler autogroups a
server sharing wrk's session shares its CPU thread by thread, which halved
Apache's figures and flattered mpmserver's), and stays up, idle, while the
others are measured: all long-lived, none restarted between rounds. Each
is warmed the same way (1 s of the workload, unmeasured) before each workload.

Workloads (--workloads, default all), each with the same processes x threads:
  plaintext   keep-alive plaintext, 32 connections
  close       a new connection per request (Connection: close), 32 connections
  post10k     an echo of a 10 KB POST body, keep-alive, 32 connections
  idle1000    plaintext, 32 connections, beside 1,000 idle keep-alive
              connections opened (and answered once, where the server answers)
              just before each run; the table says how many were answered
  sleep10ms   an app that sleeps 10 ms, 64 connections

Load: wrk -t1 when installed, else `mpmserver bench` (--load picks), closed
loop; rounds alternate between servers (the first one rotating) so drift on
a shared machine hits all of them alike. Each cell: requests/s (median of the
rounds), p50 / p99 / p99.9 latency, keep-alive connections the server closed
under the client ("closed": wrk's read errors, a request to resend) apart
from failed requests (connect, write and timeout errors, non-2xx), and the
server's CPU time per request (all its processes, from /proc). Then, unless
--open-loop none, an open-loop run (`mpmserver bench --rate`, latency counted
from when each request was due, as wrk2) at 50% and 80% of each server's
measured maximum. Read the ratios, not the absolute numbers: those move with
whatever else the machine is doing, the ratios from one run much less.
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

from mpmserver.bench.cputime import session_cpu_seconds  # noqa: E402
from mpmserver.bench.load import LoadConfig, build_request  # noqa: E402
from mpmserver.bench.pss import tree_memory  # noqa: E402
from mpmserver.bench.runner import BenchError, run_load  # noqa: E402
from mpmserver.bench.server import ServerProcess, free_port  # noqa: E402
from mpmserver.bench.workloads import IdleConnections  # noqa: E402
from mpmserver.bench.wrk import parse_wrk, wrk_path  # noqa: E402

HOST = "127.0.0.1"
# The bench's keep-alive (the -ka rows): connections stay open through a run
# and are never closed for having served many requests.
BENCH_KEEPALIVE_TIMEOUT = 60       # seconds
BENCH_MAX_KEEPALIVE_REQUESTS = 0   # unlimited
# Apache's defaults (and mpmserver's, which are Apache's).
APACHE_KEEPALIVE_TIMEOUT = 5
APACHE_MAX_KEEPALIVE_REQUESTS = 100


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
                  host: str = HOST, bench_keepalive: bool = False, tls: TLSFiles | None = None) -> str:
    """httpd.conf for the event MPM with mod_wsgi embedded in its children:
    `procs` children x `threads` threads, exactly (ServerLimit and ThreadLimit
    hold it there), Apache's keep-alive defaults (or the bench's), no access
    log. docs/benchmarking.md shows it; a test holds the two together."""
    keepalive_timeout, max_requests = ((BENCH_KEEPALIVE_TIMEOUT, BENCH_MAX_KEEPALIVE_REQUESTS) if bench_keepalive
                                       else (APACHE_KEEPALIVE_TIMEOUT, APACHE_MAX_KEEPALIVE_REQUESTS))
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
        f"KeepAliveTimeout {keepalive_timeout}",
        f"MaxKeepAliveRequests {max_requests}",
        # Embedded mode, the main interpreter (mod_wsgi's advice for C
        # extensions): the app runs in Apache's own worker threads, under
        # each child's GIL, as it does in mpmserver.
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
                 bench_keepalive: bool = False, tls: TLSFiles | None = None) -> None:
        self.app, self.port, self.procs, self.threads, self.module_dir = app, port, procs, threads, module_dir
        self.bench_keepalive = bench_keepalive
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
                                                 self.module_dir, script, self.user(),
                                                 bench_keepalive=self.bench_keepalive, tls=self.tls))
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


def apache_peer(app: str, procs: int, threads: int, port: int, bench_keepalive: bool = False,
                tls: TLSFiles | None = None) -> Peer:
    name = "apache-ka" if bench_keepalive else "apache"
    binary, module_dir, why = find_apache()
    if module_dir is None:
        return Peer(name, False, why)
    if tls and not all(os.path.isfile(os.path.join(module_dir, so)) for so in APACHE_TLS_MODULES.values()):
        return Peer(name, False, f"mod_ssl not found in {module_dir}")
    root = ApacheRoot(app, port, procs, threads, module_dir, bench_keepalive, tls)
    keepalive = (f"the bench's keep-alive (KeepAliveTimeout {BENCH_KEEPALIVE_TIMEOUT}, MaxKeepAliveRequests "
                 f"{BENCH_MAX_KEEPALIVE_REQUESTS})" if bench_keepalive else "Apache's keep-alive defaults")
    peer = Peer(name, True, f"httpd event MPM + mod_wsgi embedded{' + mod_ssl' if tls else ''}, WSGIApplicationGroup %{{GLOBAL}}, {procs} "
                            f"children x {threads} threads, {keepalive}, system python3")

    def prepare() -> None:
        root.prepare()
        peer.command = root.command(binary)
    peer.prepare, peer.cleanup = prepare, root.cleanup
    peer.apache_root = root   # for tests and error messages
    return peer


BENCH_KEEPALIVE_FLAGS = ["--keep-alive-timeout", str(BENCH_KEEPALIVE_TIMEOUT),
                         "--max-keep-alive-requests", str(BENCH_MAX_KEEPALIVE_REQUESTS)]


def mpmserver_peers(app: str, procs: int, threads: int, port_for, tls: TLSFiles | None = None) -> list[Peer]:
    """mpmserver with its defaults and with the bench's keep-alive, exactly
    procs x threads (FixedServers: -w)."""
    out = []
    for name, extra, note in (("mpmserver", [], "its defaults (Apache's keep-alive)"),
                              ("mpmserver-ka", BENCH_KEEPALIVE_FLAGS, "the bench's keep-alive")):
        port = port_for(name)
        listen = [f"{HOST}:{port} https", "--certfile", tls.cert, "--keyfile", tls.key] if tls else [f"{HOST}:{port}"]
        cmd = [sys.executable, "-m", "mpmserver", app, "--listen", *listen,
               "--access-log", "off", "-w", str(procs), "--threads", str(threads), *extra]
        if os.geteuid() == 0:
            # A root master runs children as nobody, who may not be able to
            # read the Python installation (e.g. under /root): import first.
            cmd += ["--preload-app", "on"]
        out.append(Peer(name, True, f"-w {procs} --threads {threads}, {note}", cmd))
    return out


def python_peers(app: str, procs: int, threads: int, port_for, tls: TLSFiles | None = None) -> list[Peer]:
    """gunicorn, waitress, cheroot and granian, each with its defaults."""
    py = sys.executable
    have = importlib.util.find_spec
    out = []
    if have("gunicorn"):
        out.append(Peer("gunicorn", True, f"gthread, -w {procs} --threads {threads}, its defaults",
                        [py, "-m", "gunicorn", "-k", "gthread", "-w", str(procs), "--threads", str(threads),
                         "-b", f"{HOST}:{port_for('gunicorn')}", "--log-level", "warning",
                         *(["--certfile", tls.cert, "--keyfile", tls.key] if tls else []), app]))
    else:
        out.append(Peer("gunicorn", False, "not installed (pip install gunicorn)"))
    if tls:
        out += [Peer(name, False, "not compared over TLS") for name in ("waitress", "cheroot", "granian")]
        return out
    if have("waitress"):
        out.append(Peer("waitress", True, f"1 process x {procs * threads} threads (no multi-process), "
                                          "its defaults (connection_limit 100)",
                        [py, "-m", "waitress", "--host", HOST, "--port", str(port_for("waitress")),
                         "--threads", str(procs * threads), app]))
    else:
        out.append(Peer("waitress", False, "not installed (pip install waitress)"))
    if have("cheroot"):
        n = str(procs * threads)
        out.append(Peer("cheroot", True, f"CherryPy's thread pool, 1 process x {n} threads (no multi-process)",
                        [py, "-m", "cheroot", "--bind", f"{HOST}:{port_for('cheroot')}",
                         "--threads", n, "--max-threads", n, app]))
    else:
        out.append(Peer("cheroot", False, "not installed (pip install cheroot)"))
    granian = shutil.which("granian") or (os.path.join(os.path.dirname(py), "granian")
                                          if have("granian") else None)
    if granian and os.access(granian, os.X_OK):
        out.append(Peer("granian", True, f"Rust, --interface wsgi --workers {procs} --blocking-threads "
                                         f"{threads}, its defaults",
                        [granian, "--interface", "wsgi", "--host", HOST, "--port", str(port_for("granian")),
                         "--workers", str(procs), "--blocking-threads", str(threads),
                         "--log-level", "warning", "--no-access-log", app]))
    else:
        out.append(Peer("granian", False, "not installed (pip install granian)"))
    return out


def peers(app: str, procs: int, threads: int, port_for, tls: TLSFiles | None = None) -> list[Peer]:
    """Commands for every server; the same app, processes and threads, no access logs.
    ``tls``: every server that can speaks HTTPS with these files (--tls)."""
    out = mpmserver_peers(app, procs, threads, port_for, tls)
    out += [apache_peer(app, procs, threads, port_for(name), bench_keepalive=(name == "apache-ka"), tls=tls)
            for name in ("apache", "apache-ka")]
    out += python_peers(app, procs, threads, port_for, tls)
    uwsgi = shutil.which("uwsgi")
    if tls:
        out.append(Peer("uwsgi", False, "not compared over TLS (--http-socket has none)"))
    elif uwsgi:
        out.append(Peer("uwsgi", True, f"--processes {procs} --threads {threads}, --http-socket "
                                       "(no keep-alive: it closes after every response)",
                        [uwsgi, "--http-socket", f"{HOST}:{port_for('uwsgi')}", "--master",
                         "--processes", str(procs), "--threads", str(threads),
                         "--module", app, "--disable-logging",
                         "--die-on-term", "--need-app"]))
    else:
        out.append(Peer("uwsgi", False, "not installed (pip install uwsgi)"))
    return out


PEER_NAMES = ("mpmserver", "mpmserver-ka", "apache", "apache-ka", "gunicorn", "waitress", "cheroot",
              "granian", "uwsgi")
# The latency distribution each closed-loop run records (wrk's done() prints them).
PERCENTILES = (50, 75, 90, 95, 99, 99.5, 99.9, 99.99)


def wrk_script(w: Workload) -> str:
    """wrk's Lua script for a workload: the method and body, and a done()
    that prints the latency distribution (wrk --latency stops at p99)."""
    lines = ["-- written by benchmarks/compare.py"]
    if w.method != "GET" or w.body:
        lines += [f'wrk.method = "{w.method}"',
                  f'wrk.body = string.rep("x", {len(w.body)})',
                  'wrk.headers["Content-Type"] = "application/octet-stream"']
    pcts = ", ".join(f"{p:g}" for p in PERCENTILES)
    lines += ["done = function(summary, latency, requests)",
              "  local out = {}",
              f"  for _, p in ipairs({{{pcts}}}) do",
              '    out[#out + 1] = string.format("%g=%d", p, latency:percentile(p))',
              "  end",
              '  io.write("latency-us " .. table.concat(out, " ") .. "\\n")',
              "end", ""]
    return "\n".join(lines)


def parse_percentiles(text: str) -> dict[float, float]:
    """{percentile: ms} from the line wrk_script's done() prints; {} if absent."""
    for line in text.splitlines():
        if line.startswith("latency-us "):
            pairs = (item.split("=") for item in line.split()[1:])
            return {float(p): int(us) / 1000.0 for p, us in pairs}
    return {}


def wrk_command(url: str, w: Workload, connections: int, seconds: float, script_dir: str,
                timeout: float = 5.0) -> list[str]:
    """wrk -t1 for one workload: a Connection: close header, and the Lua
    script with the POST body and the latency distribution."""
    cmd = [wrk_path() or "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           f"--timeout={max(1, round(timeout))}s", "--latency"]
    if not w.keepalive:
        cmd += ["-H", "Connection: close"]
    script = os.path.join(script_dir, f"{w.name}.lua")
    if not os.path.exists(script):
        Path(script).write_text(wrk_script(w))
    return cmd + ["-s", script, url]


def wrk_result(text: str) -> dict:
    """One run's figures from wrk's output: keep-alive connections the server
    closed under the client (wrk's read errors: EOF where a response was
    due; a client resends such a request) apart from failed requests."""
    r = parse_wrk(text)
    pcts = parse_percentiles(text)
    lat = r["latency_ms"]
    errors = r["errors"]
    return {"rps": r["requests_per_s"], "requests": r.get("requests", 0),
            "p50": pcts.get(50.0, lat.get("p50", NAN)), "p99": pcts.get(99.0, lat.get("p99", NAN)),
            "p999": pcts.get(99.9, NAN), "percentiles": pcts,
            "closed": errors.get("read", 0),
            "failed": errors.get("connect", 0) + errors.get("write", 0) + errors.get("timeout", 0)
            + r["non_2xx"]}


NAN = float("nan")


def bench_result(rep: dict) -> dict:
    """One run's figures from `mpmserver bench`'s report (the same keys as wrk_result)."""
    lat, err = rep["latency_ms"], rep["errors"]
    return {"rps": rep["requests_per_s"], "requests": rep.get("responses", 0),
            "p50": lat["p50"], "p99": lat["p99"], "p999": lat["p99.9"],
            "percentiles": {50.0: lat["p50"], 90.0: lat["p90"], 99.0: lat["p99"], 99.9: lat["p99.9"]},
            "closed": err.get("read", 0) + err.get("reset", 0),
            "failed": err.get("connect", 0) + err.get("timeout", 0)
            + sum(v for k, v in rep["status"].items() if k != "200"),
            "saturated": rep.get("generator_saturated", False)}


def measure(load: str, url: str, w: Workload, connections: int, seconds: float, warmup: float,
            script_dir: str | None = None, rate: float | None = None) -> dict:
    """One run: requests/s, p50, p99 and p99.9 in ms, closed and failed.
    With `rate`, an open-loop run of `mpmserver bench` at that many requests/s."""
    if load == "wrk" and rate is None:
        cmd = wrk_command(url, w, connections, seconds, script_dir or tempfile.gettempdir())
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            # wrk waits for ever on connections that never complete (a server
            # that stopped accepting, its listen backlog full): nothing served.
            return {"rps": 0.0, "requests": 0, "p50": NAN, "p99": NAN, "p999": NAN, "percentiles": {},
                    "closed": 0, "failed": connections, "stalled": True}
        if res.returncode != 0:
            raise RuntimeError(f"wrk failed ({res.returncode}): {res.stderr.strip() or res.stdout[-500:]}")
        return wrk_result(res.stdout)
    from urllib.parse import urlsplit
    u = urlsplit(url)
    cfg = LoadConfig(host=u.hostname, port=u.port,
                     request=build_request(w.method, u.path or "/", u.netloc, [], w.body, w.keepalive),
                     connections=connections, duration=seconds, requests=None, warmup=warmup,
                     keepalive=w.keepalive, rate=rate, total_connections=connections)
    return bench_result(run_load(cfg, 1, False, {"url": url}))


def _median(values) -> float:
    vals = [v for v in values if v == v]     # NaN (no figure) left out
    return statistics.median(vals) if vals else NAN


def summarize(runs: dict[str, list[dict]], baseline: str = "mpmserver") -> list[dict]:
    """Median of each server's runs, its requests/s ratio to the baseline,
    the closed and failed counts summed over the rounds."""
    rows = []
    for name, rs in runs.items():
        if not rs:
            continue
        pcts = sorted({p for r in rs for p in r.get("percentiles", {})})
        rows.append({"server": name, "rps": statistics.median(r["rps"] for r in rs),
                     "p50": _median(r["p50"] for r in rs), "p99": _median(r["p99"] for r in rs),
                     "p999": _median(r.get("p999", NAN) for r in rs),
                     "percentiles": {p: _median(r["percentiles"].get(p, NAN) for r in rs) for p in pcts},
                     "cpu_us": _median(r.get("cpu_us", NAN) for r in rs),
                     "pss_mib": _median(r.get("pss_mib", NAN) for r in rs),
                     "rps_min": min(r["rps"] for r in rs), "rps_max": max(r["rps"] for r in rs),
                     "closed": sum(r.get("closed", 0) for r in rs),
                     "failed": sum(r.get("failed", 0) for r in rs),
                     "saturated": any(r.get("saturated") for r in rs), "runs": len(rs)})
    base = next((r["rps"] for r in rows if r["server"] == baseline), None)
    for r in rows:
        r["ratio"] = r["rps"] / base if base else NAN
    return rows


def _ms(v: float) -> str:
    return "-" if v != v else (f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}")


def _render(head: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [head, *body])


def format_table(rows: list[dict], markdown: bool = False) -> str:
    head = ["server", "req/s", "min-max", "p50 ms", "p99 ms", "p99.9 ms", "vs mpmserver", "closed",
            "failed", "CPU us/req", "PSS MiB"]
    body = [[r["server"], f"{r['rps']:.0f}", f"{r['rps_min']:.0f}-{r['rps_max']:.0f}",
             _ms(r["p50"]), _ms(r["p99"]), _ms(r.get("p999", NAN)), f"{r['ratio']:.2f}x",
             str(r.get("closed", 0)), str(r.get("failed", 0)),
             "-" if r.get("cpu_us", NAN) != r.get("cpu_us", NAN) else f"{r['cpu_us']:.0f}",
             "-" if r.get("pss_mib", NAN) != r.get("pss_mib", NAN) else f"{r['pss_mib']:.1f}"]
            for r in rows]
    return _render(head, body, markdown)


def format_open_loop(rows: list[dict], markdown: bool = False) -> str:
    """Open-loop rows: each server at a share of its own maximum, p99 beside
    mpmserver's at the same share."""
    base = {r["pct"]: r for r in rows if r["server"] == "mpmserver"}
    head = ["server", "% of max", "rate req/s", "achieved", "p50 ms", "p99 ms", "p99.9 ms",
            "mpmserver p99 / its p99", "failed"]
    body = []
    for r in rows:
        b = base.get(r["pct"])
        ratio = f"{b['p99'] / r['p99']:.2f}x" if b and r["p99"] == r["p99"] and r["p99"] > 0 else "-"
        # Short of the rate asked: the server or the generator (one Python
        # process, on the same cores) could not keep up; its p99 says how far.
        short = " (generator saturated)" if r.get("saturated") else (
            " (not sustained)" if r["rps"] < 0.95 * r["rate"] else "")
        body.append([r["server"], f"{r['pct']:g}%", f"{r['rate']:.0f}", f"{r['rps']:.0f}" + short,
                     _ms(r["p50"]), _ms(r["p99"]), _ms(r["p999"]), ratio, str(r["failed"])])
    return _render(head, body, markdown)


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot(rows: list[dict], path: str, title: str):
    """Requests/s (median, min-max, ratio to mpmserver) beside p99 latency
    and each server's latency distribution; returns the figure, saved to path."""
    import textwrap

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = ["#c0392b" if r["server"] == "mpmserver" else "#7f8c8d" for r in rows]
    # "gunicorn 27 gthread" on two lines: long names side by side would overlap.
    names = ["\n".join(textwrap.wrap(r["server"], 12)) for r in rows]
    fig, (ax_rps, ax_p99, ax_dist) = plt.subplots(1, 3, figsize=(14, 4.5))
    err = [[r["rps"] - r["rps_min"] for r in rows], [r["rps_max"] - r["rps"] for r in rows]]
    bars = ax_rps.bar(names, [r["rps"] for r in rows], yerr=err, capsize=4, color=colors)
    # Labels inside the bars, so they can collide with neither error bars nor the title.
    ax_rps.bar_label(bars, [f"{r['rps']:.0f}\n{r['ratio']:.2f}x" for r in rows], label_type="center",
                     color="white", fontsize=7)
    ax_rps.set_ylabel("requests/s (median, min-max)")
    ax_rps.set_title("throughput", fontsize=10)
    bars = ax_p99.bar(names, [r["p99"] for r in rows], color=colors)
    # Above the bars: a p99 of a few ms makes a bar too short to hold its label.
    ax_p99.bar_label(bars, [f"{r['p99']:.0f}" if r["p99"] >= 10 else f"{r['p99']:.1f}" for r in rows],
                     label_type="edge", fontsize=6)
    ax_p99.margins(y=0.1)
    ax_p99.set_ylabel("p99 latency, ms (median)")
    ax_p99.set_title("p99 latency (lower is better)", fontsize=10)
    for ax in (ax_rps, ax_p99):
        ax.tick_params(axis="x", labelsize=7, rotation=90)
    _plot_distribution(ax_dist, rows)
    fig.suptitle("\n".join(textwrap.wrap(title, 120)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fig


def _plot_distribution(ax, rows: list[dict]) -> None:
    """Latency against percentile, the percentile axis stretched towards the
    tail (1 / (1 - p), as HdrHistogram plots it)."""
    for r in rows:
        pts = sorted((p, ms) for p, ms in r.get("percentiles", {}).items() if ms == ms)
        if not pts:
            continue
        ax.plot([1 / (1 - p / 100) for p, _ in pts], [ms for _, ms in pts], marker=".",
                label=r["server"], linewidth=2.5 if r["server"] == "mpmserver" else 1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [p for p in PERCENTILES if p in (50, 90, 99, 99.9, 99.99)]
    ax.set_xticks([1 / (1 - p / 100) for p in ticks], [f"p{p:g}" for p in ticks], fontsize=7)
    ax.minorticks_off()
    ax.set_ylabel("latency, ms (median of rounds)")
    ax.set_title("latency distribution", fontsize=10)
    ax.legend(fontsize=6, loc="upper left")


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
    return _render(head, body, markdown)


def format_grid(tables: dict[str, list[dict]], names: list[str], markdown: bool = False) -> str:
    """The one table: a line per workload, a column per server; each cell
    requests/s, p50/p99/p99.9 ms and, for peers, mpmserver's requests/s
    divided by theirs."""
    head = ["workload"] + list(names)
    body = []
    for wname, rows in tables.items():
        by = {r["server"]: r for r in rows}
        base = by.get("mpmserver")
        line = [wname]
        for n in names:
            r = by.get(n)
            if r is None:
                line.append("-")
                continue
            cell = f"{r['rps']:,.0f}, {_ms(r['p50'])}/{_ms(r['p99'])}/{_ms(r.get('p999', NAN))}"
            if n != "mpmserver" and base:
                cell += f", {base['rps'] / r['rps']:.2f}x" if r["rps"] > 0 else ", served 0"
            line.append(cell)
        body.append(line)
    return _render(head, body, markdown)


def format_cpu(tables: dict[str, list[dict]], names: list[str], markdown: bool = False) -> str:
    """CPU time of each server's processes per request, per workload."""
    head = ["workload"] + [f"{n} us/req" for n in names]
    body = []
    for wname, rows in tables.items():
        by = {r["server"]: r for r in rows}
        body.append([wname] + ["-" if n not in by or by[n]["cpu_us"] != by[n]["cpu_us"]
                               else f"{by[n]['cpu_us']:.0f}" for n in names])
    return _render(head, body, markdown)


def parse_args(argv: list[str] | None):
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
    p.add_argument("--open-loop", default="50,80", metavar="PCTS",
                   help="open-loop runs at these percentages of each server's measured maximum "
                        "(default 50,80; none to skip)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--plot", metavar="FILE.png", help="a plot per workload (FILE-workload.png)")
    p.add_argument("--tls", action="store_true",
                   help="every server that can speaks HTTPS (needs wrk and trustme; no open loop, no idle1000)")
    args = p.parse_args(argv)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in PEER_NAMES]
    if unknown:
        p.error(f"unknown server {', '.join(map(repr, unknown))} in --servers; choose from {', '.join(PEER_NAMES)}")
    args.wanted = wanted
    if args.path:
        args.workload_list = [Workload("custom", f"GET {args.path}, keep-alive", args.path)]
    else:
        names = list(WORKLOADS) if args.workloads == "all" else [
            w.strip() for w in args.workloads.split(",") if w.strip()]
        bad = [w for w in names if w not in WORKLOADS]
        if bad:
            p.error(f"unknown workload {', '.join(map(repr, bad))}; choose from {', '.join(WORKLOADS)} or all")
        args.workload_list = [WORKLOADS[w] for w in names]
    try:
        args.rates = [] if args.open_loop == "none" else [float(x) for x in args.open_loop.split(",") if x]
    except ValueError:
        p.error(f"--open-loop {args.open_loop!r}: percentages like 50,80, or none")
    if any(not 0 < r <= 100 for r in args.rates):
        p.error(f"--open-loop {args.open_loop!r}: each percentage between 0 and 100")
    if args.plot and not have_matplotlib():
        p.error("--plot needs matplotlib: pip install 'mpmserver[plot]' (checked before measuring anything)")
    return args


class Session:
    """The servers of one run, started once, all long-lived, and how each round is measured."""

    def __init__(self, args, load: str, script_dir: str, tls: TLSFiles | None = None) -> None:
        self.args, self.load, self.tls = args, load, tls
        self.scheme = "https" if tls else "http"
        self.ports: dict[str, int] = {}
        self.all_peers = [pe for pe in peers(args.app, args.procs, args.threads,
                                             lambda n: self.ports.setdefault(n, free_port(HOST)), tls)
                          if pe.name in args.wanted]
        self.notes = [f"{pe.name}: skipped, {pe.note}" for pe in self.all_peers if not pe.available]
        self.running: dict[str, ServerProcess] = {}
        self.started: list[Peer] = []
        self.script_dir = script_dir

    def start(self, ready: str) -> None:
        env = dict(os.environ,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        for pe in self.all_peers:
            if not pe.available:
                continue
            try:
                if pe.prepare:
                    self.started.append(pe)
                    pe.prepare()
                srv = ServerProcess(pe.command, HOST, self.ports[pe.name], name=pe.name, ready_path=ready,
                                    env=env, cwd=str(ROOT), new_session=True,
                                    tls=self.tls.client_context() if self.tls else None)
                srv.start(30)
            except BenchError as exc:
                self.notes.append(f"{pe.name}: skipped, did not start: {str(exc).splitlines()[0]}")
                continue
            self.running[pe.name] = srv
            if pe not in self.started:
                self.started.append(pe)

    def stop(self) -> None:
        for srv in self.running.values():
            srv.stop()
        for pe in self.started:
            if pe.cleanup:
                pe.cleanup()
        shutil.rmtree(self.script_dir, ignore_errors=True)

    def url(self, name: str, w: Workload) -> str:
        return f"{self.scheme}://{HOST}:{self.ports[name]}{w.path}"

    def run_once(self, name: str, w: Workload, conns: int, rate: float | None = None) -> dict:
        """One measured run, with the server's CPU time per request (all the
        processes of its session) and, for idle1000, the idle crowd's fate."""
        crowd = IdleConnections(HOST, self.ports[name], w.idle, w.path, timeout=10.0).open() if w.idle else None
        sid = self.running[name].proc.pid
        try:
            cpu0 = session_cpu_seconds(sid)
            r = measure(self.load, self.url(name, w), w, conns, self.args.duration, 0.5, self.script_dir, rate)
            cpu = session_cpu_seconds(sid) - cpu0
        finally:
            if crowd is not None:
                r_idle = (crowd.served, crowd.connected)
                crowd.close()
                time.sleep(0.5)   # let the server see the closes before the next one
        if crowd is not None:
            r["idle_served"], r["idle_connected"] = r_idle
        # The server's memory right after the load: the PSS of every process
        # of its tree (shared pages divided among their sharers, so the sum is
        # what the server costs the machine; issue 23 item 4).
        r["pss_mib"] = tree_memory(self.running[name].proc.pid).pss / (1 << 20)
        # wrk's count covers its whole run, the CPU time too (bench: the measured window).
        r["cpu_us"] = cpu / r["requests"] * 1e6 if r.get("requests") else NAN
        return r


def rotation(order: list[str], rnd: int) -> list[str]:
    """Who goes first rotates, so no server always runs on a warmer machine."""
    k = rnd % len(order) if order else 0
    return order[k:] + order[:k]


def closed_loop(sess: Session, w: Workload, conns: int, notes: list[str]) -> dict[str, list[dict]]:
    args, order = sess.args, list(sess.running)
    runs: dict[str, list[dict]] = {name: [] for name in order}
    for name in order:   # warm-up, the same for every server, unmeasured
        measure(sess.load, sess.url(name, w), w, conns, 1.0, 0.0, sess.script_dir)
    for rnd in range(args.rounds):
        for name in rotation(order, rnd):
            r = sess.run_once(name, w, conns)
            runs[name].append(r)
            if r.get("stalled"):
                notes.append(f"{w.name}, {name}: round {rnd + 1}: wrk did not finish within "
                             f"{args.duration + 20:g} s (its connections never completed: the "
                             "server was not accepting); counted as 0 req/s")
            extra = (f", idle {r['idle_served']}/{w.idle} answered, {r['idle_connected']} connected"
                     if w.idle else "")
            print(f"{w.name} round {rnd + 1}/{args.rounds} {name}: {r['rps']:.0f} req/s, p99 "
                  f"{_ms(r['p99'])} ms, closed {r['closed']}, failed {r['failed']}{extra}", file=sys.stderr)
    return runs


def open_loop(sess: Session, w: Workload, conns: int, rows: list[dict]) -> list[dict]:
    """Each server at each --open-loop share of its own measured maximum,
    alternating, one run each (`mpmserver bench --rate`)."""
    best = {r["server"]: r["rps"] for r in rows}
    out = []
    if w.idle:
        return out   # without its idle crowd (the generator has none) it is plaintext again
    for i, pct in enumerate(sess.args.rates):
        for name in rotation(list(sess.running), i):
            rate = best.get(name, 0) * pct / 100
            if rate < 1:
                continue
            r = measure("bench", sess.url(name, w), w, conns, sess.args.duration, 0.5, rate=rate)
            r.update(server=name, pct=pct, rate=rate)
            out.append(r)
            print(f"{w.name} open loop {pct:g}% {name}: {rate:.0f} req/s asked, {r['rps']:.0f} done, "
                  f"p99 {_ms(r['p99'])} ms", file=sys.stderr)
    return out


def report(args, load: str, sess: Session, tables: dict, open_tables: dict, idle_notes: list[str]) -> str:
    out = []
    md = args.markdown
    for w in args.workload_list:
        rows = tables.get(w.name, [])
        conns = args.connections or w.connections
        title = (f"{w.title}{' over TLS' if sess.tls else ''}: {args.app} {w.method} {w.path}, "
                 f"{args.procs} processes x {args.threads} "
                 f"threads, {conns} connections, load: {load}, {args.rounds} x {args.duration:g} s")
        out.append(("**" + title + "**\n\n" if md else title + "\n") + format_table(rows, md))
        if open_tables.get(w.name):
            head = f"{w.name}, open loop (mpmserver bench --rate, {args.duration:g} s per run):"
            out.append(("**" + head + "**\n\n" if md else head + "\n") + format_open_loop(open_tables[w.name], md))
        if args.plot and rows:
            base, ext = os.path.splitext(args.plot)
            path = args.plot if len(args.workload_list) == 1 else f"{base}-{w.name}{ext or '.png'}"
            plot(rows, path, title)
            out.append(f"plot written to {path}")
    order = list(sess.running)
    head = "requests/s, p50/p99/p99.9 ms and mpmserver's requests/s divided by each peer's (medians of rounds):"
    out.append(("**" + head + "**\n\n" if md else head + "\n") + format_grid(tables, order, md))
    head = "CPU time of the server's processes per request (us, median of rounds):"
    out.append(("**" + head + "**\n\n" if md else head + "\n") + format_cpu(tables, order, md))
    notes = sess.notes + idle_notes + [f"{pe.name}: {pe.note}" for pe in sess.all_peers if pe.available]
    out.append("\n".join(("- " if md else "  ") + n for n in notes))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A TERM (a CI timeout, kill) stops the servers it started, as Ctrl-C does:
    # the exit runs the finally below instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = args.load
    if load == "auto":
        load = "wrk" if wrk_path() else "bench"
    elif load == "wrk" and not wrk_path():
        print("compare: wrk is not installed; use --load bench", file=sys.stderr)
        return 1
    script_dir = tempfile.mkdtemp(prefix="mpmserver-compare-")
    tls = None
    if args.tls:
        if load != "wrk":
            print("compare: --tls needs wrk (mpmserver bench speaks plain HTTP)", file=sys.stderr)
            return 1
        try:
            tls = make_tls_files(script_dir)
        except BenchError as exc:
            print(f"compare: {exc}", file=sys.stderr)
            shutil.rmtree(script_dir, ignore_errors=True)
            return 1
        # The idle crowd and the open-loop generator speak plain HTTP.
        if any(w.idle for w in args.workload_list):
            print("compare: --tls leaves out " + ", ".join(w.name for w in args.workload_list if w.idle),
                  file=sys.stderr)
            args.workload_list = [w for w in args.workload_list if not w.idle]
        args.rates = []
    sess = Session(args, load, script_dir, tls)
    tables: dict[str, list[dict]] = {}
    open_tables: dict[str, list[dict]] = {}
    idle_notes: list[str] = []
    try:
        sess.start(args.workload_list[0].path)
        for w in args.workload_list:
            conns = args.connections or w.connections
            runs = closed_loop(sess, w, conns, sess.notes)
            tables[w.name] = summarize(runs)
            if args.rates:
                open_tables[w.name] = open_loop(sess, w, conns, tables[w.name])
            if w.idle:
                for name, rs in runs.items():
                    idle_notes.append(
                        f"{w.name}, {name}: of {w.idle} idle connections, "
                        f"{min(r['idle_served'] for r in rs)}-{max(r['idle_served'] for r in rs)} answered, "
                        f"{min(r['idle_connected'] for r in rs)}-{max(r['idle_connected'] for r in rs)} "
                        "connected (per round)")
    finally:
        sess.stop()
    print(report(args, load, sess, tables, open_tables, idle_notes))
    return 0 if any(tables.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
